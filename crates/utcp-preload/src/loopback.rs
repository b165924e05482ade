//! The in-process loopback device (drivers/net/loopback.c): what the stack transmits comes
//! back in as received, in the sending thread, through a receive backlog (`netif_rx()` onto
//! the per-CPU backlog, then `process_backlog()`), so a program that talks to itself over
//! 127.0.0.0/8 runs entirely on utcp.

use parking_lot::RwLock;
use utcp::netdev::{NetDevice, RxBacklog, RxHook};
use utcp::skb::Frame;

/// `LOOPBACK_MTU` (64 KiB; utcp bounds a route's MTU to 65535 as `ipv4_mtu()` does).
pub const LOOPBACK_MTU: u32 = 1 << 16;

/// `netdev_max_backlog` (the frames the backlog holds).
const MAX_BACKLOG: usize = 1000;

/// A device whose transmit delivers to the stack it is attached to.
pub struct Loopback {
    hook: RwLock<Option<RxHook>>,
    backlog: RxBacklog,
}

impl Default for Loopback {
    fn default() -> Self {
        Loopback { hook: RwLock::new(None), backlog: RxBacklog::new(MAX_BACKLOG) }
    }
}

impl Loopback {
    /// Frames the backlog dropped because it was full (`softnet_stat` dropped).
    pub fn dropped(&self) -> u64 {
        self.backlog.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl NetDevice for Loopback {
    /// `loopback_xmit()`: queues the frame for our own input (never calls into the stack here:
    /// a socket lock may be held).
    fn xmit(&self, mut frame: Frame) {
        frame.napi_id = 0;
        self.backlog.enqueue(frame);
    }

    /// Delivers the backlog in FIFO order, replies included (iterative: a thread that finds
    /// another draining leaves its frames to it).
    fn flush_tx(&self) {
        let hook = self.hook.read().clone();
        if let Some(h) = hook {
            self.backlog.drain(&|f| h(f));
        }
    }

    fn mtu(&self) -> u32 {
        LOOPBACK_MTU
    }

    fn attach(&self, hook: RxHook) {
        *self.hook.write() = Some(hook);
    }

    fn dev_stats(&self) -> utcp::netdev::DevStats {
        utcp::netdev::DevStats { rx_dropped: self.dropped(), tx_dropped: 0 }
    }
}
