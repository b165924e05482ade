//! An in-memory wire joining two stacks ([`pair`]), with seeded impairments (netem-like).
//!
//! Each [`MemPort`] is one end of the wire. A frame transmitted on one port ([`NetDevice::xmit`])
//! reaches the other port's attached [`RxHook`] according to [`Delivery`]:
//!
//! * [`Delivery::Inline`]: in the sender's thread, as Linux loopback does: `xmit` queues the frame
//!   on the peer port's [`RxBacklog`] and `flush_tx` (or `poll_timers`) hands the backlog to the
//!   peer's hook in FIFO order, one thread at a time.
//!   The ports report no NAPI instance (`napi_id() == 0`, received frames carry `napi_id` 0).
//! * [`Delivery::Napi`] and [`Delivery::BusyPoll`]: the frame is queued on the receiving port's
//!   bounded rx ring (`ring_size`; an overflow is a counted drop, [`LinkStats::ring_drops`]) and
//!   handed to the hook by [`NetDevice::napi_poll`] on the receiving port, called by the host's
//!   NAPI thread (which sleeps in [`MemPort::wait_rx`]) or by busy-polling readers. The device
//!   itself treats both modes alike; the mode tells the host who is expected to poll. Received
//!   frames carry the receiving port's `napi_id` (≥ 1, distinct per port).
//!
//! # Impairments
//!
//! Every port owns the direction it transmits into: one ChaCha8 RNG (seeded from
//! [`LinkConfig::seed`], one stream per direction), the reorder slot and the timed queue. For a
//! given seed and sequence of frames (and of clock readings) the outcome is deterministic. Per
//! frame, in this order (an RNG draw is made only for impairments whose probability is > 0):
//!
//! 1. **loss** (`loss`): the frame is dropped ([`LinkStats::lost`]).
//! 2. **dup** (`dup`): an extra copy follows the frame ([`LinkStats::dup`]). The copy is a
//!    [`Frame`] clone: the payload `Bytes` is shared, not copied.
//! 3. **corrupt** (`corrupt`): one uniformly chosen bit of the frame (header or payload) is
//!    flipped ([`LinkStats::corrupted`]). The first copy only is corrupted (as netem, the dup is
//!    clean). The payload is never mutated in place — the sender's retransmission queue shares
//!    it — a flipped payload bit is written into a fresh `Bytes`.
//! 4. **reorder** (`reorder`): when no frame is held, the frame is held back
//!    ([`LinkStats::reordered`]) and sent right after the next frame transmitted in that direction
//!    (after it even when that frame is lost). If no frame follows, the held frame is released by
//!    the [`REORDER_HOLD_POLLS`]-th [`MemPort::poll_timers`] call after it was held, so reordering
//!    survives a host that polls once per loop turn while never holding a frame for more than a
//!    bounded number of polls. While a frame is held, [`MemPort::next_event`] reports "now".
//!    Reordering never loses a frame.
//! 5. **rate** (`rate_bps`) then **delay** (`delay`): the frame's release time is its departure
//!    from a token bucket (rate `rate_bps` bits/s, depth one MTU = `mtu * 8` bits, initially full:
//!    after an idle period one MTU-sized frame leaves at once, back-to-back frames are paced at
//!    `len * 8 / rate_bps`; a frame larger than the bucket waits for a full bucket and leaves it
//!    in debt) plus `delay` (propagation). Release times never decrease, so the timed queue is a
//!    FIFO. Frames not releasable at once are queued ([`LinkStats::delayed`]) and released by
//!    [`MemPort::poll_timers`] (and by later `xmit`s on the port) once due at `clock.now()`.
//!    `rate_bps: Some(0)` means no limit.
//!
//! Frames released late (delay, rate, reorder) are delivered according to the delivery mode, like
//! any other. Timed frames and the reorder slot belong to the transmitting port: the host of each
//! stack calls `poll_timers` on its own port. With no impairment configured at all, `xmit` takes a
//! fast path: no RNG, no clock read, no lock except what the delivery needs (a read lock on the
//! peer's hook for Inline, the peer's ring lock otherwise) and no allocation.
//!
//! Impaired work is done under the direction's lock, but frames are delivered after it is
//! released, so an inline delivery that makes the peer reply (and that reply make us send again)
//! never deadlocks.
//!
//! # Statistics
//!
//! [`MemPort::stats`] describes the frames this port transmitted: `sent` (xmit calls), what
//! happened to them, and `delivered` (copies handed to the peer: queued on its inline backlog or
//! its rx ring). `ring_drops` (peer ring full) and `unattached` (Inline mode, peer has no hook)
//! are counted here too, so one port's stats account for every frame it sent:
//! `sent + dup = lost + delivered + ring_drops + unattached + (frames held or queued)`.

use crate::netdev::{DevStats, NetDevice, RxBacklog, RxHook};
use crate::skb::Frame;
use crate::sync::{Condvar, Mutex, RwLock};
use crate::time::{Clock, Duration, Instant};
use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How a frame reaches the receiving stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// In the sender's thread through the peer's [`RxBacklog`] (like Linux loopback).
    #[default]
    Inline,
    /// Queued on the receiving port's rx ring, drained by `napi_poll` from the host's NAPI thread.
    Napi,
    /// Queued likewise, drained by busy-polling readers calling `napi_poll` (and by the host's
    /// NAPI thread as a fallback).
    BusyPoll,
}

/// The wire's configuration. Probabilities are in `[0, 1]`.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Device MTU (default 1500). Not enforced: `xmit` carries larger frames too.
    pub mtu: u32,
    /// Delivery mode (default [`Delivery::Inline`]).
    pub delivery: Delivery,
    /// Probability a frame is dropped.
    pub loss: f64,
    /// Probability a frame is held back and sent after the next one.
    pub reorder: f64,
    /// Probability a frame is delivered twice.
    pub dup: f64,
    /// Probability one bit of a frame is flipped.
    pub corrupt: f64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Rate limit in bits per second (token bucket of one MTU); `None` (or `Some(0)`): none.
    pub rate_bps: Option<u64>,
    /// Seed of the impairment RNGs.
    pub seed: u64,
    /// Capacity of each port's rx ring in frames (Napi / BusyPoll; default 4096, at least 1).
    pub ring_size: usize,
    /// Charge received frames like Linux's loopback device does (default false): the
    /// receiver gets the sender's skb, `SKB_TRUESIZE(256)` plus the payload in page frags,
    /// instead of a driver's linear skb. The kernel-differential oracle sets this to mirror
    /// 127.0.0.1 (the payload/truesize ratio drives `scaling_ratio`).
    pub loopback_truesize: bool,
    /// `gso_max_size` the ports advertise (default 0: none). Non-zero, TCP hands them
    /// super-segments up to that size with partial checksums and the wire carries them whole
    /// to the peer (as loopback moves 64 KiB skbs: GSO on one side, GRO's result on the
    /// other); a frame the corrupt impairment picks gets its checksum completed first, so the
    /// damage is detected. Loss and reordering take a super-segment whole.
    pub gso_max_size: u32,
    /// `ethtool -K gro` on both ports (default false): what a port receives in one poll —
    /// an inline backlog batch, a NAPI poll — goes through GRO ([`crate::netdev::gro`]):
    /// consecutive segments of a flow reach the stack merged. The wire, the link's counters
    /// and a capture of what a port sends still see every segment. Off by default, as on
    /// Linux's loopback (the kernel-differential oracle and packetdrill paths keep the
    /// packet sequences they compare); a NIC driver has it on.
    pub gro: bool,
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            mtu: 1500,
            delivery: Delivery::Inline,
            loss: 0.0,
            reorder: 0.0,
            dup: 0.0,
            corrupt: 0.0,
            delay: Duration::ZERO,
            rate_bps: None,
            seed: 0,
            ring_size: 4096,
            loopback_truesize: false,
            gso_max_size: 0,
            gro: false,
        }
    }
}

