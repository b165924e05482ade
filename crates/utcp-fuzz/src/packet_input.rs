//! Packet input: arbitrary segment sequences against a listening socket and an established
//! one (host B), on the virtual clock, interleaved with real traffic from the peer (host A),
//! reads on B with random flags, time passing and raw frames.
//!
//! Forged segments to the established connection carry the stream's own bytes at their
//! sequence offset (the stream is a fixed function of the offset, and A writes the same
//! bytes), so whatever B accepts from either source is the stream. Raw frames (IPv4, IPv6 or
//! arbitrary bytes) never carry the connection's tuple; every IPv6 one is counted. After each input: no panic, every socket's receive memory and
//! send queue within their limits, every byte read is the stream's byte at that offset. At
//! the end every byte B acknowledged (`tcpi_bytes_received`) is readable.

use crate::input::Input;
use bytes::Bytes;
use std::net::SocketAddrV4;
use std::sync::Arc;
use utcp::api::{ADDR6_A, ADDR6_B, ADDR_A, ADDR_B};
use utcp::netdev::memlink::LinkConfig;
use utcp::seq::SeqNum;
use utcp::sim::SimNet;
use utcp::socket::sock::Sock;
use utcp::syscall::opt::SO_RCVBUF;
use utcp::syscall::{AF_INET, SHUT_WR, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET};
use utcp::tcp::recvmsg::{MSG_DONTWAIT, MSG_PEEK, MSG_TRUNC, MSG_WAITALL};
use utcp::time::Duration;
use utcp::wire::ipv6::nexthdr;
use utcp::wire::{
    Icmpv6Packet, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, SackBlocks, TcpFlags, TcpPacket, TcpRepr, IPPROTO_TCP,
};
use utcp::{Errno, Stack};

