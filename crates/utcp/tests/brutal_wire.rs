//! A brutal wire on the virtual clock: 20 % loss, 20 % reordering, 5 % duplication and 1 %
//! corruption, both directions. The stream still arrives intact (every byte once, in order),
//! the connection closes, and the transfer ends within a bounded virtual time (each run is
//! given 600 s of virtual time; a stall fails it). Several seeds, so several loss patterns.
//!
//! The transfer is RTO-bound, in Linux as here: with 20 % of the ACKs lost, an ACK that answers
//! a retransmission of data that had arrived (its ACK lost) echoes the timestamp of the last
//! in-order segment (`tcp_replace_ts_recent()` skips a segment below rcv_wup), so the RTT
//! sample spans the RTO (RFC 7323's conservative RTTM) and srtt reaches seconds until ACKs
//! and SACKs of never-retransmitted data bring it back. Seed 5, once RTO-bound past 600 s
//! (175 KiB of 256 KiB), is back: 61 s of virtual time before SACKs were timed
//! (`tcp_ack_update_rtt`'s `sack_rtt`), 24 s since (seeds 1–5 together: 178 s → 81 s).

mod common;

use common::{pattern, transfer};
use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::sync::mpsc;
use utcp::api::{memlink_pair, TcpListener, TcpStream, ADDR_B};
use utcp::mib::{LinuxMib, TcpMib};
use utcp::netdev::memlink::{Delivery, LinkConfig};

fn brutal(seed: u64) -> LinkConfig {
    LinkConfig { loss: 0.2, reorder: 0.2, dup: 0.05, corrupt: 0.01, seed, ..LinkConfig::default() }
}

#[test]
fn brutal_wire_delivers_the_stream_intact() {
    let mut corrupted = 0;
    for seed in [1u64, 2, 3, 4, 5, 6, 7, 8, 9] {
        let len = 256 * 1024;
        let (sent, got, net) = transfer(brutal(seed), len, None);
        // The simulation starts at t = 1 s.
        let took = net.now().millis() - 1000;
        assert_eq!(got.len(), sent.len(), "seed {seed}: length");
        assert!(got == sent, "seed {seed}: stream corrupted, duplicated or reordered");
        let m = &net.a.stack.core.net.mib;
        let stats = net.a.port.as_ref().unwrap().stats();
        eprintln!(
            "seed {seed}: {len} bytes in {took} ms virtual; RTOs {} retrans {} loss probes {} undo {} reorder {} \
             spurious RTOs {} link {stats:?}",
            m.get(LinuxMib::TCPTimeouts),
            m.tcp_get(TcpMib::RetransSegs),
            m.get(LinuxMib::TCPLossProbes),
            m.get(LinuxMib::TCPFullUndo) + m.get(LinuxMib::TCPPartialUndo) + m.get(LinuxMib::TCPLossUndo),
            m.get(LinuxMib::TCPSACKReorder) + m.get(LinuxMib::TCPTSReorder),
            m.get(LinuxMib::TCPSpuriousRTOs),
        );
        assert!(took < 600_000, "seed {seed}: {took} ms of virtual time");
        assert!(
            stats.lost > 0 && stats.reordered > 0 && stats.dup > 0,
            "seed {seed}: the wire was not impaired: {stats:?}"
        );
        corrupted += stats.corrupted;
    }
    assert!(corrupted > 0, "no frame was corrupted");
}

