//! Passive open under a SYN flood (Linux 6.18 tcp_conn_request(), net/ipv4/syncookies.c): the
//! SYN queue and the accept queue bounded by the listen backlog, tcp_max_syn_backlog, SYN
//! cookies and the counters, with spoofed SYNs injected on the virtual clock.

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use utcp::api::ADDR_B;
use utcp::mib::LinuxMib;
use utcp::time::Duration;

/// The flood's (unanswering) source address.
const SPOOF: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn spoofed_syn(lab: &Lab, port: u16, sport: u16, isn: u32, o: Opts) {
    let f = tcp_frame(SocketAddrV4::new(SPOOF, sport), SocketAddrV4::new(ADDR_B, port), SYN, isn, 0, 65535, o, &[]);
    lab.inject(true, f);
}

fn synacks_to(lab: &Lab, addr_port: u16) -> Vec<Pkt> {
    lab.log().into_iter().filter(|p| !p.from_a && p.has(SYN | ACK) && p.dport == addr_port).collect()
}

fn synacks(lab: &Lab) -> Vec<Pkt> {
    lab.log().into_iter().filter(|p| !p.from_a && p.has(SYN | ACK)).collect()
}

fn mib(lab: &Lab, c: LinuxMib) -> u64 {
    lab.b.core.net.mib.get(c)
}

const MSS1460: Opts = Opts { mss: Some(1460), wscale: None, sack_ok: false, ts: None };

#[test]
fn syn_queue_is_bounded_by_the_listen_backlog_without_cookies() {
    let lab = Lab::new(Duration::from_millis(1));
    lab.b.core.net.sysctl.set_by_name("net.ipv4.tcp_syncookies", "0").unwrap();
    let _l = lab.listen(80, 2);
    for i in 0..10 {
        spoofed_syn(&lab, 80, 1000 + i, 7, MSS1460);
    }
    // inet_csk_reqsk_queue_is_full(): more requests than the backlog (2), so the 4th SYN on
    // finds the queue full.
    assert_eq!(synacks(&lab).len(), 3);
    assert_eq!(mib(&lab, LinuxMib::TCPReqQFullDrop), 7);
    assert_eq!(mib(&lab, LinuxMib::ListenDrops), 7);
    assert_eq!(mib(&lab, LinuxMib::ListenOverflows), 0);
    assert_eq!(mib(&lab, LinuxMib::SyncookiesSent), 0);
    // A retransmitted SYN of a queued request is still answered (tcp_check_req()).
    spoofed_syn(&lab, 80, 1000, 7, MSS1460);
    assert_eq!(synacks_to(&lab, 1000).len(), 2);
}

#[test]
fn last_quarter_of_max_syn_backlog_is_kept_without_cookies() {
    let lab = Lab::new(Duration::from_millis(1));
    let s = &lab.b.core.net.sysctl;
    s.set_by_name("net.ipv4.tcp_syncookies", "0").unwrap();
    s.set_by_name("net.ipv4.tcp_max_syn_backlog", "8").unwrap();
    let _l = lab.listen(80, 100);
    for i in 0..10 {
        spoofed_syn(&lab, 80, 2000 + i, 9, MSS1460);
    }
    // max_syn_backlog - qlen < max_syn_backlog / 4 drops once 7 requests are queued (no
    // peer is proven alive: no TCP metrics).
    assert_eq!(synacks(&lab).len(), 7);
    assert_eq!(mib(&lab, LinuxMib::ListenDrops), 3);
    assert_eq!(mib(&lab, LinuxMib::TCPReqQFullDrop), 0);
}

