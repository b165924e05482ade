//! SO_TIMESTAMPING on utcp: TX reports (SCHED, SND, ACK) on the error queue with their keys
//! and times, a report per transmission of the marked byte, a mark that follows its byte
//! through segmentation, the purge of marks by a reset, the error queue's share of the
//! receive buffer, and receive timestamps; the virtual clock first, then real threads with a
//! real clock (with the MIB counters checked for self-inflicted retransmissions).
//! crates/utcp-oracle/tests/timestamping_kernel.rs compares the same reports with the kernel.

mod common;

use common::*;
use std::net::SocketAddrV4;
use utcp::api::{memlink_pair, TcpListener, TcpStream, ADDR_B};
use utcp::mib::{LinuxMib, TcpMib};
use utcp::netdev::memlink::LinkConfig;
use utcp::syscall::opt::*;
use utcp::syscall::*;
use utcp::time::Duration;
use utcp::Errno;

const MSG_ERRQUEUE: i32 = 0x2000;
const MSG_DONTWAIT: i32 = 0x40;
const POLLERR: i16 = 0x8;

const TX_SOFTWARE: u32 = 1 << 1;
const RX_SOFTWARE: u32 = 1 << 3;
const SOFTWARE: u32 = 1 << 4;
const OPT_ID: u32 = 1 << 7;
const TX_SCHED: u32 = 1 << 8;
const TX_ACK: u32 = 1 << 9;
const OPT_TSONLY: u32 = 1 << 11;

const SND: u32 = 0;
const SCHED: u32 = 1;
const ACK: u32 = 2;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One report: (ee_info = type, ee_data = key, data length, software time in ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Report {
    tstype: u32,
    key: u32,
    len: usize,
    ns: Option<i64>,
}

/// recvmsg(MSG_ERRQUEUE) until EAGAIN.
fn reports(st: &Stack, fd: i32) -> Vec<Report> {
    let mut out = Vec::new();
    loop {
        let mut buf = vec![0u8; 4096];
        let mut ctl = [0u8; 512];
        let mut msg = MsgHdr {
            name: None,
            namelen: 0,
            iov: vec![IoVec { len: 4096, base: Some(&mut buf[..]) }],
            control: Some(&mut ctl[..]),
            controllen: 512,
            flags: 0,
        };
        let n = match st.recvmsg(fd, &mut msg, MSG_ERRQUEUE | MSG_DONTWAIT) {
            Ok(n) => n,
            Err(Errno::EAGAIN) => return out,
            Err(e) => panic!("recvmsg(MSG_ERRQUEUE): {e}"),
        };
        assert_eq!(msg.flags, MSG_ERRQUEUE);
        let used = msg.controllen;
        let mut r = Report { tstype: u32::MAX, key: 0, len: n, ns: None };
        for c in parse_cmsgs(&ctl[..used]) {
            match (c.level, c.ty) {
                (1, SO_TIMESTAMPING) => {
                    assert_eq!(c.data.len(), 48);
                    assert_eq!(c.data[16..], [0u8; 32], "no hardware times");
                    let sec = i64::from_ne_bytes(c.data[..8].try_into().unwrap());
                    let nsec = i64::from_ne_bytes(c.data[8..16].try_into().unwrap());
                    r.ns = Some(sec * 1_000_000_000 + nsec);
                }
                (0, IP_RECVERR) => {
                    let u = |o: usize| u32::from_ne_bytes(c.data[o..o + 4].try_into().unwrap());
                    assert_eq!((u(0), c.data[4]), (42, 4), "ENOMSG, SO_EE_ORIGIN_TIMESTAMPING");
                    r.tstype = u(8);
                    r.key = u(12);
                }
                other => panic!("unexpected cmsg {other:?}"),
            }
        }
        out.push(r);
    }
}

fn set_ts(st: &Stack, fd: i32, flags: u32) -> Result<(), Errno> {
    st.setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags.to_ne_bytes())
}

