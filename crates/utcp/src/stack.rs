//! A stack instance: one namespace's sockets, tables, device and timers (the glue that
//! net/core/dev.c, inet_hashtables.c and the timer wheel are in Linux).

use crate::ip;
use crate::netdev::{NetDevice, RxHook};
use crate::netns::Netns;
use crate::skb::Frame;
use crate::socket::sock::{InSeg, Sock};
use crate::socket::sock_host::SockHost;
pub(crate) use crate::socket::sock_host::{FourTuple, TakenTw};
use crate::socket::SecurityPolicy;
use crate::sync::{Condvar, Mutex, RwLock};
use crate::tcp::ipv4::{reset_frame, seg_from};
use crate::tcp::{TcpSock, TcpState};
use crate::time::{Clock, Instant};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// A fast multiply-xorshift hasher for connection keys (`inet_ehashfn` is a keyed jhash; the
/// table here is per stack and not exposed to remote collision attacks beyond what the
/// per-stack random seed mixed into it prevents).
#[derive(Clone, Copy, Default)]
pub(crate) struct TupleHasher {
    h: u64,
}

impl std::hash::Hasher for TupleHasher {
    fn finish(&self) -> u64 {
        let mut z = self.h;
        z = (z ^ (z >> 32)).wrapping_mul(0xd6e8_feb8_6659_fd93);
        z ^ (z >> 32)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.h = (self.h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn write_u16(&mut self, v: u16) {
        self.h = (self.h.rotate_left(16) ^ v as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u32(&mut self, v: u32) {
        self.h = (self.h.rotate_left(32) ^ v as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Builds [`TupleHasher`]s seeded per stack.
#[derive(Clone, Copy)]
pub(crate) struct TupleHash(u64);

impl std::hash::BuildHasher for TupleHash {
    type Hasher = TupleHasher;
    fn build_hasher(&self) -> TupleHasher {
        TupleHasher { h: self.0 }
    }
}

/// Feeds an address to a [`TupleHasher`]: an IPv4 one as the one word it always was
/// (`inet_ehashfn`), an IPv6 one as its four (`inet6_ehashfn`).
fn write_addr(h: &mut TupleHasher, a: IpAddr) {
    use std::hash::Hasher;
    match a {
        IpAddr::V4(a) => h.write_u32(u32::from(a)),
        IpAddr::V6(a) => {
            for w in a.octets().chunks_exact(4) {
                h.write_u32(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
            }
        }
    }
}

#[derive(Default)]
struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    armed: HashMap<u64, (Weak<Sock>, Instant)>,
}

impl Timers {
    /// [`crate::skb_queue::shrink_emptied`] for the heap and the map: every re-arm pushes a
    /// heap entry and the stale ones leave only when they reach the top, so a soak of
    /// thousands of connections grows the heap to megabytes.
    fn shrink_idle(&mut self) {
        if let Some(to) = crate::skb_queue::shrink_target(self.heap.len(), self.heap.capacity()) {
            self.heap.shrink_to(to);
        }
        crate::skb_queue::shrink_emptied(&mut self.armed);
    }
}

/// The listeners of one port with their SO_REUSEPORT flags.
type ListenGroup = Vec<(Arc<Sock>, bool)>;

/// Shared state of one stack.
pub struct StackCore {
    /// Namespace: sysctls, counters, routes.
    pub net: Netns,
    /// The host's clock.
    pub clock: Arc<dyn Clock>,
    dev: RwLock<Option<Arc<dyn NetDevice>>>,
    pub(crate) ehash: RwLock<HashMap<FourTuple, Arc<Sock>, TupleHash>>,
    /// Listeners by port: one, or a SO_REUSEPORT group (`sock_reuseport`).
    lhash: RwLock<HashMap<u16, ListenGroup>>,
    /// Key of the SO_REUSEPORT selection hash.
    ehash_seed: TupleHash,
    ports: Mutex<crate::ports::PortTable>,
    timers: Mutex<Timers>,
    /// Signalled when a timer earlier than any before is armed.
    pub(crate) timer_cv: Condvar,
    next_id: AtomicU64,
    /// The security hook consulted by `sock_recvmsg`.
    pub security: RwLock<Option<Arc<dyn SecurityPolicy>>>,
    /// Verify checksums on input (always, except for trusted devices).
    pub verify_csum: std::sync::atomic::AtomicBool,
    /// How long a reader spins before sleeping in `sk_wait_data` (µs; real clocks only).
    pub spin_before_sleep_us: std::sync::atomic::AtomicU32,
    /// ICMP output rate limiters.
    pub(crate) icmp: ip::icmp::IcmpState,
    /// ICMPv6 rate limiters (the global one is `icmp`'s).
    pub(crate) icmp6: ip::icmpv6::Icmpv6State,
}

impl StackCore {
    /// A stack core with one interface address.
    pub fn new(addr: Ipv4Addr, mtu: u32, clock: Arc<dyn Clock>, secret: u64) -> Arc<StackCore> {
        Arc::new(StackCore {
            net: Netns::new(addr, mtu, secret),
            dev: RwLock::new(None),
            ehash: RwLock::new(HashMap::with_hasher(TupleHash(secret | 1))),
            lhash: RwLock::new(HashMap::new()),
            ehash_seed: TupleHash(secret.rotate_left(17) | 1),
            ports: Mutex::new(crate::ports::PortTable::default()),
            timers: Mutex::new(Timers::default()),
            timer_cv: Condvar::new(),
            next_id: AtomicU64::new(1),
            security: RwLock::new(None),
            verify_csum: std::sync::atomic::AtomicBool::new(true),
            spin_before_sleep_us: std::sync::atomic::AtomicU32::new(if clock.is_virtual() { 0 } else { 50 }),
            icmp: ip::icmp::IcmpState::default(),
            icmp6: ip::icmpv6::Icmpv6State::default(),
            clock,
        })
    }

    /// A fresh socket id.
    pub(crate) fn next_sock_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Installs the device and hooks its receive path to this stack.
    pub fn attach_device(self: &Arc<Self>, dev: Arc<dyn NetDevice>) {
        let weak = Arc::downgrade(self);
        let hook: RxHook = Arc::new(move |mut f: Frame| {
            if let Some(core) = weak.upgrade() {
                core.__netif_receive_skb(&mut f);
            }
        });
        dev.attach(hook);
        self.net.mtu.store(dev.mtu(), Ordering::Relaxed);
        self.net.gso_max_size.store(dev.gso_max_size(), Ordering::Relaxed);
        *self.dev.write() = Some(dev);
    }

    /// The device, if any.
    pub fn device(&self) -> Option<Arc<dyn NetDevice>> {
        self.dev.read().clone()
    }

    /// The device with NAPI id `id` (`napi_by_id`).
    pub(crate) fn napi_by_id(&self, id: u32) -> Option<Arc<dyn NetDevice>> {
        let d = self.dev.read().clone()?;
        (id != 0 && d.napi_id() == id).then_some(d)
    }

    /// `dev_queue_xmit()`: hands frames to the device in order. Called while the socket that
    /// built them is still locked, so one socket's frames reach the device in build order
    /// whichever thread built them; [`StackCore::dev_flush`] delivers them afterwards.
    pub(crate) fn dev_queue_xmit(&self, frames: impl IntoIterator<Item = Frame>) {
        // No Peekable: it would move every frame through its peek slot (a 200-byte copy).
        let mut frames = frames.into_iter();
        let Some(first) = frames.next() else { return };
        let dev = self.dev.read();
        let Some(dev) = dev.as_ref() else { return };
        let dev_gso = dev.gso_max_size();
        let xmit = |f: Frame| {
            // A socket bound to `lo` is routed there: Linux's `lo` hands the frame back
            // to ip_rcv(), which drops a frame for a non-local address (InAddrErrors).
            // DEVIATION(linux): utcp has no loopback device, so a frame for its own
            // address sent through `lo` is dropped too instead of delivered.
            if f.oif == crate::netns::LOOPBACK_IFINDEX {
                self.net.mib.drop_reason(crate::mib::DropReason::IP_NOT_FOR_US);
                return;
            }
            // validate_xmit_skb(): software GSO for what the device cannot take whole.
            if crate::netdev::gso::netif_needs_gso(&f, dev_gso) {
                crate::netdev::gso::skb_gso_segment(f, |s| dev.xmit(s));
            } else {
                dev.xmit(f);
            }
        };
        xmit(first);
        frames.for_each(xmit);
    }

    /// `qdisc_run()`: lets the device deliver what was queued. Called with no socket lock held.
    pub fn dev_flush(&self) {
        let dev = self.dev.read().clone();
        if let Some(dev) = dev {
            dev.flush_tx();
        }
    }

    /// `netif_receive_skb()` → `ip_rcv()` → `tcp_v4_rcv()`.
    pub fn netif_receive(self: &Arc<Self>, mut frame: Frame) {
        self.__netif_receive_skb(&mut frame)
    }

    /// [`StackCore::netif_receive`] on a borrowed frame (what the device's receive hook
    /// calls): the frame is read, never moved; the segment takes a share of its payload (and
    /// the parts of a packet GRO merged, [`Frame::frags`]).
    pub(crate) fn __netif_receive_skb(self: &Arc<Self>, frame: &mut Frame) {
        let verify = self.verify_csum.load(Ordering::Relaxed);
        let h = frame.head();
        // The IP version picks ipv6_rcv() or ip_rcv(), as the link layer's protocol does.
        if h.first().or(frame.payload.first()).is_some_and(|b| b >> 4 == 6) {
            return self.ipv6_rcv(frame, verify);
        }
        if h.len() >= 20 && h[0] >> 4 == 4 && h[9] != crate::wire::IPPROTO_TCP {
            return self.ip_local_deliver_other(&frame.to_vec(), verify);
        }
        // CHECKSUM_PARTIAL (a super-segment from a TSO-capable peer, as loopback hands it on,
        // or what GRO merged) or CHECKSUM_UNNECESSARY (a segment GRO verified):
        // skb_csum_unnecessary() holds, nothing to verify.
        let tin = match ip::ip_rcv_tcp(&self.net, frame, verify && !frame.csum_partial && !frame.csum_unnecessary) {
            Ok(t) => t,
            Err(crate::mib::DropReason::IP_INHDR) => return self.icmp_param_problem(&frame.to_vec()),
            Err(_) => return,
        };
        // Built in place: a Seg moved into its InSeg is a 176-byte copy per segment.
        let mut inseg = InSeg {
            seg: seg_from(&tin),
            saddr: tin.saddr,
            daddr: tin.daddr,
            sport: tin.tcp.src_port,
            dport: tin.tcp.dst_port,
        };
        if !frame.frags.is_empty() {
            Self::gro_parts(&mut inseg.seg, frame);
        }
        self.rx_meta(&mut inseg.seg, frame);
        crate::tcp::ipv4::tcp_v4_rcv(&**self, inseg, frame.napi_id);
    }

    /// A packet GRO merged: the segment takes the parts after the first (`ip_rcv_tcp` took
    /// the first; the IP total length covers them all), and is charged what the merged skbs
    /// cost — each part's driver skb less the `struct sk_buff` `skb_gro_receive()` frees
    /// when it steals a head — unless the device said.
    fn gro_parts(seg: &mut crate::tcp::input::Seg, frame: &mut Frame) {
        let frags = core::mem::take(&mut frame.frags);
        let len: u32 = frags.iter().map(|f| f.len() as u32).sum();
        if frame.truesize == 0 {
            let extra: u32 = frags.iter().map(|f| crate::tcp::TcpSock::rx_truesize(f.len() as u32) - 256).sum();
            seg.truesize += extra;
        }
        seg.end_seq += len;
        seg.frags = frags;
        seg.frags_len = len;
    }

    /// What the device tells of a received segment: its truesize, its skb layout, and its
    /// GSO size (`virtio_net_hdr_to_skb()`: "Too small packets are not really GSO ones": the
    /// length past the network header and a bare TCP header must exceed it, in either family).
    fn rx_meta(&self, seg: &mut crate::tcp::input::Seg, frame: &Frame) {
        if frame.truesize != 0 {
            seg.truesize = frame.truesize;
        }
        seg.rx.layout = frame.layout;
        if frame.gso_size != 0 && seg.len() + seg.rx.thlen - 20 > frame.gso_size {
            seg.rx.gso_size = frame.gso_size;
            // tcp_set_skb_tso_segs() on the sender: the packets it stands for (tcp_segs_in).
            // A GRO packet's parts have moved into `seg` already: count from its length.
            if frame.csum_partial {
                seg.rx.segs = seg.len().div_ceil(frame.gso_size).max(1);
            }
        }
    }

    /// `ipv6_rcv()`: the IPv6 input path; its answers (echo replies, ICMPv6 errors) go out,
    /// and a TCP segment for us goes to `tcp_v6_rcv()`.
    // DEVIATION(linux): the packet is copied into one buffer (headers and payload together);
    // the TCP payload is then a slice of it, not copied again.
    fn ipv6_rcv(self: &Arc<Self>, frame: &Frame, verify: bool) {
        let pkt = bytes::Bytes::from(frame.to_vec());
        let mut out = Vec::new();
        let tcp = ip::ipv6::ip6_rcv(&self.net, &self.icmp, &self.icmp6, &pkt, self.clock.now(), &mut out);
        if !out.is_empty() {
            self.dev_queue_xmit(out);
            self.dev_flush();
        }
        let off = match tcp {
            Some(ip::ipv6::Ip6Up::Tcp(off)) => off,
            Some(ip::ipv6::Ip6Up::TcpErr(e)) => return self.tcp_v6_err(e),
            None => return,
        };
        let Ok(tin) = ip::ipv6::ip6_rcv_tcp(&self.net, &pkt, off, verify && !frame.csum_partial) else { return };
        let mut seg = seg_from(&tin);
        self.rx_meta(&mut seg, frame);
        let inseg = InSeg { seg, saddr: tin.saddr, daddr: tin.daddr, sport: tin.tcp.src_port, dport: tin.tcp.dst_port };
        crate::tcp::ipv6::tcp_v6_rcv(&**self, inseg, frame.napi_id);
    }

    /// Sends an ICMPv6 echo request to `daddr` from the interface's IPv6 address, as `ping -6`
    /// does through a ping socket; `false` when the interface has no IPv6 address. Replies are
    /// counted (Icmp6InEchoReplies).
    pub fn ping6(&self, daddr: std::net::Ipv6Addr, ident: u16, seq: u16, data: &[u8]) -> bool {
        let Some(f) = ip::icmpv6::icmpv6_echo_request(&self.net, daddr, ident, seq, data) else { return false };
        self.dev_queue_xmit([f]);
        self.dev_flush();
        true
    }

    /// `ip_local_deliver_finish()` for protocols other than TCP: ICMP to `icmp_rcv`, anything
    /// else answered with ICMP protocol-unreachable (rate-limited), as Linux without a raw
    /// socket for it does.
    fn ip_local_deliver_other(self: &Arc<Self>, pkt: &[u8], verify: bool) {
        let ihl = match ip::ip_rcv_other(&self.net, pkt, verify) {
            Ok(ihl) => ihl,
            Err(crate::mib::DropReason::IP_INHDR) => return self.icmp_param_problem(pkt),
            Err(_) => return,
        };
        let pkt = &pkt[..crate::wire::Ipv4Packet::new_unchecked(pkt).total_len() as usize];
        let mut out = Vec::new();
        if pkt[9] == ip::icmp::IPPROTO_ICMP {
            self.net.mib.ip_inc(crate::mib::IpMib::InDelivers);
            if let ip::icmp::IcmpAction::TcpErr(e) = ip::icmp::icmp_rcv(&self.net, pkt, ihl, &mut out) {
                self.tcp_v4_err(e);
            }
        } else {
            self.net.mib.drop_reason(crate::mib::DropReason::IP_NOPROTO);
            let now = self.clock.now();
            let (t, c) = (ip::icmp::ICMP_DEST_UNREACH, ip::icmp::ICMP_PROT_UNREACH);
            out.extend(ip::icmp::icmp_send(&self.net, &self.icmp, pkt, t, c, 0, now));
        }
        if !out.is_empty() {
            self.dev_queue_xmit(out);
            self.dev_flush();
        }
    }

    /// `ip_options_compile()` → `icmp_send(ICMP_PARAMETERPROB)`: a datagram whose options do
    /// not compile is answered (rate-limited) with the offending byte's offset.
    fn icmp_param_problem(&self, pkt: &[u8]) {
        let Some(ptr) = ip::ip_options_param_problem(pkt) else { return };
        let now = self.clock.now();
        let info = (ptr as u32) << 24;
        if let Some(f) = ip::icmp::icmp_send(&self.net, &self.icmp, pkt, ip::icmp::ICMP_PARAMETERPROB, 0, info, now) {
            self.dev_queue_xmit(vec![f]);
            self.dev_flush();
        }
    }

    /// `tcp_v4_err()`'s lookup: the established socket the quoted segment came from
    /// (`__inet_lookup_established`); none: IcmpInErrors.
    fn tcp_v4_err(&self, e: ip::icmp::IcmpErr) {
        let p = &e.payload;
        let (sport, dport) = (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]]));
        let sk = self.ehash.read().get(&(e.saddr, sport, e.daddr, dport)).cloned();
        match sk {
            Some(sk) => sk.icmp_err_softirq(e),
            None => self.net.mib.icmp_inc(crate::mib::IcmpMib::InErrors),
        }
    }

    /// `tcp_v6_err()`'s lookup: the socket the quoted segment came from; none: Icmp6InErrors.
    fn tcp_v6_err(&self, e: ip::icmp::IcmpErr) {
        let p = &e.payload;
        let (sport, dport) = (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]]));
        let sk = self.ehash.read().get(&(e.saddr, sport, e.daddr, dport)).cloned();
        match sk {
            Some(sk) => sk.icmp_err_softirq(e),
            None => self.net.mib.icmp6_inc(crate::mib::Icmp6Mib::InErrors),
        }
    }

    /// Sends the RST answering `inseg` (when it is not itself a RST).
    pub(crate) fn send_reset_for(&self, inseg: &InSeg) {
        if let Some(f) = reset_frame(&self.net, inseg) {
            self.dev_queue_xmit([f]);
            self.dev_flush();
        }
    }

    /// Arms (or moves) the socket's timer entry.
    pub(crate) fn schedule_timer(&self, sk: &Sock, at: Option<Instant>) {
        // Like `timer_reduce()`: an armed entry at or before `at` is kept (and a cancelled timer
        // leaves its entry); when it fires the socket finds nothing due and re-arms at its real
        // deadline. So the common case — an ACK moving the RTO forward — takes no lock.
        // Callers hold the socket's state lock, so calls for one socket are serialized.
        let Some(at) = at else { return };
        if sk.timer_armed.load(Ordering::Acquire) <= at.nanos() {
            return;
        }
        let mut t = self.timers.lock();
        {
            {
                sk.timer_armed.store(at.nanos(), Ordering::Release);
                let earliest = t.heap.peek().map(|Reverse((i, _))| *i);
                t.armed.insert(sk.id, (sk.me_weak(), at));
                t.heap.push(Reverse((at, sk.id)));
                if earliest.is_none_or(|e| at < e) {
                    self.timer_cv.notify_all();
                }
            }
        }
    }

    /// Fires every timer due at `now`; returns the next deadline.
    pub fn run_timers(&self, now: Instant) -> Option<Instant> {
        loop {
            let due = {
                let mut t = self.timers.lock();
                let mut due = None;
                while let Some(Reverse((at, id))) = t.heap.peek().copied() {
                    match t.armed.get(&id) {
                        Some((_, cur)) if *cur == at => {}
                        _ => {
                            t.heap.pop();
                            continue;
                        }
                    }
                    if at > now {
                        break;
                    }
                    t.heap.pop();
                    let (w, _) = t.armed.remove(&id).expect("armed");
                    due = w.upgrade();
                    if let Some(s) = &due {
                        s.timer_armed.store(u64::MAX, Ordering::Release);
                    }
                    break;
                }
                match due {
                    Some(s) => Some(s),
                    None => {
                        t.shrink_idle();
                        return t.heap.peek().map(|Reverse((i, _))| *i);
                    }
                }
            };
            if let Some(s) = due {
                s.run_timers();
            }
        }
    }

    /// The earliest armed timer.
    pub fn next_timer(&self) -> Option<Instant> {
        let mut t = self.timers.lock();
        while let Some(Reverse((at, id))) = t.heap.peek().copied() {
            if t.armed.get(&id).is_some_and(|(_, cur)| *cur == at) {
                return Some(at);
            }
            t.heap.pop();
        }
        None
    }

    /// Waits (real clock) until a timer might be due or `max` passes.
    pub(crate) fn wait_timer_change(&self, max: std::time::Duration) {
        let mut t = self.timers.lock();
        self.timer_cv.wait_for(&mut t, max);
    }

    /// Inserts an established/connecting socket into the connection table.
    pub(crate) fn hash(&self, key: FourTuple, sk: Arc<Sock>) -> bool {
        let mut h = self.ehash.write();
        if h.contains_key(&key) {
            return false;
        }
        h.insert(key, sk);
        true
    }

    /// `__inet_lookup_listener()` with `reuseport_select_sock()`: a listener of a SO_REUSEPORT
    /// group is chosen by a keyed hash of the 4-tuple scaled to the group size, so a
    /// connection's segments always reach the same listener.
    pub(crate) fn __inet_lookup_listener(&self, inseg: &InSeg) -> Option<Arc<Sock>> {
        let h = self.lhash.read();
        let all = h.get(&inseg.dport)?;
        // compute_score(): listeners bound to another device are not candidates.
        // An IPv6 segment finds AF_INET6 listeners only; an IPv4 one AF_INET listeners and
        // dual-stack AF_INET6 ones.
        let fam = if inseg.daddr.is_ipv6() { crate::socket::sock::RCV_V6 } else { crate::socket::sock::RCV_V4 };
        let group: Vec<&(Arc<Sock>, bool)> = all
            .iter()
            .filter(|(s, _)| {
                crate::tcp::ipv4::inet_sk_bound_dev_eq(s) && s.rcv_families.load(Ordering::Relaxed) & fam != 0
            })
            .collect();
        if group.len() <= 1 {
            return group.first().map(|(s, _)| s.clone());
        }
        let mut hasher = std::hash::BuildHasher::build_hasher(&self.ehash_seed);
        write_addr(&mut hasher, inseg.daddr);
        std::hash::Hasher::write_u16(&mut hasher, inseg.dport);
        write_addr(&mut hasher, inseg.saddr);
        std::hash::Hasher::write_u16(&mut hasher, inseg.sport);
        let hash = std::hash::Hasher::finish(&hasher) as u32;
        // reciprocal_scale(hash, num_socks)
        let idx = ((hash as u64 * group.len() as u64) >> 32) as usize;
        Some(group[idx].0.clone())
    }

    /// Inserts a listener (`inet_hash` / `reuseport_add_sock`): it joins a SO_REUSEPORT group
    /// only when it and every member set SO_REUSEPORT.
    pub fn hash_listener(&self, port: u16, sk: Arc<Sock>) -> bool {
        self.hash_listener_opts(port, sk, false)
    }

    /// [`StackCore::hash_listener`] with the listener's SO_REUSEPORT.
    pub(crate) fn hash_listener_opts(&self, port: u16, sk: Arc<Sock>, reuseport: bool) -> bool {
        let mut h = self.lhash.write();
        let group = h.entry(port).or_default();
        // Listeners of disjoint families (an AF_INET one and an IPV6_V6ONLY one) share the
        // port, as the bind table let them.
        let fam = sk.rcv_families.load(Ordering::Relaxed);
        let disjoint = group.iter().all(|(s, _)| s.rcv_families.load(Ordering::Relaxed) & fam == 0);
        let may_join = group.is_empty() || disjoint || (reuseport && group.iter().all(|(_, r)| *r));
        if !may_join {
            return false;
        }
        group.push((sk, reuseport));
        true
    }

    /// Removes a listener (`reuseport_detach_sock`).
    pub(crate) fn unhash_listener(&self, port: u16, id: u64) {
        let mut h = self.lhash.write();
        if let Some(group) = h.get_mut(&port) {
            group.retain(|(s, _)| s.id != id);
            if group.is_empty() {
                h.remove(&port);
            }
        }
    }

    /// Removes a socket from the connection table (when it is dead).
    pub(crate) fn unhash(&self, sk: &Sock, tp: &TcpSock) {
        let key = (tp.saddr, tp.sport, tp.daddr, tp.dport);
        let mut h = self.ehash.write();
        if h.get(&key).is_some_and(|s| s.id == sk.id) {
            h.remove(&key);
            crate::skb_queue::shrink_emptied(&mut *h);
        }
        drop(h);
        if tp.state == TcpState::Close {
            self.put_port(sk.id);
        }
    }

    /// Removes by key.
    pub(crate) fn unhash_key(&self, key: FourTuple, id: u64) {
        let mut h = self.ehash.write();
        if h.get(&key).is_some_and(|s| s.id == id) {
            h.remove(&key);
            crate::skb_queue::shrink_emptied(&mut *h);
        }
    }

    /// `inet_sk_get_local_port_range()`: `net.ipv4.ip_local_port_range`, narrowed by a
    /// socket's IP_LOCAL_PORT_RANGE `sk_range` (`lo | hi << 16`): each half replaces the
    /// sysctl's bound when it lies inside the sysctl's range. The flag tells whether the
    /// socket set a range at all.
    pub(crate) fn inet_sk_get_local_port_range(&self, sk_range: u32) -> ((u16, u16), bool) {
        let lo = self.net.sysctl.ip_local_port_range.idx(0).clamp(0, 65535);
        let hi = self.net.sysctl.ip_local_port_range.idx(1).clamp(0, 65535);
        let (mut l, mut h) = (lo, hi);
        if sk_range != 0 {
            let (sk_lo, sk_hi) = ((sk_range & 0xffff) as i64, (sk_range >> 16) as i64);
            if lo <= sk_lo && sk_lo <= hi {
                l = sk_lo;
            }
            if lo <= sk_hi && sk_hi <= hi {
                h = sk_hi;
            }
        }
        ((l as u16, h as u16), sk_range != 0)
    }

    /// `inet_csk_get_port()`: socket `id` binds `port` (0 = any free port of the range).
    pub fn get_port(&self, id: u64, port: u16, reuse: bool) -> Result<u16, crate::errno::Errno> {
        self.get_port_opts(id, port, reuse, false, 0, crate::ports::FAM_V4)
    }

    /// [`StackCore::get_port`] with SO_REUSEPORT (the port is shared with sockets that all set
    /// it) and the socket's IP_LOCAL_PORT_RANGE `sk_range`.
    pub(crate) fn get_port_opts(
        &self,
        id: u64,
        port: u16,
        reuse: bool,
        reuseport: bool,
        sk_range: u32,
        fam: u8,
    ) -> Result<u16, crate::errno::Errno> {
        let (range, _) = self.inet_sk_get_local_port_range(sk_range);
        self.ports.lock().bind_opts(id, port, reuse, reuseport, range, fam)
    }

    /// `__inet_check_established()`: hashes `sk` under `key` unless a socket has that 4-tuple;
    /// a timewait sock that `tcp_twsk_unique()` lets go is replaced (and returned, with what
    /// the new connection takes over from it, for the caller to kill outside this lock).
    /// `twp`: asked by the port search (see [`crate::tcp::ipv4::tcp_twsk_unique`]).
    pub(crate) fn __inet_check_established(
        &self,
        key: FourTuple,
        sk: &Arc<Sock>,
        twp: bool,
    ) -> Option<Option<TakenTw>> {
        let mut h = self.ehash.write();
        let Some(old) = h.get(&key) else {
            h.insert(key, sk.clone());
            return Some(None);
        };
        if old.id == sk.id {
            return None; // never itself (connect() refuses a socket that still has a state)
        }
        let tw = old.tw.lock().as_deref().copied();
        let reuse = crate::tcp::ipv4::tcp_twsk_unique(&self.net, tw.as_ref()?, twp, self.clock.now())?;
        let old = h.insert(key, sk.clone()).expect("present");
        self.net.mib.inc(crate::mib::LinuxMib::TWRecycled);
        Some(Some((old, reuse)))
    }

    /// `__inet_hash_connect()`: picks a local port for a connection from `saddr` to
    /// `daddr:dport` whose 4-tuple is unused (a port may serve many destinations), or held
    /// by a timewait sock that `tcp_twsk_unique()` lets go, and hashes `sk` under it;
    /// `sk_range` is the socket's IP_LOCAL_PORT_RANGE. EADDRNOTAVAIL when the range has no
    /// port left. Returns the port and the timewait sock taken over, if any.
    pub(crate) fn hash_connect(
        &self,
        sk: &Arc<Sock>,
        saddr: IpAddr,
        daddr: IpAddr,
        dport: u16,
        sk_range: u32,
    ) -> Result<(u16, Option<TakenTw>), crate::errno::Errno> {
        let (range, local) = self.inet_sk_get_local_port_range(sk_range);
        let mut ports = self.ports.lock();
        let offset = self.net.port_offset(saddr, daddr, dport);
        let mut taken = None;
        let fam = if saddr.is_ipv6() { crate::ports::FAM_V6 } else { crate::ports::FAM_V4 };
        let port = ports.connect(sk.id, range, local, offset, fam, |p| {
            match self.__inet_check_established((saddr, p, daddr, dport), sk, true) {
                Some(tw) => {
                    taken = tw;
                    true
                }
                None => false,
            }
        })?;
        Ok((port, taken))
    }

    /// The port socket `id` holds, if any.
    pub(crate) fn port_held(&self, id: u64) -> Option<u16> {
        self.ports.lock().held_by(id)
    }

    /// `inet_put_port()`: socket `id` gives its port back (idempotent).
    pub(crate) fn put_port(&self, id: u64) {
        self.ports.lock().put(id);
    }

    /// Snapshot of established sockets (for `utcp stat` and tests).
    pub fn sockets(&self) -> Vec<Arc<Sock>> {
        self.ehash.read().values().cloned().collect()
    }

    /// What every table of the stack holds now (what `utcp soak` and the leak tests check
    /// returns to its start once every connection is gone).
    pub fn table_counts(&self) -> TableCounts {
        let ehash: Vec<Arc<Sock>> = self.sockets();
        let time_wait = ehash.iter().filter(|s| s.peek_tp(|tp| tp.state == crate::tcp::TcpState::TimeWait)).count();
        let (port_holders, ports) = self.ports.lock().counts();
        // An entry whose socket is gone stays until its deadline, when it is dropped unfired.
        let timers_armed = self.timers.lock().armed.values().filter(|(w, _)| w.strong_count() > 0).count();
        let orphans = self.net.tcp_mem.orphans.lock().count;
        TableCounts {
            ehash: ehash.len(),
            time_wait,
            listeners: self.lhash.read().values().map(Vec::len).sum(),
            port_holders,
            ports,
            timers_armed,
            orphans,
            tcp_mem_pages: self.net.tcp_mem.memory_allocated.load(Ordering::Relaxed),
            sockets_allocated: self.net.tcp_mem.sockets_allocated.load(Ordering::Relaxed),
        }
    }
}

/// [`StackCore::table_counts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Sockets in the connection table (`ehash`): established, closing and TIME_WAIT.
    pub ehash: usize,
    /// Of those, in TIME_WAIT.
    pub time_wait: usize,
    /// Listeners (`lhash`).
    pub listeners: usize,
    /// Sockets holding a local port, and ports in use (the bind table).
    pub port_holders: usize,
    /// Ports with a bind bucket.
    pub(crate) ports: usize,
    /// Live sockets with a timer armed in the stack's heap.
    pub timers_armed: usize,
    /// `tcp_orphan_count`.
    pub orphans: i64,
    /// `tcp_memory_allocated` (pages).
    pub tcp_mem_pages: i64,
    /// `tcp_sockets_allocated`.
    pub sockets_allocated: i64,
}