#[test]
fn listen_backlog_is_capped_by_somaxconn_and_negative_means_somaxconn() {
    let lab = Lab::new(Duration::from_millis(1));
    let b = &lab.b;
    let mk = |port: u16, backlog: i32| {
        let l = b.socket(utcp::syscall::AF_INET, utcp::syscall::SOCK_STREAM, 0).unwrap();
        b.bind(l, SocketAddrV4::new(ADDR_B, port)).unwrap();
        b.listen(l, backlog).unwrap();
        l
    };
    // A listener's TCP_INFO: tcpi_sacked = sk_max_ack_backlog, tcpi_unacked = children queued.
    assert_eq!(b.tcp_info(mk(81, -1)).unwrap().tcpi_sacked, 4096);
    assert_eq!(b.tcp_info(mk(82, -5)).unwrap().tcpi_sacked, 4096);
    assert_eq!(b.tcp_info(mk(83, 0)).unwrap().tcpi_sacked, 0);
    assert_eq!(b.tcp_info(mk(84, 5)).unwrap().tcpi_sacked, 5);
    assert_eq!(b.tcp_info(mk(85, 100_000)).unwrap().tcpi_sacked, 4096);
    b.core.net.sysctl.set_by_name("net.core.somaxconn", "128").unwrap();
    let l = mk(86, -1);
    assert_eq!(b.tcp_info(l).unwrap().tcpi_sacked, 128);
    // listen() again changes the backlog.
    b.listen(l, 3).unwrap();
    assert_eq!(b.tcp_info(l).unwrap().tcpi_sacked, 3);
    let c = lab.connect_start(86);
    lab.advance(Duration::from_millis(50));
    assert_eq!(state(&lab.a, c), utcp::tcp::TcpState::Established);
    let i = b.tcp_info(l).unwrap();
    assert_eq!((i.tcpi_unacked, i.tcpi_rto, i.tcpi_min_rtt), (1, 0, 0));
}

fn ack_from(lab: &Lab, sport: u16, seq: u32, ack: u32, ts: Option<(u32, u32)>) {
    let o = Opts { ts, ..Opts::default() };
    let f = tcp_frame(SocketAddrV4::new(SPOOF, sport), SocketAddrV4::new(ADDR_B, 80), ACK, seq, ack, 65535, o, &[]);
    lab.inject(true, f);
}

fn accept(lab: &Lab, l: i32) -> Option<i32> {
    lab.b.accept4(l, utcp::syscall::SOCK_NONBLOCK).ok().map(|x| x.0)
}

#[test]
fn a_full_syn_queue_answers_with_cookies_and_the_ack_rebuilds_the_options() {
    let lab = Lab::new(Duration::from_millis(1));
    // A fixed ISN also zeroes the timestamp offset: the cookie bits are visible in the TSval.
    *lab.b.core.net.fixed_isn.lock() = Some(1);
    let l = lab.listen(80, 1);
    let o = Opts { mss: Some(1400), wscale: Some(5), sack_ok: true, ts: Some((777, 0)) };
    for i in 0..10 {
        spoofed_syn(&lab, 80, 3000 + i, 1000 * i as u32, o);
    }
    // Two requests fit (qlen > backlog 1 is full); every later SYN gets a cookie.
    assert_eq!(synacks(&lab).len(), 10);
    assert_eq!(mib(&lab, LinuxMib::TCPReqQFullDoCookies), 8);
    assert_eq!(mib(&lab, LinuxMib::SyncookiesSent), 8);
    assert_eq!(mib(&lab, LinuxMib::ListenDrops), 0);
    let sa = |port| synacks_to(&lab, port).pop().unwrap();
    for port in 3002..3010 {
        let p = sa(port);
        // Our MSS, SACK, timestamps and window scaling offered; the peer's shift (5) and SACK
        // (bit 4) in the TSval's low 6 bits, which never run ahead of the clock.
        assert_eq!((p.mss, p.sack_ok, p.wscale.is_some()), (Some(1460), true, true));
        let (tsval, tsecr) = p.ts.unwrap();
        assert_eq!((tsval & 0x3f, tsecr), (5 | 16, 777));
        assert!(tsval as u64 <= lab.now().millis());
    }
    // The cookie ACK: a child at once, with the options restored.
    let p = sa(3005);
    ack_from(&lab, 3005, 5001, p.seq.wrapping_add(1), Some((778, p.ts.unwrap().0)));
    assert_eq!(mib(&lab, LinuxMib::SyncookiesRecv), 1);
    let s = accept(&lab, l).expect("the cookie ACK made a connection");
    let i = lab.b.tcp_info(s).unwrap();
    assert_eq!((i.tcpi_options, i.tcpi_snd_wscale, i.tcpi_snd_mss), (7, 5, 1300 - 12));
    // An echoed TSval whose option bits say "no window scaling, no SACK" is taken at its word.
    let p = sa(3006);
    ack_from(&lab, 3006, 6001, p.seq.wrapping_add(1), Some((778, (p.ts.unwrap().0 | 0xf) & !16)));
    let s = accept(&lab, l).expect("second cookie connection");
    let i = lab.b.tcp_info(s).unwrap();
    assert_eq!((i.tcpi_options, i.tcpi_snd_wscale), (1, 0));
    // A forged cookie: SyncookiesFailed and a RST, no connection.
    let p = sa(3007);
    lab.clear_log();
    ack_from(&lab, 3007, 7001, p.seq.wrapping_add(1001), Some((778, p.ts.unwrap().0)));
    assert_eq!(mib(&lab, LinuxMib::SyncookiesFailed), 1);
    let rst: Vec<_> = lab.log().into_iter().filter(|p| p.has(RST) && p.dport == 3007).collect();
    assert_eq!(rst.len(), 1);
    assert_eq!(rst[0].seq, p.seq.wrapping_add(1001));
    assert!(accept(&lab, l).is_none());
}

