//! RFC 5961 against a blind attacker on a memlink (virtual clock): forged RSTs, SYNs and data
//! with guessed sequence numbers and bad ACKs are challenge-ACKed within the per-socket
//! (tcp_invalid_ratelimit) and namespace (tcp_challenge_ack_limit) budgets; nothing is reset
//! and no forged byte is accepted.

mod common;

use common::*;
use std::net::SocketAddrV4;
use utcp::api::{ADDR_A, ADDR_B};
use utcp::mib::LinuxMib;
use utcp::tcp::TcpState;
use utcp::time::Duration;

struct Attack<'a> {
    lab: &'a Lab,
    /// The victim connection's client end (A's address and port, spoofed).
    from: SocketAddrV4,
    to: SocketAddrV4,
}

impl Attack<'_> {
    fn send(&self, flags: u8, seq: u32, ack: u32, payload: &[u8]) {
        let f = tcp_frame(self.from, self.to, flags, seq, ack, 65535, Opts::default(), payload);
        self.lab.inject(true, f);
    }
}

fn b_mib(lab: &Lab, c: LinuxMib) -> u64 {
    lab.b.core.net.mib.get(c)
}

/// B's pure ACKs (challenge ACKs) sent since the log was cleared.
fn b_acks(lab: &Lab) -> usize {
    lab.log().iter().filter(|p| !p.from_a && p.flags == ACK && p.len == 0).count()
}

#[test]
fn blind_rsts_syns_and_data_are_challenged_within_the_limits_and_never_accepted() {
    let lab = Lab::new(Duration::from_millis(1));
    let (c, s, _l) = lab.pair();
    // Some real traffic, so that both ends have moved their sequence numbers.
    let hello = pattern(5000, 1);
    assert_eq!(lab.a.send(c, Some(&hello), hello.len(), 0), Ok(hello.len()));
    let mut got = Vec::new();
    assert!(lab.run_until(Duration::from_secs(2), || {
        let _ = drain(&lab.b, s, &mut got);
        got.len() == hello.len()
    }));
    lab.advance(Duration::from_secs(1));
    let last_a = lab.log().into_iter().rfind(|p| p.from_a).unwrap();
    let (rcv_nxt, snd_nxt) = (last_a.seq.wrapping_add(last_a.seg_len()), last_a.ack);
    let at = Attack {
        lab: &lab,
        from: SocketAddrV4::new(ADDR_A, lab.a.getsockname(c).unwrap().port()),
        to: SocketAddrV4::new(ADDR_B, 80),
    };
    lab.clear_log();
    // 1. A blind spray over the whole sequence space, 1 MiB apart, then RSTs, SYNs and data
    //    inside the receive window but not at rcv_nxt, all at one instant.
    for k in 0..4096u32 {
        at.send(RST, k << 20, 0, &[]);
    }
    for k in 1..=200u32 {
        at.send(RST | ACK, rcv_nxt.wrapping_add(k * 7), snd_nxt, &[]);
        at.send(SYN, rcv_nxt.wrapping_add(k * 11), 0, &[]);
        // Data at exactly rcv_nxt whose ACK is beyond snd_nxt, or far below snd_una.
        at.send(ACK | PSH, rcv_nxt, snd_nxt.wrapping_add(k * 1000), b"EVIL");
        at.send(ACK | PSH, rcv_nxt, snd_nxt.wrapping_sub(1 << 30), b"EVIL");
    }
    // Per socket: one challenge ACK per 500 ms; every other one skipped.
    assert_eq!(b_acks(&lab), 1);
    assert_eq!(b_mib(&lab, LinuxMib::TCPChallengeACK), 1);
    assert!(b_mib(&lab, LinuxMib::TCPACKSkippedChallenge) >= 799, "{}", lab.b.core.net.mib.nstat(false));
    assert!(b_mib(&lab, LinuxMib::TCPSYNChallenge) >= 200);
    assert_eq!(state(&lab.b, s), TcpState::Established);
    assert!(lab.log().iter().all(|p| !p.has(RST)), "nothing answered with a RST");
    // 600 ms later the socket may challenge again, once.
    lab.advance(Duration::from_millis(600));
    lab.clear_log();
    for k in 1..=50u32 {
        at.send(RST, rcv_nxt.wrapping_add(k), 0, &[]);
    }
    assert_eq!(b_acks(&lab), 1);
    // 2. The namespace budget: per-socket limit off, tcp_challenge_ack_limit 10: each second
    //    allows a random 5..=14 challenge ACKs.
    let sys = &lab.b.core.net.sysctl;
    sys.set_by_name("net.ipv4.tcp_invalid_ratelimit", "0").unwrap();
    sys.set_by_name("net.ipv4.tcp_challenge_ack_limit", "10").unwrap();
    let mut per_second = Vec::new();
    for _ in 0..5 {
        lab.advance(Duration::from_secs(1));
        lab.clear_log();
        for k in 1..=100u32 {
            at.send(RST, rcv_nxt.wrapping_add(k), 0, &[]);
        }
        per_second.push(b_acks(&lab));
    }
    assert!(per_second.iter().all(|&n| (5..=14).contains(&n)), "{per_second:?}");
    // 3. Nothing was reset and no forged byte got in: the real stream goes on intact.
    assert_eq!(state(&lab.a, c), TcpState::Established);
    assert_eq!(state(&lab.b, s), TcpState::Established);
    let more = pattern(100_000, 2);
    let mut sent = 0;
    let mut got = Vec::new();
    assert!(lab.run_until(Duration::from_secs(10), || {
        if sent < more.len() {
            if let Ok(n) = lab.a.send(c, Some(&more[sent..]), more.len() - sent, 0) {
                sent += n;
            }
        }
        let _ = drain(&lab.b, s, &mut got);
        got.len() >= more.len()
    }));
    assert!(got == more, "forged bytes or a damaged stream");
    assert_eq!(b_mib(&lab, LinuxMib::EmbryonicRsts), 0);
    assert_eq!(lab.b.core.net.mib.tcp_get(utcp::mib::TcpMib::EstabResets), 0);
}
