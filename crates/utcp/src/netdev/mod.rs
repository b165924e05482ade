//! Devices (net/core/dev.c): the [`NetDevice`] boundary, the receive backlog that inline
//! delivery goes through ([`RxBacklog`], `netif_rx`), and NAPI polling with a budget.
//!
//! Devices: [`memlink`] (an in-memory wire with seeded impairments), [`pcap`] (a decorator that
//! records every frame in a Wireshark-readable capture). There is no TUN device yet; one
//! would sit behind the same trait.
//!
//! # Transmit order
//! Transmission has two halves, as `dev_queue_xmit()` has (enqueue on the qdisc under the
//! socket lock, then `qdisc_run()`):
//! * [`NetDevice::xmit`] takes a frame in transmit order. The stack calls it while it still
//!   holds the lock of the socket that built the frame, so one socket's frames reach the
//!   device in the order they were built whatever thread built them. It must not call back
//!   into any stack (it queues, counts, impairs, records).
//! * [`NetDevice::flush_tx`] then delivers what was queued, with no socket lock held. Devices
//!   that deliver inline do it here, in FIFO order per direction (one thread drains a
//!   direction at a time; the others leave their frames to it).

pub mod gro;
pub mod gso;
pub mod memlink;
pub mod pcap;

/// The frame a device sends and receives (`struct sk_buff` as a device sees it) and the
/// memory layout a device gives it (for `truesize` accounting).
pub use crate::skb::{Frame, SkbLayout};
use crate::sync::Mutex;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a device hands received frames to: the stack's `netif_receive_skb`.
pub type RxHook = Arc<dyn Fn(Frame) + Send + Sync>;

/// `NAPI_POLL_WEIGHT`: the frames one `napi->poll()` may deliver (`dev_rx_weight` for the
/// backlog's own NAPI).
pub const NAPI_POLL_WEIGHT: usize = 64;

/// The softnet counters of `/proc/net/softnet_stat` that utcp keeps (one set per stack).
#[derive(Debug, Default)]
pub struct SoftnetStat {
    /// `time_squeeze`: [`net_rx_action_napi`] rounds that ended with the budget
    /// (`net.core.netdev_budget`) spent.
    pub time_squeeze: AtomicU64,
}

/// `net_rx_action()` for one NAPI instance: polls `dev` [`NAPI_POLL_WEIGHT`] frames at a time
/// while a poll fills its weight (`napi_complete_done()` otherwise), and stops once `budget`
/// (`net.core.netdev_budget`) frames are spent — even when the last poll completed, as Linux
/// checks the budget after every poll — counting a `time_squeeze`; the rest waits for the next
/// round (ksoftirqd's). Returns the frames delivered and whether the budget ran out.
pub fn net_rx_action_napi<D: NetDevice + ?Sized>(dev: &D, budget: i64, stat: &SoftnetStat) -> (usize, bool) {
    let mut budget = budget;
    let mut total = 0;
    loop {
        let work = dev.napi_poll(NAPI_POLL_WEIGHT);
        total += work;
        budget -= work as i64;
        if work == 0 {
            return (total, false);
        }
        if budget <= 0 {
            stat.time_squeeze.fetch_add(1, Ordering::Relaxed);
            return (total, true);
        }
        if work < NAPI_POLL_WEIGHT {
            return (total, false);
        }
    }
}

/// A capture tap on what a device puts on its wire: one packet per call, as consecutive byte
/// slices (IP header first), in the order the wire carries them. See [`NetDevice::set_tx_tap`].
pub type TxTap = Arc<dyn Fn(&[&[u8]]) + Send + Sync>;

/// A device's drop counters (`struct rtnl_link_stats64`'s `rx_dropped` / `tx_dropped`, as
/// `ip -s link` shows them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DevStats {
    /// Frames the device dropped on receive (ring or backlog full).
    pub rx_dropped: u64,
    /// Frames the device dropped on transmit (the peer's ring or backlog full, no peer).
    pub tx_dropped: u64,
}

