//! The TCP state machine on the virtual clock: every state reached and left, FIN and RST arriving
//! in each state (resulting state, errno, reads), TIME_WAIT, simultaneous open and close, abortive
//! close, the listen backlog, and SO_RCVBUF/SO_SNDBUF. Expected behaviour is Linux 6.18's (checked
//! against the kernel where noted).

mod common;

use common::*;
use std::net::SocketAddrV4;
use utcp::api::{ADDR_A, ADDR_B};
use utcp::mib::{LinuxMib, TcpMib};
use utcp::syscall::opt::{SO_ERROR, SO_RCVBUF, SO_SNDBUF};
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

#[test]
fn three_way_handshake_states_and_options() {
    let lab = Lab::new(ms(10));
    let l = lab.listen(80, 16);
    assert_eq!(state(&lab.b, l), TcpState::Listen);
    let c = lab.connect_start(80);
    assert_eq!(state(&lab.a, c), TcpState::SynSent);
    // SYN reaches B at +10 ms, SYN-ACK reaches A at +20 ms: A is established.
    lab.advance(ms(15));
    assert_eq!(state(&lab.a, c), TcpState::SynSent);
    assert_eq!(lab.b.accept4(l, 0), Err(Errno::EAGAIN));
    lab.advance(ms(10));
    assert_eq!(state(&lab.a, c), TcpState::Established);
    // The first connect() after completion reports success, later ones EISCONN.
    assert_eq!(lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Ok(()));
    assert_eq!(lab.a.connect(c, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EISCONN));
    // B's child completes when the third ACK lands (+30 ms).
    assert_eq!(lab.b.accept4(l, 0), Err(Errno::EAGAIN));
    lab.advance(ms(10));
    let (s, peer) = lab.b.accept4(l, 0).expect("child established");
    assert_eq!(*peer.ip(), ADDR_A);
    assert_eq!(state(&lab.b, s), TcpState::Established);

    let log = lab.log();
    let syn = &log[0];
    assert!(syn.from_a && syn.flags == SYN, "{syn:?}");
    let synack = &log[1];
    assert!(!synack.from_a && synack.flags == SYN | ACK && synack.ack == syn.seq.wrapping_add(1));
    let ack = &log[2];
    assert!(ack.from_a && ack.flags == ACK && ack.ack == synack.seq.wrapping_add(1));
    // Options as Linux negotiates them on a 1500-byte MTU with the default tcp_rmem.
    // Linux's well-known SYN / SYN-ACK windows: 44 * 1460 and 45 * 1448 (MSS less timestamps).
    assert_eq!((syn.win, synack.win), (64240, 65160));
    for p in [syn, synack] {
        assert_eq!(p.mss, Some(1460), "MSS from the MTU: {p:?}");
        assert_eq!(p.wscale, Some(10), "wscale from tcp_rmem[2] = 32 MiB (6.18 netns default): {p:?}");
        assert!(p.sack_ok && p.ts.is_some(), "{p:?}");
    }
    assert_eq!(synack.ts.unwrap().1, syn.ts.unwrap().0, "SYN-ACK echoes the SYN's TSval");
    for (st, fd) in [(&lab.a, c), (&lab.b, s)] {
        let i = st.tcp_info(fd).unwrap();
        assert_eq!(i.tcpi_options, 7, "TS | SACK | WSCALE");
        assert_eq!((i.tcpi_snd_wscale, i.tcpi_rcv_wscale), (10, 10));
        assert_eq!(i.tcpi_snd_mss, 1448, "1460 - 12 bytes of timestamps");
    }
    assert_eq!(tmib(&lab.a, TcpMib::ActiveOpens), 1);
    assert_eq!(tmib(&lab.b, TcpMib::PassiveOpens), 1);
    assert_eq!(tmib(&lab.a, TcpMib::CurrEstab), 1);
    assert_eq!(tmib(&lab.b, TcpMib::CurrEstab), 1);
}

