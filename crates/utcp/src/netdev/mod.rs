//! Devices (net/core/dev.c): the [`NetDevice`] boundary, `netif_rx`'s per-thread softnet queue,
//! and NAPI polling with a budget.
//!
//! Devices: [`memlink`] (an in-memory wire with seeded impairments), [`pcap`] (a decorator that
//! records every frame in a Wireshark-readable capture). A TUN device lives in the `utcp-tun`
//! crate behind the same trait.

pub mod memlink;
pub mod pcap;

use crate::skb::Frame;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

/// What a device hands received frames to: the stack's `netif_receive_skb`.
pub type RxHook = Arc<dyn Fn(Frame) + Send + Sync>;

/// A network device as the stack sees it.
pub trait NetDevice: Send + Sync {
    /// `ndo_start_xmit`: sends one frame. Never blocks; a full device drops and counts.
    fn xmit(&self, frame: Frame);
    /// The device MTU.
    fn mtu(&self) -> u32;
    /// The NAPI id of this device's receive queue (`napi->napi_id`, ≥ 1), 0 if it has none.
    fn napi_id(&self) -> u32 {
        0
    }
    /// `napi->poll()`: delivers up to `budget` queued received frames through the attached hook,
    /// returns how many. Devices that deliver inline return 0.
    fn napi_poll(&self, budget: usize) -> usize {
        let _ = budget;
        0
    }
    /// True when frames wait in the receive queue.
    fn rx_pending(&self) -> bool {
        false
    }
    /// Installs the receive hook.
    fn attach(&self, hook: RxHook);
}

thread_local! {
    static SOFTNET: RefCell<(bool, VecDeque<(RxHook, Frame)>)> = const { RefCell::new((false, VecDeque::new())) };
}

/// `netif_rx()` for inline delivery: queues `frame` for `hook` on this thread's softnet queue and,
/// unless this thread is already draining it, drains it now. Delivery is iterative, never
/// recursive, however long the chain of replies — as the kernel's per-CPU backlog makes
/// loopback.
pub fn netif_rx(hook: &RxHook, frame: Frame) {
    let drain = SOFTNET.with(|s| {
        let mut s = s.borrow_mut();
        s.1.push_back((hook.clone(), frame));
        if s.0 {
            false
        } else {
            s.0 = true;
            true
        }
    });
    if !drain {
        return;
    }
    loop {
        let next = SOFTNET.with(|s| {
            let mut s = s.borrow_mut();
            let n = s.1.pop_front();
            if n.is_none() {
                s.0 = false;
            }
            n
        });
        match next {
            Some((h, f)) => h(f),
            None => break,
        }
    }
}

/// A device that delivers straight into another stack's hook (loopback-like), for tests.
pub struct Wire {
    peer: parking_lot::RwLock<Option<RxHook>>,
    mtu: u32,
}

impl Wire {
    /// A wire with `mtu`; frames sent go to the hook installed with [`Wire::connect`].
    pub fn new(mtu: u32) -> Wire {
        Wire { peer: parking_lot::RwLock::new(None), mtu }
    }
    /// Sets where transmitted frames go.
    pub fn connect(&self, peer: RxHook) {
        *self.peer.write() = Some(peer);
    }
}

impl NetDevice for Wire {
    fn xmit(&self, frame: Frame) {
        if let Some(p) = self.peer.read().clone() {
            netif_rx(&p, frame);
        }
    }
    fn mtu(&self) -> u32 {
        self.mtu
    }
    fn attach(&self, _hook: RxHook) {}
}
