//! Hostile peers against receive memory (issue 11, item 3), as Linux 6.18 handles them: a peer
//! sending only out-of-order data, out-of-order data SACKed then reneged when in-order data
//! needs the room, readers that never read, and many of them at once under a small
//! `net.ipv4.tcp_mem` driving the stack into global memory pressure. Memory stays within the
//! limits, in-order bytes are never lost, and every stream arrives byte-exact.
//!
//! The virtual-clock tests forge the peer's segments on a [`Lab`] (A's own stack is silenced);
//! the last test runs real stacks on real threads and the real clock.

mod common;

use common::*;
use std::net::SocketAddrV4;
use std::sync::Arc;
use utcp::api::{ADDR_A, ADDR_B};
use utcp::mib::LinuxMib;
use utcp::socket::sock::Sock;
use utcp::syscall::opt::SO_RCVBUF;
use utcp::syscall::*;
use utcp::tcp::TcpState;
use utcp::time::Duration;

/// Byte `off` of the peer's stream (offsets from the first byte after the handshake).
fn stream_byte(off: u32) -> u8 {
    (off ^ (off >> 8).wrapping_mul(31) ^ (off >> 16).wrapping_mul(131)) as u8
}

fn stream(off: u32, len: u32) -> Vec<u8> {
    (off..off + len).map(stream_byte).collect()
}

/// A listener on B:`port` (non-blocking) with SO_RCVBUF `rcvbuf` (locked, inherited by its
/// children) if given.
fn listen(lab: &Lab, port: u16, rcvbuf: Option<i32>) -> i32 {
    let l = lab.b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    if let Some(v) = rcvbuf {
        lab.b.setsockopt_int(l, SOL_SOCKET, SO_RCVBUF, v).unwrap();
    }
    lab.b.bind(l, SocketAddrV4::new(ADDR_B, port)).unwrap();
    lab.b.listen(l, 64).unwrap();
    l
}

/// A connection to listener `l` on B:`port`: (A's socket, B's socket).
fn connect(lab: &Lab, l: i32, port: u16) -> (i32, i32) {
    let c = lab.connect_start(port);
    let mut s = None;
    assert!(lab.run_until(Duration::from_secs(10), || {
        s = s.or_else(|| lab.b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
        s.is_some()
    }));
    lab.settle();
    assert_eq!(state(&lab.a, c), TcpState::Established);
    (c, s.unwrap())
}

/// An established pair whose server end (on B) has SO_RCVBUF `rcvbuf` if given.
fn pair(lab: &Lab, port: u16, rcvbuf: Option<i32>) -> (i32, i32) {
    let l = listen(lab, port, rcvbuf);
    connect(lab, l, port)
}

/// B's connection from A's port `aport`.
fn b_sock(lab: &Lab, aport: u16) -> Arc<Sock> {
    lab.b
        .core
        .sockets()
        .into_iter()
        .find(|sk| sk.peek_tp(|tp| tp.listen.is_none() && tp.dport == aport && tp.state == TcpState::Established))
        .expect("B's connection")
}

fn b_mib(lab: &Lab, c: LinuxMib) -> u64 {
    lab.b.core.net.mib.get(c)
}

/// A forged peer speaking for A's end of one connection.
struct Peer<'a> {
    lab: &'a Lab,
    from: SocketAddrV4,
    to: SocketAddrV4,
    /// B's `rcv_nxt` when the peer took over: offset 0 of the stream.
    r0: u32,
    /// B's `snd_nxt` (what the peer ACKs).
    ack: u32,
}