#[test]
fn active_and_passive_close_walk_every_state() {
    let lab = Lab::new(ms(10));
    let (c, s, _l) = lab.pair();
    lab.settle();
    // A closes its side: FIN_WAIT1 until the ACK of the FIN lands.
    lab.a.shutdown(c, SHUT_WR).unwrap();
    assert_eq!(state(&lab.a, c), TcpState::FinWait1);
    lab.advance(ms(10));
    // B got the FIN: CLOSE_WAIT, reads return 0 (again and again), writes still work.
    assert_eq!(state(&lab.b, s), TcpState::CloseWait);
    let mut buf = [0u8; 16];
    assert_eq!(lab.b.recv(s, Some(&mut buf), 16, 0), Ok(0));
    assert_eq!(lab.b.recv(s, Some(&mut buf), 16, 0), Ok(0));
    lab.advance(ms(10));
    assert_eq!(state(&lab.a, c), TcpState::FinWait2);
    assert_eq!(lab.a.send(c, Some(b"x"), 1, MSG_NOSIGNAL), Err(Errno::EPIPE));
    assert_eq!(lab.b.send(s, Some(b"late"), 4, 0), Ok(4));
    lab.advance(ms(10));
    let mut got = Vec::new();
    assert_eq!(drain(&lab.a, c, &mut got), Ok(false));
    assert_eq!(got, b"late");
    // B closes: LAST_ACK until A's ACK of its FIN.
    lab.b.close(s).unwrap();
    assert_eq!(conn_states(&lab.b), vec![TcpState::LastAck]);
    lab.advance(ms(10));
    // A got the FIN: TIME_WAIT. As in Linux the fd itself reports TCP_CLOSE (the timewait sock
    // lives on in the hash table).
    assert_eq!(conn_states(&lab.a), vec![TcpState::TimeWait]);
    assert_eq!(state(&lab.a, c), TcpState::Close);
    assert_eq!(drain(&lab.a, c, &mut got), Ok(true));
    assert_eq!(mib(&lab.a, LinuxMib::TW), 1);
    lab.advance(ms(10));
    assert!(conn_states(&lab.b).is_empty(), "LAST_ACK left once the FIN is acked");
    // TIME_WAIT lasts 60 s.
    lab.advance(Duration::from_millis(59_900));
    assert_eq!(conn_states(&lab.a), vec![TcpState::TimeWait]);
    lab.advance(ms(200));
    assert!(conn_states(&lab.a).is_empty(), "TIME_WAIT expired after 60 s");
    assert_eq!(tmib(&lab.a, TcpMib::CurrEstab) + tmib(&lab.b, TcpMib::CurrEstab), 0);
    lab.a.close(c).unwrap();
}