fn pollerr(st: &Stack, fd: i32) -> bool {
    let mut fds = [PollFd { fd, events: 0, revents: 0 }];
    st.poll(&mut fds, Some(Duration::ZERO)).unwrap();
    fds[0].revents & POLLERR != 0
}

/// On the virtual clock (1 ms each way): a send's last byte reports SCHED and SND when it
/// leaves and ACK one round trip later, keyed from snd_una at the time OPT_ID went on; a
/// 40 000-byte send that leaves as many segments reports once, for its last byte; reading the
/// reports clears POLLERR; the reports carry the packet without OPT_TSONLY (IP + TCP headers
/// and data for SCHED/SND, the data for ACK).
#[test]
fn tx_reports_keys_and_times_on_the_virtual_clock() {
    let lab = Lab::new(ms(1));
    let (c, s, _l) = lab.pair();
    lab.a.setsockopt_int(c, SOL_TCP, TCP_NODELAY, 1).unwrap();
    assert_eq!(lab.a.send(c, Some(&[1u8; 100]), 100, 0), Ok(100));
    lab.advance(ms(10));
    set_ts(&lab.a, c, TX_SCHED | TX_SOFTWARE | TX_ACK | SOFTWARE | OPT_ID | OPT_TSONLY).unwrap();
    assert!(!pollerr(&lab.a, c));
    assert_eq!(lab.a.send(c, Some(&[2u8; 10]), 10, 0), Ok(10));
    lab.settle();
    let sent = reports(&lab.a, c);
    assert_eq!(sent.iter().map(|r| (r.tstype, r.key, r.len)).collect::<Vec<_>>(), vec![(SCHED, 9, 0), (SND, 9, 0)]);
    assert_eq!(sent[0].ns, sent[1].ns, "the device sends as it queues");
    assert!(!pollerr(&lab.a, c));
    lab.advance(ms(10));
    assert!(pollerr(&lab.a, c), "the ACK report raises POLLERR");
    let acked = reports(&lab.a, c);
    assert_eq!(acked.len(), 1);
    assert_eq!((acked[0].tstype, acked[0].key), (ACK, 9));
    assert_eq!(acked[0].ns.unwrap() - sent[1].ns.unwrap(), 2_000_000, "one round trip");
    // A send cut into many segments reports for its last byte only: SCHED and SND for each
    // transmission of the segment holding it (the tail may be sent again as a loss probe when
    // the peer delays its ACK), then ACK.
    lab.clear_log();
    assert_eq!(lab.a.send(c, Some(&[3u8; 40_000]), 40_000, 0), Ok(40_000));
    lab.advance(ms(50));
    let log = lab.log();
    let last = log.iter().filter(|p| p.from_a && p.len > 0).map(|p| p.seq.wrapping_add(p.len)).max().unwrap();
    let tail_sends = log.iter().filter(|p| p.from_a && p.len > 0 && p.seq.wrapping_add(p.len) == last).count();
    assert!(log.iter().filter(|p| p.from_a && p.len > 0).count() > 20, "many segments");
    let r: Vec<(u32, u32)> = reports(&lab.a, c).iter().map(|r| (r.tstype, r.key)).collect();
    let mut want = [(SCHED, 40_009), (SND, 40_009)].repeat(tail_sends);
    want.push((ACK, 40_009));
    assert_eq!(r, want);
    // Without OPT_TSONLY the reports carry the packet (no OPT_ID: key 0).
    set_ts(&lab.a, c, TX_SOFTWARE | TX_ACK | SOFTWARE).unwrap();
    assert_eq!(lab.a.send(c, Some(&[4u8; 10]), 10, 0), Ok(10));
    lab.advance(ms(10));
    let r: Vec<(u32, u32, usize)> = reports(&lab.a, c).iter().map(|r| (r.tstype, r.key, r.len)).collect();
    assert_eq!(r, vec![(SND, 0, 20 + 32 + 10), (ACK, 0, 10)]);
    let mut got = Vec::new();
    drain(&lab.b, s, &mut got).unwrap();
    assert_eq!(got.len(), 100 + 10 + 40_000 + 10);
}