/// The stream's byte at offset `off` (offset 0 is the byte after the SYN).
pub fn stream_byte(off: i64) -> u8 {
    let x = (off as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8
}

fn stream(off: i64, len: usize) -> Vec<u8> {
    (off..off + len as i64).map(stream_byte).collect()
}

/// The most inputs one run decodes.
pub const MAX_OPS: usize = 300;
/// Listener backlog.
const BACKLOG: i32 = 4;
/// Extra connections A may open to the listener.
const MAX_CONNECTS: usize = 6;

struct World {
    net: SimNet,
    /// B's established socket and its fd; A's end.
    s: i32,
    sk: Arc<Sock>,
    c: i32,
    a_port: u16,
    /// The stream offset of byte `irs + 1`.
    irs: SeqNum,
    /// Bytes A has written / B has consumed (read or MSG_TRUNC-discarded).
    written: i64,
    consumed: i64,
    max_rcvbuf: u32,
    connects: usize,
}

impl World {
    fn new() -> World {
        let net = SimNet::new(LinkConfig::default());
        let (a, b) = (&net.a.stack, &net.b.stack);
        let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).expect("socket");
        b.bind(l, SocketAddrV4::new(ADDR_B, 80)).expect("bind");
        b.listen(l, BACKLOG).expect("listen");
        let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).expect("socket");
        let _ = a.connect(c, SocketAddrV4::new(ADDR_B, 80));
        net.settle();
        let (s, _) = b.accept4(l, SOCK_NONBLOCK).expect("the handshake completes on a clean link");
        let sk = b.sockfd_lookup(s).expect("fd").sk.clone();
        let (a_port, irs, rcvbuf) = sk.peek_tp(|tp| (tp.dport, tp.irs, tp.rcvbuf));
        World { net, s, sk, c, a_port, irs, written: 0, consumed: 0, max_rcvbuf: rcvbuf, connects: 0 }
    }

    fn b(&self) -> &Stack {
        &self.net.b.stack
    }

    /// Stream offset of sequence number `seq` on the A→B direction.
    fn off(&self, seq: SeqNum) -> i64 {
        seq.0.wrapping_sub(self.irs.0.wrapping_add(1)) as i32 as i64
    }

    fn inject(&self, repr: &TcpRepr<'_>, payload: Vec<u8>) {
        let frame = utcp::ip::build_tcp_frame(&self.b().core.net, ADDR_A, ADDR_B, repr, Bytes::from(payload));
        self.b().core.netif_receive(frame);
    }

    fn op(&mut self, i: &mut Input<'_>) {
        match i.u8() % 16 {
            0..=5 => self.forged(i),
            6 | 7 => self.at_listener(i),
            8 => self.write(i),
            9 | 10 => self.read(i),
            11 => self.net.advance(Duration::from_millis((i.u16() % 5000) as u64)),
            12 => self.net.settle(),
            13 => self.raw(i),
            14 => self.connect(i),
            _ => match i.u8() % 4 {
                0 => {
                    let _ = self.b().shutdown(self.s, SHUT_WR);
                }
                1 => {
                    let _ = self.net.a.stack.shutdown(self.c, SHUT_WR);
                }
                _ => {
                    let v = (i.u16() as i32) << (i.u8() % 6);
                    let _ = self.b().setsockopt(self.s, SOL_SOCKET, SO_RCVBUF, &v.to_ne_bytes());
                    let now = self.sk.peek_tp(|tp| tp.rcvbuf);
                    self.max_rcvbuf = self.max_rcvbuf.max(now);
                }
            },
        }
    }

    fn options<'p>(&self, i: &mut Input<'_>, repr: &mut TcpRepr<'p>, base: SeqNum) {
        let m = i.u8();
        if m & 1 != 0 {
            repr.timestamp = Some((i.u32(), if i.bool() { i.u32() } else { 0 }));
        }
        if m & 2 != 0 {
            let mut blocks = SackBlocks::new();
            for _ in 0..i.u8() % 5 {
                let s = base + ((i.u16() as u32) << (i.u8() % 4)) - 4096;
                blocks.push(s, s + i.u16() as u32);
            }
            repr.sack_ranges = blocks;
        }
        if m & 4 != 0 {
            repr.max_seg_size = Some(i.u16());
        }
        if m & 8 != 0 {
            repr.window_scale = Some(i.u8());
        }
        repr.sack_permitted = m & 16 != 0;
    }

    /// A segment on the connection's own tuple, near B's `rcv_nxt` and `snd_una`, carrying
    /// the stream's bytes for its sequence range (never URG: the urgent byte leaves the
    /// stream).
    fn forged(&mut self, i: &mut Input<'_>) {
        let (rcv_nxt, snd_una, sport, dport) = self.sk.peek_tp(|tp| (tp.rcv_nxt, tp.snd_una, tp.dport, tp.sport));
        let mut flags = TcpFlags(i.u8() & (TcpFlags::FIN.0 | TcpFlags::SYN.0 | TcpFlags::RST.0 | TcpFlags::PSH.0));
        if !i.u8().is_multiple_of(4) {
            flags |= TcpFlags::ACK;
        }
        let scale = i.pick(&[1i64, 1, 8, 1460, 65536]);
        let seq = SeqNum((rcv_nxt.0 as i64).wrapping_add(i.u16() as i16 as i64 * scale) as u32);
        let ascale = i.pick(&[0i64, 1, 16, 65536]);
        let ack = SeqNum((snd_una.0 as i64).wrapping_add(i.u16() as i16 as i64 * ascale) as u32);
        let len = if i.bool() { (i.u16() % 3001) as usize } else { (i.u8() as usize) * 6 };
        let mut repr = TcpRepr {
            src_port: sport,
            dst_port: dport,
            flags,
            seq_number: seq,
            ack_number: ack,
            window_len: if i.bool() { i.u16() } else { 65535 },
            urgent_pointer: 0,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: SackBlocks::new(),
            timestamp: None,
            payload: &[],
        };
        self.options(i, &mut repr, snd_una);
        // The payload starts after the SYN, if any.
        let data_seq = seq + u32::from(flags.syn());
        let payload = stream(self.off(data_seq), len);
        self.inject(&repr, payload);
        if i.bool() {
            self.net.settle();
        }
    }

    /// A segment to the listener's port from another source port: SYNs, ACKs, RSTs, data.
    fn at_listener(&mut self, i: &mut Input<'_>) {
        let mut sport = 1024 + i.u16() % 64;
        if sport == self.a_port {
            sport += 64;
        }
        let flags = TcpFlags(i.u8());
        let flags = if i.u8().is_multiple_of(3) { flags } else { TcpFlags::SYN };
        let payload = i.bytes(120).to_vec();
        let mut repr = TcpRepr {
            src_port: sport,
            dst_port: 80,
            flags,
            seq_number: SeqNum(i.u32()),
            ack_number: SeqNum(i.u32()),
            window_len: i.u16(),
            urgent_pointer: i.u16(),
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: SackBlocks::new(),
            timestamp: None,
            payload: &[],
        };
        self.options(i, &mut repr, SeqNum(0));
        self.inject(&repr, payload);
        self.net.settle();
    }

    /// Arbitrary bytes as the TCP part of an IPv4 packet from A to B (or as a whole
    /// packet), kept off the connection's tuple.
    fn raw(&mut self, i: &mut Input<'_>) {
        let whole = i.bool();
        let fill = i.bool();
        let body = i.bytes(255).to_vec();
        let mut pkt = if whole && fill {
            // IPv6 from A to B: the first byte is the next header, the rest the payload (an
            // ICMPv6 message gets its checksum, so that echoes and errors get past it).
            ipv6_frame(&body)
        } else if whole {
            body
        } else {
            let repr = Ipv4Repr {
                src_addr: ADDR_A,
                dst_addr: ADDR_B,
                protocol: IPPROTO_TCP,
                payload_len: body.len(),
                ttl: 64,
                ident: 0,
                dont_frag: true,
                tos: 0,
            };
            let mut buf = vec![0u8; 20 + body.len()];
            buf[20..].copy_from_slice(&body);
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), true);
            if fill && body.len() >= 20 {
                let mut t = TcpPacket::new_unchecked(&mut buf[20..]);
                t.fill_checksum(ADDR_A, ADDR_B);
            }
            buf
        };
        // Off the connection's tuple: its source port is A's port of the connection.
        if let Ok(ip) = Ipv4Packet::new_checked(&pkt[..]) {
            let hl = ip.header_len() as usize;
            if ip.protocol() == IPPROTO_TCP && pkt.len() >= hl + 2 {
                let sp = u16::from_be_bytes([pkt[hl], pkt[hl + 1]]);
                if sp == self.a_port {
                    pkt[hl..hl + 2].copy_from_slice(&(sp ^ 0x100).to_be_bytes());
                }
            }
        }
        let v6 = pkt.first().is_some_and(|b| b >> 4 == 6);
        let mib = &self.b().core.net.mib;
        let before = mib.ip6_get(utcp::mib::Ipv6Mib::InReceives);
        let frame = utcp::skb::Frame::from_wire(Bytes::from(pkt), 0);
        self.b().core.netif_receive(frame);
        // Every IPv6 frame reaches ipv6_rcv() and is counted there.
        let after = self.b().core.net.mib.ip6_get(utcp::mib::Ipv6Mib::InReceives);
        assert_eq!(after - before, u64::from(v6), "Ip6InReceives per IPv6 frame");
        self.net.settle();
    }

    fn write(&mut self, i: &mut Input<'_>) {
        let len = (i.u16() % 20000) as usize;
        let buf = stream(self.written, len);
        if let Ok(n) = self.net.a.stack.send(self.c, Some(&buf), len, MSG_DONTWAIT) {
            self.written += n as i64;
        }
        if i.bool() {
            self.net.settle();
        }
    }

    fn read(&mut self, i: &mut Input<'_>) {
        let len = (i.u16() % 20000) as usize;
        let flags = i.pick(&[0, 0, MSG_PEEK, MSG_TRUNC, MSG_WAITALL]) | MSG_DONTWAIT;
        let _ = self.recv(len, flags);
    }

    /// One recv on B's socket, its bytes checked against the stream.
    fn recv(&mut self, len: usize, flags: i32) -> Result<usize, Errno> {
        let mut buf = vec![0u8; len];
        let r = self.b().recv(self.s, Some(&mut buf), len, flags);
        if let Ok(n) = r {
            if flags & MSG_TRUNC == 0 {
                let want = stream(self.consumed, n);
                if let Some(k) = (0..n).find(|&k| buf[k] != want[k]) {
                    panic!(
                        "read {n} bytes at stream offset {}: byte {k} is {}, not {}",
                        self.consumed, buf[k], want[k]
                    );
                }
            }
            if flags & MSG_PEEK == 0 {
                self.consumed += n as i64;
            }
        }
        r
    }

    fn connect(&mut self, i: &mut Input<'_>) {
        if self.connects >= MAX_CONNECTS {
            return;
        }
        self.connects += 1;
        let a = &self.net.a.stack;
        if let Ok(fd) = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0) {
            let _ = a.connect(fd, SocketAddrV4::new(ADDR_B, 80));
        }
        self.net.settle();
        if i.bool() {
            let _ = self.b().accept4(3, SOCK_NONBLOCK);
        }
    }

    /// Memory of every socket within its limits; not more sockets than connections made. The
    /// tracked socket is held to the largest rcvbuf it has had: receive autotuning
    /// (`tcp_rcv_space_adjust`) grows it as reads go, and a later SO_RCVBUF lowering it leaves
    /// what was admitted before.
    fn check(&mut self) {
        let now = self.sk.peek_tp(|tp| tp.rcvbuf);
        self.max_rcvbuf = self.max_rcvbuf.max(now);
        let socks = self.b().core.sockets();
        assert!(socks.len() <= 2 + MAX_CONNECTS + BACKLOG as usize, "{} sockets on B", socks.len());
        for sk in &socks {
            let (rmem, rcvbuf, wmem, sndbuf) = sk.peek_tp(|tp| (tp.rmem_alloc, tp.rcvbuf, tp.wmem_queued, tp.sndbuf));
            let rcvbuf = if Arc::ptr_eq(sk, &self.sk) { self.max_rcvbuf } else { rcvbuf };
            assert!(rmem as u64 <= 2 * rcvbuf as u64 + 65536, "rmem_alloc {rmem} over rcvbuf {rcvbuf}");
            assert!(wmem as u64 <= 2 * sndbuf as u64 + 65536, "wmem_queued {wmem} over sndbuf {sndbuf}");
        }
        let (rmem, queued) = self.sk.peek_tp(|tp| (tp.rmem_alloc, tp.receive_queue.len() + tp.ofo_queue.len()));
        assert!(queued == 0 || rmem > 0, "{queued} skbs queued with rmem_alloc 0");
    }

    /// Every byte B acknowledged is readable, even after a reset: drains B and compares with
    /// `tcpi_bytes_received` (which counts a FIN as one).
    fn finish(&mut self) {
        self.net.advance(Duration::from_secs(2));
        let last = loop {
            match self.recv(65536, MSG_DONTWAIT) {
                Ok(0) => break Ok(0),
                Ok(_) => continue,
                Err(e) => break Err(e),
            }
        };
        let (received, done) = self.sk.peek_tp(|tp| (tp.bytes_received as i64, tp.done));
        // SOCK_DONE: a FIN arrived (and took one of the sequence numbers counted).
        let fin = i64::from(done);
        assert_eq!(
            self.consumed + fin,
            received,
            "read {} bytes (then {last:?}) of {received} acknowledged; A wrote {}",
            self.consumed,
            self.written
        );
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Inputs decoded.
    pub ops: usize,
    /// Stream bytes B read (or discarded with MSG_TRUNC), all checked.
    pub bytes_read: i64,
    /// Bytes A wrote.
    pub bytes_written: i64,
    /// B's connection ended up reset or closed.
    pub closed: bool,
}