#[test]
fn fin_retransmitted_into_time_wait_is_reacked_and_restarts_the_timer() {
    let lab = Lab::new(ms(10));
    let (c, s, _l) = lab.pair();
    lab.a.close(c).unwrap();
    lab.advance(ms(20));
    assert_eq!(conn_states(&lab.a), vec![TcpState::FinWait2]);
    // A's ACK of B's FIN is lost once: B retransmits its FIN into A's TIME_WAIT.
    let mut dropped = false;
    lab.drop_if(move |p| {
        let d = p.from_a && !dropped && p.flags == ACK;
        dropped |= d;
        d
    });
    lab.b.close(s).unwrap();
    lab.advance(ms(20));
    assert_eq!(conn_states(&lab.a), vec![TcpState::TimeWait]);
    let tw_start = lab.now();
    assert_eq!(conn_states(&lab.b), vec![TcpState::LastAck]);
    assert!(lab.run_until(Duration::from_secs(5), || conn_states(&lab.b).is_empty()));
    let log = lab.log();
    let fins: Vec<_> = log.iter().filter(|p| !p.from_a && p.has(FIN)).collect();
    assert_eq!(fins.len(), 2, "B's FIN retransmitted once");
    let reack = log.iter().rfind(|p| p.from_a && p.flags == ACK).unwrap();
    assert!(reack.t > tw_start + ms(140), "the retransmitted FIN is acked from TIME_WAIT");
    // The TIME_WAIT timer restarted at the re-ACK (60 s from then, not from entering it).
    let left = reack.t + Duration::from_secs(60) - lab.now();
    lab.advance(left - ms(50));
    assert_eq!(conn_states(&lab.a), vec![TcpState::TimeWait]);
    lab.advance(ms(100));
    assert!(conn_states(&lab.a).is_empty());
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let lab = Lab::new(ms(10));
    let (c, s, _l) = lab.pair();
    lab.a.shutdown(c, SHUT_WR).unwrap();
    lab.b.shutdown(s, SHUT_WR).unwrap();
    assert_eq!(state(&lab.a, c), TcpState::FinWait1);
    assert_eq!(state(&lab.b, s), TcpState::FinWait1);
    // Each FIN arrives before the ACK of the other: CLOSING.
    lab.advance(ms(10));
    assert_eq!(state(&lab.a, c), TcpState::Closing);
    assert_eq!(state(&lab.b, s), TcpState::Closing);
    // Then the ACKs: TIME_WAIT on both sides.
    lab.advance(ms(10));
    assert_eq!(conn_states(&lab.a), vec![TcpState::TimeWait]);
    assert_eq!(conn_states(&lab.b), vec![TcpState::TimeWait]);
    let mut v = Vec::new();
    assert_eq!(drain(&lab.a, c, &mut v), Ok(true));
    assert_eq!(drain(&lab.b, s, &mut v), Ok(true));
    lab.advance(Duration::from_secs(61));
    assert!(conn_states(&lab.a).is_empty() && conn_states(&lab.b).is_empty());
    // No retransmissions were needed.
    assert_eq!(tmib(&lab.a, TcpMib::RetransSegs) + tmib(&lab.b, TcpMib::RetransSegs), 0);
}

#[test]
fn fin_acking_our_fin_goes_straight_to_time_wait() {
    // B answers A's FIN with FIN+ACK (the delayed-ACK path of a closing server): A skips
    // FIN_WAIT2 and CLOSING.
    let lab = Lab::new(ms(10));
    let (c, s, _l) = lab.pair();
    // Drop B's pure ACK of the FIN; B's FIN|ACK carries the acknowledgment.
    lab.drop_if(|p| !p.from_a && p.flags == ACK);
    lab.a.shutdown(c, SHUT_WR).unwrap();
    lab.advance(ms(10));
    assert_eq!(state(&lab.b, s), TcpState::CloseWait);
    lab.set_filter(None);
    lab.b.close(s).unwrap();
    let fin = lab.log().into_iter().rfind(|p| !p.from_a).unwrap();
    assert!(fin.has(FIN | ACK));
    assert_eq!(state(&lab.a, c), TcpState::FinWait1);
    lab.advance(ms(10));
    assert_eq!(conn_states(&lab.a), vec![TcpState::TimeWait]);
}

#[test]
fn simultaneous_open() {
    let lab = Lab::new(ms(10));
    let a = lab.a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let b = lab.b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.a.bind(a, SocketAddrV4::new(ADDR_A, 1000)).unwrap();
    lab.b.bind(b, SocketAddrV4::new(ADDR_B, 2000)).unwrap();
    assert_eq!(lab.a.connect(a, SocketAddrV4::new(ADDR_B, 2000)), Err(Errno::EINPROGRESS));
    assert_eq!(lab.b.connect(b, SocketAddrV4::new(ADDR_A, 1000)), Err(Errno::EINPROGRESS));
    // The SYNs cross: both in SYN_RECV, each sends a SYN-ACK.
    lab.advance(ms(10));
    assert_eq!(state(&lab.a, a), TcpState::SynRecv);
    assert_eq!(state(&lab.b, b), TcpState::SynRecv);
    lab.advance(ms(10));
    assert_eq!(state(&lab.a, a), TcpState::Established);
    assert_eq!(state(&lab.b, b), TcpState::Established);
    let log = lab.log();
    let synacks = log.iter().filter(|p| p.flags == SYN | ACK).count();
    assert_eq!(synacks, 2, "{log:?}");
    assert_eq!(lab.a.connect(a, SocketAddrV4::new(ADDR_B, 2000)), Ok(()));
    // Data both ways.
    assert_eq!(lab.a.send(a, Some(b"ping"), 4, 0), Ok(4));
    assert_eq!(lab.b.send(b, Some(b"pong"), 4, 0), Ok(4));
    lab.advance(ms(50));
    let (mut x, mut y) = (Vec::new(), Vec::new());
    drain(&lab.a, a, &mut x).unwrap();
    drain(&lab.b, b, &mut y).unwrap();
    assert_eq!((x.as_slice(), y.as_slice()), (&b"pong"[..], &b"ping"[..]));
    let i = lab.a.tcp_info(a).unwrap();
    assert_eq!(i.tcpi_options, 7);
}