impl Peer<'_> {
    /// Takes over A's end of the connection on A's port `aport` (A's own stack is silenced).
    fn new(lab: &Lab, aport: u16, port: u16) -> Peer<'_> {
        lab.drop_if(|p| p.from_a);
        let (r0, ack) = b_sock(lab, aport).peek_tp(|tp| (tp.rcv_nxt.0, tp.snd_nxt.0));
        Peer { lab, from: SocketAddrV4::new(ADDR_A, aport), to: SocketAddrV4::new(ADDR_B, port), r0, ack }
    }
    /// Sends stream bytes `off..off + len`; returns B's segments it caused.
    fn data(&self, off: u32, len: u32) -> Vec<Pkt> {
        self.lab.clear_log();
        let f = tcp_frame(
            self.from,
            self.to,
            ACK | PSH,
            self.r0.wrapping_add(off),
            self.ack,
            65535,
            Opts::default(),
            &stream(off, len),
        );
        self.lab.inject(true, f);
        self.lab.log().into_iter().filter(|p| !p.from_a).collect()
    }
}

/// Timestamps off on A (the peer's segments carry none).
fn lab() -> Lab {
    let lab = Lab::new(Duration::from_millis(1));
    lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_timestamps", "0").unwrap();
    lab
}

/// A peer that only ever sends out-of-order data (1-byte segments with holes, the costliest
/// per byte) into a socket with a 64 KiB SO_RCVBUF: descending, every segment lands below the
/// queue, whose tail is pruned for it (OfoPruned); ascending beyond the queue, segments are
/// dropped without an answer (TCPOFODrop, no ACK). The queued memory never exceeds
/// `sk_rcvbuf` by more than one segment. Then the in-order stream arrives: no byte of it is
/// dropped, and what is read is the stream.
#[test]
fn out_of_order_only_peer_is_pruned_and_in_order_data_still_lands() {
    let lab = lab();
    let (c, s) = pair(&lab, 80, Some(32768));
    let aport = lab.a.getsockname(c).unwrap().port();
    let peer = Peer::new(&lab, aport, 80);
    let sk = b_sock(&lab, aport);
    let (rcvbuf, wnd) = sk.peek_tp(|tp| (tp.rcvbuf, tp.rcv_wnd));
    assert_eq!(rcvbuf, 65536, "SO_RCVBUF doubled");
    let max_truesize = 768; // a 1-byte segment's
    let check_mem = || {
        let (rmem, buf, charged) = sk.peek_tp(|tp| (tp.rmem_alloc, tp.rcvbuf, tp.mem_charged));
        assert_eq!(buf, rcvbuf, "SO_RCVBUF locked the buffer");
        assert!(rmem <= rcvbuf + max_truesize, "rmem {rmem} over sk_rcvbuf {rcvbuf}");
        assert!(charged >= rmem as i64 && charged < rmem as i64 + 4096 + max_truesize as i64);
    };
    // Descending from the window's right edge.
    let top = wnd - 2;
    let mut off = top;
    while off >= wnd / 2 {
        peer.data(off, 1);
        check_mem();
        off -= 2;
    }
    assert!(b_mib(&lab, LinuxMib::TCPOFOQueue) > 0);
    assert!(b_mib(&lab, LinuxMib::PruneCalled) > 0);
    assert!(b_mib(&lab, LinuxMib::OfoPruned) > 0, "{}", lab.b.core.net.mib.nstat(false));
    let highest = sk.peek_tp(|tp| tp.ofo_queue.last().map(|s| s.seq.0.wrapping_sub(peer.r0)));
    assert!(highest.is_some_and(|h| h < top), "the tail was pruned");
    // Ascending beyond the queue: no room, dropped silently.
    let highest = highest.unwrap();
    let mut silent = 0;
    for k in 0..50 {
        let drops = b_mib(&lab, LinuxMib::TCPOFODrop);
        let answer = peer.data(highest + 1 + 2 * k, 1);
        if b_mib(&lab, LinuxMib::TCPOFODrop) > drops {
            assert!(answer.is_empty(), "a dropped out-of-order segment is not ACKed: {answer:?}");
            silent += 1;
        }
        check_mem();
    }
    assert!(silent > 0, "{}", lab.b.core.net.mib.nstat(false));
    assert_eq!(b_mib(&lab, LinuxMib::TCPRcvQDrop), 0);
    // The in-order stream, read as it arrives: every segment is taken.
    let total = 3 * wnd;
    let mut got = Vec::new();
    let mut off = 0;
    while off < total {
        let len = 1000.min(total - off);
        let answer = peer.data(off, len);
        off += len;
        // Queued out-of-order bytes right after it may join at once: rcv_nxt >= off.
        assert!(sk.peek_tp(|tp| tp.rcv_nxt.0.wrapping_sub(peer.r0)) >= off, "in-order bytes dropped at {off}");
        if let Some(a) = answer.last() {
            assert!(a.ack.wrapping_sub(peer.r0) <= sk.peek_tp(|tp| tp.rcv_nxt.0.wrapping_sub(peer.r0)));
        }
        drain(&lab.b, s, &mut got).unwrap();
        check_mem();
    }
    assert_eq!(b_mib(&lab, LinuxMib::TCPRcvQDrop), 0);
    assert_eq!(got.len() as u32, total);
    assert!(got == stream(0, total), "the stream read is not the stream sent");
}

