//! Orphaned sockets as Linux 6.18 bounds them (issue 11): `net.ipv4.tcp_max_orphans` and the
//! orphan count read through the 100 ms `tcp_orphan_cache`, `tcp_out_of_memory()` over
//! `tcp_mem[2]`, `tcp_close()` resetting at once and an orphan's probe or retransmission timer
//! killing it (`tcp_out_of_resources()`, TCPAbortOnMemory), and `net.ipv4.tcp_orphan_retries`.
//!
//! Checked on 6.18.44 first (scripts/kernel_orphans.py in `unshare -n`, tcp_max_orphans=2, six
//! connections filled towards a listener that never reads, closed 300 ms apart): a close that
//! finds more than tcp_max_orphans orphans at the last 100 ms tick sends `RST|ACK` at
//! `snd_nxt` (the FIN queued behind the unsent data never leaves) and counts TCPAbortOnMemory;
//! the surviving orphans' next zero-window probes kill each of them the same way while the
//! count stays over the limit; once it is at the limit the rest keep probing.

mod common;

use common::*;
use std::net::SocketAddrV4;
use utcp::api::ADDR_B;
use utcp::errno::Errno;
use utcp::mib::LinuxMib;
use utcp::syscall::opt::SO_RCVBUF;
use utcp::syscall::*;
use utcp::tcp::TcpState;
use utcp::time::Duration;

/// `n` connections from A to a listener on B:`port` whose accepted sockets (SO_RCVBUF 4096)
/// are never read; A fills each send buffer (non-blocking) until EAGAIN. Returns (A's fd,
/// A's port, B's fd).
fn stuck_conns(lab: &Lab, port: u16, n: usize) -> Vec<(i32, u16, i32)> {
    let l = lab.b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.b.setsockopt_int(l, SOL_SOCKET, SO_RCVBUF, 4096).unwrap();
    lab.b.bind(l, SocketAddrV4::new(ADDR_B, port)).unwrap();
    lab.b.listen(l, 64).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let c = lab.connect_start(port);
        let mut s = None;
        assert!(lab.run_until(Duration::from_secs(10), || {
            s = s.or_else(|| lab.b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
            s.is_some()
        }));
        let aport = lab.a.getsockname(c).unwrap().port();
        out.push((c, aport, s.unwrap()));
    }
    let chunk = vec![0x5au8; 65536];
    for _ in 0..64 {
        for &(c, _, _) in &out {
            while lab.a.send(c, Some(&chunk), chunk.len(), MSG_DONTWAIT_FLAG).is_ok() {}
        }
        lab.advance(Duration::from_millis(50));
    }
    for &(c, _, _) in &out {
        assert_eq!(lab.a.send(c, Some(&chunk), chunk.len(), MSG_DONTWAIT_FLAG), Err(Errno::EAGAIN));
        assert_eq!(state(&lab.a, c), TcpState::Established);
    }
    out
}

fn orphans(lab: &Lab) -> i64 {
    lab.a.core.net.tcp_mem.tcp_orphan_count_sum()
}

fn a_mib(lab: &Lab, c: LinuxMib) -> u64 {
    lab.a.core.net.mib.get(c)
}

/// A's RSTs to B, by A's port.
fn rsts_from(lab: &Lab, aport: u16) -> Vec<Pkt> {
    lab.log().into_iter().filter(|p| p.from_a && p.sport == aport && p.has(RST)).collect()
}

/// B's end sees the reset: ECONNRESET once the queued data is read.
fn b_reset(lab: &Lab, s: i32) -> bool {
    let mut sink = Vec::new();
    let r = drain(&lab.b, s, &mut sink);
    if r != Err(Errno::ECONNRESET) {
        println!("B's fd {s}: {r:?} after {} bytes", sink.len());
    }
    r == Err(Errno::ECONNRESET)
}

/// B's `rcv_nxt` on the connection from A's port `aport`.
fn b_rcv_nxt(lab: &Lab, aport: u16) -> u32 {
    lab.b
        .core
        .sockets()
        .into_iter()
        .find(|sk| sk.peek_tp(|tp| tp.listen.is_none() && tp.dport == aport))
        .expect("B's socket")
        .peek_tp(|tp| tp.rcv_nxt.0)
}

