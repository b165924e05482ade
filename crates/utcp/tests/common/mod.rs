//! Shared test harnesses: [`transfer`] (a bulk transfer over a SimNet memlink) and [`Lab`] (two
//! stacks on a tapped wire that records every segment and can drop chosen ones), all on the
//! virtual clock.
#![allow(dead_code)]

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use utcp::api::{ADDR_A, ADDR_B};
use utcp::netdev::memlink::LinkConfig;
use utcp::netdev::{netif_rx, netif_rx_queue, NetDevice, RxHook};
use utcp::sim::SimNet;
use utcp::skb::Frame;
use utcp::stack::StackCore;
use utcp::syscall::*;
use utcp::tcp::TcpState;
use utcp::time::{Clock, Duration, Instant, VirtualClock};
use utcp::{Errno, Stack};

/// Deterministic pseudo-random payload.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x: u64 = 0x1234_5678_9abc_def0 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    if x == 0 {
        x = 1;
    }
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `len` pseudo-random bytes from A to B over `cfg`, then A shuts down its side; returns
/// what was sent, what B read up to EOF, and the simulation. Panics if the transfer stalls.
pub fn transfer(cfg: LinkConfig, len: usize, isn: Option<u32>) -> (Vec<u8>, Vec<u8>, SimNet) {
    transfer_with(cfg, len, isn, |_| {})
}

/// [`transfer`], with `setup` run on the simulation before the connection opens.
pub fn transfer_with(
    cfg: LinkConfig,
    len: usize,
    isn: Option<u32>,
    setup: impl FnOnce(&SimNet),
) -> (Vec<u8>, Vec<u8>, SimNet) {
    let net = SimNet::new(cfg);
    setup(&net);
    if let Some(i) = isn {
        *net.a.stack.core.net.fixed_isn.lock() = Some(i);
        *net.b.stack.core.net.fixed_isn.lock() = Some(i.wrapping_add(7));
    }
    let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    b.listen(l, 16).unwrap();
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let _ = a.connect(c, SocketAddrV4::new(ADDR_B, 80));
    let mut s = None;
    assert!(net.run_until(Duration::from_secs(60), || {
        if s.is_none() {
            s = b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0);
        }
        s.is_some()
    }));
    let s = s.unwrap();
    let data = pattern(len, 0);
    let mut sent = 0;
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0u8; 65536];
    let mut closed = false;
    let ok = net.run_until(Duration::from_secs(600), || {
        while sent < len {
            match a.send(c, Some(&data[sent..]), len - sent, 0) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        if sent == len && !closed {
            a.shutdown(c, SHUT_WR).unwrap();
            closed = true;
        }
        loop {
            match b.recv(s, Some(&mut buf), 65536, 0) {
                Ok(0) => return true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) => return false,
                Err(e) => panic!("recv: {e}"),
            }
        }
    });
    if !ok {
        for sk in a.core.sockets().iter().chain(b.core.sockets().iter()) {
            sk.peek_tp(|tp| eprintln!("{:?} wmem {} sndbuf {} snd_una {} snd_nxt {} write_seq {} snd_wnd {} cwnd {} pkts_out {} wq {} rtxq {} rcv_nxt {} copied {} rcv_wnd {} rmem {} rcvbuf {} timers {:?}", tp.state, tp.wmem_queued, tp.sndbuf, tp.snd_una, tp.snd_nxt, tp.write_seq, tp.snd_wnd, tp.snd_cwnd, tp.packets_out, tp.write_queue.len(), tp.rtx_queue.len(), tp.rcv_nxt, tp.copied_seq, tp.rcv_wnd, tp.rmem_alloc, tp.rcvbuf, tp.timers));
        }
    }
    assert!(
        ok,
        "transfer stalled at {} of {} bytes (sent {})\nA:\n{}\nB:\n{}",
        got.len(),
        len,
        sent,
        a.core.net.mib.nstat(false),
        b.core.net.mib.nstat(false)
    );
    (data, got, net)
}

// ---------------------------------------------------------------------------------------------
// Lab: a tapped wire.

/// TCP flag bits.
pub const FIN: u8 = 0x01;
/// TCP flag bits.
pub const SYN: u8 = 0x02;
/// TCP flag bits.
pub const RST: u8 = 0x04;
/// TCP flag bits.
pub const PSH: u8 = 0x08;
/// TCP flag bits.
pub const ACK: u8 = 0x10;