/// A network device as the stack sees it.
pub trait NetDevice: Send + Sync {
    /// `ndo_start_xmit` via the qdisc: takes one frame, in transmit order. May be called with a
    /// socket's locks held: never blocks and never calls into a stack (see the module docs). A
    /// full device drops and counts.
    fn xmit(&self, frame: Frame);
    /// `qdisc_run()`: delivers what [`NetDevice::xmit`] queued. Called with no socket lock
    /// held; may run the receiving stack's input (inline delivery). The default drains this
    /// thread's softnet queue ([`net_rx_action`]), for devices that queue with [`netif_rx_queue`].
    fn flush_tx(&self) {
        net_rx_action();
    }
    /// The device MTU.
    fn mtu(&self) -> u32;
    /// `dev->gso_max_size` with `NETIF_F_TSO`: the largest TCP super-segment
    /// [`NetDevice::xmit`] takes, IP header included. Such a frame has [`Frame::gso_size`] set
    /// (the MSS it is cut at) and a partial checksum ([`Frame::csum_partial`],
    /// `NETIF_F_HW_CSUM`); the device cuts it, or hands it whole to a peer that takes it whole
    /// (loopback, GRO). 0 (the default): no TSO; TCP still builds super-segments (up to
    /// `GSO_LEGACY_MAX_SIZE`) and `dev_queue_xmit` cuts them into MSS-sized packets with full
    /// checksums before the device ([`gso::skb_gso_segment`]).
    fn gso_max_size(&self) -> u32 {
        0
    }
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
    /// Asks the device to hand every packet it writes to its wire to `tap`, as the wire
    /// carries it — what a packet capture on the other side sees. A device that changes
    /// frames on the way out (a TUN device joining segments into a GSO super-packet) accepts
    /// and returns true; the default returns false, and a capture then records frames as
    /// [`NetDevice::xmit`] takes them (the same packets on such a device).
    fn set_tx_tap(&self, _tap: TxTap) -> bool {
        false
    }
    /// Releases frames whose time has come (delay, rate limit, reordering) and returns when
    /// something is next due. The host's device thread calls it.
    fn poll_timers(&self) -> Option<crate::time::Instant> {
        None
    }
    /// Whether the host must run a device thread for it (a receive ring to poll, or timed
    /// frames to release).
    fn needs_poll_thread(&self) -> bool {
        false
    }
    /// For the host's device thread: blocks until received frames wait, the next timed event
    /// may have changed, [`NetDevice::kick`] is called, or `timeout` passes (`None`: none).
    /// May return early.
    fn wait_event(&self, timeout: Option<std::time::Duration>) {
        std::thread::sleep(
            timeout.unwrap_or(std::time::Duration::from_millis(1)).min(std::time::Duration::from_millis(1)),
        );
    }
    /// Wakes a thread blocked in [`NetDevice::wait_event`].
    fn kick(&self) {}
    /// SO_PREFER_BUSY_POLL: a busy-polling reader takes this receive queue until `until`; the
    /// device thread leaves it alone meanwhile (`NAPI_STATE_PREFER_BUSY_POLL`).
    fn napi_prefer_busy_poll(&self, until: crate::time::Instant) {
        let _ = until;
    }
    /// Until when a preferring busy poller holds the receive queue, if it does at `now`.
    fn napi_busy_poll_preferred(&self, now: crate::time::Instant) -> Option<crate::time::Instant> {
        let _ = now;
        None
    }
    /// Drop counters.
    fn dev_stats(&self) -> DevStats {
        DevStats::default()
    }
    /// Writes out anything buffered (a capture file); reports a write error.
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Storage for `n` frames with every page of it written once, as a driver's descriptor ring
/// is allocated and mapped when the device opens: the memory a ring holds for good is
/// resident from the start, not faulted in by the first burst that fills it (which
/// `utcp soak` would see as RSS that never returns), and that burst takes no page faults.
/// Without `fault` the storage is only allocated (a simulated link, made per test or fuzz
/// input, would pay ~1.8 MB of page faults for each).
///
/// A queue grown past its slots by frames queued during receive processing shrinks back to
/// them without `fault` (under its lock, on the receive path: an allocation, no 0.9 MB of
/// writes); its pages come back as the next burst touches them.
pub(crate) fn frame_ring(n: usize, fault: bool) -> VecDeque<Frame> {
    let mut q = VecDeque::with_capacity(n);
    if fault {
        q.extend((0..n).map(|_| Frame::with_header_len(0, bytes::Bytes::new())));
        q.clear();
    }
    q
}

/// The slots a receive queue of `limit` frames has from the start (at most 65,536; a larger
/// one grows into the rest).
pub(crate) fn ring_slots(limit: usize) -> usize {
    limit.min(1 << 16)
}

/// A receive backlog for inline delivery (`softnet_data.input_pkt_queue`, one per receiving
/// device here rather than per CPU): frames are queued in transmit order and handed to the
/// receiving stack by one thread at a time, in FIFO order. A thread that finds another draining
/// leaves its frames to it, so delivery is iterative, never recursive, and one direction's
/// frames are never overtaken — whichever threads queued them.
pub struct RxBacklog {
    q: Mutex<BacklogQ>,
    limit: usize,
    /// The slots allocated up front ([`RxBacklog::with_room`]; 0 = none): what the queue's
    /// storage returns to once a burst past them drained.
    room: usize,
    /// Frames dropped because the backlog was full (`softnet_stat` dropped).
    pub dropped: AtomicU64,
}

#[derive(Default)]
struct BacklogQ {
    q: VecDeque<Frame>,
    draining: bool,
    /// Frames in `q` queued by [`RxBacklog::enqueue_past_limit`]: they do not take the room
    /// of others.
    past_limit: usize,
}

crate::sync::thread_local! {
    /// Set while this thread hands received frames to a stack (`process_backlog()` or a NAPI
    /// poll): softirq context, where Linux never waits for another CPU's backlog.
    static IN_RX: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Marks this thread as in receive processing until the guard drops (see [`in_rx`]).
pub struct RxGuard(());

impl RxGuard {
    /// Enters receive processing.
    pub fn enter() -> RxGuard {
        IN_RX.with(|c| c.set(c.get() + 1));
        RxGuard(())
    }
}

impl Drop for RxGuard {
    fn drop(&mut self) {
        IN_RX.with(|c| c.set(c.get() - 1));
    }
}

/// True while this thread hands received frames to a stack: a device must not make it wait
/// for another thread's receive processing (that thread may be waiting on this one's).
pub fn in_rx() -> bool {
    IN_RX.with(|c| c.get() > 0)
}

impl RxBacklog {
    /// A backlog holding at most `limit` frames (`netdev_max_backlog`).
    pub fn new(limit: usize) -> RxBacklog {
        RxBacklog { q: Mutex::new(BacklogQ::default()), limit: limit.max(1), room: 0, dropped: AtomicU64::new(0) }
    }
    /// [`RxBacklog::new`] with room for all `limit` frames from the start (at most 65,536),
    /// its pages written once (faulted in). Frames queued past the limit during receive processing
    /// ([`RxBacklog::enqueue_past_limit`]) can grow the queue beyond that room; once such a
    /// burst has drained, the queue's storage goes back to its room.
    pub fn with_room(limit: usize) -> RxBacklog {
        RxBacklog::with_room_faulted(limit, true)
    }
    /// [`RxBacklog::with_room`], its storage faulted in or not.
    pub(crate) fn with_room_faulted(limit: usize, fault: bool) -> RxBacklog {
        let mut b = RxBacklog::new(limit);
        b.room = ring_slots(b.limit);
        b.q.lock().q = frame_ring(b.room, fault);
        b
    }
    /// The capacity of the queue's storage now (tests: it returns to its room after a burst).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.q.lock().q.capacity()
    }
    /// Queues `frame`; false (and counted) when the backlog is full.
    pub fn enqueue(&self, frame: Frame) -> bool {
        let mut q = self.q.lock();
        if q.q.len() - q.past_limit >= self.limit {
            drop(q);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        q.q.push_back(frame);
        true
    }
    /// Queues `frame` even when the backlog is full, without taking the room of frames
    /// queued by [`RxBacklog::enqueue`] (a frame sent during receive processing: see the
    /// memlink's `deliver`).
    pub fn enqueue_past_limit(&self, frame: Frame) -> bool {
        let mut q = self.q.lock();
        q.past_limit += 1;
        q.q.push_back(frame);
        true
    }
    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.q.lock().q.len()
    }
    /// True when no frame waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The most frames it holds (`netdev_max_backlog`).
    pub fn limit(&self) -> usize {
        self.limit
    }
    /// `process_backlog()`: unless another thread is already at it, hands every queued frame
    /// to `hook` in order, including frames queued meanwhile (by `hook` itself or others).
    /// Returns false when another thread is draining (what it leaves is that thread's to hand
    /// on), true when this call found the backlog empty or emptied it.
    pub fn drain(&self, hook: &dyn Fn(Frame)) -> bool {
        self.drain_gro(hook, false)
    }
    /// [`RxBacklog::drain`], through GRO ([`gro::Gro`]) when `gro`: each batch taken from the
    /// backlog is one poll, its held packets flushed before the next batch is taken.
    pub fn drain_gro(&self, hook: &dyn Fn(Frame), gro: bool) -> bool {
        let mut batch = {
            let mut q = self.q.lock();
            if q.draining {
                return false;
            }
            if q.q.is_empty() {
                return true;
            }
            q.draining = true;
            q.past_limit = 0;
            std::mem::take(&mut q.q)
        };
        let _rx = RxGuard::enter();
        loop {
            gro::napi_deliver(&mut batch, hook, gro);
            let mut q = self.q.lock();
            if q.q.is_empty() {
                q.draining = false;
                // Keep the allocation for the next burst, but not what a burst past the room
                // grew it to: frames queued past the limit during receive processing
                // (1,000 soaked connections' ACKs and clocked-out data) doubled it to 32,768
                // frames (7 MiB), held for good after the link went quiet.
                if q.q.capacity() < batch.capacity() {
                    std::mem::swap(&mut q.q, &mut batch);
                }
                let keep = if self.room > 0 { self.room } else { ring_slots(self.limit) };
                if q.q.capacity() > keep {
                    q.q = frame_ring(self.room, false);
                }
                return true;
            }
            q.past_limit = 0;
            std::mem::swap(&mut q.q, &mut batch);
        }
    }
}

crate::sync::thread_local! {
    static SOFTNET: RefCell<(bool, VecDeque<(RxHook, Frame)>)> = const { RefCell::new((false, VecDeque::new())) };
}

/// Queues `frame` for `hook` on this thread's softnet queue without delivering it; the
/// device's [`NetDevice::flush_tx`] (the default one) delivers it. For single-threaded test
/// devices; [`RxBacklog`] orders frames across threads.
pub fn netif_rx_queue(hook: &RxHook, frame: Frame) {
    SOFTNET.with(|s| s.borrow_mut().1.push_back((hook.clone(), frame)));
}

/// `netif_rx()` outside any socket lock: queues `frame` and delivers this thread's softnet
/// queue ([`net_rx_action`]).
pub fn netif_rx(hook: &RxHook, frame: Frame) {
    netif_rx_queue(hook, frame);
    net_rx_action();
}

/// Delivers this thread's softnet queue unless this thread is already delivering it (then the
/// outer loop does): iterative, never recursive, however long the chain of replies.
pub fn net_rx_action() {
    let drain = SOFTNET.with(|s| {
        let mut s = s.borrow_mut();
        if s.0 || s.1.is_empty() {
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

/// `skb_checksum_help()`: completes the partial TCP checksum of a frame built for a device
/// with checksum offload ([`Frame::csum_partial`]), as a device does before the bytes meet a
/// wire that can damage them. Frames with a full checksum are left alone.
pub fn skb_checksum_help(frame: &mut Frame) {
    if !frame.csum_partial {
        return;
    }
    let ihl = gso::net_hdr_len(frame.head());
    if frame.head().len() < ihl + 20 {
        return;
    }
    // The field holds the pseudo-header sum: summing the header as it is adds it in. TCP
    // headers are whole 32-bit words, so the payload's byte lanes are not shifted.
    let hsum = crate::wire::checksum(&frame.head()[ihl..]);
    let psum = crate::wire::checksum(&frame.payload);
    let sum = !crate::wire::combine(&[hsum, psum]);
    frame.head_mut()[ihl + 16..ihl + 18].copy_from_slice(&sum.to_be_bytes());
    frame.csum_partial = false;
}

/// A device that delivers straight into another stack's hook (loopback-like), for tests.
pub struct Wire {
    peer: crate::sync::RwLock<Option<RxHook>>,
    mtu: u32,
}

impl Wire {
    /// A wire with `mtu`; frames sent go to the hook installed with [`Wire::connect`].
    pub fn new(mtu: u32) -> Wire {
        Wire { peer: crate::sync::RwLock::new(None), mtu }
    }
    /// Sets where transmitted frames go.
    pub fn connect(&self, peer: RxHook) {
        *self.peer.write() = Some(peer);
    }
}

impl NetDevice for Wire {
    fn xmit(&self, frame: Frame) {
        if let Some(p) = self.peer.read().clone() {
            netif_rx_queue(&p, frame);
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
// Such a head is kmalloc'ed, not a page frag, so skb_try_coalesce() cannot steal it: TCP
// appends a later segment to one only by copying it into the head's tailroom
// ([`tun_skb_layout`]).
pub fn tun_skb_truesize(ip_len: u32) -> u32 {
    tun_skb(ip_len).0
}

/// The layout of the skb [`tun_skb_truesize`] describes: linear with its tailroom
/// (`skb_end - skb_tail`: the kmalloc object less `skb_shared_info`, the pad and the packet),
/// or a locked head with page frags.
pub fn tun_skb_layout(ip_len: u32) -> crate::skb::SkbLayout {
    tun_skb(ip_len).1
}

fn tun_skb(ip_len: u32) -> (u32, crate::skb::SkbLayout) {
    const PAD: u32 = 64; // NET_SKB_PAD + NET_IP_ALIGN
    const SHINFO: u32 = 320; // SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
    const SKB: u32 = 256; // SKB_DATA_ALIGN(sizeof(struct sk_buff))
    const SMALL_HEAD: u32 = 576; // SKB_SMALL_HEAD_CACHE_SIZE
    const PAGE: u32 = 4096;
    let obj = |linear: u32| {
        let size = ((PAD + linear + 63) & !63) + SHINFO;
        if size <= SMALL_HEAD {
            SMALL_HEAD
        } else {
            size.next_power_of_two()
        }
    };
    let head = |linear: u32| obj(linear) + SKB;
    if PAD + ip_len < PAGE {
        let tailroom = obj(ip_len) - SHINFO - PAD - ip_len;
        return (head(ip_len), crate::skb::SkbLayout::Linear { tailroom });
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
    (truesize, crate::skb::SkbLayout::LockedHead)
}