/// Out-of-order data is SACKed; when in-order data then needs the room, the out-of-order
/// queue is pruned from its tail and its SACK blocks are reneged (the next ACK carries none
/// for it), but the in-order segment is taken and ACKed. The sender's retransmissions complete
/// the stream.
#[test]
fn sacked_data_is_reneged_when_in_order_data_needs_the_room() {
    let lab = lab();
    let (c, s) = pair(&lab, 80, Some(16384));
    let aport = lab.a.getsockname(c).unwrap().port();
    let peer = Peer::new(&lab, aport, 80);
    let sk = b_sock(&lab, aport);
    let (rcvbuf, wnd) = sk.peek_tp(|tp| (tp.rcvbuf, tp.rcv_wnd));
    assert!(sk.peek_tp(|tp| tp.sack_ok));
    // 100-byte segments with 100-byte holes from offset 1000 on, until one is dropped. The
    // first ones are SACKed at once, later ones in compressed SACKs (tcp_comp_sack_nr).
    let mut off = 1000;
    let mut n = 0;
    while off + 100 < wnd {
        let drops = b_mib(&lab, LinuxMib::TCPOFODrop);
        let answer = peer.data(off, 100);
        if b_mib(&lab, LinuxMib::TCPOFODrop) > drops {
            break;
        }
        if n < 3 {
            let a = answer.last().expect("an out-of-order segment is ACKed at once");
            assert_eq!(a.ack, peer.r0, "duplicate ACK");
            assert!(a.sacks.contains(&(peer.r0 + off, peer.r0 + off + 100)), "{:?}", a.sacks);
        }
        n += 1;
        off += 200;
    }
    assert!(n > 3);
    let sacked_top = off; // everything below was queued and SACKed
    lab.clear_log();
    lab.advance(Duration::from_millis(5));
    let a = lab.log().into_iter().rfind(|p| !p.from_a).expect("the compressed SACK");
    assert!(a.sacks.contains(&(peer.r0 + sacked_top - 200, peer.r0 + sacked_top - 100)), "{:?}", a.sacks);
    assert!(sk.peek_tp(|tp| tp.rmem_alloc) > rcvbuf, "the queues are over sk_rcvbuf");
    assert_eq!(b_mib(&lab, LinuxMib::OfoPruned), 0);
    // In-order data that does not reach the first hole's end.
    let answer = peer.data(0, 500);
    assert_eq!(b_mib(&lab, LinuxMib::OfoPruned), 1, "{}", lab.b.core.net.mib.nstat(false));
    assert_eq!(b_mib(&lab, LinuxMib::TCPRcvQDrop), 0, "the in-order segment is taken");
    assert_eq!(sk.peek_tp(|tp| tp.rcv_nxt.0), peer.r0 + 500);
    let a = answer.last().expect("ACKed");
    assert_eq!(a.ack, peer.r0 + 500);
    let ofo_top = sk.peek_tp(|tp| tp.ofo_queue.last().map(|s| s.end_seq.0.wrapping_sub(peer.r0))).unwrap_or(0);
    assert!(ofo_top < sacked_top, "the highest SACKed data was dropped");
    for &(l, r) in &a.sacks {
        assert!(r.wrapping_sub(peer.r0) <= ofo_top, "a SACK block for reneged data: {:?}", a.sacks);
        let _ = l;
    }
    assert!(sk.peek_tp(|tp| tp.rmem_alloc) <= rcvbuf + 2304);
    // The sender (having kept its SACKed data, as it must) sends the stream again.
    let mut got = Vec::new();
    let total = 2 * wnd;
    let mut off = 500;
    while off < total {
        let len = 1000.min(total - off);
        peer.data(off, len);
        off += len;
        assert!(sk.peek_tp(|tp| tp.rcv_nxt.0.wrapping_sub(peer.r0)) >= off, "in-order bytes dropped");
        drain(&lab.b, s, &mut got).unwrap();
    }
    assert!(got == stream(0, total));
}