/// The socket's view of its stack: each method is the inherent one of the same name.
impl SockHost for StackCore {
    fn net(&self) -> &Netns {
        &self.net
    }
    fn clock(&self) -> &dyn Clock {
        &*self.clock
    }
    fn next_sock_id(&self) -> u64 {
        StackCore::next_sock_id(self)
    }
    fn spin_before_sleep_us(&self) -> u32 {
        self.spin_before_sleep_us.load(Ordering::Relaxed)
    }
    fn security(&self) -> Option<Arc<dyn SecurityPolicy>> {
        self.security.read().clone()
    }
    fn schedule_timer(&self, sk: &Sock, at: Option<Instant>) {
        StackCore::schedule_timer(self, sk, at)
    }
    fn dev_queue_xmit(&self, frames: &mut Vec<Frame>) {
        StackCore::dev_queue_xmit(self, frames.drain(..))
    }
    fn dev_flush(&self) {
        StackCore::dev_flush(self)
    }
    fn napi_by_id(&self, id: u32) -> Option<Arc<dyn NetDevice>> {
        StackCore::napi_by_id(self, id)
    }
    fn send_reset_for(&self, inseg: &InSeg) {
        StackCore::send_reset_for(self, inseg)
    }
    fn __inet_lookup_established(&self, key: FourTuple) -> Option<Arc<Sock>> {
        self.ehash.read().get(&key).filter(|s| crate::tcp::ipv4::inet_sk_bound_dev_eq(s)).cloned()
    }
    fn __inet_lookup_listener(&self, inseg: &InSeg) -> Option<Arc<Sock>> {
        StackCore::__inet_lookup_listener(self, inseg)
    }
    fn hash(&self, key: FourTuple, sk: Arc<Sock>) -> bool {
        StackCore::hash(self, key, sk)
    }
    fn unhash(&self, sk: &Sock, tp: &TcpSock) {
        StackCore::unhash(self, sk, tp)
    }
    fn unhash_key(&self, key: FourTuple, id: u64) {
        StackCore::unhash_key(self, key, id)
    }
    fn unhash_listener(&self, port: u16, id: u64) {
        StackCore::unhash_listener(self, port, id)
    }
    fn __inet_check_established(&self, key: FourTuple, sk: &Arc<Sock>, twp: bool) -> Option<Option<TakenTw>> {
        StackCore::__inet_check_established(self, key, sk, twp)
    }
    fn hash_connect(
        &self,
        sk: &Arc<Sock>,
        saddr: IpAddr,
        daddr: IpAddr,
        dport: u16,
        sk_range: u32,
    ) -> Result<(u16, Option<TakenTw>), crate::errno::Errno> {
        StackCore::hash_connect(self, sk, saddr, daddr, dport, sk_range)
    }
    fn inherit_port(&self, id: u64, port: u16, reuseport: bool, fam: u8) {
        self.ports.lock().inherit(id, port, reuseport, fam)
    }
    fn port_held(&self, id: u64) -> Option<u16> {
        StackCore::port_held(self, id)
    }
    fn put_port(&self, id: u64) {
        StackCore::put_port(self, id)
    }
}