/// One segment as seen on the wire.
#[derive(Clone, Debug)]
pub struct Pkt {
    /// Virtual time of transmission.
    pub t: Instant,
    /// Sent by host A (else B).
    pub from_a: bool,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags byte.
    pub flags: u8,
    /// Raw (unscaled) window field.
    pub win: u16,
    /// Payload length.
    pub len: u32,
    /// MSS option.
    pub mss: Option<u16>,
    /// Window scale option.
    pub wscale: Option<u8>,
    /// SACK permitted option.
    pub sack_ok: bool,
    /// Timestamps option.
    pub ts: Option<(u32, u32)>,
    /// SACK blocks.
    pub sacks: Vec<(u32, u32)>,
    /// Dropped by the filter.
    pub dropped: bool,
    /// IP TOS byte.
    pub tos: u8,
    /// IP TTL.
    pub ttl: u8,
    /// IP Don't Fragment bit.
    pub df: bool,
    /// `skb->mark` of the frame (not on the wire; SO_MARK).
    pub mark: u32,
    /// The IPv4 header options (bytes 20..ihl).
    pub ip_opts: Vec<u8>,
    /// The IP destination address (a source route's first hop).
    pub ip_dst: Ipv4Addr,
}

impl Pkt {
    /// Whether all of `f` are set.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f == f
    }
    /// Sequence space consumed (payload + SYN + FIN).
    pub fn seg_len(&self) -> u32 {
        self.len + self.has(SYN) as u32 + self.has(FIN) as u32
    }
}

/// Parses an IPv4/TCP frame.
pub fn parse(bytes: &[u8], t: Instant) -> Pkt {
    let ihl = ((bytes[0] & 0x0f) as usize) * 4;
    let tot = u16::from_be_bytes([bytes[2], bytes[3]]) as usize;
    let src = Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]);
    let tcp = &bytes[ihl..tot];
    let be16 = |o: usize| u16::from_be_bytes([tcp[o], tcp[o + 1]]);
    let be32 = |o: &[u8]| u32::from_be_bytes([o[0], o[1], o[2], o[3]]);
    let doff = ((tcp[12] >> 4) as usize) * 4;
    let mut p = Pkt {
        t,
        from_a: src == ADDR_A,
        sport: be16(0),
        dport: be16(2),
        seq: be32(&tcp[4..]),
        ack: be32(&tcp[8..]),
        flags: tcp[13],
        win: be16(14),
        len: (tcp.len() - doff) as u32,
        mss: None,
        wscale: None,
        sack_ok: false,
        ts: None,
        tos: bytes[1],
        ttl: bytes[8],
        df: bytes[6] & 0x40 != 0,
        sacks: Vec::new(),
        dropped: false,
        mark: 0,
        ip_opts: bytes[20..ihl].to_vec(),
        ip_dst: Ipv4Addr::new(bytes[16], bytes[17], bytes[18], bytes[19]),
    };
    let mut o = &tcp[20..doff];
    while !o.is_empty() {
        match o[0] {
            0 => break,
            1 => {
                o = &o[1..];
                continue;
            }
            kind => {
                let l = o[1] as usize;
                let v = &o[2..l];
                match kind {
                    2 => p.mss = Some(u16::from_be_bytes([v[0], v[1]])),
                    3 => p.wscale = Some(v[0]),
                    4 => p.sack_ok = true,
                    5 => p.sacks = v.chunks(8).map(|c| (be32(&c[..4]), be32(&c[4..]))).collect(),
                    8 => p.ts = Some((be32(&v[..4]), be32(&v[4..]))),
                    _ => {}
                }
                o = &o[l..];
            }
        }
    }
    p
}

/// Decides whether a segment is dropped (true = drop).
pub type Filter = Box<dyn FnMut(&Pkt) -> bool + Send>;

/// Decides an extra delay for a segment (reordering it behind later ones).
pub type Holder = Box<dyn FnMut(&Pkt) -> Option<Duration> + Send>;

struct Wire {
    clock: Arc<VirtualClock>,
    hooks: [Mutex<Option<RxHook>>; 2],
    delay: Duration,
    /// (due, to host index, frame)
    queue: Mutex<VecDeque<(Instant, usize, Frame)>>,
    log: Mutex<Vec<Pkt>>,
    filter: Mutex<Option<Filter>>,
    holder: Mutex<Option<Holder>>,
}

struct Port {
    wire: Arc<Wire>,
    me: usize,
}