#[test]
fn rst_in_syn_sent_refuses_the_connection() {
    let lab = Lab::new(ms(10));
    let c = lab.connect_start(9);
    lab.advance(ms(20));
    assert_eq!(state(&lab.a, c), TcpState::Close);
    assert_eq!(lab.a.getsockopt_int(c, SOL_SOCKET, SO_ERROR), Ok(Errno::ECONNREFUSED as i32));
    assert_eq!(lab.a.getsockopt_int(c, SOL_SOCKET, SO_ERROR), Ok(0));
    let log = lab.log();
    assert!(log[1].flags == RST | ACK && log[1].ack == log[0].seq.wrapping_add(1), "{log:?}");
    assert_eq!(tmib(&lab.a, TcpMib::AttemptFails), 1);
    assert_eq!(tmib(&lab.b, TcpMib::OutRsts), 1);
}

#[test]
fn rst_in_syn_sent_fails_blocking_style_connect() {
    let lab = Lab::new(ms(10));
    let c = lab.connect_start(9);
    lab.advance(ms(20));
    assert_eq!(lab.a.connect(c, SocketAddrV4::new(ADDR_B, 9)), Err(Errno::ECONNREFUSED));
}

#[test]
fn close_with_unread_data_sends_rst_and_peer_sees_econnreset() {
    let lab = Lab::new(ms(10));
    let (c, s, _l) = lab.pair();
    assert_eq!(lab.a.send(c, Some(b"unread"), 6, 0), Ok(6));
    lab.advance(ms(30));
    lab.clear_log();
    // B closes without reading: RST, not FIN (RFC 2525 / tcp_close()).
    lab.b.close(s).unwrap();
    let log = lab.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].flags, RST | ACK);
    assert_eq!(mib(&lab.b, LinuxMib::TCPAbortOnClose), 1);
    assert!(conn_states(&lab.b).is_empty());
    lab.advance(ms(10));
    // ESTABLISHED + RST: CLOSE, ECONNRESET once, then EOF; writes get EPIPE.
    assert_eq!(state(&lab.a, c), TcpState::Close);
    let mut buf = [0u8; 8];
    assert_eq!(lab.a.recv(c, Some(&mut buf), 8, 0), Err(Errno::ECONNRESET));
    assert_eq!(lab.a.recv(c, Some(&mut buf), 8, 0), Ok(0));
    assert_eq!(lab.a.send(c, Some(b"x"), 1, MSG_NOSIGNAL), Err(Errno::EPIPE));
    assert_eq!(tmib(&lab.a, TcpMib::EstabResets), 1);
    assert_eq!(tmib(&lab.b, TcpMib::EstabResets), 1);
}

#[test]
fn close_with_everything_read_sends_fin() {
    let lab = Lab::new(ms(10));
    let (c, s, _l) = lab.pair();
    assert_eq!(lab.a.send(c, Some(b"read me"), 7, 0), Ok(7));
    lab.advance(ms(30));
    let mut v = Vec::new();
    drain(&lab.b, s, &mut v).unwrap();
    lab.clear_log();
    lab.b.close(s).unwrap();
    let log = lab.log();
    assert!(log[0].has(FIN) && !log[0].has(RST));
    assert_eq!(mib(&lab.b, LinuxMib::TCPAbortOnClose), 0);
}