/// An IPv6 packet from A to B: `body[0]` is the first next header (ICMPv6 when empty), the
/// rest its payload; an ICMPv6 payload gets its checksum filled in.
fn ipv6_frame(body: &[u8]) -> Vec<u8> {
    let (nh, payload) = body.split_first().map_or((nexthdr::ICMP, &[][..]), |(n, r)| (*n, r));
    let repr = Ipv6Repr {
        src_addr: ADDR6_A,
        dst_addr: ADDR6_B,
        next_header: nh,
        payload_len: payload.len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    let mut buf = vec![0u8; 40 + payload.len()];
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
    buf[40..].copy_from_slice(payload);
    if nh == nexthdr::ICMP && payload.len() >= 4 {
        Icmpv6Packet::new_unchecked(&mut buf[40..]).fill_checksum(&ADDR6_A, &ADDR6_B);
    }
    buf
}

/// The libFuzzer entry: decodes up to [`MAX_OPS`] inputs from `data` and runs them.
pub fn run(data: &[u8]) {
    run_stats(data);
}

/// [`run`], saying what it did.
pub fn run_stats(data: &[u8]) -> Stats {
    let mut w = World::new();
    let mut i = Input::new(data);
    let mut ops = 0;
    while !i.is_empty() && ops < MAX_OPS {
        w.op(&mut i);
        w.check();
        ops += 1;
    }
    w.finish();
    w.check();
    let closed = w.sk.peek_tp(|tp| tp.state == utcp::tcp::TcpState::Close);
    Stats { ops, bytes_read: w.consumed, bytes_written: w.written, closed }
}