impl NetDevice for Port {
    fn xmit(&self, frame: Frame) {
        let now = self.wire.clock.now();
        let mut p = parse(&frame.to_vec(), now);
        p.mark = frame.mark;
        if let Some(f) = self.wire.filter.lock().as_mut() {
            p.dropped = f(&p);
        }
        let dropped = p.dropped;
        let extra = if dropped { None } else { self.wire.holder.lock().as_mut().and_then(|h| h(&p)) };
        self.wire.log.lock().push(p);
        if dropped {
            return;
        }
        let to = self.me ^ 1;
        if self.wire.delay == Duration::ZERO && extra.is_none() {
            let hook = self.wire.hooks[to].lock().clone();
            if let Some(h) = hook {
                netif_rx_queue(&h, frame);
            }
        } else {
            // Kept sorted by due time (stable: equal due times stay in send order).
            let due = now + self.wire.delay + extra.unwrap_or(Duration::ZERO);
            let mut q = self.wire.queue.lock();
            let at = q.iter().rposition(|(d, _, _)| *d <= due).map_or(0, |i| i + 1);
            q.insert(at, (due, to, frame));
        }
    }
    fn mtu(&self) -> u32 {
        1500
    }
    fn attach(&self, hook: RxHook) {
        *self.wire.hooks[self.me].lock() = Some(hook);
    }
}

/// Two stacks (A = 192.0.2.1, B = 192.0.2.2) on a tapped wire with a fixed one-way delay.
pub struct Lab {
    /// The clock.
    pub clock: Arc<VirtualClock>,
    /// Host A.
    pub a: Arc<Stack>,
    /// Host B.
    pub b: Arc<Stack>,
    wire: Arc<Wire>,
}

