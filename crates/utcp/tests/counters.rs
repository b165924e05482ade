//! MIB counters counted where Linux counts them, and TCP_INFO fields that used to read 0:
//! TcpInSegs once per arriving segment (before backlog coalescing; the handshake's ACK once),
//! each ACK either TCPHPAcks or TCPPureAcks, and tcpi_min_rtt / bytes_sent / bytes_retrans /
//! dsack_dups / reord_seen / rcv_ooopack from a transfer that needed them.

mod common;

use common::*;
use utcp::mib::{LinuxMib, TcpMib};
use utcp::time::Duration;
use utcp::Errno;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn handshake_ack_counts_once_and_acks_are_hp_or_pure() {
    let lab = Lab::new(ms(1));
    let b0 = lab.b.core.net.mib.tcp_get(TcpMib::InSegs);
    let (c, s, _l) = lab.pair();
    // B saw a SYN and the handshake's ACK: two segments (the ACK was processed on the
    // listener and then on the new child: still one segment).
    assert_eq!(lab.b.core.net.mib.tcp_get(TcpMib::InSegs) - b0, 2);
    let data = pattern(1 << 20, 3);
    let (mut sent, mut got) = (0, Vec::new());
    assert!(lab.run_until(Duration::from_secs(60), || {
        while sent < data.len() {
            match lab.a.send(c, Some(&data[sent..]), data.len() - sent, 0) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("{e}"),
            }
        }
        drain(&lab.b, s, &mut got).unwrap();
        got.len() == data.len()
    }));
    lab.advance(ms(50)); // the last ACKs arrive
    let m = &lab.a.core.net.mib;
    let acks_in = lab.log().iter().filter(|p| !p.from_a && p.len == 0 && !p.dropped).count() as u64;
    let (hp, pure) = (m.get(LinuxMib::TCPHPAcks), m.get(LinuxMib::TCPPureAcks));
    assert!(hp > 0, "header-predicted ACKs are counted");
    assert!(hp + pure <= acks_in, "each pure ACK counted once: {hp} HP + {pure} pure for {acks_in} ACKs");
    assert_eq!(m.tcp_get(TcpMib::InSegs), lab.log().iter().filter(|p| !p.from_a && !p.dropped).count() as u64);
}

#[test]
fn tcp_info_reports_rtt_bytes_and_reordering() {
    let lab = Lab::new(ms(2));
    let (c, s, _l) = lab.pair();
    let (mut nth, mut held) = (0u32, std::collections::HashSet::new());
    lab.delay_if(move |p| {
        if p.from_a && p.len > 0 && held.insert(p.seq) {
            nth += 1;
            if nth.is_multiple_of(50) {
                return Some(ms(6));
            }
        }
        None
    });
    let mut k = 0u32;
    lab.drop_if(move |p| {
        k += 1;
        p.from_a && p.len > 0 && k.is_multiple_of(97)
    });
    let data = pattern(1 << 20, 4);
    let (mut sent, mut got) = (0, Vec::new());
    assert!(lab.run_until(Duration::from_secs(120), || {
        while sent < data.len() {
            match lab.a.send(c, Some(&data[sent..]), data.len() - sent, 0) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("{e}"),
            }
        }
        drain(&lab.b, s, &mut got).unwrap();
        got.len() == data.len()
    }));
    assert!(got == data);
    lab.advance(ms(500)); // the last ACKs and DSACKs arrive
    let a = lab.a.tcp_info(c).unwrap();
    let b = lab.b.tcp_info(s).unwrap();
    assert!(a.tcpi_min_rtt >= 4000 && a.tcpi_min_rtt <= a.tcpi_rtt, "min_rtt {} rtt {}", a.tcpi_min_rtt, a.tcpi_rtt);
    assert!(a.tcpi_bytes_sent >= a.tcpi_bytes_acked && a.tcpi_bytes_acked >= data.len() as u64);
    assert!(a.tcpi_bytes_retrans > 0 && a.tcpi_bytes_sent - a.tcpi_bytes_retrans <= data.len() as u64 + 1);
    // Every retransmission is a whole segment: full-sized, or the stream's short tail
    // (a loss probe or a lost last segment).
    let (n, tail) = (a.tcpi_total_retrans as u64, (data.len() % 1448) as u64);
    assert!(
        (0..=n).any(|j| a.tcpi_bytes_retrans == (n - j) * 1448 + j * tail),
        "whole-segment retransmissions: {} bytes in {n}",
        a.tcpi_bytes_retrans
    );
    assert!(a.tcpi_dsack_dups > 0, "late originals were DSACKed");
    assert!(a.tcpi_reord_seen > 0);
    assert!(b.tcpi_rcv_ooopack > 0 && b.tcpi_rcv_ooopack as u64 == lab.b.core.net.mib.get(LinuxMib::TCPOFOQueue));
    // And they reach the 280-byte struct getsockopt(TCP_INFO) returns.
    let mut raw = [0u8; 280];
    assert_eq!(lab.a.getsockopt(c, utcp::syscall::SOL_TCP, utcp::syscall::opt::TCP_INFO, &mut raw), Ok(280));
    let u32_at = |o: usize| u32::from_ne_bytes(raw[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_ne_bytes(raw[o..o + 8].try_into().unwrap());
    assert_eq!(u32_at(148), a.tcpi_min_rtt); // after segs_out, segs_in, notsent_bytes
    assert_eq!(u64_at(200), a.tcpi_bytes_sent);
    assert_eq!(u64_at(208), a.tcpi_bytes_retrans);
    assert_eq!(u32_at(216), a.tcpi_dsack_dups);
}