impl LinkConfig {
    fn rate(&self) -> Option<u64> {
        self.rate_bps.filter(|&r| r > 0)
    }
    fn timed(&self) -> bool {
        self.delay > Duration::ZERO || self.rate().is_some()
    }
    fn impaired(&self) -> bool {
        self.loss > 0.0 || self.reorder > 0.0 || self.dup > 0.0 || self.corrupt > 0.0 || self.timed()
    }
}

/// What happened to the frames a port transmitted (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames passed to `xmit`.
    pub sent: u64,
    /// Copies handed to the peer (queued on its inline backlog or its rx ring).
    pub delivered: u64,
    /// Frames dropped by `loss`.
    pub lost: u64,
    /// Extra copies made by `dup`.
    pub dup: u64,
    /// Frames held back by `reorder`.
    pub reordered: u64,
    /// Frames with a flipped bit.
    pub corrupted: u64,
    /// Copies dropped because the peer's rx ring was full.
    pub ring_drops: u64,
    /// Copies that went through the timed queue (delay / rate limit).
    pub delayed: u64,
    /// Copies dropped because the peer had no hook attached (Inline mode).
    pub unattached: u64,
}

/// The [`MemPort::poll_timers`] call (counted from the frame being held) that releases a frame
/// held for reordering when no later frame has released it.
pub const REORDER_HOLD_POLLS: u8 = 2;

static NEXT_NAPI_ID: AtomicU32 = AtomicU32::new(1);

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    delivered: AtomicU64,
    lost: AtomicU64,
    dup: AtomicU64,
    reordered: AtomicU64,
    corrupted: AtomicU64,
    ring_drops: AtomicU64,
    delayed: AtomicU64,
    unattached: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Ring {
    q: VecDeque<Frame>,
    kicked: bool,
    /// Frames queued during receive processing, which take no room of the `ring_size` (see
    /// `deliver`); an upper bound once a poll took frames from the front.
    past_limit: usize,
}

/// Impairment state of the direction a port transmits into.
struct TxState {
    rng: ChaCha8Rng,
    /// The frame held back for reordering and how many `poll_timers` calls it has seen.
    held: Option<Frame>,
    held_polls: u8,
    /// Frames waiting for their release time (nondecreasing).
    timed: VecDeque<(Instant, Frame)>,
    /// Token bucket: `tokens` (bits × 10⁹) at `t_ref`.
    tokens: i128,
    t_ref: Instant,
    /// Nothing this port transmits is released before this instant ([`MemPort::stall`]).
    stall_until: Instant,
}

/// One port: its receive side and the state of the direction it transmits into. Aligned so the
/// two ports' hot counters never share a cache line.
#[repr(align(128))]
struct End {
    napi_id: u32,
    hook: RwLock<Option<RxHook>>,
    ring: Mutex<Ring>,
    ring_cv: Condvar,
    ring_len: AtomicUsize,
    /// Inline delivery: frames for this port's hook, in transmit order, drained by
    /// `flush_tx`/`poll_timers` of the transmitting port.
    inline: RxBacklog,
    /// A preferring busy poller holds this receive queue until then (ns; 0 = none).
    busy_until: AtomicU64,
    /// Held by the one `napi_poll` running (`NAPI_STATE_SCHED`); a scratch queue reused by it.
    poll: Mutex<VecDeque<Frame>>,
    tx: Mutex<TxState>,
    stats: Counters,
    /// A capture of what this end sends ([`NetDevice::set_tx_tap`]), as `xmit` takes it.
    tap: RwLock<Option<super::TxTap>>,
    tapped: std::sync::atomic::AtomicBool,
}

struct Link {
    cfg: LinkConfig,
    /// The GRO feature ([`LinkConfig::gro`], switched by [`MemPort::set_gro`]).
    gro: std::sync::atomic::AtomicBool,
    impaired: bool,
    timed: bool,
    ring_size: usize,
    clock: Arc<dyn Clock>,
    ends: [End; 2],
}

/// One end of an in-memory wire (see the module docs).
pub struct MemPort {
    link: Arc<Link>,
    me: usize,
}

/// Creates a wire and returns its two ends.
pub fn pair(cfg: LinkConfig, clock: Arc<dyn Clock>) -> (Arc<MemPort>, Arc<MemPort>) {
    let ring_size = cfg.ring_size.max(1);
    let napi = cfg.delivery != Delivery::Inline;
    // A link in real time has its queue's pages resident from the start (see `frame_ring`).
    let fault = !clock.is_virtual();
    let end = |stream: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(stream);
        End {
            napi_id: NEXT_NAPI_ID.fetch_add(1, Ordering::Relaxed),
            hook: RwLock::new(None),
            // The queue the delivery mode uses has its slots from the start, as a NIC's
            // descriptor ring is allocated when the device opens; frames queued past them
            // during receive processing grow it, and once drained it has its slots again.
            ring: Mutex::new(Ring {
                q: if napi { super::frame_ring(super::ring_slots(ring_size), fault) } else { VecDeque::new() },
                kicked: false,
                past_limit: 0,
            }),
            ring_cv: Condvar::new(),
            ring_len: AtomicUsize::new(0),
            inline: if napi { RxBacklog::new(ring_size) } else { RxBacklog::with_room_faulted(ring_size, fault) },
            busy_until: AtomicU64::new(0),
            poll: Mutex::new(VecDeque::new()),
            tx: Mutex::new(TxState {
                rng,
                held: None,
                held_polls: 0,
                timed: VecDeque::new(),
                tokens: cfg.mtu.max(1) as i128 * 8 * 1_000_000_000,
                t_ref: Instant::ZERO,
                stall_until: Instant::ZERO,
            }),
            stats: Counters::default(),
            tap: RwLock::new(None),
            tapped: std::sync::atomic::AtomicBool::new(false),
        }
    };
    let ends = [end(0), end(1)];
    let gro = std::sync::atomic::AtomicBool::new(cfg.gro);
    let link = Arc::new(Link { impaired: cfg.impaired(), timed: cfg.timed(), ring_size, clock, ends, gro, cfg });
    (Arc::new(MemPort { link: link.clone(), me: 0 }), Arc::new(MemPort { link, me: 1 }))
}