#[test]
fn rst_in_close_wait_gives_eof_then_epipe() {
    // Checked on Linux 6.18 (loopback): after FIN then RST, reads return 0 (SOCK_DONE wins over
    // sk_err) and writes fail with EPIPE.
    let lab = Lab::new(ms(10));
    let (c, s, _l) = lab.pair();
    assert_eq!(lab.b.send(s, Some(b"unread"), 6, 0), Ok(6));
    lab.advance(ms(30));
    lab.a.shutdown(c, SHUT_WR).unwrap();
    lab.advance(ms(30));
    assert_eq!(state(&lab.b, s), TcpState::CloseWait);
    lab.a.close(c).unwrap();
    lab.advance(ms(10));
    assert_eq!(mib(&lab.a, LinuxMib::TCPAbortOnClose), 1);
    assert_eq!(state(&lab.b, s), TcpState::Close);
    let mut buf = [0u8; 8];
    assert_eq!(lab.b.recv(s, Some(&mut buf), 8, 0), Ok(0));
    assert_eq!(lab.b.recv(s, Some(&mut buf), 8, 0), Ok(0));
    assert_eq!(lab.b.send(s, Some(b"z"), 1, MSG_NOSIGNAL), Err(Errno::EPIPE));
    assert_eq!(lab.b.send(s, Some(b"z"), 1, MSG_NOSIGNAL), Err(Errno::EPIPE));
}

#[test]
fn rst_in_fin_wait1_resets() {
    let lab = Lab::new(ms(10));
    let (c, s, _l) = lab.pair();
    assert_eq!(lab.a.send(c, Some(b"unread"), 6, 0), Ok(6));
    lab.advance(ms(30));
    // B's ACK of A's FIN is lost: A stays in FIN_WAIT1.
    lab.drop_if(|p| !p.from_a && !p.has(RST));
    lab.a.shutdown(c, SHUT_WR).unwrap();
    lab.advance(ms(10));
    assert_eq!(state(&lab.a, c), TcpState::FinWait1);
    lab.b.close(s).unwrap();
    lab.advance(ms(10));
    assert_eq!(state(&lab.a, c), TcpState::Close);
    let mut buf = [0u8; 8];
    assert_eq!(lab.a.recv(c, Some(&mut buf), 8, 0), Err(Errno::ECONNRESET));
    assert_eq!(lab.a.recv(c, Some(&mut buf), 8, 0), Ok(0));
    let n = lab.log().len();
    lab.advance(Duration::from_secs(10));
    assert_eq!(lab.log().len(), n, "no retransmission of the FIN after the reset");
    lab.a.close(c).unwrap();
    assert!(conn_states(&lab.a).is_empty(), "the reset socket is unhashed");
}

#[test]
fn rst_in_fin_wait2_resets() {
    let lab = Lab::new(ms(10));
    let (c, s, _l) = lab.pair();
    assert_eq!(lab.a.send(c, Some(b"unread"), 6, 0), Ok(6));
    lab.a.shutdown(c, SHUT_WR).unwrap();
    // B acks the FIN after its delayed-ACK timer (40 ms): a FIN after data leaves quick-ACK mode
    // (tcp_fin() enters pingpong mode; checked on Linux 6.18, see fin_ack_delay.pkt).
    lab.advance(ms(40));
    assert_eq!(state(&lab.a, c), TcpState::FinWait1);
    lab.advance(ms(30));
    assert_eq!(state(&lab.a, c), TcpState::FinWait2);
    lab.b.close(s).unwrap();
    lab.advance(ms(10));
    assert_eq!(state(&lab.a, c), TcpState::Close);
    let mut buf = [0u8; 8];
    assert_eq!(lab.a.recv(c, Some(&mut buf), 8, 0), Err(Errno::ECONNRESET));
    assert_eq!(lab.a.recv(c, Some(&mut buf), 8, 0), Ok(0));
}