/// Eight connections whose readers never read, under `tcp_mem` = 32 48 64 pages: the stack
/// enters memory pressure (TCPMemoryPressures), charges stop at the hard limit (but for the
/// one segment an empty receive queue may always take), windows close, segments that find no
/// memory are dropped (TCPRcvQDrop) and ACKed with a zero window; nothing is lost: once read,
/// every stream is byte-exact, and once every socket is closed the pages are all back and the
/// pressure is over.
#[test]
fn many_silent_readers_under_a_small_tcp_mem_lose_nothing() {
    let lab = lab();
    lab.b.core.net.sysctl.set_by_name("net.ipv4.tcp_mem", "32 48 64").unwrap();
    const N: usize = 8;
    const LEN: usize = 200_000;
    let pm = lab.b.core.net.tcp_mem.clone();
    let l = listen(&lab, 80, None);
    let conns: Vec<(i32, i32)> = (0..N).map(|_| connect(&lab, l, 80)).collect();
    // Writers fill what the windows and send buffers take; nobody reads on B.
    let data: Vec<Vec<u8>> = (0..N).map(|i| pattern(LEN, i as u64 + 1)).collect();
    let mut sent = [0usize; N];
    let mut peak = 0;
    for _ in 0..100 {
        for (i, &(c, _)) in conns.iter().enumerate() {
            if let Ok(n) = lab.a.send(c, Some(&data[i][sent[i]..]), LEN - sent[i], MSG_DONTWAIT_FLAG) {
                sent[i] += n;
            }
        }
        lab.advance(Duration::from_millis(50));
        peak = peak.max(pm.allocated());
        assert!(pm.allocated() <= pm.limit(2) + N as i64, "{} pages over tcp_mem[2]", pm.allocated());
    }
    assert!(b_mib(&lab, LinuxMib::TCPMemoryPressures) >= 1, "{}", lab.b.core.net.mib.nstat(false));
    assert!(pm.under_pressure());
    assert!(peak > pm.limit(1));
    println!(
        "peak {peak} pages (tcp_mem 32 48 64); TCPMemoryPressures {} PruneCalled {} RcvPruned {} TCPRcvQDrop {} TCPOFODrop {}",
        b_mib(&lab, LinuxMib::TCPMemoryPressures),
        b_mib(&lab, LinuxMib::PruneCalled),
        b_mib(&lab, LinuxMib::RcvPruned),
        b_mib(&lab, LinuxMib::TCPRcvQDrop),
        b_mib(&lab, LinuxMib::TCPOFODrop)
    );
    // Now read everything, round after round, while the writers finish.
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); N];
    assert!(lab.run_until(Duration::from_secs(600), || {
        for (i, &(c, s)) in conns.iter().enumerate() {
            if sent[i] < LEN {
                if let Ok(n) = lab.a.send(c, Some(&data[i][sent[i]..]), LEN - sent[i], MSG_DONTWAIT_FLAG) {
                    sent[i] += n;
                }
            }
            drain(&lab.b, s, &mut got[i]).unwrap();
        }
        assert!(pm.allocated() <= pm.limit(2) + N as i64);
        got.iter().all(|g| g.len() == LEN)
    }));
    for i in 0..N {
        assert!(got[i] == data[i], "stream {i} differs");
    }
    // Close everything; after TIME_WAIT every page is back and the pressure is over.
    for &(c, s) in &conns {
        lab.a.close(c).unwrap();
        lab.b.close(s).unwrap();
    }
    lab.advance(Duration::from_secs(130));
    assert_eq!(pm.allocated(), 0);
    assert!(!pm.under_pressure());
    assert_eq!(lab.a.core.net.tcp_mem.allocated(), 0);
}