/// A marked byte that is retransmitted reports SCHED and SND for every transmission, and
/// ACK once; a reset frees the marked skbs with no report.
#[test]
fn retransmissions_report_again_and_a_reset_purges_marks() {
    let lab = Lab::new(ms(1));
    let (c, s, _l) = lab.pair();
    lab.a.setsockopt_int(c, SOL_TCP, TCP_NODELAY, 1).unwrap();
    set_ts(&lab.a, c, TX_SOFTWARE | TX_ACK | SOFTWARE | OPT_ID | OPT_TSONLY).unwrap();
    let mut dropped = false;
    lab.drop_if(move |p| {
        let d = p.from_a && p.len > 0 && !dropped;
        dropped |= d;
        d
    });
    assert_eq!(lab.a.send(c, Some(&[5u8; 10]), 10, 0), Ok(10));
    lab.advance(Duration::from_secs(3));
    let r: Vec<(u32, u32)> = reports(&lab.a, c).iter().map(|r| (r.tstype, r.key)).collect();
    assert_eq!(r, vec![(SND, 9), (SND, 9), (ACK, 9)], "sent twice, acknowledged once");
    assert_eq!(lab.a.core.net.mib.tcp_get(TcpMib::RetransSegs), 1);
    // A reset purges a marked skb the peer never acknowledged.
    lab.drop_if(|p| p.from_a && p.len > 0);
    assert_eq!(lab.a.send(c, Some(&[6u8; 10]), 10, 0), Ok(10));
    lab.advance(ms(5));
    let r: Vec<u32> = reports(&lab.a, c).iter().map(|r| r.tstype).collect();
    assert_eq!(r, vec![SND]);
    let mut l = 1i32.to_ne_bytes().to_vec();
    l.extend(0i32.to_ne_bytes());
    lab.b.setsockopt(s, SOL_SOCKET, SO_LINGER, &l).unwrap();
    lab.b.close(s).unwrap();
    lab.advance(Duration::from_secs(5));
    assert_eq!(reports(&lab.a, c), vec![], "no report for the purged skb");
    assert_eq!(lab.a.getsockopt_int(c, SOL_SOCKET, SO_ERROR), Ok(Errno::ECONNRESET as i32));
}

/// The error queue shares the receive buffer (`sock_queue_err_skb`): once the reports would
/// pass SO_RCVBUF, further ones are dropped; reading makes room again.
#[test]
fn reports_are_bounded_by_the_receive_buffer() {
    let lab = Lab::new(ms(1));
    let (c, _s, _l) = lab.pair();
    lab.a.setsockopt_int(c, SOL_TCP, TCP_NODELAY, 1).unwrap();
    lab.a.setsockopt_int(c, SOL_SOCKET, SO_RCVBUF, 1).unwrap();
    let rcvbuf = lab.a.getsockopt_int(c, SOL_SOCKET, SO_RCVBUF).unwrap() as usize;
    set_ts(&lab.a, c, TX_SOFTWARE | OPT_ID | OPT_TSONLY).unwrap();
    for _ in 0..20 {
        assert_eq!(lab.a.send(c, Some(&[7u8; 10]), 10, 0), Ok(10));
        lab.advance(ms(5));
    }
    let r = reports(&lab.a, c);
    // An empty report's skb is SKB_TRUESIZE(0) = 576 bytes.
    assert_eq!(r.len(), rcvbuf.div_ceil(576) - 1, "{rcvbuf}-byte buffer");
    assert_eq!(
        r.iter().map(|r| r.key).collect::<Vec<_>>(),
        (0..r.len() as u32).map(|i| i * 10 + 9).collect::<Vec<_>>()
    );
    assert_eq!(lab.a.send(c, Some(&[7u8; 10]), 10, 0), Ok(10));
    lab.advance(ms(5));
    assert_eq!(reports(&lab.a, c).iter().map(|r| r.key).collect::<Vec<_>>(), vec![209]);
}