/// Issue 11 item 7 at its full size: 16 MiB over the brutal wire (both directions), bounded
/// by bytes and by virtual time, not wall time. The transfer is RTO-bound, as Linux's is:
/// 6.18.44 over the same impairments (a TUN-to-TUN wire in two namespaces imitating memlink's
/// loss, dup, one-bit corruption and hold-until-next reordering; cubic) took 43.9 s and
/// 577.1 s for 1 MiB on two seeds (57 and 65 RTOs), utcp 761, 2937 and 435 s of virtual time
/// on three (100, 111, 81 RTOs; most of it waiting for an RTO whose base, before backoff, was
/// over 3 s: timestamp-echo RTT samples that span earlier RTOs, taken as Linux takes them).
/// 16 MiB took 12 073, 12 441 and 21 101 s of virtual time on seeds 1–3 (1 386–1 508 RTOs),
/// 11 989, 13 199 and 17 668 s since reordering is detected (`tcp_check_sack_reordering()`),
/// 11 337, 17 666 and 17 668 s in session 10 (1 389–1 530 RTOs); each seed is given 12 hours.
#[test]
fn brutal_wire_delivers_16_mib_in_bounded_virtual_time() {
    use std::net::SocketAddrV4;
    use utcp::sim::SimNet;
    use utcp::syscall::*;
    use utcp::time::Duration;
    use utcp::Errno;
    const LEN: usize = 16 << 20;
    const BOUND: Duration = Duration::from_secs(12 * 3600);
    for seed in [1u64, 2, 3] {
        let net = SimNet::new(brutal(seed));
        let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
        let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
        b.listen(l, 16).unwrap();
        let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        let _ = a.connect(c, SocketAddrV4::new(ADDR_B, 80));
        let mut s = None;
        assert!(net.run_until(Duration::from_secs(600), || {
            s = s.or_else(|| b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
            s.is_some()
        }));
        let s = s.unwrap();
        let data = pattern(LEN, seed);
        let (mut sent, mut got, mut eof) = (0, Vec::with_capacity(LEN), false);
        let mut buf = vec![0u8; 65536];
        let t0 = net.now();
        let done = net.run_until(BOUND, || {
            while sent < LEN {
                match a.send(c, Some(&data[sent..]), LEN - sent, 0) {
                    Ok(n) => sent += n,
                    Err(Errno::EAGAIN) => break,
                    Err(e) => panic!("seed {seed}: send: {e}"),
                }
            }
            if sent == LEN && !eof {
                a.shutdown(c, SHUT_WR).unwrap();
                eof = true;
            }
            loop {
                match b.recv(s, Some(&mut buf), 65536, 0) {
                    Ok(0) => return true,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(Errno::EAGAIN) => return false,
                    Err(e) => panic!("seed {seed}: recv: {e}"),
                }
            }
        });
        let took = net.now().saturating_since(t0);
        let m = &net.a.stack.core.net.mib;
        eprintln!(
            "seed {seed}: {} of {LEN} bytes in {} s virtual; RTOs {} retrans {} loss probes {} link {:?}",
            got.len(),
            took.as_secs(),
            m.get(LinuxMib::TCPTimeouts),
            m.tcp_get(TcpMib::RetransSegs),
            m.get(LinuxMib::TCPLossProbes),
            net.a.port.as_ref().unwrap().stats(),
        );
        assert!(done, "seed {seed}: {} of {LEN} bytes after {} s of virtual time", got.len(), took.as_secs());
        assert_eq!(got.len(), LEN, "seed {seed}: length");
        assert!(got == data, "seed {seed}: stream corrupted, duplicated or reordered");
    }
}

/// The same brutal wire on real threads and the real clock (NAPI delivery, timer threads):
/// 256 KiB arrive intact and both sides see EOF. A watchdog (10 minutes, far beyond the tens
/// of seconds the transfer takes; no duration is asserted) turns a hang into a failure that
/// prints the counters instead of blocking the test run forever.
#[test]
fn brutal_wire_on_real_threads_completes_under_a_watchdog() {
    let cfg = LinkConfig { delivery: Delivery::Napi, ..brutal(11) };
    let (a, b) = memlink_pair(cfg);
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 5001), 4).unwrap();
    let mut c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 5001)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    let data = pattern(256 * 1024, 11);
    let want = data.clone();
    let (done_tx, done_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(want.len());
        let mut buf = vec![0u8; 65536];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let _ = done_tx.send(got == want);
    });
    let writer = std::thread::spawn(move || {
        c.write_all(&data).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        c
    });
    let intact = match done_rx.recv_timeout(std::time::Duration::from_secs(600)) {
        Ok(intact) => intact,
        Err(_) => panic!(
            "watchdog: the brutal transfer hung\nA:\n{}\nB:\n{}",
            a.stack.core.net.mib.nstat(false),
            b.stack.core.net.mib.nstat(false)
        ),
    };
    assert!(intact, "stream corrupted, duplicated or reordered");
    reader.join().unwrap();
    drop(writer.join().unwrap());
    let stats = a.port.as_ref().unwrap().stats();
    assert!(stats.lost > 0 && stats.reordered > 0, "the wire was not impaired: {stats:?}");
    let m = &a.stack.core.net.mib;
    assert!(m.tcp_get(TcpMib::RetransSegs) > 0, "{}", m.nstat(false));
}
