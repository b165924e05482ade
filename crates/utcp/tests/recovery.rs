//! Loss recovery and send/ACK timing on the virtual clock: RTO bounds and backoff, fast
//! retransmit with SACK, zero-window probing, window scaling, delayed and quick ACKs, Nagle.

mod common;

use common::*;
use utcp::mib::{LinuxMib, TcpMib};
use utcp::syscall::opt::{SO_RCVBUF, SO_SNDBUF, TCP_NODELAY};
use utcp::syscall::*;
use utcp::tcp::TcpState;
use utcp::time::Duration;
use utcp::Errno;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn mib(st: &utcp::Stack, c: LinuxMib) -> u64 {
    st.core.net.mib.get(c)
}

fn tmib(st: &utcp::Stack, c: TcpMib) -> u64 {
    st.core.net.mib.tcp_get(c)
}

/// Sends all of `data` from `c` (A) to `s` (B) while B keeps reading; returns what B got.
fn pump(lab: &Lab, c: i32, s: i32, data: &[u8], limit: Duration, mut each: impl FnMut(&Lab)) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::new();
    let ok = lab.run_until(limit, || {
        while sent < data.len() {
            match lab.a.send(c, Some(&data[sent..]), data.len() - sent, 0) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        each(lab);
        drain(&lab.b, s, &mut got).unwrap();
        got.len() == data.len()
    });
    assert!(ok, "stalled at {} of {}\n{}", got.len(), data.len(), lab.a.core.net.mib.nstat(false));
    got
}

#[test]
fn rto_starts_at_200ms_and_doubles_up_to_120s_then_times_out() {
    let lab = Lab::new(Duration::ZERO);
    let (c, s, _l) = lab.pair();
    // A few exchanges so that the RTT estimate (≈ 0 here) is what the RTO is made of.
    for _ in 0..3 {
        assert_eq!(lab.a.send(c, Some(b"x"), 1, 0), Ok(1));
        lab.advance(ms(300));
    }
    let mut v = Vec::new();
    drain(&lab.b, s, &mut v).unwrap();
    // RTO floor: TCP_RTO_MIN (200 ms) + srtt, kept in 4 ms jiffies (HZ=250, as on loopback).
    let rto0 = lab.a.tcp_info(c).unwrap().tcpi_rto as u64 / 1000;
    assert!((200..=204).contains(&rto0), "{rto0}");
    // From now on B hears nothing.
    lab.drop_if(|p| p.from_a);
    lab.clear_log();
    assert_eq!(lab.a.send(c, Some(b"lost"), 4, 0), Ok(4));
    assert!(lab.run_until(Duration::from_secs(2000), || state(&lab.a, c) == TcpState::Close));
    let tx: Vec<_> = lab.log().iter().filter(|p| p.len == 4).map(|p| p.t).collect();
    let gaps: Vec<u64> = tx.windows(2).map(|w| (w[1] - w[0]).as_millis() as u64).collect();
    // First a tail loss probe at 2·SRTT + TCP_RTO_MIN (one segment in flight: room for a
    // delayed ACK) in µs, rounded up to jiffies and no later than the RTO, which re-arms the
    // RTO; then RTOs doubling up to TCP_RTO_MAX (120 s); the connection dies at the first
    // timeout at or past tcp_model_timeout(tcp_retries2 = 15, 200 ms) = 924.6 s after the
    // original send.
    let srtt_x2 = 2 * lab.a.tcp_info(c).unwrap().tcpi_rtt as u64;
    let tlp = ((200_000 + srtt_x2).div_ceil(4000) * 4).min(rto0);
    let (mut want, mut t, mut rto) = (vec![tlp], tlp, rto0);
    let death = loop {
        t += rto;
        if t >= 924_600 {
            break t;
        }
        want.push(rto);
        rto = (rto * 2).min(120_000);
    };
    assert_eq!(gaps, want);
    assert_eq!(*gaps.last().unwrap(), 120_000);
    assert_eq!((lab.now() - tx[0]).as_millis() as u64, death);
    let mut buf = [0u8; 4];
    assert_eq!(lab.a.recv(c, Some(&mut buf), 4, 0), Err(Errno::ETIMEDOUT));
    let n = want.len() as u64 - 1;
    assert_eq!(mib(&lab.a, LinuxMib::TCPLossProbes), 1);
    assert_eq!(mib(&lab.a, LinuxMib::TCPTimeouts), n + 1, "retransmitting timeouts + the fatal one");
    assert_eq!(tmib(&lab.a, TcpMib::RetransSegs), n + 1, "RTO retransmissions + the probe");
    assert_eq!(mib(&lab.a, LinuxMib::TCPAbortOnTimeout), 1);
}