/// tcp_max_orphans=2. Four closes within one 100 ms period are all judged by the count before
/// them (0): four orphans, no reset. Their next zero-window probes find the cached count (4)
/// over the limit and kill them with RST|ACK at snd_nxt (here all four: their probes fall in
/// one 100 ms period, as on the kernel); survivors keep probing. Closes 150 ms apart then
/// keep the sockets that find 0, 1 and 2 cached orphans, and reset at once the one that
/// finds 3.
#[test]
fn too_many_orphans_are_reset_at_close_and_by_their_probe_timer() {
    let lab = Lab::new(Duration::from_millis(1));
    let conns = stuck_conns(&lab, 80, 8);
    lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_max_orphans", "2").unwrap();
    let rcv_nxt: Vec<u32> = conns.iter().map(|&(_, p, _)| b_rcv_nxt(&lab, p)).collect();
    lab.clear_log();
    for &(c, _, _) in &conns[..4] {
        lab.a.close(c).unwrap();
    }
    lab.settle();
    assert_eq!(orphans(&lab), 4, "one burst: all four orphaned");
    assert_eq!(a_mib(&lab, LinuxMib::TCPAbortOnMemory), 0, "the cache still read 0");
    assert!(conns[..4].iter().all(|&(_, p, _)| rsts_from(&lab, p).is_empty()));
    assert!(!lab.log().iter().any(|p| p.from_a && p.has(FIN)), "the FINs wait behind the unsent data");
    // The probes kill orphans while the cached count is over the limit.
    assert!(lab.run_until(Duration::from_secs(30), || a_mib(&lab, LinuxMib::TCPAbortOnMemory) >= 2));
    lab.advance(Duration::from_secs(5));
    let killed: Vec<_> = conns[..4].iter().filter(|&&(_, p, _)| !rsts_from(&lab, p).is_empty()).collect();
    assert_eq!(killed.len() as u64, a_mib(&lab, LinuxMib::TCPAbortOnMemory));
    assert!(killed.len() >= 2, "{} killed", killed.len());
    assert_eq!(orphans(&lab), 4 - killed.len() as i64);
    assert!(orphans(&lab) <= 2, "the survivors are within the limit");
    assert_eq!(a_mib(&lab, LinuxMib::TCPAbortOnTimeout), 0);
    for (i, &(_, p, s)) in conns[..4].iter().enumerate() {
        let r = rsts_from(&lab, p);
        if r.is_empty() {
            continue;
        }
        assert_eq!(r.len(), 1, "one RST");
        assert!(r[0].has(ACK));
        // RST at snd_nxt: what the peer had received (all it acknowledged).
        assert_eq!(r[0].seq, rcv_nxt[i]);
        assert!(b_reset(&lab, s));
    }
    // The survivors still probe.
    let survivors: Vec<_> = conns[..4].iter().filter(|&&(_, p, _)| rsts_from(&lab, p).is_empty()).collect();
    lab.clear_log();
    lab.advance(Duration::from_secs(20));
    assert_eq!(survivors.len() as i64, orphans(&lab));
    for &&(_, p, _) in &survivors {
        assert!(lab.log().iter().any(|q| q.from_a && q.sport == p && q.len == 0 && !q.has(RST)), "probes");
    }
    // Closes 150 ms apart from no orphans: the first three see 0, 1 and 2 (at the limit, not
    // over it) and are kept; the next sees 3 and is reset at once.
    let killed_before = a_mib(&lab, LinuxMib::TCPAbortOnMemory);
    let n0 = orphans(&lab);
    for (k, &(c, p, s)) in conns[4..].iter().enumerate() {
        let cached = n0 + k as i64;
        lab.clear_log();
        lab.a.close(c).unwrap();
        lab.advance(Duration::from_millis(10));
        if cached > 2 {
            assert_eq!(rsts_from(&lab, p).len(), 1, "close {k}: {cached} orphans cached: reset at close");
            assert!(b_reset(&lab, s));
            assert_eq!(a_mib(&lab, LinuxMib::TCPAbortOnMemory), killed_before + 1);
            assert_eq!(orphans(&lab), cached, "the reset socket is destroyed at once");
            break;
        }
        assert!(rsts_from(&lab, p).is_empty(), "close {k}: {cached} orphans cached: kept");
        assert_eq!(orphans(&lab), cached + 1);
        lab.advance(Duration::from_millis(140));
    }
    assert_eq!(a_mib(&lab, LinuxMib::TCPAbortOnMemory), killed_before + 1, "one reset at close");
    println!("killed {} of 4; orphans left {}", killed.len(), orphans(&lab));
}