/// Receive timestamps: SCM_TIMESTAMPING carries the arrival time of the last skb read under
/// RX_SOFTWARE | SOFTWARE (the old type, or the new one after SO_TIMESTAMPING_NEW); RX_SOFTWARE
/// alone stamps but reports nothing.
#[test]
fn rx_timestamps_carry_the_arrival_time() {
    let lab = Lab::new(ms(1));
    let (c, s, _l) = lab.pair();
    let rx = || {
        let mut buf = [0u8; 64];
        let mut ctl = [0u8; 256];
        let mut msg = MsgHdr {
            name: None,
            namelen: 0,
            iov: vec![IoVec { len: 64, base: Some(&mut buf[..]) }],
            control: Some(&mut ctl[..]),
            controllen: 256,
            flags: 0,
        };
        let n = lab.b.recvmsg(s, &mut msg, MSG_DONTWAIT).unwrap();
        let used = msg.controllen;
        (n, parse_cmsgs(&ctl[..used]).into_iter().map(|c| (c.level, c.ty, c.data)).collect::<Vec<_>>())
    };
    set_ts(&lab.b, s, RX_SOFTWARE | SOFTWARE).unwrap();
    assert_eq!(lab.a.send(c, Some(b"hello"), 5, 0), Ok(5));
    lab.advance(ms(20));
    let (n, cm) = rx();
    assert_eq!(n, 5);
    assert_eq!(cm.len(), 1);
    assert_eq!((cm[0].0, cm[0].1, cm[0].2.len()), (1, SO_TIMESTAMPING, 48));
    let t = |d: &[u8]| {
        i64::from_ne_bytes(d[..8].try_into().unwrap()) * 1_000_000_000
            + i64::from_ne_bytes(d[8..16].try_into().unwrap())
    };
    let first = t(&cm[0].2);
    assert_eq!(lab.a.send(c, Some(b"world"), 5, 0), Ok(5));
    lab.advance(ms(20));
    lab.b.setsockopt(s, SOL_SOCKET, SO_TIMESTAMPING_NEW, &(RX_SOFTWARE | SOFTWARE).to_ne_bytes()).unwrap();
    let (_, cm) = rx();
    assert_eq!(cm[0].1, SO_TIMESTAMPING_NEW);
    assert_eq!(t(&cm[0].2) - first, 20_000_000, "arrival times, 20 ms apart");
    set_ts(&lab.b, s, RX_SOFTWARE).unwrap();
    assert_eq!(lab.a.send(c, Some(b"!"), 1, 0), Ok(1));
    lab.advance(ms(20));
    assert_eq!(rx(), (1, vec![]));
}

