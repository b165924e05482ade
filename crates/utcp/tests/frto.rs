//! F-RTO (RFC 5682 as Linux's `net.ipv4.tcp_frto=2`, tcp/loss.rs) on the virtual clock: a
//! delay spike on the ACK path longer than the RTO makes the sender time out although nothing
//! was lost. Without timestamps (no Eifel undo) only F-RTO can tell: after the head's
//! retransmission the first ACK that arrives covers data never retransmitted, so the timeout
//! is undone (TCPSpuriousRTOs, TCPLossUndo) and nothing else is retransmitted. With
//! `tcp_frto=0` the same spike sends the window again (go-back-N in slow start).

mod common;

use common::*;
use utcp::mib::{LinuxMib, TcpMib};
use utcp::time::Duration;
use utcp::Errno;

/// One test at a time: the virtual-clock tests keep both cores busy, and a real-clock sender
/// starved meanwhile declares losses (RACK, a probe) before its RTO, so the RTO comes in
/// Recovery, where Linux does not use F-RTO, and the scenario under test never happens.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Sender counters after a transfer through a spike.
#[derive(Debug)]
struct Counts {
    timeouts: u64,
    spurious: u64,
    loss_undo: u64,
    retrans: u64,
    slow_start_retrans: u64,
    loss_probes: u64,
}