/// `tcp_out_of_memory()`: TCP memory over `tcp_mem[2]` resets at close a socket that queues
/// more than SOCK_MIN_SNDBUF (TCPAbortOnMemory), while one with nothing queued closes with
/// its FIN as usual.
#[test]
fn out_of_memory_resets_an_orphan_with_queued_data() {
    let lab = Lab::new(Duration::from_millis(1));
    let conns = stuck_conns(&lab, 80, 1);
    let (c, p, s) = conns[0];
    // An idle connection too: nothing queued.
    let (c2, s2, _) = {
        let l = lab.listen(81, 16);
        let c2 = lab.connect_start(81);
        let mut s2 = None;
        assert!(lab.run_until(Duration::from_secs(10), || {
            s2 = s2.or_else(|| lab.b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
            s2.is_some()
        }));
        (c2, s2.unwrap(), l)
    };
    let p2 = lab.a.getsockname(c2).unwrap().port();
    let allocated = lab.a.core.net.tcp_mem.allocated();
    assert!(allocated > 2);
    lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_mem", &format!("1 1 {}", allocated - 1)).unwrap();
    lab.clear_log();
    lab.a.close(c2).unwrap();
    lab.settle();
    assert!(rsts_from(&lab, p2).is_empty(), "nothing queued: no reset");
    assert!(lab.log().iter().any(|q| q.from_a && q.sport == p2 && q.has(FIN)));
    let rn = b_rcv_nxt(&lab, p);
    lab.a.close(c).unwrap();
    lab.advance(Duration::from_millis(10));
    let r = rsts_from(&lab, p);
    assert_eq!(r.len(), 1, "reset at close");
    assert_eq!(r[0].seq, rn, "at snd_nxt");
    assert_eq!(a_mib(&lab, LinuxMib::TCPAbortOnMemory), 1);
    assert!(b_reset(&lab, s));
    let mut got = Vec::new();
    lab.advance(Duration::from_secs(1));
    assert_eq!(drain(&lab.b, s2, &mut got), Ok(true), "the idle one closed cleanly");
    assert_eq!(lab.a.core.net.tcp_mem.allocated(), 0, "the reset socket returned its pages");
}

/// An orphan whose peer vanished retransmits until the modelled time of `tcp_orphan_retries`
/// backed-off RTOs from 200 ms (2: 1.4 s; 0, which means 8 while the RTO is below its
/// maximum: 102.2 s) has passed since its first retransmission, checked as each RTO fires
/// (the RTO is a little over 200 ms here: RTOs at about 0.2, 0.6, 1.4, 3.1 s...: the one
/// at 3.1 s ends it, for 8 the ninth, at about 104 s), then dies without a RST
/// (TCPAbortOnTimeout).
#[test]
fn tcp_orphan_retries_bounds_an_orphans_retransmissions() {
    for (retries, want_lo, want_hi) in [("2", 2_800u64, 4_000u64), ("0", 102_200, 110_000)] {
        let lab = Lab::new(Duration::from_millis(1));
        lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_orphan_retries", retries).unwrap();
        let (c, _s, _l) = lab.pair();
        let p = lab.a.getsockname(c).unwrap().port();
        lab.drop_if(|_| true);
        assert_eq!(lab.a.send(c, Some(&[7u8; 1000]), 1000, 0), Ok(1000));
        lab.a.close(c).unwrap();
        lab.clear_log();
        let t0 = lab.now();
        assert!(lab.run_until(Duration::from_secs(600), || conn_states(&lab.a).is_empty()));
        let died = lab.now().saturating_since(t0).as_millis() as u64;
        assert!((want_lo..want_hi).contains(&died), "tcp_orphan_retries={retries}: died after {died} ms");
        assert_eq!(a_mib(&lab, LinuxMib::TCPAbortOnTimeout), 1);
        assert_eq!(a_mib(&lab, LinuxMib::TCPAbortOnMemory), 0);
        assert!(rsts_from(&lab, p).is_empty(), "a timed-out orphan sends no RST");
        assert_eq!(orphans(&lab), 0);
    }
}

/// Real stacks, real threads, the real clock: with tcp_max_orphans=1, writers that fill
/// connections to a host that never reads and close them 150 ms apart leave at most one
/// orphan once the probes ran; the others are reset (TCPAbortOnMemory), which their peers
/// read as ECONNRESET, and no orphan's pages stay charged after they are gone.
#[test]
fn real_threads_too_many_orphans_are_reset() {
    use std::io::{Read, Write};
    use std::time::{Duration as StdDuration, Instant as StdInstant};
    use utcp::api::{memlink_pair, TcpListener, TcpStream};
    use utcp::netdev::memlink::LinkConfig;
    const N: usize = 4;
    const LIMIT: StdDuration = StdDuration::from_secs(120);
    let (a, b) = memlink_pair(LinkConfig::default());
    a.stack.core.net.sysctl.set_by_name("net.ipv4.tcp_max_orphans", "1").unwrap();
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 9000), 16).unwrap();
    b.stack.setsockopt_int(l.fd(), SOL_SOCKET, SO_RCVBUF, 4096).unwrap();
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..N {
        let c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 9000)).unwrap();
        servers.push(l.accept().unwrap().0);
        c.set_nonblocking(true).unwrap();
        clients.push(c);
    }
    let chunk = vec![1u8; 65536];
    for c in clients.iter_mut() {
        let start = StdInstant::now();
        let mut idle = 0;
        while idle < 50 {
            match c.write(&chunk) {
                Ok(_) => idle = 0,
                Err(_) => {
                    idle += 1;
                    std::thread::sleep(StdDuration::from_millis(2));
                }
            }
            assert!(start.elapsed() < LIMIT);
        }
    }
    for c in clients {
        drop(c);
        std::thread::sleep(StdDuration::from_millis(150));
    }
    let pm = a.stack.core.net.tcp_mem.clone();
    let start = StdInstant::now();
    while pm.tcp_orphan_count_sum() > 1 {
        assert!(start.elapsed() < LIMIT, "{} orphans", pm.tcp_orphan_count_sum());
        std::thread::sleep(StdDuration::from_millis(5));
    }
    // Once a 100 ms tick has read the count at the limit, no orphan is killed any more.
    std::thread::sleep(StdDuration::from_millis(200));
    let killed = a.stack.core.net.mib.get(LinuxMib::TCPAbortOnMemory);
    assert!(killed as usize >= N - 1, "killed {killed}");
    assert_eq!(killed as i64 + pm.tcp_orphan_count_sum(), N as i64);
    let mut reset = vec![false; N];
    let mut buf = vec![0u8; 65536];
    while reset.iter().filter(|r| **r).count() < killed as usize {
        assert!(start.elapsed() < LIMIT, "{reset:?}");
        for (i, s) in servers.iter_mut().enumerate() {
            s.set_nonblocking(true).unwrap();
            while !reset[i] {
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => continue,
                    Err(e) if e.raw_os_error() == Some(Errno::ECONNRESET as i32) => reset[i] = true,
                    _ => break,
                }
            }
        }
        std::thread::sleep(StdDuration::from_millis(1));
    }
    assert_eq!(a.stack.core.net.mib.get(LinuxMib::TCPAbortOnMemory), killed, "no kill at the limit");
    println!("real threads: {killed} orphans reset, {} left", pm.tcp_orphan_count_sum());
    drop(servers);
}