#[test]
fn rst_in_last_ack_frees_the_orphan() {
    let lab = Lab::new(ms(10));
    let (c, s, _l) = lab.pair();
    lab.a.shutdown(c, SHUT_WR).unwrap();
    assert_eq!(lab.b.send(s, Some(b"unread"), 6, 0), Ok(6));
    lab.advance(ms(30));
    assert_eq!(state(&lab.b, s), TcpState::CloseWait);
    assert_eq!(state(&lab.a, c), TcpState::FinWait2);
    // B's FIN never arrives; B sits in LAST_ACK retransmitting it.
    lab.drop_if(|p| !p.from_a && p.has(FIN));
    lab.b.close(s).unwrap();
    lab.advance(ms(300));
    assert_eq!(conn_states(&lab.b), vec![TcpState::LastAck]);
    // A aborts (unread data): the RST ends B's LAST_ACK.
    lab.a.close(c).unwrap();
    lab.advance(ms(10));
    assert_eq!(mib(&lab.a, LinuxMib::TCPAbortOnClose), 1);
    assert!(conn_states(&lab.b).is_empty());
    let n = lab.log().len();
    lab.advance(Duration::from_secs(10));
    assert_eq!(lab.log().len(), n, "no more FIN retransmissions");
}

#[test]
fn rst_in_syn_recv_drops_the_request() {
    // A's SYN reaches B; B's SYN-ACK is lost; A aborts (close in SYN_SENT sends nothing), then a
    // stray RST for the request's sequence space arrives: the request is dropped and a later
    // connect to the listener still works.
    let lab = Lab::new(ms(10));
    let l = lab.listen(80, 16);
    lab.drop_if(|p| !p.from_a);
    let c = lab.connect_start(80);
    lab.advance(ms(15));
    lab.set_filter(None);
    lab.a.close(c).unwrap();
    // B retransmits the SYN-ACK at 1 s: A has no socket any more and answers with a RST.
    lab.advance(Duration::from_secs(2));
    let log = lab.log();
    assert!(log.iter().any(|p| p.from_a && p.has(RST)), "{log:?}");
    assert_eq!(lab.b.accept4(l, 0), Err(Errno::EAGAIN));
    let before = log.iter().filter(|p| !p.from_a && p.flags == SYN | ACK).count();
    lab.advance(Duration::from_secs(10));
    let after = lab.log().iter().filter(|p| !p.from_a && p.flags == SYN | ACK).count();
    assert_eq!(before, after, "the request is gone: no more SYN-ACK retransmissions");
    let (c2, _s2, _) = {
        let c2 = lab.connect_start(80);
        lab.advance(ms(30));
        (c2, lab.b.accept4(l, 0).unwrap(), ())
    };
    assert_eq!(state(&lab.a, c2), TcpState::Established);
}

#[test]
fn listen_backlog_bounds_the_accept_queue() {
    let lab = Lab::new(ms(1));
    let l = lab.listen(80, 1);
    // Linux queues backlog + 1 connections (sk_acceptq_is_full is ack_backlog > max).
    let cs: Vec<i32> = (0..3)
        .map(|_| {
            let c = lab.connect_start(80);
            lab.advance(ms(10));
            c
        })
        .collect();
    let st: Vec<_> = cs.iter().map(|&c| state(&lab.a, c)).collect();
    assert_eq!(st, vec![TcpState::Established, TcpState::Established, TcpState::SynSent]);
    assert!(mib(&lab.b, LinuxMib::ListenOverflows) >= 1);
    assert!(mib(&lab.b, LinuxMib::ListenDrops) >= mib(&lab.b, LinuxMib::ListenOverflows));
    // A slot frees: the SYN retransmitted at +1 s gets in.
    lab.b.accept4(l, 0).unwrap();
    lab.advance(Duration::from_secs(1));
    assert_eq!(state(&lab.a, cs[2]), TcpState::Established);
    lab.b.accept4(l, 0).unwrap();
    lab.b.accept4(l, 0).unwrap();
    assert_eq!(lab.b.accept4(l, 0), Err(Errno::EAGAIN));
}