#[test]
fn rto_backoff_is_visible_in_tcp_info_and_reset_by_an_ack() {
    let lab = Lab::new(ms(5));
    let (c, s, _l) = lab.pair();
    lab.drop_if(|p| p.from_a && p.len > 0);
    assert_eq!(lab.a.send(c, Some(b"data"), 4, 0), Ok(4));
    lab.advance(ms(1500));
    let i = lab.a.tcp_info(c).unwrap();
    // Sends at 0, then the tail loss probe at ~0.21 s (2·srtt + 200 ms would be later: the
    // probe takes the RTO's time and replaces it, Linux having one transmit timer), then
    // timeouts at ~0.42 and ~0.84 s: two timeouts by 1.5 s.
    assert_eq!((i.tcpi_retransmits, i.tcpi_backoff), (2, 2), "{i:?}");
    assert!(i.tcpi_rto >= 800_000, "rto {} doubled twice from ≥ 200 ms", i.tcpi_rto);
    // Let a retransmission through: the ACK ends the backoff.
    lab.set_filter(None);
    lab.advance(Duration::from_secs(5));
    let i = lab.a.tcp_info(c).unwrap();
    assert_eq!((i.tcpi_retransmits, i.tcpi_backoff), (0, 0), "{i:?}");
    assert!(i.tcpi_rto < 1_000_000, "{i:?}");
    let mut v = Vec::new();
    drain(&lab.b, s, &mut v).unwrap();
    assert_eq!(v, b"data");
}

#[test]
fn single_loss_is_repaired_by_fast_retransmit_with_sack() {
    let lab = Lab::new(ms(5));
    let (c, s, _l) = lab.pair();
    let data = pattern(300_000, 2);
    let mut nth = 0;
    lab.drop_if(move |p| {
        if p.from_a && p.len > 0 {
            nth += 1;
            return nth == 20;
        }
        false
    });
    // cwnd when recovery starts (with RACK the first SACK only means Disorder (1); Recovery (3)
    // starts once RACK marks the hole lost, and cwnd may grow meanwhile).
    let mut cwnd_before = 0;
    let mut out_at_loss = None;
    let got = pump(&lab, c, s, &data, Duration::from_secs(30), |lab| {
        let i = lab.a.tcp_info(c).unwrap();
        if out_at_loss.is_none() && i.tcpi_ca_state == 3 {
            out_at_loss = Some(cwnd_before);
        } else if out_at_loss.is_none() {
            cwnd_before = i.tcpi_snd_cwnd;
        }
    });
    assert!(got == data);
    let log = lab.log();
    let lost = log.iter().find(|p| p.dropped).expect("one segment dropped").clone();
    let rtx: Vec<_> = log.iter().filter(|p| p.from_a && p.seq == lost.seq && p.len > 0).collect();
    assert_eq!(rtx.len(), 2, "sent, lost, retransmitted exactly once");
    // Repaired within a couple of RTTs, long before any RTO.
    assert!(rtx[1].t - lost.t < ms(50), "{:?}", rtx[1].t - lost.t);
    // B reported the hole with SACK blocks above it.
    assert!(log.iter().any(|p| !p.from_a && p.ack == lost.seq && p.sacks.iter().any(|b| b.0 == lost.seq + lost.len)));
    assert_eq!(mib(&lab.a, LinuxMib::TCPTimeouts), 0);
    assert_eq!(mib(&lab.a, LinuxMib::TCPSackRecovery), 1);
    assert_eq!(tmib(&lab.a, TcpMib::RetransSegs), 1);
    assert!(mib(&lab.a, LinuxMib::TCPFastRetrans) + mib(&lab.a, LinuxMib::TCPLossProbes) >= 1);
    // CUBIC's multiplicative decrease: ssthresh = cwnd * 717 / 1024 (beta 0.7), of cwnd when
    // recovery started. The ACKs of one flight arrive in one virtual instant: those below the
    // hole still grow cwnd (slow start, one per segment, at most one flight of 10) before the
    // SACKs above it let RACK mark the hole lost, so the sampled cwnd is a lower bound.
    let i = lab.a.tcp_info(c).unwrap();
    let cwnd = out_at_loss.expect("recovery seen");
    assert!(cwnd > 10, "{cwnd}");
    assert!(
        (cwnd..=cwnd + 10).any(|w| (w * 717 / 1024).abs_diff(i.tcpi_snd_ssthresh) <= 1),
        "ssthresh {} for cwnd {cwnd}..{}",
        i.tcpi_snd_ssthresh,
        cwnd + 10
    );
    assert_eq!(i.tcpi_ca_state, 0, "back to Open");
}