#[test]
fn a_cookie_without_timestamps_carries_only_the_mss_from_the_table() {
    let lab = Lab::new(Duration::from_millis(1));
    lab.b.core.net.sysctl.set_by_name("net.ipv4.tcp_syncookies", "2").unwrap();
    let l = lab.listen(80, 100);
    // Each MSS comes back as the largest table entry not above it.
    for (i, (mss, want)) in
        [(1000u16, 536u32), (536, 536), (1300, 1300), (1452, 1440), (1460, 1460), (9000, 1460)].into_iter().enumerate()
    {
        let port = 4000 + i as u16;
        let o = Opts { mss: Some(mss), wscale: Some(9), sack_ok: true, ts: None };
        spoofed_syn(&lab, 80, port, 42, o);
        let p = synacks_to(&lab, port).pop().unwrap();
        assert_eq!((p.mss, p.sack_ok, p.wscale, p.ts), (Some(1460), false, None, None), "no room for options");
        ack_from(&lab, port, 43, p.seq.wrapping_add(1), None);
        let s = accept(&lab, l).expect("cookie connection");
        let i = lab.b.tcp_info(s).unwrap();
        assert_eq!((i.tcpi_snd_mss, i.tcpi_options), (want, 0), "peer MSS {mss}");
        // No RTT sample from the handshake: RTO 3 s (TCP_TIMEOUT_FALLBACK).
        assert_eq!(i.tcpi_rto, 3_000_000);
    }
    assert_eq!(mib(&lab, LinuxMib::SyncookiesSent), 6);
    assert_eq!(mib(&lab, LinuxMib::SyncookiesRecv), 6);
}

#[test]
fn cookies_expire_and_are_checked_only_after_one_was_sent() {
    let lab = Lab::new(Duration::from_millis(1));
    lab.b.core.net.sysctl.set_by_name("net.ipv4.tcp_syncookies", "2").unwrap();
    let l = lab.listen(80, 100);
    // An ACK before any cookie was sent is no cookie: RST, nothing counted.
    ack_from(&lab, 5000, 1, 1, None);
    assert_eq!(mib(&lab, LinuxMib::SyncookiesFailed), 0);
    spoofed_syn(&lab, 80, 5001, 10, MSS1460);
    let p = synacks_to(&lab, 5001).pop().unwrap();
    // A cookie is good for its minute and the next (count difference below 2): past that it
    // fails even though the listener still checks (a cookie went out in the last 2 minutes).
    lab.advance(Duration::from_secs(100));
    spoofed_syn(&lab, 80, 5002, 10, MSS1460);
    lab.advance(Duration::from_secs(30));
    ack_from(&lab, 5001, 11, p.seq.wrapping_add(1), None);
    assert_eq!(mib(&lab, LinuxMib::SyncookiesFailed), 1);
    assert!(accept(&lab, l).is_none());
    let p2 = synacks_to(&lab, 5002).pop().unwrap();
    ack_from(&lab, 5002, 11, p2.seq.wrapping_add(1), None);
    assert!(accept(&lab, l).is_some(), "30 s old cookie is valid");
    // tcp_syncookies=0 checks no cookie at all.
    spoofed_syn(&lab, 80, 5003, 10, MSS1460);
    let p3 = synacks_to(&lab, 5003).pop().unwrap();
    lab.b.core.net.sysctl.set_by_name("net.ipv4.tcp_syncookies", "0").unwrap();
    ack_from(&lab, 5003, 11, p3.seq.wrapping_add(1), None);
    assert!(accept(&lab, l).is_none());
    assert_eq!(mib(&lab, LinuxMib::SyncookiesRecv), 1);
}