/// On real threads and the real clock: a writer thread's 200 sends of 3000 bytes with
/// TX_ACK | OPT_ID each report ACK once, in order, keyed by their last byte (a send merged
/// into an skb with the next one reports with it), the last one for the stream's last byte;
/// a clean link retransmits nothing.
#[test]
fn real_threads_ack_reports_follow_the_stream() {
    use std::io::Read;
    let (a, b) = memlink_pair(LinkConfig::default());
    let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, 7200), 4).unwrap();
    let c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, 7200)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    let fd = c.fd();
    // The reports share the receive buffer: room for all of them.
    a.stack.setsockopt_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, 1 << 22).unwrap();
    set_ts(&a.stack, fd, TX_ACK | TX_SOFTWARE | SOFTWARE | OPT_ID | OPT_TSONLY).unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got.len()
    });
    const SENDS: u32 = 200;
    const LEN: u32 = 3000;
    let chunk = pattern(LEN as usize, 3);
    for _ in 0..SENDS {
        let mut off = 0;
        while off < chunk.len() {
            off += a.stack.send(fd, Some(&chunk[off..]), chunk.len() - off, 0).unwrap();
        }
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(reader.join().unwrap(), (SENDS * LEN) as usize);
    let mut all = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while all.iter().all(|r: &Report| r.tstype != ACK || r.key != SENDS * LEN - 1)
        && std::time::Instant::now() < deadline
    {
        all.extend(reports(&a.stack, fd));
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let acks: Vec<u32> = all.iter().filter(|r| r.tstype == ACK).map(|r| r.key).collect();
    let snds: Vec<u32> = all.iter().filter(|r| r.tstype == SND).map(|r| r.key).collect();
    assert_eq!(acks.last(), Some(&(SENDS * LEN - 1)), "the last byte is acknowledged");
    assert!(acks.windows(2).all(|w| w[0] < w[1]), "ACK reports in key order");
    assert!(acks.iter().all(|k| (k + 1) % LEN == 0), "each key ends a send");
    assert!(all.iter().all(|r| r.ns.is_some() && r.len == 0));
    // A clean link: no reordering, no fast retransmit; a retransmission only from a timer (a
    // loss probe when a thread delivering a direction was preempted, as real_threads.rs
    // allows), and then the probed segment reports SND once more.
    for h in [&a, &b] {
        let m = &h.stack.core.net.mib;
        assert_eq!(m.get(LinuxMib::TCPOFOQueue) + m.get(LinuxMib::TCPSACKReorder) + m.get(LinuxMib::TCPFastRetrans), 0);
        let timer = m.get(LinuxMib::TCPLossProbes) + m.get(LinuxMib::TCPTimeouts);
        assert!(m.tcp_get(TcpMib::RetransSegs) <= timer, "a retransmission not caused by a timer");
    }
    let retrans = a.stack.core.net.mib.tcp_get(TcpMib::RetransSegs) as usize;
    let mut once = snds.clone();
    once.sort_unstable();
    once.dedup();
    assert_eq!(once, acks, "one SND per send (again for a probed one)");
    assert!(snds.len() <= acks.len() + retrans);
    if retrans > 0 {
        eprintln!("{retrans} timer-driven retransmission(s) (a preempted thread?)");
    }
}

/// SCM_TIMESTAMPING on sendmsg (virtual clock): the message's TX flags are this call's only,
/// keyed from the socket's OPT_ID base; flags outside the TX record mask are EINVAL and send
/// nothing.
#[test]
fn sendmsg_control_message_asks_for_this_call_only() {
    let lab = Lab::new(ms(1));
    let (c, s, _l) = lab.pair();
    lab.a.setsockopt_int(c, SOL_TCP, TCP_NODELAY, 1).unwrap();
    set_ts(&lab.a, c, SOFTWARE | OPT_ID | OPT_TSONLY).unwrap();
    let cmsg = |f: u32| {
        let mut v = 20u64.to_ne_bytes().to_vec();
        v.extend(SOL_SOCKET.to_ne_bytes());
        v.extend(SO_TIMESTAMPING.to_ne_bytes());
        v.extend(f.to_ne_bytes());
        v.extend([0u8; 4]);
        v
    };
    let data = [8u8; 10];
    assert_eq!(lab.a.sendmsg_control(c, &[(Some(&data), 10)], &cmsg(TX_ACK), 0), Ok(10));
    assert_eq!(lab.a.sendmsg_control(c, &[(Some(&data), 10)], &cmsg(SOFTWARE), 0), Err(Errno::EINVAL));
    assert_eq!(lab.a.send(c, Some(&data), 10, 0), Ok(10));
    lab.advance(ms(10));
    let r = reports(&lab.a, c);
    assert_eq!(
        r.iter().map(|r| (r.tstype, r.key)).collect::<Vec<_>>(),
        vec![(ACK, 9)],
        "the plain send asked for nothing"
    );
    let mut got = Vec::new();
    drain(&lab.b, s, &mut got).unwrap();
    assert_eq!(got.len(), 20, "the refused sendmsg sent nothing");
}