#[test]
fn so_rcvbuf_and_so_sndbuf_are_doubled_and_clamped() {
    let lab = Lab::new(ms(1));
    let fd = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    // Defaults: tcp_rmem[1] and tcp_wmem[1].
    assert_eq!(lab.a.getsockopt_int(fd, SOL_SOCKET, SO_RCVBUF), Ok(131072));
    assert_eq!(lab.a.getsockopt_int(fd, SOL_SOCKET, SO_SNDBUF), Ok(16384));
    lab.a.setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, 10000).unwrap();
    lab.a.setsockopt_int(fd, SOL_SOCKET, SO_SNDBUF, 10000).unwrap();
    assert_eq!(lab.a.getsockopt_int(fd, SOL_SOCKET, SO_RCVBUF), Ok(20000));
    assert_eq!(lab.a.getsockopt_int(fd, SOL_SOCKET, SO_SNDBUF), Ok(20000));
    // Floors: SOCK_MIN_RCVBUF, SOCK_MIN_SNDBUF.
    lab.a.setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, 1).unwrap();
    lab.a.setsockopt_int(fd, SOL_SOCKET, SO_SNDBUF, 1).unwrap();
    assert_eq!(lab.a.getsockopt_int(fd, SOL_SOCKET, SO_RCVBUF), Ok(2304));
    assert_eq!(lab.a.getsockopt_int(fd, SOL_SOCKET, SO_SNDBUF), Ok(4608));
    // Ceilings: 2 * rmem_max / wmem_max (4194304 in a fresh 6.18 network namespace).
    lab.a.setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, 1 << 30).unwrap();
    lab.a.setsockopt_int(fd, SOL_SOCKET, SO_SNDBUF, 1 << 30).unwrap();
    assert_eq!(lab.a.getsockopt_int(fd, SOL_SOCKET, SO_RCVBUF), Ok(8388608));
    assert_eq!(lab.a.getsockopt_int(fd, SOL_SOCKET, SO_SNDBUF), Ok(8388608));
}

#[test]
fn small_so_rcvbuf_shrinks_the_advertised_window() {
    let lab = Lab::new(ms(1));
    let l = lab.b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    lab.b.setsockopt_int(l, SOL_SOCKET, SO_RCVBUF, 8192).unwrap();
    lab.b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    lab.b.listen(l, 4).unwrap();
    let c = lab.connect_start(80);
    lab.advance(ms(10));
    let (s, _) = lab.b.accept4(l, 0).unwrap();
    assert_eq!(lab.b.getsockopt_int(s, SOL_SOCKET, SO_RCVBUF), Ok(16384), "inherited from the listener");
    let synack = lab.log().into_iter().find(|p| p.flags == SYN | ACK).unwrap();
    // window_clamp = tcp_full_space(16384) = 8192: no scaling needed, the window is MSS-rounded.
    assert_eq!(synack.wscale, Some(0), "{synack:?}");
    assert!(synack.win as u32 <= 8192, "{synack:?}");
    // The sender can never have more than the clamp outstanding, and B's rmem never goes over.
    let data = pattern(200_000, 1);
    let mut sent = 0;
    let mut got = Vec::new();
    let mut max_out = 0u32;
    assert!(lab.run_until(Duration::from_secs(60), || {
        if let Ok(n) = lab.a.send(c, Some(&data[sent..]), data.len() - sent, 0) {
            sent += n;
        }
        let i = lab.a.tcp_info(c).unwrap();
        max_out = max_out.max(i.tcpi_unacked * i.tcpi_snd_mss);
        let _ = drain(&lab.b, s, &mut got);
        got.len() == data.len()
    }));
    assert!(got == data);
    // 6.18 tcp_measure_rcv_mss(): once full-sized segments set scaling_ratio to
    // len / truesize, the clamp follows it (tcp_set_window_clamp(tcp_win_from_space(16384))),
    // even with a locked buffer; MSS-rounded windows stay under that clamp.
    let truesize = utcp::tcp::TcpSock::rx_truesize(1448);
    let ratio = (1448 << utcp::tcp::TCP_RMEM_TO_WIN_SCALE) / truesize;
    let clamp = (16384 * ratio) >> utcp::tcp::TCP_RMEM_TO_WIN_SCALE;
    assert!(lab.log().iter().filter(|p| !p.from_a).all(|p| p.win as u32 <= clamp), "clamp {clamp}");
    assert!(max_out <= clamp, "{max_out}");
}