impl MemPort {
    fn end(&self) -> &End {
        &self.link.ends[self.me]
    }
    fn peer(&self) -> &End {
        &self.link.ends[self.me ^ 1]
    }

    /// The link's configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.link.cfg
    }

    /// `ethtool -K gro on|off` for both ports of the link: takes effect from the next poll.
    pub fn set_gro(&self, on: bool) {
        self.link.gro.store(on, Ordering::Relaxed);
    }

    /// Whether received frames go through GRO.
    pub fn gro(&self) -> bool {
        self.link.gro.load(Ordering::Relaxed)
    }

    /// The delivery mode.
    pub fn delivery(&self) -> Delivery {
        self.link.cfg.delivery
    }

    /// What happened to the frames this port transmitted.
    pub fn stats(&self) -> LinkStats {
        let c = &self.end().stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LinkStats {
            sent: g(&c.sent),
            delivered: g(&c.delivered),
            lost: g(&c.lost),
            dup: g(&c.dup),
            reordered: g(&c.reordered),
            corrupted: g(&c.corrupted),
            ring_drops: g(&c.ring_drops),
            delayed: g(&c.delayed),
            unattached: g(&c.unattached),
        }
    }

    /// Releases the frames this port transmitted that are due at `clock.now()` (delay, rate
    /// limit) and a frame held for reordering once it has seen [`REORDER_HOLD_POLLS`] calls.
    /// Returns when something is next due ([`MemPort::next_event`]).
    pub fn poll_timers(&self) -> Option<Instant> {
        if !self.link.impaired {
            return None;
        }
        let mut out = Vec::new();
        let next = {
            let mut st = self.end().tx.lock();
            let now = self.link.clock.now();
            st.release_due(now, &mut out);
            if st.held.is_some() {
                st.held_polls = st.held_polls.saturating_add(1);
                if st.held_polls >= REORDER_HOLD_POLLS {
                    let f = st.held.take().unwrap();
                    self.stage_timed(&mut st, now, f, &mut out);
                }
            }
            // Handed over under the direction's lock: frames released here and by a
            // concurrent `xmit` reach the peer in release order.
            self.deliver_all(out);
            st.next_event(now)
        };
        self.drain_peer();
        next
    }

    /// When [`MemPort::poll_timers`] next has work: the release time of the first timed frame, or
    /// now while a frame is held for reordering. `None` when nothing waits.
    pub fn next_event(&self) -> Option<Instant> {
        if !self.link.impaired {
            return None;
        }
        let st = self.end().tx.lock();
        let now = if st.held.is_some() { self.link.clock.now() } else { Instant::FOREVER };
        st.next_event(now)
    }

    /// For the host's NAPI thread: blocks until frames wait in this port's rx ring, [`kick`] is
    /// called, or `timeout` passes (`None`: no timeout). May return early (spurious wakeup);
    /// callers loop.
    ///
    /// [`kick`]: MemPort::kick
    pub fn wait_rx(&self, timeout: Option<std::time::Duration>) {
        let end = self.end();
        let mut r = end.ring.lock();
        if r.q.is_empty() && !r.kicked {
            match timeout {
                Some(t) => {
                    end.ring_cv.wait_for(&mut r, t);
                }
                None => end.ring_cv.wait(&mut r),
            }
        }
        r.kicked = false;
    }

    /// Wakes a thread blocked in [`MemPort::wait_rx`] (e.g. to stop it); the next `wait_rx`
    /// returns at once if nobody was waiting.
    pub fn kick(&self) {
        let end = self.end();
        end.ring.lock().kicked = true;
        end.ring_cv.notify_all();
    }

    /// A delay spike: every frame this port transmits in the next `d` is held until then and
    /// released in order (on a timed link, i.e. one with a delay or a rate; a no-op otherwise).
    pub fn stall(&self, d: Duration) {
        if self.link.timed {
            self.end().tx.lock().stall_until = self.link.clock.now() + d;
        }
    }

    /// Frames waiting in this port's rx ring.
    pub fn rx_len(&self) -> usize {
        self.end().ring_len.load(Ordering::Acquire)
    }

    fn xmit_impaired(&self, mut frame: Frame) {
        let cfg = &self.link.cfg;
        let c = &self.end().stats;
        let mut out = Vec::new();
        {
            let mut guard = self.end().tx.lock();
            let st = &mut *guard;
            let now = if self.link.timed { self.link.clock.now() } else { Instant::ZERO };
            st.release_due(now, &mut out);

            // Up to three frames leave this xmit: the frame, its dup, a previously held frame.
            let mut cands: [Option<Frame>; 3] = [None, None, None];
            let lost = cfg.loss > 0.0 && st.rng.gen::<f64>() < cfg.loss;
            if lost {
                bump(&c.lost);
            } else {
                let dup = cfg.dup > 0.0 && st.rng.gen::<f64>() < cfg.dup;
                let dup_copy = if dup {
                    bump(&c.dup);
                    Some(frame.clone())
                } else {
                    None
                };
                if cfg.corrupt > 0.0 && st.rng.gen::<f64>() < cfg.corrupt && {
                    crate::netdev::skb_checksum_help(&mut frame);
                    corrupt(&mut st.rng, &mut frame)
                } {
                    bump(&c.corrupted);
                }
                cands[0] = Some(frame);
                cands[1] = dup_copy;
            }
            if let Some(h) = st.held.take() {
                cands[2] = Some(h);
            } else if !lost && cfg.reorder > 0.0 && st.rng.gen::<f64>() < cfg.reorder {
                bump(&c.reordered);
                st.held = cands[0].take();
                st.held_polls = 0;
            }
            for f in cands.into_iter().flatten() {
                self.stage_timed(st, now, f, &mut out);
            }
            self.deliver_all(out);
        }
    }

    /// Rate limit and delay: sends `f` now (into `out`) or queues it until it is due.
    fn stage_timed(&self, st: &mut TxState, now: Instant, f: Frame, out: &mut Vec<Frame>) {
        if !self.link.timed {
            out.push(f);
            return;
        }
        let cfg = &self.link.cfg;
        let mut due = now;
        if let Some(rate) = cfg.rate() {
            due = st.shape(now, f.len() as u64 * 8, rate, cfg.mtu.max(1) as u64 * 8);
        }
        due += cfg.delay;
        due = due.max(st.stall_until);
        if due <= now && st.timed.is_empty() {
            out.push(f);
        } else {
            bump(&self.end().stats.delayed);
            let first = st.timed.is_empty();
            st.timed.push_back((due, f));
            if first {
                // The device thread may be asleep with no deadline: give it this one.
                self.kick();
            }
        }
    }

    /// Inline delivery: hands the frames queued for the peer to its hook, in order, unless
    /// another thread is doing so.
    ///
    /// False only when another thread is draining the peer's backlog (see [`RxBacklog::drain`]).
    fn drain_peer(&self) -> bool {
        if self.link.cfg.delivery != Delivery::Inline {
            return true;
        }
        let peer = self.peer();
        if peer.inline.is_empty() {
            return true;
        }
        let Some(hook) = peer.hook.read().clone() else { return true };
        peer.inline.drain_gro(&*hook, self.link.gro.load(Ordering::Relaxed))
    }

    fn deliver_all(&self, out: Vec<Frame>) {
        for f in out {
            self.deliver(f);
        }
    }

    /// Hands one frame to the peer according to the delivery mode: queues it on the peer's
    /// inline backlog or rx ring (never calls the peer's hook: see [`NetDevice::xmit`]).
    #[inline]
    fn deliver(&self, mut frame: Frame) {
        if self.link.cfg.loopback_truesize {
            frame.truesize = crate::skb::skb_truesize(256) + frame.payload.len() as u32;
        }
        let peer = self.peer();
        let c = &self.end().stats;
        match self.link.cfg.delivery {
            Delivery::Inline => {
                if peer.hook.read().is_none() {
                    bump(&c.unattached);
                    return;
                }
                frame.napi_id = 0;
                // DEVIATION(linux): a frame sent during receive processing (an ACK, or data
                // the ACK clocks out) is queued past the backlog's limit, not dropped: Linux
                // handles it on the same CPU's backlog in the same net_rx_action() round,
                // whereas here the other direction may be drained by another thread that
                // this one cannot wait for. TCP's windows bound what such frames add;
                // senders outside receive processing are backpressured in `flush_tx`.
                let queued = if crate::netdev::in_rx() {
                    peer.inline.enqueue_past_limit(frame)
                } else {
                    peer.inline.enqueue(frame)
                };
                if queued {
                    c.delivered.fetch_add(1, Ordering::Relaxed);
                } else {
                    bump(&c.ring_drops);
                }
            }
            Delivery::Napi | Delivery::BusyPoll => {
                frame.napi_id = peer.napi_id;
                let mut r = peer.ring.lock();
                // DEVIATION(linux): past the ring's size only for frames sent during receive
                // processing, as for the inline backlog above.
                if crate::netdev::in_rx() {
                    r.past_limit += 1;
                } else if r.q.len() - r.past_limit >= self.link.ring_size {
                    drop(r);
                    bump(&c.ring_drops);
                    return;
                }
                let was_empty = r.q.is_empty();
                r.q.push_back(frame);
                peer.ring_len.store(r.q.len(), Ordering::Release);
                drop(r);
                c.delivered.fetch_add(1, Ordering::Relaxed);
                if was_empty {
                    peer.ring_cv.notify_all();
                }
            }
        }
    }
}

