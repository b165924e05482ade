//! `utcp flood`: a SYN flood on a memlink. An attacker thread puts `--syns` spoofed SYNs (from
//! addresses in 198.18.0.0/15, which nothing answers) on host A's wire to host B's listener while
//! a real client on A connects through it and sends `--bytes`, which B's server checks. With the
//! default `tcp_syncookies=1` the listener's SYN queue fills and every later SYN, the client's
//! included, is answered with a SYN cookie.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use utcp::api::{memlink_pair, TcpListener, TcpStream, ADDR_B};
use utcp::mib::{IpMib, LinuxMib, TcpMib};
use utcp::netdev::memlink::LinkConfig;
use utcp::netdev::NetDevice;
use utcp::syscall::{AF_INET, SOCK_STREAM};

/// `utcp flood` flags.
#[derive(clap::Args, Debug)]
pub struct FloodArgs {
    /// Spoofed SYNs to send
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub syns: u64,
    /// Bytes the real client sends once connected (e.g. 1M, 64K, or a byte count)
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = crate::units::parse_size)]
    pub bytes: u64,
    /// The listener's backlog
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub backlog: i32,
    /// net.ipv4.tcp_syncookies on the server (0, 1 or 2)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub syncookies: u8,
    /// How long the client may take to connect and transfer, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
    /// Print one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

/// What `utcp flood --json` prints.
#[derive(Serialize, Debug)]
pub struct FloodReport {
    /// Spoofed SYNs sent.
    pub syns: u64,
    /// The real client connected.
    pub client_connected: bool,
    /// Seconds from the client's connect() to its connection (null if it never connected).
    pub client_connect_seconds: Option<f64>,
    /// Bytes the server received from the client and found intact.
    pub client_bytes_verified: u64,
    /// SYN-ACKs sent with a cookie (TcpExtSyncookiesSent on the server).
    pub cookies_sent: u64,
    /// Cookie ACKs that made a connection (TcpExtSyncookiesRecv).
    pub cookies_recv: u64,
    /// SYNs dropped by the listener (TcpExtListenDrops).
    pub listen_drops: u64,
    /// Segments the client retransmitted (TcpRetransSegs on A).
    pub client_retrans_segs: u64,
    /// Frames from A's wire that B's receive ring or backlog had no room for.
    pub ring_drops: u64,
    /// Segments dropped at a socket's backlog while its owner held it (TcpExtTCPBacklogDrop):
    /// 0 for the flood's SYNs, which a listener takes without its socket lock (as Linux's
    /// lockless listener), whatever the accepting thread holds.
    pub backlog_drops: u64,
    /// The process's peak resident set (VmHWM), in bytes.
    pub peak_rss_bytes: u64,
    /// Seconds the whole run took.
    pub seconds: f64,
}

/// The flood's source address for SYN `i` (198.18.0.0/15, RFC 2544's benchmarking range).
fn spoofed(i: u64) -> SocketAddrV4 {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    let ip = Ipv4Addr::new(198, 18 + ((h >> 16) & 1) as u8, (h >> 8) as u8, h as u8);
    SocketAddrV4::new(ip, 1024 + (i % 64_000) as u16)
}

/// A SYN from `src` to `dst` (MSS 1460, SACK, timestamps, window scale 7, as Linux sends).
fn syn_frame(src: SocketAddrV4, dst: SocketAddrV4, isn: u32) -> utcp::skb::Frame {
    use utcp::wire::{SackBlocks, TcpFlags, TcpRepr};
    let net = utcp::netns::Netns::new(*src.ip(), 1500, 0);
    let repr = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        flags: TcpFlags::SYN,
        seq_number: utcp::seq::SeqNum(isn),
        ack_number: utcp::seq::SeqNum(0),
        window_len: 64240,
        urgent_pointer: 0,
        max_seg_size: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        sack_ranges: SackBlocks::new(),
        timestamp: Some((isn, 0)),
        payload: &[],
    };
    utcp::ip::build_tcp_frame(&net, *src.ip(), *dst.ip(), &repr, bytes::Bytes::new())
}

/// The process's peak resident set (`VmHWM` of /proc/self/status), in bytes.
pub(crate) fn peak_rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Byte `i` of the client's stream.
fn stream_byte(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8
}