#[test]
fn a_cookie_ack_that_finds_the_accept_queue_full_is_dropped_silently() {
    let lab = Lab::new(Duration::from_millis(1));
    lab.b.core.net.sysctl.set_by_name("net.ipv4.tcp_syncookies", "2").unwrap();
    // tcp_abort_on_overflow only applies to requests (tcp_check_req()), not to cookies.
    lab.b.core.net.sysctl.set_by_name("net.ipv4.tcp_abort_on_overflow", "1").unwrap();
    let l = lab.listen(80, 0);
    spoofed_syn(&lab, 80, 6001, 10, MSS1460);
    spoofed_syn(&lab, 80, 6002, 20, MSS1460);
    let (p1, p2) = (synacks_to(&lab, 6001).pop().unwrap(), synacks_to(&lab, 6002).pop().unwrap());
    ack_from(&lab, 6001, 11, p1.seq.wrapping_add(1), None);
    lab.clear_log();
    ack_from(&lab, 6002, 21, p2.seq.wrapping_add(1), None);
    assert!(lab.log().is_empty(), "no RST, no SYN-ACK: {:?}", lab.log());
    assert_eq!(mib(&lab, LinuxMib::ListenOverflows), 1);
    assert_eq!(mib(&lab, LinuxMib::ListenDrops), 1);
    assert_eq!(mib(&lab, LinuxMib::SyncookiesRecv), 2);
    // No child was made for the dropped one (as on Linux 6.18: TcpPassiveOpens 1).
    assert_eq!(lab.b.core.net.mib.tcp_get(utcp::mib::TcpMib::PassiveOpens), 1);
    assert!(accept(&lab, l).is_some());
    assert!(accept(&lab, l).is_none());
}

#[test]
fn a_real_client_connects_and_transfers_through_a_syn_flood() {
    let lab = Lab::new(Duration::from_millis(1));
    let l = lab.listen(80, 4);
    for i in 0..2000u32 {
        spoofed_syn(&lab, 80, 10_000 + i as u16, i.wrapping_mul(7919), MSS1460);
    }
    assert_eq!(mib(&lab, LinuxMib::SyncookiesSent), 2000 - 5);
    let c = lab.connect_start(80);
    let mut s = None;
    assert!(lab.run_until(Duration::from_secs(5), || {
        s = s.or_else(|| accept(&lab, l));
        s.is_some()
    }));
    let s = s.unwrap();
    assert_eq!(mib(&lab, LinuxMib::SyncookiesRecv), 1, "the client came in through a cookie");
    let i = lab.b.tcp_info(s).unwrap();
    assert_eq!(i.tcpi_options & 7, 7, "timestamps carried SACK and window scaling");
    let data = pattern(1 << 20, 3);
    let mut sent = 0;
    let mut got = Vec::new();
    assert!(lab.run_until(Duration::from_secs(60), || {
        if sent < data.len() {
            if let Ok(n) = lab.a.send(c, Some(&data[sent..]), data.len() - sent, 0) {
                sent += n;
            }
        }
        let _ = drain(&lab.b, s, &mut got);
        got.len() == data.len()
    }));
    assert!(got == data);
    // A clean link: nothing of the connection was retransmitted (B's retransmissions are the
    // SYN-ACKs of the five spoofed requests).
    assert_eq!(lab.a.core.net.mib.tcp_get(utcp::mib::TcpMib::RetransSegs), 0);
    let b_rtx = lab.b.core.net.mib.tcp_get(utcp::mib::TcpMib::RetransSegs);
    assert_eq!(b_rtx, mib(&lab, LinuxMib::TCPSynRetrans));
}
