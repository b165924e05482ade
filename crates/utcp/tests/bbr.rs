//! BBR (tcp/bbr.rs) and the delivery-rate estimator (tcp/rate.rs) end to end on the virtual
//! clock: on a rate-limited link BBR goes STARTUP → DRAIN → PROBE_BW, its bandwidth estimate
//! and pacing rate settle at the link's rate, and TCP_INFO / TCP_CC_INFO report them; under
//! random loss it delivers every byte with its cwnd never cut to CUBIC's fractions; the
//! algorithm is chosen by TCP_CONGESTION or the namespace's default.

mod common;

use common::*;
use std::net::SocketAddrV4;
use utcp::api::ADDR_B;
use utcp::mib::LinuxMib;
use utcp::netdev::memlink::LinkConfig;
use utcp::sim::SimNet;
use utcp::syscall::opt::{TCP_CC_INFO, TCP_CONGESTION, TCP_INFO};
use utcp::syscall::*;
use utcp::tcp::bbr::BbrMode;
use utcp::time::Duration;
use utcp::Errno;

/// What the sender's socket showed during a transfer.
#[derive(Default, Debug)]
struct Seen {
    /// BBR's modes, in order, each once per stretch.
    modes: Vec<BbrMode>,
    /// The largest cwnd.
    max_cwnd: u32,
    /// The smallest cwnd once data flowed.
    min_cwnd: u32,
}

/// Sends `len` bytes from A to B over `cfg` with A's default congestion control `cc`,
/// watching A's socket after every step; returns the data, what B read, the simulation,
/// what was seen, and A's TCP_INFO and TCP_CC_INFO just before the close.
fn bulk(cfg: LinkConfig, len: usize, cc: &str) -> (Vec<u8>, Vec<u8>, SimNet, Seen, Vec<u8>, Vec<u8>) {
    let net = SimNet::new(cfg);
    net.a.stack.core.net.sysctl.set_by_name("net.ipv4.tcp_congestion_control", cc).unwrap();
    let (a, b) = (net.a.stack.clone(), net.b.stack.clone());
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, SocketAddrV4::new(ADDR_B, 80)).unwrap();
    b.listen(l, 16).unwrap();
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let _ = a.connect(c, SocketAddrV4::new(ADDR_B, 80));
    let mut s = None;
    assert!(net.run_until(Duration::from_secs(60), || {
        s = s.or_else(|| b.accept4(l, SOCK_NONBLOCK).ok().map(|x| x.0));
        s.is_some()
    }));
    let s = s.unwrap();
    let data = pattern(len, 3);
    let (mut sent, mut got) = (0, Vec::with_capacity(len));
    let mut buf = vec![0u8; 65536];
    let mut seen = Seen { min_cwnd: u32::MAX, ..Seen::default() };
    let (mut info, mut cc_info) = (vec![0u8; 280], vec![0u8; 20]);
    let ok = net.run_until(Duration::from_secs(600), || {
        while sent < len {
            match a.send(c, Some(&data[sent..]), len - sent, 0) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        for sk in a.core.sockets() {
            sk.peek_tp(|tp| {
                if tp.delivered < 20 || tp.snd_una == tp.snd_nxt {
                    return;
                }
                seen.max_cwnd = seen.max_cwnd.max(tp.snd_cwnd);
                seen.min_cwnd = seen.min_cwnd.min(tp.snd_cwnd);
                if let Some(bbr) = tp.bbr.as_deref() {
                    if seen.modes.last() != Some(&bbr.mode) {
                        seen.modes.push(bbr.mode);
                    }
                }
            });
        }
        if sent == len && got.len() + 65536 >= len && a.getsockopt(c, SOL_TCP, TCP_INFO, &mut info).is_ok() {
            let _ = a.getsockopt(c, SOL_TCP, TCP_CC_INFO, &mut cc_info).map(|n| cc_info.truncate(n));
        }
        loop {
            match b.recv(s, Some(&mut buf), 65536, 0) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) => return got.len() == len,
                Err(e) => panic!("recv: {e}"),
            }
        }
    });
    assert!(ok, "stalled at {} of {len}\n{}", got.len(), a.core.net.mib.nstat(false));
    (data, got, net, seen, info, cc_info)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().unwrap())
}

/// `struct tcp_info` offsets (Linux 6.x, x86_64).
const TCPI_SND_MSS: usize = 16;
const TCPI_PACING_RATE: usize = 104;
const TCPI_DELIVERY_RATE: usize = 160;
const TCPI_DELIVERED: usize = 192;