impl Lab {
    /// A lab whose wire delays every segment by `delay` (one way).
    pub fn new(delay: Duration) -> Lab {
        let clock = Arc::new(VirtualClock::new(Instant::from_millis(1000)));
        let wire = Arc::new(Wire {
            clock: clock.clone(),
            hooks: [Mutex::new(None), Mutex::new(None)],
            delay,
            queue: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            filter: Mutex::new(None),
            holder: Mutex::new(None),
        });
        let mk = |addr, me, secret| {
            let core = StackCore::new(addr, 1500, clock.clone() as Arc<dyn Clock>, secret);
            core.attach_device(Arc::new(Port { wire: wire.clone(), me }) as Arc<dyn NetDevice>);
            Arc::new(Stack::from_core(core))
        };
        let a = mk(ADDR_A, 0, 0x5151);
        let b = mk(ADDR_B, 1, 0xa7a7);
        Lab { clock, a, b, wire }
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Installs (or removes) the drop filter.
    pub fn set_filter(&self, f: Option<Filter>) {
        *self.wire.filter.lock() = f;
    }

    /// Delays every segment for which `f` returns `Some(extra)` by `extra` more (it arrives
    /// behind the segments sent after it).
    pub fn delay_if(&self, f: impl FnMut(&Pkt) -> Option<Duration> + Send + 'static) {
        *self.wire.holder.lock() = Some(Box::new(f));
    }

    /// Drops every segment matching `f` from now on.
    pub fn drop_if(&self, f: impl FnMut(&Pkt) -> bool + Send + 'static) {
        self.set_filter(Some(Box::new(f)));
    }

    /// Every segment sent so far.
    pub fn log(&self) -> Vec<Pkt> {
        self.wire.log.lock().clone()
    }

    /// Forgets the log.
    pub fn clear_log(&self) {
        self.wire.log.lock().clear();
    }

    /// Delivers due frames and fires due timers until nothing is left to do now.
    pub fn settle(&self) {
        loop {
            let now = self.now();
            let mut work = false;
            loop {
                let f = {
                    let mut q = self.wire.queue.lock();
                    match q.front() {
                        Some((due, _, _)) if *due <= now => q.pop_front(),
                        _ => None,
                    }
                };
                let Some((_, to, frame)) = f else { break };
                let hook = self.wire.hooks[to].lock().clone();
                if let Some(h) = hook {
                    netif_rx(&h, frame);
                }
                work = true;
            }
            for s in [&self.a, &self.b] {
                if s.core.next_timer().is_some_and(|t| t <= now) {
                    s.core.run_timers(now);
                    work = true;
                }
            }
            if !work {
                return;
            }
        }
    }

    fn next_event(&self) -> Option<Instant> {
        let mut n = self.wire.queue.lock().front().map(|x| x.0);
        for s in [&self.a, &self.b] {
            if let Some(t) = s.core.next_timer() {
                n = Some(n.map_or(t, |m: Instant| m.min(t)));
            }
        }
        n
    }

    /// Advances time by `d`, processing everything due on the way.
    pub fn advance(&self, d: Duration) {
        let end = self.now() + d;
        loop {
            self.settle();
            match self.next_event() {
                Some(t) if t <= end => self.clock.advance_to(t.max(self.now())),
                _ => break,
            }
        }
        self.clock.advance_to(end);
        self.settle();
    }

    /// Runs event to event until `done()` holds; false if `limit` passes first.
    pub fn run_until(&self, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let end = self.now() + limit;
        loop {
            self.settle();
            if done() {
                return true;
            }
            match self.next_event() {
                Some(t) if t <= end => self.clock.advance_to(t.max(self.now() + Duration::from_nanos(1))),
                _ => {
                    self.settle();
                    return done();
                }
            }
        }
    }

    /// Hands `frame` to host B (`to_b`) or A as if it came off the wire now (a spoofed or
    /// forged segment), then processes what it causes.
    pub fn inject(&self, to_b: bool, frame: Frame) {
        let hook = self.wire.hooks[to_b as usize].lock().clone();
        if let Some(h) = hook {
            netif_rx(&h, frame);
        }
        self.settle();
    }

    /// A listener on B:`port` with `backlog`, non-blocking.
    pub fn listen(&self, port: u16, backlog: i32) -> i32 {
        let l = self.b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        self.b.bind(l, SocketAddrV4::new(ADDR_B, port)).unwrap();
        self.b.listen(l, backlog).unwrap();
        l
    }

    /// A non-blocking socket on A with its connect to B:`port` started.
    pub fn connect_start(&self, port: u16) -> i32 {
        let c = self.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        assert_eq!(self.a.connect(c, SocketAddrV4::new(ADDR_B, port)), Err(Errno::EINPROGRESS));
        c
    }

    /// An established pair: (A's socket, B's accepted socket, B's listener), all non-blocking.
    pub fn pair(&self) -> (i32, i32, i32) {
        let l = self.listen(80, 16);
        let c = self.connect_start(80);
        let mut s = None;
        assert!(self.run_until(Duration::from_secs(10), || {
            s = s.or_else(|| self.b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
            s.is_some()
        }));
        self.settle();
        assert_eq!(state(&self.a, c), TcpState::Established);
        (c, s.unwrap(), l)
    }
}

/// The socket's state as TCP_INFO reports it.
pub fn state(st: &Stack, fd: i32) -> TcpState {
    let s = st.tcp_info(fd).unwrap().tcpi_state;
    [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
    ][s as usize - 1]
}

/// The internal states of every hashed connection of `st` (TIME_WAIT and orphans included).
pub fn conn_states(st: &Stack) -> Vec<TcpState> {
    st.core.sockets().iter().map(|sk| sk.peek_tp(|tp| tp.state)).collect()
}

/// Reads everything available (non-blocking); `Ok(None)` at EOF, `Err` on an error.
pub fn drain(st: &Stack, fd: i32, out: &mut Vec<u8>) -> Result<bool, Errno> {
    let mut buf = vec![0u8; 65536];
    loop {
        match st.recv(fd, Some(&mut buf), 65536, MSG_DONTWAIT_FLAG) {
            Ok(0) => return Ok(true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// `MSG_DONTWAIT`.
pub const MSG_DONTWAIT_FLAG: i32 = utcp::tcp::recvmsg::MSG_DONTWAIT;

/// Options of a forged segment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Opts {
    /// MSS option.
    pub mss: Option<u16>,
    /// Window scale option.
    pub wscale: Option<u8>,
    /// SACK permitted.
    pub sack_ok: bool,
    /// Timestamps (val, ecr).
    pub ts: Option<(u32, u32)>,
}

/// A checksummed TCP/IPv4 frame from `src` to `dst`, for [`Lab::inject`].
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: u8,
    seq: u32,
    ack: u32,
    win: u16,
    o: Opts,
    payload: &[u8],
) -> Frame {
    use utcp::wire::{SackBlocks, TcpFlags, TcpRepr};
    let net = utcp::netns::Netns::new(*src.ip(), 1500, 0);
    let repr = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        flags: TcpFlags(flags),
        seq_number: utcp::seq::SeqNum(seq),
        ack_number: utcp::seq::SeqNum(ack),
        window_len: win,
        urgent_pointer: 0,
        max_seg_size: o.mss,
        window_scale: o.wscale,
        sack_permitted: o.sack_ok,
        sack_ranges: SackBlocks::new(),
        timestamp: o.ts,
        payload: &[],
    };
    utcp::ip::build_tcp_frame(&net, *src.ip(), *dst.ip(), &repr, bytes::Bytes::copy_from_slice(payload))
}

/// An IPv6 socket address.
pub fn v6(ip: std::net::Ipv6Addr, port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::V6(std::net::SocketAddrV6::new(ip, port, 0, 0))
}

/// Captures every frame A sends (the wire from A to B), each as one byte vector.
pub fn tap_a(net: &SimNet) -> Arc<std::sync::Mutex<Vec<Vec<u8>>>> {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = log.clone();
    assert!(net.a.port.as_ref().unwrap().set_tx_tap(Arc::new(move |parts: &[&[u8]]| {
        l.lock().unwrap().push(parts.concat());
    })));
    log
}