impl TxState {
    fn release_due(&mut self, now: Instant, out: &mut Vec<Frame>) {
        while let Some((due, _)) = self.timed.front() {
            if *due > now {
                break;
            }
            out.push(self.timed.pop_front().unwrap().1);
        }
    }

    /// `now` stands for "a frame is held for reordering".
    fn next_event(&self, now: Instant) -> Option<Instant> {
        let timed = self.timed.front().map(|(t, _)| *t);
        let held = self.held.as_ref().map(|_| now);
        match (timed, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Token bucket (`rate` bits/s, depth `burst` bits): when a frame of `bits` arriving at `now`
    /// leaves. Departures are FIFO, so the bucket's state is advanced to the departure. Tokens are
    /// counted in bit-nanoseconds-per-second (bits × 10⁹) so that everything is exact integers.
    fn shape(&mut self, now: Instant, bits: u64, rate: u64, burst: u64) -> Instant {
        const G: i128 = 1_000_000_000;
        let (rate, burst, bits) = (rate as i128, burst as i128 * G, bits as i128 * G);
        let start = now.max(self.t_ref);
        let tokens = (self.tokens + (start.0 - self.t_ref.0) as i128 * rate).min(burst);
        let need = bits.min(burst);
        let wait = if tokens >= need { 0 } else { (need - tokens + rate - 1) / rate };
        let dep = Instant(start.0.saturating_add(wait.min(u64::MAX as i128) as u64));
        self.tokens = (tokens + wait * rate).min(burst) - bits;
        self.t_ref = dep;
        dep
    }
}

/// `NAPI_POLL_WEIGHT`: frames a sender polls from its peer's ring per round while backpressured.
const NAPI_POLL_WEIGHT: usize = 64;

/// [`NetDevice::napi_poll`] on one end (also run by a backpressured sender, see `flush_tx`).
fn napi_poll_end(end: &End, budget: usize, gro: bool, ring_size: usize) -> usize {
    if budget == 0 || end.ring_len.load(Ordering::Acquire) == 0 {
        return 0;
    }
    let Some(mut scratch) = end.poll.try_lock() else {
        return 0;
    };
    let Some(hook) = end.hook.read().clone() else {
        return 0;
    };
    {
        let mut r = end.ring.lock();
        let n = budget.min(r.q.len());
        scratch.extend(r.q.drain(..n));
        r.past_limit = r.past_limit.min(r.q.len());
        end.ring_len.store(r.q.len(), Ordering::Release);
        // A ring that frames sent during receive processing grew past its size goes back to
        // its own slots once empty (as the inline backlog does, `RxBacklog::drain_gro`).
        let slots = super::ring_slots(ring_size);
        if r.q.is_empty() && r.q.capacity() > slots {
            r.q = super::frame_ring(slots, false);
        }
    }
    let _rx = crate::netdev::RxGuard::enter();
    let n = scratch.len();
    crate::netdev::gro::napi_deliver(&mut scratch, &*hook, gro);
    n
}

/// Flips one uniformly chosen bit of `f`, header or payload. The payload is copied first: it is
/// shared with the sender. False for an empty frame.
fn corrupt(rng: &mut ChaCha8Rng, f: &mut Frame) -> bool {
    let len = f.len();
    if len == 0 {
        return false;
    }
    let bit = rng.gen_range(0..len * 8);
    let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
    let hl = f.head().len();
    if byte < hl {
        f.head_mut()[byte] ^= mask;
    } else {
        let mut p = BytesMut::from(&f.payload[..]);
        p[byte - hl] ^= mask;
        f.payload = Bytes::from(p);
    }
    true
}

impl NetDevice for MemPort {
    #[inline]
    fn xmit(&self, frame: Frame) {
        self.end().stats.sent.fetch_add(1, Ordering::Relaxed);
        if self.end().tapped.load(Ordering::Relaxed) {
            if let Some(t) = self.end().tap.read().as_ref() {
                t(&[frame.head(), &frame.payload]);
            }
        }
        if self.link.impaired {
            self.xmit_impaired(frame);
        } else {
            self.deliver(frame);
        }
    }

    /// Delivers what the peer's inline backlog holds and, outside receive processing,
    /// backpressures the sender while the peer's backlog or rx ring is half full: the sender
    /// does the receiving side's work itself (polls the peer's ring; drains its backlog) or,
    /// while another thread is at it, yields until there is room. Linux's loopback sender runs
    /// `net_rx_action()` on its own CPU when `__dev_queue_xmit()` re-enables bottom halves
    /// (`netif_rx()` → `do_softirq()`), so a local sender cannot outrun its receiver and the
    /// backlog stays far below `netdev_max_backlog`: a clean link drops nothing.
    fn flush_tx(&self) {
        // This thread emptied the peer's backlog itself (or found it empty): nothing to wait
        // for, and no second look at it.
        let drained_here = self.drain_peer();
        if crate::netdev::in_rx() {
            return;
        }
        let peer = self.peer();
        match self.link.cfg.delivery {
            Delivery::Inline => {
                let high = peer.inline.limit() / 2;
                while !drained_here && peer.inline.len() > high {
                    std::thread::yield_now();
                    if self.drain_peer() {
                        break;
                    }
                }
            }
            Delivery::Napi | Delivery::BusyPoll => {
                let high = self.link.ring_size / 2;
                while peer.ring_len.load(Ordering::Acquire) > high && peer.hook.read().is_some() {
                    if napi_poll_end(peer, NAPI_POLL_WEIGHT, self.link.gro.load(Ordering::Relaxed), self.link.ring_size)
                        == 0
                    {
                        std::thread::yield_now();
                    }
                }
            }
        }
    }

    fn set_tx_tap(&self, tap: super::TxTap) -> bool {
        *self.end().tap.write() = Some(tap);
        self.end().tapped.store(true, Ordering::Relaxed);
        true
    }

    fn mtu(&self) -> u32 {
        self.link.cfg.mtu
    }

    fn gso_max_size(&self) -> u32 {
        self.link.cfg.gso_max_size
    }

    fn poll_timers(&self) -> Option<Instant> {
        MemPort::poll_timers(self)
    }

    fn needs_poll_thread(&self) -> bool {
        self.link.cfg.delivery != Delivery::Inline || self.link.impaired
    }

    fn wait_event(&self, timeout: Option<std::time::Duration>) {
        self.wait_rx(timeout)
    }

    fn kick(&self) {
        MemPort::kick(self)
    }

    fn napi_prefer_busy_poll(&self, until: Instant) {
        self.end().busy_until.fetch_max(until.nanos(), Ordering::AcqRel);
    }

    fn napi_busy_poll_preferred(&self, now: Instant) -> Option<Instant> {
        let until = self.end().busy_until.load(Ordering::Acquire);
        (until > now.nanos()).then_some(Instant(until))
    }

    /// `tx_dropped`: copies the peer's ring or inline backlog had no room for (or that found
    /// no peer); `rx_dropped`: the same seen from this port's receive side.
    fn dev_stats(&self) -> DevStats {
        let mine = &self.end().stats;
        let theirs = &self.peer().stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DevStats { rx_dropped: g(&theirs.ring_drops), tx_dropped: g(&mine.ring_drops) + g(&mine.unattached) }
    }

    /// ≥ 1 and distinct per port in Napi / BusyPoll mode; 0 (no NAPI instance, like loopback)
    /// in Inline mode.
    fn napi_id(&self) -> u32 {
        match self.link.cfg.delivery {
            Delivery::Inline => 0,
            Delivery::Napi | Delivery::BusyPoll => self.end().napi_id,
        }
    }

    /// Pops up to `budget` frames from this port's rx ring and hands each to the attached hook,
    /// outside the ring lock and in ring order. One poller runs at a time: a call made while
    /// another is running (another thread, or the hook itself) returns 0 at once, as a busy
    /// poller that cannot take ownership of the NAPI instance does. Without a hook, frames stay.
    fn napi_poll(&self, budget: usize) -> usize {
        napi_poll_end(self.end(), budget, self.link.gro.load(Ordering::Relaxed), self.link.ring_size)
    }

    fn rx_pending(&self) -> bool {
        self.end().ring_len.load(Ordering::Acquire) > 0
    }

    fn attach(&self, hook: RxHook) {
        *self.end().hook.write() = Some(hook);
    }
}

impl core::fmt::Debug for MemPort {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemPort")
            .field("port", &self.me)
            .field("napi_id", &self.end().napi_id)
            .field("delivery", &self.link.cfg.delivery)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::VirtualClock;

    const HL: usize = 40;

    /// Transmits and delivers at once (`xmit` only queues; `flush_tx` delivers).
    trait Tx {
        fn tx(&self, f: Frame);
    }
    impl Tx for MemPort {
        fn tx(&self, f: Frame) {
            self.xmit(f);
            self.flush_tx();
        }
    }

    /// A frame whose header starts with `id` (big-endian) and whose payload is `len` bytes.
    fn frame(id: u32, len: usize) -> Frame {
        let payload: Bytes = (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(id) as u8).collect();
        let mut f = Frame::with_header_len(HL, payload);
        f.head_mut()[..4].copy_from_slice(&id.to_be_bytes());
        f
    }

    fn id_of(f: &Frame) -> u32 {
        u32::from_be_bytes(f.head()[..4].try_into().unwrap())
    }

    type Sink = Arc<Mutex<Vec<Frame>>>;

    fn sink(port: &MemPort) -> Sink {
        let s: Sink = Arc::new(Mutex::new(Vec::new()));
        let s2 = s.clone();
        port.attach(Arc::new(move |f| s2.lock().push(f)));
        s
    }

    fn vclock() -> Arc<VirtualClock> {
        Arc::new(VirtualClock::new(Instant::from_millis(1000)))
    }

    fn link(cfg: LinkConfig) -> (Arc<VirtualClock>, Arc<MemPort>, Arc<MemPort>, Sink, Sink) {
        let clock = vclock();
        let (a, b) = pair(cfg, clock.clone());
        let (sa, sb) = (sink(&a), sink(&b));
        (clock, a, b, sa, sb)
    }

    fn ids(s: &Sink) -> Vec<u32> {
        s.lock().iter().map(id_of).collect()
    }

    #[test]
    fn inline_delivery_both_ways() {
        let (_, a, b, sa, sb) = link(LinkConfig::default());
        a.tx(frame(1, 100));
        b.tx(frame(2, 0));
        assert_eq!(ids(&sb), vec![1]);
        assert_eq!(ids(&sa), vec![2]);
        assert_eq!(sb.lock()[0].to_vec(), frame(1, 100).to_vec());
        assert_eq!(a.napi_id(), 0);
        assert_eq!(sb.lock()[0].napi_id, 0);
        assert!(!b.rx_pending());
        assert_eq!(b.napi_poll(64), 0);
        assert_eq!(a.stats(), LinkStats { sent: 1, delivered: 1, ..Default::default() });
        assert_eq!(a.poll_timers(), None);
        assert_eq!(a.next_event(), None);
        assert_eq!(a.mtu(), 1500);
    }

    #[test]
    fn inline_payload_is_not_copied() {
        let (_, a, _b, _sa, sb) = link(LinkConfig::default());
        let f = frame(1, 1000);
        let p = f.payload.clone();
        a.tx(f);
        assert_eq!(sb.lock()[0].payload.as_ptr(), p.as_ptr());
    }

    #[test]
    fn inline_ping_pong_is_iterative_and_lock_free_with_impairments() {
        // Each side answers every frame by sending one back: a 100 000-frame chain in one thread
        // must neither recurse (netif_rx queues) nor deadlock on the direction locks.
        for cfg in [
            LinkConfig::default(),
            LinkConfig { dup: 0.01, reorder: 0.05, corrupt: 0.01, seed: 3, ..Default::default() },
        ] {
            let clock = vclock();
            let (a, b) = pair(cfg, clock);
            let count = Arc::new(AtomicU64::new(0));
            for me in [a.clone(), b.clone()] {
                let count = count.clone();
                let me2 = Arc::downgrade(&me);
                me.attach(Arc::new(move |f: Frame| {
                    if count.fetch_add(1, Ordering::Relaxed) < 100_000 {
                        if let Some(me) = me2.upgrade() {
                            me.tx(f);
                        }
                    }
                }));
            }
            a.tx(frame(0, 10));
            // A frame held for reordering with nothing behind it waits for poll_timers.
            for _ in 0..1000 {
                if count.load(Ordering::Relaxed) > 100_000 {
                    break;
                }
                a.poll_timers();
                b.poll_timers();
            }
            assert!(count.load(Ordering::Relaxed) > 100_000);
        }
    }

    #[test]
    fn napi_delivery_and_budget() {
        let (_, a, b, sa, sb) = link(LinkConfig { delivery: Delivery::Napi, ..Default::default() });
        assert!(a.napi_id() >= 1 && b.napi_id() >= 1 && a.napi_id() != b.napi_id());
        for i in 0..10 {
            a.tx(frame(i, 10));
        }
        assert!(sb.lock().is_empty());
        assert!(b.rx_pending());
        assert!(!a.rx_pending());
        assert_eq!(b.rx_len(), 10);
        assert_eq!(b.napi_poll(4), 4);
        assert_eq!(ids(&sb), vec![0, 1, 2, 3]);
        assert_eq!(b.napi_poll(100), 6);
        assert_eq!(ids(&sb), (0..10).collect::<Vec<_>>());
        assert!(sb.lock().iter().all(|f| f.napi_id == b.napi_id()));
        assert!(!b.rx_pending());
        assert_eq!(b.napi_poll(100), 0);
        assert!(sa.lock().is_empty());
        b.tx(frame(7, 0));
        assert_eq!(a.napi_poll(1), 1);
        assert_eq!(ids(&sa), vec![7]);
        assert_eq!(sa.lock()[0].napi_id, a.napi_id());
    }

    #[test]
    fn net_rx_action_spends_netdev_budget() {
        use crate::netdev::{net_rx_action_napi, SoftnetStat, NAPI_POLL_WEIGHT};
        let (_, a, b, _sa, sb) = link(LinkConfig { delivery: Delivery::Napi, ..Default::default() });
        let stat = SoftnetStat::default();
        for i in 0..300 {
            a.tx(frame(i, 1));
        }
        // Budget 100: two polls of NAPI_POLL_WEIGHT, then the round ends with a time_squeeze.
        assert_eq!(net_rx_action_napi(&*b, 100, &stat), (2 * NAPI_POLL_WEIGHT, true));
        assert_eq!(stat.time_squeeze.load(Ordering::Relaxed), 1);
        assert_eq!(net_rx_action_napi(&*b, 100, &stat), (128, true));
        // 44 left: the poll completes under budget, no squeeze.
        assert_eq!(net_rx_action_napi(&*b, 100, &stat), (44, false));
        assert_eq!(stat.time_squeeze.load(Ordering::Relaxed), 2);
        assert_eq!(ids(&sb), (0..300).collect::<Vec<_>>());
        assert_eq!(net_rx_action_napi(&*b, 100, &stat), (0, false));
        // The budget is checked after every poll: one that completes and spends it squeezes.
        for i in 0..10 {
            a.tx(frame(i, 1));
        }
        assert_eq!(net_rx_action_napi(&*b, 10, &stat), (10, true));
        assert_eq!(stat.time_squeeze.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn busy_poll_delivery_and_napi_thread_fallback() {
        let (a, b) = pair(LinkConfig { delivery: Delivery::BusyPoll, ..Default::default() }, vclock());
        let got = Arc::new(AtomicU64::new(0));
        let g = got.clone();
        b.attach(Arc::new(move |_f| {
            g.fetch_add(1, Ordering::Relaxed);
        }));
        // A busy-polling reader drains inline.
        a.tx(frame(1, 1));
        assert!(b.rx_pending());
        assert_eq!(b.napi_poll(8), 1);
        assert_eq!(got.load(Ordering::Relaxed), 1);
        // wait_rx with nothing pending times out (no assertion on how long it took).
        b.wait_rx(Some(std::time::Duration::from_millis(1)));
        // A NAPI thread as the host runs it.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let napi = {
            let (b, stop) = (b.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    b.wait_rx(None);
                    while b.napi_poll(64) > 0 {}
                }
            })
        };
        let sender = {
            let a = a.clone();
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    a.tx(frame(i, 64));
                    if i % 1000 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        };
        sender.join().unwrap();
        while got.load(Ordering::Relaxed) + a.stats().ring_drops < 20_001 {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Release);
        b.kick();
        napi.join().unwrap();
        let s = a.stats();
        assert_eq!(s.sent, 20_001);
        assert_eq!(s.delivered + s.ring_drops, 20_001);
        assert_eq!(got.load(Ordering::Relaxed), s.delivered);
    }

    #[test]
    fn ring_overflow_is_counted() {
        let (_, a, b, _sa, sb) = link(LinkConfig { delivery: Delivery::Napi, ring_size: 8, ..Default::default() });
        // Transmitted without a flush (nothing backpressures the sender): the ring overflows.
        for i in 0..20 {
            a.xmit(frame(i, 10));
        }
        let s = a.stats();
        assert_eq!((s.sent, s.delivered, s.ring_drops), (20, 8, 12));
        assert_eq!(b.napi_poll(100), 8);
        assert_eq!(ids(&sb), (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn queues_grown_past_their_size_in_receive_processing_return_to_their_slots() {
        // Frames sent during receive processing (ACKs, clocked-out data) are queued past the
        // ring's size rather than dropped; once polled, the ring's storage is its 8 slots again
        // and the frames arrived in order. Both delivery modes.
        // On the virtual clock and on the real one (whose queue's pages are faulted in when
        // the link is made).
        struct RealClock(std::time::Instant);
        impl Clock for RealClock {
            fn now(&self) -> Instant {
                Instant::from_millis(1000) + Duration::from_nanos(self.0.elapsed().as_nanos() as u64)
            }
        }
        let real: Arc<dyn Clock> = Arc::new(RealClock(std::time::Instant::now()));
        assert!(!real.is_virtual());
        for (delivery, clock) in [
            (Delivery::Napi, vclock() as Arc<dyn Clock>),
            (Delivery::Inline, vclock()),
            (Delivery::Napi, real.clone()),
            (Delivery::Inline, real),
        ] {
            let (a, b) = pair(LinkConfig { delivery, ring_size: 8, ..Default::default() }, clock);
            let sb = sink(&b);
            let _sa = sink(&a);
            let slots = VecDeque::<Frame>::with_capacity(8).capacity();
            let cap = |b: &MemPort| match delivery {
                Delivery::Inline => b.end().inline.capacity(),
                _ => b.end().ring.lock().q.capacity(),
            };
            assert_eq!(cap(&b), slots, "{delivery:?}");
            {
                let _rx = crate::netdev::RxGuard::enter();
                for i in 0..1000 {
                    a.xmit(frame(i, 10));
                }
            }
            assert!(cap(&b) >= 1000, "{delivery:?}");
            match delivery {
                Delivery::Inline => a.flush_tx(),
                _ => while b.napi_poll(64) > 0 {},
            }
            let s = a.stats();
            assert_eq!((s.sent, s.delivered, s.ring_drops), (1000, 1000, 0), "{delivery:?}");
            assert_eq!(ids(&sb), (0..1000).collect::<Vec<_>>(), "{delivery:?}");
            assert_eq!(cap(&b), slots, "{delivery:?}");
            // And the room is still there: 8 more frames fit without a drop.
            for i in 0..8 {
                a.xmit(frame(i, 10));
            }
            assert_eq!(a.stats().ring_drops, 0, "{delivery:?}");
        }
    }

    #[test]
    fn flush_backpressures_the_sender_instead_of_dropping() {
        // Each flush past half the ring polls the peer's ring in the sender's thread (as a
        // loopback sender runs the receive softirq), so nothing overflows.
        let (_, a, b, _sa, sb) = link(LinkConfig { delivery: Delivery::Napi, ring_size: 8, ..Default::default() });
        for i in 0..20 {
            a.tx(frame(i, 10));
        }
        let s = a.stats();
        assert_eq!((s.sent, s.delivered, s.ring_drops), (20, 20, 0));
        while b.napi_poll(100) > 0 {}
        assert_eq!(ids(&sb), (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn unattached_peer_is_counted() {
        let (a, _b) = pair(LinkConfig::default(), vclock());
        a.tx(frame(1, 1));
        assert_eq!(a.stats().unattached, 1);
    }

    const N: u32 = 10_000;

    fn run(cfg: LinkConfig) -> (LinkStats, Vec<u32>, Vec<Frame>) {
        let (_, a, _b, _sa, sb) = link(cfg);
        for i in 0..N {
            a.tx(frame(i, 100));
        }
        a.poll_timers();
        a.poll_timers();
        let v = sb.lock().clone();
        (a.stats(), v.iter().map(id_of).collect(), v)
    }

    fn within(x: u64, expect: f64) {
        // ±5 standard deviations of a binomial count at most; fixed seed, so deterministic.
        let sd = expect.max(1.0).sqrt();
        assert!((x as f64 - expect).abs() < 5.0 * sd + 1.0, "{x} not within bounds of {expect}");
    }

    #[test]
    fn loss_statistics() {
        let (s, ids, _) = run(LinkConfig { loss: 0.1, seed: 1, ..Default::default() });
        within(s.lost, N as f64 * 0.1);
        assert_eq!(s.delivered + s.lost, N as u64);
        assert_eq!(ids.len() as u64, s.delivered);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "loss alone keeps order");
    }

    #[test]
    fn dup_statistics() {
        let (s, ids, frames) = run(LinkConfig { dup: 0.05, seed: 2, ..Default::default() });
        within(s.dup, N as f64 * 0.05);
        assert_eq!(s.delivered, N as u64 + s.dup);
        assert_eq!(ids.len() as u64, s.delivered);
        let dups = ids.windows(2).filter(|w| w[0] == w[1]).count() as u64;
        assert_eq!(dups, s.dup);
        assert!(frames.iter().all(|f| f.to_vec() == frame(id_of(f), 100).to_vec()));
    }

    #[test]
    fn reorder_statistics_and_no_loss() {
        let (s, ids, _) = run(LinkConfig { reorder: 0.1, seed: 3, ..Default::default() });
        // A frame can only be held when none is, so the rate is p / (1 + p).
        within(s.reordered, N as f64 * 0.1 / 1.1);
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..N).collect::<Vec<_>>(), "reorder never loses or duplicates");
        // Each held frame swaps with the next one, except a held last frame (released by
        // poll_timers with nothing after it).
        let swaps = ids.windows(2).filter(|w| w[0] > w[1]).count() as u64;
        assert!(swaps <= s.reordered && s.reordered - swaps <= 1);
        assert_eq!(s.delivered, N as u64);
    }

    #[test]
    fn reorder_tail_is_released_by_poll_timers() {
        // Find a seed whose first frame is held.
        let (seed, ..) = (0..100u64)
            .map(|seed| {
                let (_, a, _b, _sa, sb) = link(LinkConfig { reorder: 0.5, seed, ..Default::default() });
                a.tx(frame(1, 1));
                let n = sb.lock().len();
                (seed, n)
            })
            .find(|(_, n)| *n == 0)
            .expect("some seed holds the first frame");
        let (clock, a, _b, _sa, sb) = link(LinkConfig { reorder: 0.5, seed, ..Default::default() });
        a.tx(frame(1, 1));
        assert!(sb.lock().is_empty());
        assert_eq!(a.next_event(), Some(clock.now()));
        for _ in 1..REORDER_HOLD_POLLS {
            assert_eq!(a.poll_timers(), Some(clock.now()));
            assert!(sb.lock().is_empty());
        }
        assert_eq!(a.poll_timers(), None);
        assert_eq!(ids(&sb), vec![1]);
        assert_eq!(a.next_event(), None);
    }

    #[test]
    fn corrupt_statistics_and_sender_bytes_untouched() {
        let (_, a, _b, _sa, sb) = link(LinkConfig { corrupt: 0.2, seed: 4, ..Default::default() });
        let mut kept = Vec::new();
        for i in 0..N {
            let f = frame(i, 100);
            kept.push(f.clone()); // the "retransmission queue": shares the payload Bytes
            a.tx(f);
        }
        let s = a.stats();
        within(s.corrupted, N as f64 * 0.2);
        let got = sb.lock().clone();
        assert_eq!(got.len(), N as usize);
        let mut flipped = 0;
        let mut in_payload = 0;
        for (orig, rx) in kept.iter().zip(&got) {
            // The sender's bytes are what they were.
            assert_eq!(orig.to_vec(), frame(orig_id(orig), 100).to_vec());
            let (x, y) = (orig.to_vec(), rx.to_vec());
            let bits: u32 = x.iter().zip(&y).map(|(p, q)| (p ^ q).count_ones()).sum();
            assert!(bits <= 1);
            if bits == 1 {
                flipped += 1;
                if x[..HL] == y[..HL] {
                    in_payload += 1;
                    assert_ne!(orig.payload.as_ptr(), rx.payload.as_ptr());
                }
            } else {
                assert_eq!(orig.payload.as_ptr(), rx.payload.as_ptr(), "clean frames are not copied");
            }
        }
        assert_eq!(flipped, s.corrupted);
        // 100 of 140 bytes are payload.
        within(in_payload, flipped as f64 * 100.0 / 140.0);
    }

    fn orig_id(f: &Frame) -> u32 {
        id_of(f)
    }

    #[test]
    fn delay_holds_frames_until_due_in_order() {
        let d = Duration::from_millis(10);
        let (clock, a, _b, _sa, sb) = link(LinkConfig { delay: d, ..Default::default() });
        let t0 = clock.now();
        for i in 0..5 {
            a.tx(frame(i, 10));
            clock.advance(Duration::from_millis(1));
        }
        assert!(sb.lock().is_empty());
        assert_eq!(a.next_event(), Some(t0 + d));
        assert_eq!(a.stats().delayed, 5);
        clock.advance_to(t0 + d);
        assert_eq!(a.poll_timers(), Some(t0 + d + Duration::from_millis(1)));
        assert_eq!(ids(&sb), vec![0]);
        clock.advance(Duration::from_millis(2));
        assert_eq!(a.poll_timers(), Some(t0 + d + Duration::from_millis(3)));
        assert_eq!(ids(&sb), vec![0, 1, 2]);
        clock.advance(Duration::from_secs(1));
        assert_eq!(a.poll_timers(), None);
        assert_eq!(ids(&sb), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn delayed_frames_respect_napi_delivery() {
        let d = Duration::from_millis(5);
        let (clock, a, b, _sa, sb) = link(LinkConfig { delay: d, delivery: Delivery::Napi, ..Default::default() });
        a.tx(frame(1, 10));
        assert!(!b.rx_pending());
        clock.advance(d);
        assert_eq!(a.poll_timers(), None);
        assert!(sb.lock().is_empty());
        assert!(b.rx_pending());
        assert_eq!(b.napi_poll(10), 1);
        assert_eq!(ids(&sb), vec![1]);
    }

    #[test]
    fn later_xmit_releases_due_frames_first() {
        let d = Duration::from_millis(1);
        let (clock, a, _b, _sa, sb) = link(LinkConfig { delay: d, ..Default::default() });
        a.tx(frame(1, 10));
        clock.advance(d);
        a.tx(frame(2, 10));
        assert_eq!(ids(&sb), vec![1]);
    }

    #[test]
    fn rate_limit_paces_frames() {
        // 12 Mbit/s, 1500-byte frames: one per millisecond after a burst of one MTU.
        let (clock, a, _b, _sa, sb) = link(LinkConfig { rate_bps: Some(12_000_000), ..Default::default() });
        let t0 = clock.now();
        for i in 0..50 {
            a.tx(frame(i, 1500 - HL));
        }
        assert_eq!(ids(&sb), vec![0]);
        assert_eq!(a.stats().delayed, 49);
        assert_eq!(a.next_event(), Some(t0 + Duration::from_millis(1)));
        for ms in 1..=49u64 {
            clock.advance_to(t0 + Duration::from_micros(ms * 1000 - 1));
            a.poll_timers();
            assert_eq!(sb.lock().len() as u64, ms, "just before {ms} ms");
            clock.advance_to(t0 + Duration::from_millis(ms));
            a.poll_timers();
            assert_eq!(sb.lock().len() as u64, ms + 1, "at {ms} ms");
        }
        assert_eq!(ids(&sb), (0..50).collect::<Vec<_>>());
        // After 10 ms idle the bucket is full again: one frame goes at once, the next waits.
        clock.advance(Duration::from_millis(10));
        a.tx(frame(100, 1500 - HL));
        a.tx(frame(101, 1500 - HL));
        assert_eq!(sb.lock().len(), 51);
        clock.advance(Duration::from_millis(1));
        a.poll_timers();
        assert_eq!(sb.lock().len(), 52);
    }

    #[test]
    fn rate_limit_throughput_small_frames() {
        // 1 Mbit/s for 1 s of virtual time with 100-byte frames: ≈ 1250 frames (+ the burst).
        let (clock, a, _b, _sa, sb) = link(LinkConfig { rate_bps: Some(1_000_000), ..Default::default() });
        let t0 = clock.now();
        for i in 0..5000 {
            a.tx(frame(i, 100 - HL));
        }
        while clock.now() < t0 + Duration::from_secs(1) {
            clock.advance(Duration::from_micros(100));
            a.poll_timers();
        }
        let n = sb.lock().len();
        assert!((1250..=1266).contains(&n), "{n}");
    }

    fn all_impairments(seed: u64) -> LinkConfig {
        LinkConfig {
            loss: 0.05,
            dup: 0.05,
            reorder: 0.05,
            corrupt: 0.05,
            delay: Duration::from_micros(50),
            rate_bps: Some(100_000_000),
            seed,
            ..Default::default()
        }
    }

    fn outcome(seed: u64) -> (LinkStats, Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let (clock, a, b, sa, sb) = link(all_impairments(seed));
        for i in 0..3000 {
            a.tx(frame(i, (i % 1400) as usize));
            if i % 3 == 0 {
                b.tx(frame(i, 20));
            }
            clock.advance(Duration::from_micros(7));
            a.poll_timers();
            b.poll_timers();
        }
        clock.advance(Duration::from_secs(1));
        for _ in 0..REORDER_HOLD_POLLS {
            a.poll_timers();
            b.poll_timers();
        }
        let v = |s: &Sink| s.lock().iter().map(|f| f.to_vec()).collect::<Vec<_>>();
        (a.stats(), v(&sb), v(&sa))
    }

    #[test]
    fn same_seed_same_outcome() {
        let x = outcome(42);
        let y = outcome(42);
        assert_eq!(x, y);
        let z = outcome(43);
        assert_ne!(x.1, z.1);
        let s = x.0;
        assert!(s.lost > 0 && s.dup > 0 && s.reordered > 0 && s.corrupted > 0 && s.delayed > 0);
        assert_eq!(s.sent + s.dup, s.lost + s.delivered);
        // The two directions draw from different streams.
        assert_ne!(x.1.len(), 0);
        assert_ne!(x.2.len(), 0);
    }

    #[test]
    fn directions_use_independent_streams() {
        let (_, a, b, sa, sb) = link(LinkConfig { loss: 0.5, seed: 9, ..Default::default() });
        for i in 0..64 {
            a.tx(frame(i, 0));
            b.tx(frame(i, 0));
        }
        assert_ne!(ids(&sa), ids(&sb));
    }

    /// Fast-path throughput, informational: `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_fast_path() {
        for delivery in [Delivery::Inline, Delivery::Napi] {
            let (a, b) = pair(LinkConfig { delivery, ..Default::default() }, vclock());
            let n = Arc::new(AtomicU64::new(0));
            let n2 = n.clone();
            b.attach(Arc::new(move |f: Frame| {
                n2.fetch_add(f.len() as u64, Ordering::Relaxed);
            }));
            let payload = Bytes::from(vec![7u8; 1460]);
            let t = std::time::Instant::now();
            let frames = 2_000_000u64;
            for i in 0..frames {
                let f = Frame::with_header_len(40, payload.clone());
                a.tx(f);
                if delivery == Delivery::Napi && i % 64 == 63 {
                    b.napi_poll(64);
                }
            }
            b.napi_poll(usize::MAX);
            let el = t.elapsed().as_secs_f64();
            let bytes = n.load(Ordering::Relaxed) as f64;
            println!("{delivery:?}: {:.2} GB/s, {:.1} Mpps", bytes / el / 1e9, frames as f64 / el / 1e6);
        }
    }
}