/// Runs the flood and the client; the report, or an error that stopped the run.
pub fn run_flood(a: &FloodArgs) -> Result<FloodReport, String> {
    let start = Instant::now();
    let (ha, hb) = memlink_pair(LinkConfig::default());
    hb.stack
        .core
        .net
        .sysctl
        .set_by_name("net.ipv4.tcp_syncookies", &a.syncookies.to_string())
        .map_err(|e| format!("flood: tcp_syncookies={}: {e}", a.syncookies))?;
    let addr = SocketAddrV4::new(ADDR_B, 80);
    let l = TcpListener::bind(&hb.stack, addr, a.backlog).map_err(|e| format!("flood: listen on {addr}: {e}"))?;
    // The server: accepts (the client is the only peer that can complete a handshake) and
    // checks every byte.
    let verified = Arc::new(AtomicU64::new(0));
    let v = verified.clone();
    // The listener stays open until the flood is over (the server thread only borrows it).
    let l = Arc::new(l);
    let listener = l.clone();
    let server = std::thread::spawn(move || -> Result<(), String> {
        use std::io::Read;
        let (mut s, _) = l.accept().map_err(|e| format!("flood: accept: {e}"))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = 0u64;
        loop {
            let n = s.read(&mut buf).map_err(|e| format!("flood: server read: {e}"))?;
            if n == 0 {
                return Ok(());
            }
            if let Some(k) = (0..n).find(|&k| buf[k] != stream_byte(at + k as u64)) {
                return Err(format!("flood: byte {} of the client's stream is wrong", at + k as u64));
            }
            at += n as u64;
            v.store(at, Ordering::Release);
        }
    });
    // The attacker: SYNs as fast as A's wire takes them.
    let sent = Arc::new(AtomicU64::new(0));
    let port = ha.port.clone().ok_or("flood: host A has no device")?;
    let (n, s2) = (a.syns, sent.clone());
    let attacker = std::thread::spawn(move || {
        for i in 0..n {
            port.xmit(syn_frame(spoofed(i), addr, (i as u32).wrapping_mul(2_654_435_761)));
            // The end of a transmit burst: the peer's input runs (as Linux's loopback does on
            // leaving the softirq-disabled section).
            if i % 16 == 15 || i + 1 == n {
                port.flush_tx();
            }
            s2.store(i + 1, Ordering::Release);
        }
    });
    // The client connects once half the flood is out (or the flood is over).
    while sent.load(Ordering::Acquire) < a.syns / 2 && !attacker.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let fd = ha.stack.socket(AF_INET, SOCK_STREAM, 0).map_err(|e| format!("flood: socket: {e}"))?;
    let cancel = utcp::socket::sock::Cancel::new();
    let t0 = Instant::now();
    let connected = std::thread::scope(|sc| {
        let c = &cancel;
        let stack = &ha.stack;
        let h = sc.spawn(move || stack.connect_cancellable(fd, addr, Some(c)));
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        cancel.cancel();
        h.join().map(|r| r.is_ok()).unwrap_or(false)
    });
    let connect_secs = connected.then(|| t0.elapsed().as_secs_f64());
    if connected {
        use std::io::Write;
        let mut c = TcpStream::from_fd(&ha.stack, fd);
        let mut buf = vec![0u8; 64 * 1024];
        let mut off = 0u64;
        while off < a.bytes {
            let k = (a.bytes - off).min(buf.len() as u64) as usize;
            for (j, b) in buf[..k].iter_mut().enumerate() {
                *b = stream_byte(off + j as u64);
            }
            c.write_all(&buf[..k]).map_err(|e| format!("flood: client write: {e}"))?;
            off += k as u64;
        }
        c.shutdown(std::net::Shutdown::Write).map_err(|e| format!("flood: client shutdown: {e}"))?;
        while !server.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if server.is_finished() {
            server.join().map_err(|_| "flood: the server thread panicked".to_string())??;
        }
    } else {
        let _ = ha.stack.close(fd);
    }
    attacker.join().map_err(|_| "flood: the attacker thread panicked".to_string())?;
    let mib = hb.stack.mib();
    // The last SYNs may still be in B's input (another thread may be draining B's backlog,
    // and may be descheduled for a while): wait until B's IP input has taken every frame A's
    // port handed to B (`LinkStats::delivered`; B has no other device), at most 5 s. Waiting
    // for B's counters to stand still for 20 ms was not enough on a loaded machine.
    let wait_until = Instant::now() + Duration::from_secs(5);
    let handed = || ha.port.as_ref().map_or(0, |p| p.stats().delivered);
    while mib.ip_get(IpMib::InReceives) < handed() && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(5));
    }
    if std::env::var_os("UTCP_FLOOD_NSTAT").is_some() {
        eprint!("{}", mib.nstat(false));
    }
    // Drops on the way from A's wire into B (the sender's side counts them).
    let ring_drops = ha.port.as_ref().map_or(0, |p| {
        let st = p.stats();
        st.ring_drops + st.lost + st.unattached
    });
    drop(listener);
    Ok(FloodReport {
        syns: sent.load(Ordering::Acquire),
        client_connected: connected,
        client_connect_seconds: connect_secs,
        client_bytes_verified: verified.load(Ordering::Acquire),
        cookies_sent: mib.get(LinuxMib::SyncookiesSent),
        cookies_recv: mib.get(LinuxMib::SyncookiesRecv),
        listen_drops: mib.get(LinuxMib::ListenDrops),
        client_retrans_segs: ha.stack.mib().tcp_get(TcpMib::RetransSegs),
        ring_drops,
        backlog_drops: mib.get(LinuxMib::TCPBacklogDrop),
        peak_rss_bytes: peak_rss_bytes(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// `utcp flood`.
pub fn cmd_flood(a: &FloodArgs) -> Result<std::process::ExitCode, String> {
    let r = run_flood(a)?;
    if a.json {
        outln!("{}", serde_json::to_string(&r).map_err(|e| format!("flood: json: {e}"))?);
    } else {
        outln!(
            "{} spoofed SYNs: client {} ({}), {} bytes verified; {} cookies sent, {} received, {} SYNs dropped, {} dropped at the listener's backlog; \
             peak RSS {} bytes; {:.2} s",
            r.syns,
            if r.client_connected { "connected" } else { "did not connect" },
            r.client_connect_seconds.map_or("-".to_string(), |s| format!("{:.3} s", s)),
            r.client_bytes_verified,
            r.cookies_sent,
            r.cookies_recv,
            r.listen_drops,
            r.backlog_drops,
            r.peak_rss_bytes,
            r.seconds
        );
    }
    let ok = r.client_connected && r.client_bytes_verified == a.bytes;
    Ok(if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}