/// A reader that has not read yet, with the stack over `tcp_mem[2]` (1 1 1 pages): the first
/// segment into the empty receive queue is charged anyway, the next ones fit the page it
/// took, then a segment whose pages are refused is dropped (TCPRcvQDrop) and answered at once
/// by an ACK with a zero window that does not cover it; a segment sent into that zero window
/// is dropped (BeyondWindow) and answered by a duplicate ACK, whose window (under pressure) is
/// at most four segments. Once the reader reads, the pages
/// go back, the pressure ends, and the retransmitted segments complete the stream.
#[test]
fn in_order_drops_are_answered_with_a_zero_window_ack() {
    let lab = lab();
    let (c, s) = pair(&lab, 80, None);
    let aport = lab.a.getsockname(c).unwrap().port();
    let peer = Peer::new(&lab, aport, 80);
    let sk = b_sock(&lab, aport);
    let pm = lab.b.core.net.tcp_mem.clone();
    lab.b.core.net.sysctl.set_by_name("net.ipv4.tcp_mem", "1 1 1").unwrap();
    let mut off = 0u32;
    let nxt = || sk.peek_tp(|tp| tp.rcv_nxt.0.wrapping_sub(peer.r0));
    // Taken while they fit the forward allocation.
    loop {
        let drops = b_mib(&lab, LinuxMib::TCPRcvQDrop);
        let answer = peer.data(off, 1000);
        assert!(pm.allocated() <= 2, "{} pages", pm.allocated());
        if b_mib(&lab, LinuxMib::TCPRcvQDrop) > drops {
            assert_eq!(nxt(), off, "the dropped segment is not taken");
            let a = answer.last().expect("a dropped in-order segment is ACKed at once");
            assert_eq!(a.ack.wrapping_sub(peer.r0), off, "the ACK does not cover the dropped segment");
            assert_eq!(a.win, 0, "with a zero window");
            break;
        }
        assert_eq!(nxt(), off + 1000);
        off += 1000;
        assert!(off < 10_000, "{}", lab.b.core.net.mib.nstat(false));
    }
    assert!(off >= 1000, "the first segment into an empty queue is always taken");
    assert!(pm.under_pressure());
    // Into the zero window: dropped, answered by a duplicate ACK.
    let beyond = b_mib(&lab, LinuxMib::BeyondWindow);
    let answer = peer.data(off, 1000);
    assert_eq!(b_mib(&lab, LinuxMib::BeyondWindow), beyond + 1);
    assert_eq!(nxt(), off);
    let a = answer.last().expect("a duplicate ACK");
    assert_eq!(a.ack.wrapping_sub(peer.r0), off);
    // This ACK offers the window again (ICSK_ACK_NOMEM held for one ACK), but under pressure
    // no more than four segments (tcp_adjust_rcv_ssthresh()).
    let (wscale, advmss) = sk.peek_tp(|tp| (tp.rcv_wscale as u32, tp.advmss));
    assert!((a.win as u32) << wscale <= 4 * advmss + (1 << wscale), "{a:?}");
    // The reader reads: pages back, pressure over.
    let mut got = Vec::new();
    drain(&lab.b, s, &mut got).unwrap();
    assert_eq!(got.len() as u32, off);
    assert!(!pm.under_pressure());
    assert_eq!(pm.allocated(), 0, "every page back");
    lab.b.core.net.sysctl.set_by_name("net.ipv4.tcp_mem", "1024 2048 4096").unwrap();
    let total = off + 20_000;
    while off < total {
        peer.data(off, 1000);
        assert_eq!(nxt(), off + 1000);
        off += 1000;
        drain(&lab.b, s, &mut got).unwrap();
    }
    assert!(got == stream(0, total));
}