/// Moves `len` bytes from A to B over a 2 ms one-way path; the ACKs B sends during `spike`
/// (starting with B's 200th segment) all arrive at the spike's end, in order. A has no
/// timestamps (so no Eifel undo) and `tcp_frto` = `frto`.
fn through_spike(len: usize, spike: Duration, frto: &str, sack: bool) -> (Lab, Counts, u32) {
    let lab = Lab::new(ms(2));
    let s = &lab.a.core.net.sysctl;
    s.set_by_name("net.ipv4.tcp_timestamps", "0").unwrap();
    s.set_by_name("net.ipv4.tcp_frto", frto).unwrap();
    if !sack {
        s.set_by_name("net.ipv4.tcp_sack", "0").unwrap();
    }
    let (c, srv, _l) = lab.pair();
    let mut nth = 0u32;
    let mut start = None;
    lab.delay_if(move |p| {
        if p.from_a {
            return None;
        }
        nth += 1;
        if nth == 200 {
            start = Some(p.t);
        }
        let t0 = start?;
        let since = p.t.saturating_since(t0);
        // Order kept: each held ACK arrives a thousandth of its wait after the previous ones.
        (since < spike).then(|| spike - since + since / 1000)
    });
    let data = pattern(len, 5);
    let (mut sent, mut got) = (0, Vec::new());
    assert!(lab.run_until(Duration::from_secs(120), || {
        while sent < data.len() {
            match lab.a.send(c, Some(&data[sent..]), data.len() - sent, 0) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        drain(&lab.b, srv, &mut got).unwrap();
        got.len() == data.len()
    }));
    assert!(got == data, "stream intact");
    let m = &lab.a.core.net.mib;
    let counts = Counts {
        timeouts: m.get(LinuxMib::TCPTimeouts),
        spurious: m.get(LinuxMib::TCPSpuriousRTOs),
        loss_undo: m.get(LinuxMib::TCPLossUndo),
        retrans: m.tcp_get(TcpMib::RetransSegs),
        slow_start_retrans: m.get(LinuxMib::TCPSlowStartRetrans),
        loss_probes: m.get(LinuxMib::TCPLossProbes),
    };
    let sock = lab.a.core.sockets().into_iter().find(|sk| sk.peek_tp(|tp| tp.sport != 80)).unwrap();
    let ssthresh = sock.peek_tp(|tp| tp.snd_ssthresh);
    (lab, counts, ssthresh)
}

#[test]
fn delay_spike_rto_is_undone_by_frto_with_sack() {
    let _one = serial();
    let (lab, n, ssthresh) = through_spike(4 << 20, ms(300), "2", true);
    let nstat = lab.a.core.net.mib.nstat(false);
    assert!(n.timeouts >= 1, "the spike outlasted the RTO: {n:?}\n{nstat}");
    assert_eq!(n.spurious, n.timeouts, "every timeout shown spurious: {n:?}\n{nstat}");
    assert_eq!(n.loss_undo, n.timeouts, "{n:?}\n{nstat}");
    // Only the heads the timer retransmitted and at most the tail loss probe (SACK; a probe
    // sends new data instead when the receive window takes some, as tcp_send_loss_probe()
    // does): F-RTO sent new data, not the window again.
    assert!(n.retrans >= n.timeouts && n.retrans <= n.timeouts + n.loss_probes, "{n:?}\n{nstat}");
    assert_eq!(n.slow_start_retrans, 0, "{n:?}\n{nstat}");
    // The undo restored ssthresh: the transfer never left slow start's infinite ssthresh.
    assert_eq!(ssthresh, i32::MAX as u32, "{n:?}\n{nstat}");
}

#[test]
fn delay_spike_rto_is_undone_by_frto_without_sack() {
    let _one = serial();
    let (lab, n, ssthresh) = through_spike(4 << 20, ms(300), "2", false);
    let nstat = lab.a.core.net.mib.nstat(false);
    assert!(n.timeouts >= 1, "{n:?}\n{nstat}");
    assert_eq!(n.spurious, n.timeouts, "{n:?}\n{nstat}");
    assert_eq!(n.retrans, n.timeouts, "{n:?}\n{nstat}");
    assert_eq!(ssthresh, i32::MAX as u32, "{n:?}\n{nstat}");
}

#[test]
fn without_frto_the_spike_resends_the_window() {
    let _one = serial();
    let (lab, off, _) = through_spike(4 << 20, ms(300), "0", true);
    let nstat = lab.a.core.net.mib.nstat(false);
    assert!(off.timeouts >= 1, "{off:?}\n{nstat}");
    assert_eq!(off.spurious, 0, "F-RTO off: {off:?}\n{nstat}");
    assert!(off.slow_start_retrans > 0, "conventional recovery after the RTO: {off:?}\n{nstat}");
    let (_, on, _) = through_spike(4 << 20, ms(300), "2", true);
    assert!(on.retrans < off.retrans, "F-RTO on: {on:?}, off: {off:?}");
}

/// Real threads and the real clock: B's ACKs stall for a second in the middle of a transfer
/// (a delay spike on the link, [`MemPort::stall`]), A (no timestamps) times out although
/// nothing was lost, and F-RTO undoes the timeout when the held ACKs arrive. Asserts counters
/// only, never durations.
///
/// [`MemPort::stall`]: utcp::netdev::memlink::MemPort::stall
#[test]
fn real_clock_ack_stall_rto_is_undone_by_frto() {
    let _one = serial();
    use std::io::{Read, Write};
    use std::net::SocketAddrV4;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use utcp::api::{memlink_pair, TcpListener, TcpStream, ADDR_B};
    use utcp::netdev::memlink::LinkConfig;

    let (a, b) = memlink_pair(LinkConfig { delay: ms(1), ..LinkConfig::default() });
    a.stack.core.net.sysctl.set_by_name("net.ipv4.tcp_timestamps", "0").unwrap();
    // F-RTO's step 2.b probes with new data: when the first ACK after the stall covers only the
    // retransmitted head, the timeout is judged by the segments sent next. A receive window the
    // stalled sender filled (a reader slowed by a loaded machine) leaves nothing to send, and the
    // sender falls back to go-back-N as RFC 5682 and Linux do (seen in CI: the first released ACK
    // covered exactly the 952-byte head, the window was full, 1,835 segments went again and only
    // DSACK undid it). A window far larger than anything in flight and a send buffer with unsent
    // data keep step 2.b possible.
    b.stack.core.net.sysctl.set_by_name("net.ipv4.tcp_rmem", "4096 33554432 33554432").unwrap();
    a.stack.core.net.sysctl.set_by_name("net.ipv4.tcp_wmem", "4096 16777216 33554432").unwrap();
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 5301), 4).unwrap();
    let mut c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 5301)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    let total: u64 = 48 << 20;
    let byte = |i: u64| (i ^ (i >> 8).wrapping_mul(31) ^ (i >> 24).wrapping_mul(131)) as u8;
    let got = Arc::new(AtomicU64::new(0));
    let seen = got.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 128 * 1024];
        let mut off = 0u64;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                return off;
            }
            for (k, &x) in buf[..n].iter().enumerate() {
                assert_eq!(x, byte(off + k as u64), "byte {}", off + k as u64);
            }
            off += n as u64;
            seen.store(off, Ordering::Relaxed);
        }
    });
    let writer = std::thread::spawn(move || {
        let mut buf = vec![0u8; 128 * 1024];
        let mut off = 0u64;
        while off < total {
            let n = buf.len().min((total - off) as usize);
            for (k, x) in buf[..n].iter_mut().enumerate() {
                *x = byte(off + k as u64);
            }
            c.write_all(&buf[..n]).unwrap();
            off += n as u64;
        }
        drop(c);
    });
    let watchdog = std::time::Instant::now();
    while got.load(Ordering::Relaxed) < total / 4 {
        assert!(watchdog.elapsed() < std::time::Duration::from_secs(300), "transfer stuck");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    b.port.as_ref().unwrap().stall(Duration::from_secs(1));
    writer.join().unwrap();
    assert_eq!(reader.join().unwrap(), total, "stream intact");
    let m = &a.stack.core.net.mib;
    let nstat = m.nstat(false);
    assert!(m.get(LinuxMib::TCPTimeouts) >= 1, "the stall outlasted the RTO\n{nstat}");
    assert!(m.get(LinuxMib::TCPSpuriousRTOs) >= 1, "F-RTO found the timeout spurious\n{nstat}");
    assert!(m.get(LinuxMib::TCPLossUndo) >= 1, "and undid it\n{nstat}");
    assert_eq!(m.get(LinuxMib::TCPSlowStartRetrans), 0, "no go-back-N after the timeout\n{nstat}");
}
