//! Devices (net/core/dev.c): the [`NetDevice`] boundary, `netif_rx`'s per-thread softnet queue,
//! and NAPI polling with a budget.
//!
//! Devices: [`memlink`] (an in-memory wire with seeded impairments), [`pcap`] (a decorator that
//! records every frame in a Wireshark-readable capture). There is no TUN device yet; one would
//! sit behind the same trait.

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

/// `skb->truesize` of an IPv4 packet of `ip_len` bytes written to a Linux (6.x, x86_64) tun
/// device opened `IFF_TUN | IFF_NO_PI | IFF_VNET_HDR`, as packetdrill does: `tun_get_user()`
/// → `tun_alloc_skb(align = NET_SKB_PAD)` → `sock_alloc_send_pskb()`. A packet that fits in a
/// page minus the pad is linear (kmalloc'ed head, 576-byte small-head cache below that); a
/// bigger one gets `SKB_MAX_HEAD(align)` = 3712 linear bytes in a 4 KiB head and the rest in
/// page frags of up to order 3 (`alloc_skb_with_frags()`). Checked against SO_MEMINFO on a
/// 6.18.44 kernel for payloads of 1 to 60000 bytes.
// DEVIATION(linux): such a head is kmalloc'ed, not a page frag, so skb_try_coalesce() cannot
// steal it and the kernel never coalesces these segments in its receive or out-of-order queue;
// utcp's queues still coalesce contiguous segments (charging truesize - sizeof(struct sk_buff)
// in the receive queue), so sk_rmem_alloc may read 256 bytes per coalesced segment lower.
pub fn tun_skb_truesize(ip_len: u32) -> u32 {
    const PAD: u32 = 64; // NET_SKB_PAD + NET_IP_ALIGN
    const SHINFO: u32 = 320; // SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
    const SKB: u32 = 256; // SKB_DATA_ALIGN(sizeof(struct sk_buff))
    const SMALL_HEAD: u32 = 576; // SKB_SMALL_HEAD_CACHE_SIZE
    const PAGE: u32 = 4096;
    let head = |linear: u32| {
        let size = ((PAD + linear + 63) & !63) + SHINFO;
        let obj = if size <= SMALL_HEAD { SMALL_HEAD } else { size.next_power_of_two() };
        obj + SKB
    };
    if PAD + ip_len < PAGE {
        return head(ip_len);
    }
    let good_linear = PAGE - PAD - SHINFO;
    let mut truesize = head(good_linear);
    let mut rest = ip_len - good_linear;
    let mut order = 3; // PAGE_ALLOC_COSTLY_ORDER
    while rest > 0 {
        while order > 0 && rest.div_ceil(PAGE) * PAGE < PAGE << order {
            order -= 1;
        }
        truesize += PAGE << order;
        rest -= rest.min(PAGE << order);
    }
    truesize
}