#[test]
fn zero_window_is_probed_with_backoff_then_recovers() {
    let lab = Lab::new(ms(5));
    let (c, s, _l) = lab.pair();
    let data = pattern(1 << 20, 3);
    let mut sent = 0;
    // B does not read: its window closes.
    assert!(lab.run_until(Duration::from_secs(10), || {
        if let Ok(n) = lab.a.send(c, Some(&data[sent..]), data.len() - sent, 0) {
            sent += n;
        }
        lab.a.tcp_info(c).unwrap().tcpi_snd_wnd == 0 && lab.a.tcp_info(c).unwrap().tcpi_unacked == 0
    }));
    let closed_at = lab.now();
    lab.advance(Duration::from_secs(20));
    let probes: Vec<_> = lab.log().into_iter().filter(|p| p.from_a && p.t >= closed_at && p.len == 0).collect();
    // Window probes: a pure ACK with an old sequence number (snd_una - 1) the receiver must answer.
    assert!(probes.len() >= 5, "{probes:?}");
    let una = probes[0].seq.wrapping_add(1);
    assert!(probes.iter().all(|p| p.seq.wrapping_add(1) == una && p.flags == ACK));
    let gaps: Vec<u64> = probes.windows(2).map(|w| (w[1].t - w[0].t).as_millis() as u64).collect();
    // Intervals double (rto << backoff); a probe B answers (B rate-limits its out-of-window
    // ACKs to one per 500 ms) re-arms the timer from the answer, one RTT (10 ms) later.
    let rto = lab.a.tcp_info(c).unwrap().tcpi_rto as u64 / 1000;
    for (k, g) in gaps.iter().enumerate() {
        let want = rto << (k + 1);
        assert!(*g == want || *g == want + 10, "probe intervals double from {rto} ms: {gaps:?}");
    }
    assert!(gaps.iter().any(|g| g % 10 == 0 && g % 20 != 0) || gaps.iter().any(|g| g % 20 == 10));
    assert_eq!(mib(&lab.a, LinuxMib::TCPWinProbe), probes.len() as u64);
    let i = lab.a.tcp_info(c).unwrap();
    // An answer resets tcpi_probes but not the backoff (see zero_window_probe.pkt).
    assert!(i.tcpi_probes <= 1 && i.tcpi_backoff as usize >= probes.len(), "{i:?}");
    assert_eq!(state(&lab.a, c), TcpState::Established);
    // B reads everything: the window reopens and the transfer completes.
    let mut got = Vec::new();
    assert!(lab.run_until(Duration::from_secs(120), || {
        while sent < data.len() {
            match lab.a.send(c, Some(&data[sent..]), data.len() - sent, 0) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        drain(&lab.b, s, &mut got).unwrap();
        got.len() == data.len()
    }));
    assert!(got == data);
    assert_eq!(lab.a.tcp_info(c).unwrap().tcpi_probes, 0);
}

#[test]
fn window_scaling_lets_more_than_64k_be_in_flight() {
    let lab = Lab::new(ms(20));
    let l = lab.b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.b.setsockopt_int(l, SOL_SOCKET, SO_RCVBUF, 4 << 20).unwrap();
    lab.b.bind(l, std::net::SocketAddrV4::new(utcp::api::ADDR_B, 80)).unwrap();
    lab.b.listen(l, 4).unwrap();
    let c = lab.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.a.setsockopt_int(c, SOL_SOCKET, SO_SNDBUF, 4 << 20).unwrap();
    let _ = lab.a.connect(c, std::net::SocketAddrV4::new(utcp::api::ADDR_B, 80));
    lab.advance(ms(100));
    let (s, _) = lab.b.accept4(l, 0).unwrap();
    let synack = lab.log().into_iter().find(|p| p.flags == SYN | ACK).unwrap();
    let ws = synack.wscale.expect("window scaling offered");
    assert!(ws > 0);
    assert_eq!(lab.a.tcp_info(c).unwrap().tcpi_snd_wscale, ws);
    let data = pattern(2 << 20, 4);
    let mut max_inflight = 0u64;
    let got = pump(&lab, c, s, &data, Duration::from_secs(60), |lab| {
        let i = lab.a.tcp_info(c).unwrap();
        max_inflight = max_inflight.max(i.tcpi_unacked as u64 * i.tcpi_snd_mss as u64);
    });
    assert!(got == data);
    assert!(max_inflight > 65535, "in flight at most {max_inflight}");
    let max_adv = lab.log().iter().filter(|p| !p.from_a && !p.has(SYN)).map(|p| (p.win as u64) << ws).max().unwrap();
    assert!(max_adv > 65535, "advertised at most {max_adv}");
}

#[test]
fn first_segments_are_quick_acked_then_interactive_acks_wait_40ms() {
    let lab = Lab::new(Duration::ZERO);
    let (c, s, _l) = lab.pair();
    lab.clear_log();
    // Connection start: quick-ACK mode, the ACK leaves at once.
    assert_eq!(lab.a.send(c, Some(b"req1"), 4, 0), Ok(4));
    lab.settle();
    let log = lab.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(!log[1].from_a && log[1].flags == ACK && log[1].t == log[0].t);
    let mut v = Vec::new();
    drain(&lab.b, s, &mut v).unwrap();
    // B answers within ATO of the request: interactive (pingpong) mode.
    assert_eq!(lab.b.send(s, Some(b"resp1"), 5, 0), Ok(5));
    lab.advance(ms(100));
    drain(&lab.a, c, &mut v).unwrap();
    lab.clear_log();
    let delacks = mib(&lab.b, LinuxMib::DelayedACKs);
    // The next request is acked by the delayed-ACK timer: TCP_DELACK_MIN = 40 ms.
    assert_eq!(lab.a.send(c, Some(b"req2"), 4, 0), Ok(4));
    lab.advance(ms(100));
    let log = lab.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(!log[1].from_a && log[1].flags == ACK);
    assert_eq!(log[1].t - log[0].t, ms(40));
    assert_eq!(mib(&lab.b, LinuxMib::DelayedACKs), delacks + 1);
}

#[test]
fn nagle_holds_a_small_segment_while_data_is_in_flight() {
    let lab = Lab::new(ms(10));
    let (c, _s, _l) = lab.pair();
    lab.clear_log();
    assert_eq!(lab.a.send(c, Some(&[1; 100]), 100, 0), Ok(100));
    assert_eq!(lab.a.send(c, Some(&[2; 100]), 100, 0), Ok(100));
    assert_eq!(lab.a.send(c, Some(&[3; 100]), 100, 0), Ok(100));
    lab.advance(ms(100));
    let data: Vec<_> = lab.log().into_iter().filter(|p| p.from_a && p.len > 0).collect();
    // The first goes at once; the rest wait, coalesced, for the ACK one RTT later.
    assert_eq!(data.len(), 2, "{data:?}");
    assert_eq!((data[0].len, data[1].len), (100, 200));
    assert_eq!(data[1].t - data[0].t, ms(20));
}

#[test]
fn tcp_nodelay_sends_small_segments_at_once() {
    let lab = Lab::new(ms(10));
    let (c, _s, _l) = lab.pair();
    lab.a.setsockopt_int(c, SOL_TCP, TCP_NODELAY, 1).unwrap();
    assert_eq!(lab.a.getsockopt_int(c, SOL_TCP, TCP_NODELAY), Ok(1));
    lab.clear_log();
    for b in 1..=3u8 {
        assert_eq!(lab.a.send(c, Some(&[b; 100]), 100, 0), Ok(100));
    }
    lab.advance(ms(100));
    let data: Vec<_> = lab.log().into_iter().filter(|p| p.from_a && p.len > 0).collect();
    assert_eq!(data.len(), 3, "{data:?}");
    assert!(data.iter().all(|p| p.len == 100 && p.t == data[0].t));
}

#[test]
fn isn_near_wrap_with_loss_still_delivers_in_order() {
    // Sequence numbers wrap mid-transfer while segments are lost and SACKed around the wrap.
    let lab = Lab::new(ms(2));
    *lab.a.core.net.fixed_isn.lock() = Some(u32::MAX - 20_000);
    *lab.b.core.net.fixed_isn.lock() = Some(u32::MAX - 5);
    let (c, s, _l) = lab.pair();
    let mut n = 0;
    lab.drop_if(move |p| {
        n += 1;
        p.len > 0 && n % 13 == 0
    });
    let data = pattern(200_000, 5);
    let got = pump(&lab, c, s, &data, Duration::from_secs(120), |_| {});
    assert!(got == data);
    let log = lab.log();
    assert!(log.iter().any(|p| p.from_a && p.len > 0 && p.seq < 100_000), "A's sequence space wrapped");
    assert!(log.iter().any(|p| p.dropped));
}

/// A DSACK for a retransmitted segment that had already been SACKed shows its original was
/// late, not lost: reordering (`tcp_sacktag_one()` with `dup_sack` sets `state->reord`, and
/// `tcp_check_sack_reordering()` counts TCPSACKReorder and raises `tp->reordering`). Six
/// segments; the first is lost three times (a hole stays below), the third is 100 ms late, so RACK
/// retransmits it, B SACKs the retransmission, then the original arrives and B reports it
/// as a duplicate inside its SACKed range. utcp ignored the DSACK block for reordering.
#[test]
fn dsack_of_a_sacked_retransmission_is_reordering() {
    use std::collections::HashMap;
    let lab = Lab::new(ms(5));
    lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_early_retrans", "0").unwrap();
    let (c, s, _l) = lab.pair();
    lab.a.setsockopt_int(c, SOL_TCP, TCP_NODELAY, 1).unwrap();
    let mss = 1448u32;
    let base = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (b1, b2) = (base.clone(), base.clone());
    let mut sent: HashMap<u32, u32> = HashMap::new();
    lab.drop_if(move |p| {
        if !p.from_a || p.len == 0 {
            return false;
        }
        let _ =
            b1.compare_exchange(0, p.seq, std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed);
        let n = sent.entry(p.seq).or_insert(0);
        *n += 1;
        // The first segment's original and its first two retransmissions: the hole stays
        // until the RTO, after the late segment arrived.
        p.seq == b1.load(std::sync::atomic::Ordering::Relaxed) && *n <= 3
    });
    let mut delayed = false;
    lab.delay_if(move |p| {
        let third = b2.load(std::sync::atomic::Ordering::Relaxed).wrapping_add(2 * mss);
        if p.from_a && p.len > 0 && p.seq == third && !delayed {
            delayed = true;
            return Some(ms(100));
        }
        None
    });
    let data: Vec<u8> = (0..6 * mss as usize).map(|i| (i % 251) as u8).collect();
    let before = mib(&lab.a, LinuxMib::TCPSACKReorder);
    let got = pump(&lab, c, s, &data, Duration::from_secs(30), |_| {});
    assert!(got == data, "the stream arrived intact");
    let log = lab.log();
    let third = base.load(std::sync::atomic::Ordering::Relaxed).wrapping_add(2 * mss);
    assert!(
        log.iter().filter(|p| p.from_a && p.seq == third && p.len > 0).count() >= 2,
        "the late segment was retransmitted"
    );
    assert!(
        log.iter().any(|p| !p.from_a && p.sacks.first().is_some_and(|&(st, _)| st == third)),
        "B reported the late original as a duplicate"
    );
    assert!(mib(&lab.b, LinuxMib::TCPDSACKOfoSent) > 0);
    assert!(mib(&lab.a, LinuxMib::TCPSACKReorder) > before, "the DSACK counted as reordering");
}

/// A DSACK that reports more duplicates than the socket ever retransmitted is dubious
/// (`tcp_dsack_seen()`): the network made the copy, so it says nothing about a spurious
/// retransmission. Linux counts it as TCPDSACKIgnoredDubious and lets it change nothing (no
/// undo accounting, no RACK window step, no FLAG_DSACKING_ACK). A link that duplicates a
/// fifth of the packets and loses none: B reports every duplicate it gets, A retransmits
/// nothing and ignores every report. utcp took each as evidence (reord_seen, RACK's DSACK
/// round, undo_retrans).
#[test]
fn dsacks_of_network_duplicates_are_dubious() {
    use utcp::netdev::memlink::LinkConfig;
    let (sent, got, net) = transfer(LinkConfig { dup: 0.2, seed: 3, ..LinkConfig::default() }, 256 * 1024, None);
    assert!(got == sent, "the stream arrived intact");
    let a = &net.a.stack;
    let dsacks = mib(a, LinuxMib::TCPDSACKRecv) + mib(a, LinuxMib::TCPDSACKOfoRecv);
    assert!(dsacks > 0, "B reported duplicates");
    assert_eq!(tmib(a, TcpMib::RetransSegs), 0, "nothing was retransmitted");
    assert_eq!(mib(a, LinuxMib::TCPDSACKIgnoredDubious), dsacks, "every report was dubious");
    assert_eq!(mib(a, LinuxMib::TCPDSACKRecvSegs), 0);
    let reord_seen: Vec<u32> = a.core.sockets().iter().map(|sk| sk.peek_tp(|tp| tp.reord_seen)).collect();
    assert!(!reord_seen.is_empty() && reord_seen.iter().all(|&r| r == 0), "{reord_seen:?}");
}