/// A zero-window reader: four connections from B to peers (on A) that never read, with B's
/// `tcp_mem` = 8 12 16 pages. Their windows close; B holds what it wrote in its send queues,
/// which stay within the send buffers; under memory pressure B's send buffers stop growing
/// and shrink to half of what is queued (`sk_stream_moderate_sndbuf()`), so writes meet
/// EAGAIN. The peers' receive memory stays within their `sk_rcvbuf`. Once the peers read,
/// every stream arrives exact and B's pages all come back.
#[test]
fn zero_window_readers_hold_the_sender_within_its_send_buffers() {
    let lab = lab();
    // B writes: B connects to a listener on A.
    let l = lab.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.a.bind(l, SocketAddrV4::new(ADDR_A, 8080)).unwrap();
    lab.a.listen(l, 16).unwrap();
    const N: usize = 4;
    const LEN: usize = 400_000;
    let mut conns = Vec::new();
    for _ in 0..N {
        let c = lab.b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        assert_eq!(lab.b.connect(c, SocketAddrV4::new(ADDR_A, 8080)), Err(utcp::Errno::EINPROGRESS));
        let mut s = None;
        assert!(lab.run_until(Duration::from_secs(10), || {
            s = s.or_else(|| lab.a.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
            s.is_some()
        }));
        conns.push((c, s.unwrap()));
    }
    let pm = lab.b.core.net.tcp_mem.clone();
    lab.b.core.net.sysctl.set_by_name("net.ipv4.tcp_mem", "8 12 16").unwrap();
    let b_socks: Vec<Arc<Sock>> = lab
        .b
        .core
        .sockets()
        .into_iter()
        .filter(|sk| sk.peek_tp(|tp| tp.listen.is_none() && tp.state == TcpState::Established))
        .collect();
    assert_eq!(b_socks.len(), N);
    let sndbuf0: Vec<u32> = b_socks.iter().map(|sk| sk.peek_tp(|tp| tp.sndbuf)).collect();
    let data: Vec<Vec<u8>> = (0..N).map(|i| pattern(LEN, 100 + i as u64)).collect();
    let mut sent = [0usize; N];
    for _ in 0..60 {
        for (i, &(c, _)) in conns.iter().enumerate() {
            match lab.b.send(c, Some(&data[i][sent[i]..]), LEN - sent[i], MSG_DONTWAIT_FLAG) {
                Ok(n) => sent[i] += n,
                Err(e) => assert_eq!(e, utcp::Errno::EAGAIN),
            }
        }
        lab.advance(Duration::from_millis(100));
        for sk in &b_socks {
            let (wq, sb) = sk.peek_tp(|tp| (tp.wmem_queued, tp.sndbuf));
            // A send queue may pass its (shrunk) buffer by the last write's skb at most.
            assert!(wq as u64 <= sndbuf0.iter().max().copied().unwrap() as u64 + 65536, "{wq} queued, sndbuf {sb}");
        }
    }
    assert!(sent.iter().all(|&n| n < LEN), "the peers' windows closed: {sent:?}");
    assert!(pm.under_pressure(), "{} pages", pm.allocated());
    assert!(b_mib(&lab, LinuxMib::TCPMemoryPressures) >= 1);
    let moderated = b_socks.iter().zip(&sndbuf0).filter(|(sk, &s0)| sk.peek_tp(|tp| tp.sndbuf) < s0).count();
    assert!(moderated > 0, "send buffers moderated under pressure");
    println!(
        "zero-window readers: sent {sent:?}; sndbuf {sndbuf0:?} -> {:?}; queued {:?}; {} pages",
        b_socks.iter().map(|sk| sk.peek_tp(|tp| tp.sndbuf)).collect::<Vec<_>>(),
        b_socks.iter().map(|sk| sk.peek_tp(|tp| tp.wmem_queued)).collect::<Vec<_>>(),
        pm.allocated()
    );
    for sk in lab.a.core.sockets() {
        let (rmem, rcvbuf, listen) = sk.peek_tp(|tp| (tp.rmem_alloc, tp.rcvbuf, tp.listen.is_some()));
        assert!(listen || rmem <= rcvbuf + 65536, "peer rmem {rmem} rcvbuf {rcvbuf}");
    }
    // The peers read now.
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); N];
    assert!(lab.run_until(Duration::from_secs(600), || {
        for (i, &(c, s)) in conns.iter().enumerate() {
            if sent[i] < LEN {
                if let Ok(n) = lab.b.send(c, Some(&data[i][sent[i]..]), LEN - sent[i], MSG_DONTWAIT_FLAG) {
                    sent[i] += n;
                }
            }
            drain(&lab.a, s, &mut got[i]).unwrap();
        }
        got.iter().all(|g| g.len() == LEN)
    }));
    for i in 0..N {
        assert!(got[i] == data[i], "stream {i} differs");
    }
    lab.advance(Duration::from_secs(5));
    assert_eq!(pm.allocated(), 0, "B's send queues are empty: every page back");
    assert!(!pm.under_pressure());
}