#[test]
fn listener_keeps_its_port_while_children_come_and_go() {
    let lab = Lab::new(ms(1));
    let (c, s, _l) = lab.pair();
    lab.b.close(s).unwrap();
    lab.a.close(c).unwrap();
    lab.advance(Duration::from_secs(61));
    assert!(conn_states(&lab.a).is_empty() && conn_states(&lab.b).is_empty());
    // The listener still owns port 80.
    let x = lab.b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(lab.b.bind(x, SocketAddrV4::new(ADDR_B, 80)), Err(Errno::EADDRINUSE));
    // And the port of an orphaned client in FIN_WAIT2 is still taken on A (no SO_REUSEADDR).
    let c2 = lab.connect_start(80);
    lab.advance(ms(10));
    let port = lab.a.getsockname(c2).unwrap().port();
    lab.a.close(c2).unwrap();
    lab.advance(ms(10));
    assert_eq!(conn_states(&lab.a), vec![TcpState::FinWait2]);
    let y = lab.a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(lab.a.bind(y, SocketAddrV4::new(ADDR_A, port)), Err(Errno::EADDRINUSE));
}

/// Closes `c` (A) and its peer `s` (B) actively from A, both FINs acked.
fn close_from_a(lab: &Lab, c: i32, s: i32) {
    lab.a.close(c).unwrap();
    lab.advance(ms(20));
    lab.b.close(s).unwrap();
    lab.advance(ms(30));
}

#[test]
fn tcp_max_tw_buckets_bounds_time_wait_sockets() {
    let lab = Lab::new(ms(10));
    lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_max_tw_buckets", "1").unwrap();
    let l = lab.listen(80, 16);
    let mut pairs = Vec::new();
    for _ in 0..3 {
        let c = lab.connect_start(80);
        let mut s = None;
        assert!(lab.run_until(Duration::from_secs(10), || {
            s = s.or_else(|| lab.b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
            s.is_some()
        }));
        lab.settle();
        pairs.push((c, s.unwrap()));
    }
    // The first active close gets the one timewait sock.
    close_from_a(&lab, pairs[0].0, pairs[0].1);
    let count = |st: TcpState| conn_states(&lab.a).iter().filter(|s| **s == st).count();
    assert_eq!((count(TcpState::Established), count(TcpState::TimeWait)), (2, 1));
    assert_eq!(mib(&lab.a, LinuxMib::TCPTimeWaitOverflow), 0);
    // The second finds the limit reached: tcp_time_wait() closes it at once (the last ACK
    // still leaves: B's LAST_ACK ends normally).
    close_from_a(&lab, pairs[1].0, pairs[1].1);
    assert_eq!(mib(&lab.a, LinuxMib::TCPTimeWaitOverflow), 1);
    assert_eq!((count(TcpState::Established), count(TcpState::TimeWait)), (1, 1), "the overflowed socket is gone");
    assert_eq!(conn_states(&lab.b).iter().filter(|s| **s == TcpState::LastAck).count(), 0);
    // Once the first TIME_WAIT ends (60 s), its bucket is free again.
    lab.advance(Duration::from_secs(61));
    assert_eq!(conn_states(&lab.a), vec![TcpState::Established]);
    close_from_a(&lab, pairs[2].0, pairs[2].1);
    assert_eq!(conn_states(&lab.a), vec![TcpState::TimeWait]);
    assert_eq!(mib(&lab.a, LinuxMib::TCPTimeWaitOverflow), 1);
    // Writing 0 allows none.
    lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_max_tw_buckets", "0").unwrap();
    lab.advance(Duration::from_secs(61));
    assert!(conn_states(&lab.a).is_empty());
    let (c, s, _l2) = {
        let c = lab.connect_start(80);
        let mut s = None;
        assert!(lab.run_until(Duration::from_secs(10), || {
            s = s.or_else(|| lab.b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
            s.is_some()
        }));
        lab.settle();
        (c, s.unwrap(), ())
    };
    close_from_a(&lab, c, s);
    assert!(conn_states(&lab.a).is_empty(), "no timewait sock at tcp_max_tw_buckets=0");
    assert_eq!(mib(&lab.a, LinuxMib::TCPTimeWaitOverflow), 2);
}