/// 100 Mbit/s, 5 ms each way: BBR's modes run STARTUP → DRAIN → PROBE_BW; its bandwidth
/// estimate (TCP_CC_INFO), the last delivery-rate sample (TCP_INFO) and the pacing rate
/// settle at the link's payload rate; a link that neither loses nor reorders sees no
/// retransmission.
#[test]
fn rate_limited_link_startup_drain_probe_bw_at_the_link_rate() {
    let cfg = LinkConfig { rate_bps: Some(100_000_000), delay: Duration::from_millis(5), ..Default::default() };
    let (data, got, net, seen, info, cc_info) = bulk(cfg, 12 << 20, "bbr");
    assert!(data == got, "stream corrupted");
    assert_eq!(seen.modes[..3], [BbrMode::Startup, BbrMode::Drain, BbrMode::ProbeBw], "{seen:?}");
    assert!(!seen.modes.contains(&BbrMode::ProbeRtt), "{seen:?}: a 1 s transfer needs no PROBE_RTT");
    // The link carries 100 Mbit/s of IP packets; each holds MSS bytes of payload in
    // MSS + 52 (IP, TCP, timestamps).
    let mss = u32_at(&info, TCPI_SND_MSS) as f64;
    let link = 100e6 / 8.0 * mss / (mss + 52.0);
    assert_eq!(cc_info.len(), 20, "tcp_bbr_info");
    let bw = (u32_at(&cc_info, 0) as u64 | (u32_at(&cc_info, 4) as u64) << 32) as f64;
    assert!((0.9..1.1).contains(&(bw / link)), "bbr_bw {bw} vs link {link}");
    assert_eq!(u32_at(&cc_info, 8), 10_000, "bbr_min_rtt: 10 ms");
    let (pacing_gain, cwnd_gain) = (u32_at(&cc_info, 12), u32_at(&cc_info, 16));
    assert!([320, 192, 256].contains(&pacing_gain), "{pacing_gain}");
    assert_eq!(cwnd_gain, 512);
    // The pacing rate is the bandwidth at the phase's gain, less 1 %.
    let pacing = u64_at(&info, TCPI_PACING_RATE) as f64;
    let expect = bw * pacing_gain as f64 / 256.0 * 0.99;
    assert!((pacing / expect - 1.0).abs() < 0.01, "pacing {pacing} vs {expect}");
    let delivery = u64_at(&info, TCPI_DELIVERY_RATE) as f64;
    eprintln!(
        "modes {:?}; bbr_bw/link {:.3}, delivery/link {:.3}, gain {pacing_gain}",
        seen.modes,
        bw / link,
        delivery / link
    );
    assert!((0.8..1.1).contains(&(delivery / link)), "tcpi_delivery_rate {delivery} vs link {link}");
    // Read with at most 64 KiB still to arrive: every packet but those, plus the SYN.
    let delivered = u32_at(&info, TCPI_DELIVERED) as usize;
    let pkts = (12 << 20) / mss as usize;
    assert!((pkts - 2 * 65536 / mss as usize..=pkts + 2).contains(&delivered), "{delivered} of {pkts}");
    let m = &net.a.stack.core.net.mib;
    assert_eq!(m.tcp_get(utcp::mib::TcpMib::RetransSegs), 0, "{}", m.nstat(false));
    assert_eq!(net.b.stack.core.net.mib.get(LinuxMib::TCPOFOQueue), 0);
}

/// 2 % random loss each way: every byte arrives; losses are repaired by SACK recovery, and
/// BBR keeps its cwnd (it does not back off on random loss the way CUBIC does). CUBIC on the
/// same link and seed, for comparison, falls to a few segments.
#[test]
fn lossy_transfer_is_byte_exact_and_keeps_cwnd() {
    let cfg = LinkConfig { loss: 0.02, seed: 5, delay: Duration::from_millis(1), ..Default::default() };
    let (data, got, net, seen, _, _) = bulk(cfg.clone(), 4 << 20, "bbr");
    assert!(data == got, "stream corrupted");
    let m = &net.a.stack.core.net.mib;
    assert!(m.get(LinuxMib::TCPSackRecovery) > 0, "{}", m.nstat(false));
    assert!(seen.modes.contains(&BbrMode::ProbeBw), "{seen:?}");
    let (data, got, _, cubic, _, _) = bulk(cfg, 4 << 20, "cubic");
    assert!(data == got);
    assert!(cubic.modes.is_empty());
    eprintln!("bbr {seen:?}\ncubic {cubic:?}");
    assert!(seen.max_cwnd > cubic.max_cwnd, "bbr {seen:?} cubic {cubic:?}");
}

/// TCP_CONGESTION "bbr" on a connected socket starts BBR at once (`tcp_reinit_congestion_
/// control`); back to "cubic" drops its state. TCP_CC_INFO is empty for CUBIC.
#[test]
fn tcp_congestion_switches_to_bbr_and_back() {
    let lab = Lab::new(Duration::from_millis(1));
    let (c, _s, _l) = lab.pair();
    let mut info = [0u8; 20];
    assert_eq!(lab.a.getsockopt(c, SOL_TCP, TCP_CC_INFO, &mut info), Ok(0));
    lab.a.setsockopt(c, SOL_TCP, TCP_CONGESTION, b"bbr").unwrap();
    let mut name = [0u8; 16];
    assert_eq!(lab.a.getsockopt(c, SOL_TCP, TCP_CONGESTION, &mut name), Ok(16));
    assert_eq!(&name[..4], b"bbr\0");
    assert_eq!(lab.a.getsockopt(c, SOL_TCP, TCP_CC_INFO, &mut info), Ok(20));
    // Before any ACK of data: no bandwidth yet, the handshake's RTT (1 ms each way).
    assert_eq!(u32_at(&info, 0), 0);
    assert_eq!(u32_at(&info, 8), 2_000);
    let mut short = [0u8; 8];
    assert_eq!(lab.a.getsockopt(c, SOL_TCP, TCP_CC_INFO, &mut short), Ok(8), "truncated to optlen");
    let sk = lab.a.core.sockets().into_iter().find(|sk| sk.peek_tp(|tp| tp.bbr.is_some())).expect("bbr socket");
    assert!(sk.peek_tp(|tp| tp.pacing_needed && tp.snd_ssthresh == 0x7fff_ffff));
    lab.a.setsockopt(c, SOL_TCP, TCP_CONGESTION, b"cubic").unwrap();
    assert!(sk.peek_tp(|tp| tp.bbr.is_none()));
    assert_eq!(lab.a.getsockopt(c, SOL_TCP, TCP_CC_INFO, &mut info), Ok(0));
    assert_eq!(lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_congestion_control", "bbr"), Ok(()));
    assert_eq!(lab.a.core.net.sysctl.get_by_name("net.ipv4.tcp_congestion_control").unwrap(), "bbr");
}