/// Real stacks on real threads and the real clock: four connections into a host with
/// `tcp_mem` = 32 48 64 pages whose readers wait until the stack is under memory pressure
/// before reading. Every stream arrives byte-exact, the host's pages never pass the hard
/// limit by more than the one segment each empty receive queue may take, and once the
/// connections are closed every page is back and the pressure is over.
#[test]
fn real_threads_readers_under_memory_pressure_lose_nothing() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration as StdDuration, Instant as StdInstant};
    use utcp::api::{memlink_pair, TcpListener, TcpStream};
    use utcp::netdev::memlink::LinkConfig;
    const N: usize = 4;
    const LEN: usize = 1 << 20;
    // Reached only when something hangs.
    const LIMIT: StdDuration = StdDuration::from_secs(600);
    let (a, b) = memlink_pair(LinkConfig::default());
    b.stack.core.net.sysctl.set_by_name("net.ipv4.tcp_mem", "32 48 64").unwrap();
    let pm = b.stack.core.net.tcp_mem.clone();
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 9000), 16).unwrap();
    let writers: Vec<_> = (0..N)
        .map(|i| {
            let st = a.stack.clone();
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(&st, SocketAddrV4::new(ADDR_B, 9000)).unwrap();
                c.write_all(&pattern(LEN, i as u64 + 1)).unwrap();
            })
        })
        .collect();
    let over = Arc::new(AtomicBool::new(false));
    let watch = {
        let (pm, over) = (pm.clone(), over.clone());
        std::thread::spawn(move || {
            let mut peak = 0;
            while !over.load(Ordering::Relaxed) {
                peak = peak.max(pm.allocated());
                std::thread::sleep(StdDuration::from_micros(200));
            }
            peak
        })
    };
    let readers: Vec<_> = (0..N)
        .map(|_| {
            let (mut s, _) = l.accept().unwrap();
            let st = b.stack.clone();
            std::thread::spawn(move || {
                let start = StdInstant::now();
                while st.core.net.mib.get(LinuxMib::TCPMemoryPressures) == 0 {
                    assert!(start.elapsed() < LIMIT, "no memory pressure");
                    std::thread::sleep(StdDuration::from_millis(1));
                }
                let mut got = Vec::with_capacity(LEN);
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                got
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let streams: Vec<Vec<u8>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let mut seen: Vec<bool> = vec![false; N];
    for got in &streams {
        let i = (0..N).find(|&i| got == &pattern(LEN, i as u64 + 1)).expect("a stream arrived altered");
        assert!(!seen[i]);
        seen[i] = true;
    }
    let start = StdInstant::now();
    while pm.allocated() != 0 || pm.under_pressure() {
        assert!(start.elapsed() < LIMIT, "{} pages still charged", pm.allocated());
        std::thread::sleep(StdDuration::from_millis(1));
    }
    over.store(true, Ordering::Relaxed);
    let peak = watch.join().unwrap();
    assert!(peak <= pm.limit(2) + N as i64, "peak {peak} pages");
    println!("real threads: peak {peak} pages; {}", b.stack.core.net.mib.nstat(false).replace('\n', " "));
}
