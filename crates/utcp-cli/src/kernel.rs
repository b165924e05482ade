//! The baseline: the kernel's own TCP over the loopback interface.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};

use crate::bench::Transport;

/// Kernel TCP between two sockets on 127.0.0.1.
///
/// One listener on an ephemeral loopback port serves every
/// [`connect_pair`](Transport::connect_pair). Only 127.0.0.1 is ever bound
/// or connected to. `TCP_NODELAY` is set on both ends of every pair: it is
/// what the rr workload needs, and bulk writes are large enough that it
/// makes no difference there. With a congestion control named, both ends
/// of every pair are switched to it (`TCP_CONGESTION`), so that the kernel
/// runs utcp's algorithm rather than the host's default (BBR on the
/// development machine).
pub struct KernelTransport {
    listener: TcpListener,
    congestion: Option<String>,
    /// The algorithm the last pair's sockets reported (`getsockopt(TCP_CONGESTION)`), as
    /// "name" or "client/server" when they differ.
    used: Option<String>,
}

impl KernelTransport {
    pub fn new(congestion: Option<&str>) -> io::Result<KernelTransport> {
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on 127.0.0.1: {e}")))?;
        Ok(KernelTransport { listener, congestion: congestion.map(str::to_string), used: None })
    }

    /// The congestion control the last connected pair used.
    pub fn congestion_control(&self) -> Option<&str> {
        self.used.as_deref()
    }
}

/// Sets (when `name` is given) and reads back a socket's congestion control. A name the
/// kernel refuses (unknown: ENOENT; restricted without CAP_NET_ADMIN: EPERM) leaves the
/// default, with a warning: the report says what ran.
fn congestion(s: &TcpStream, name: Option<&str>) -> io::Result<String> {
    let r = socket2::SockRef::from(s);
    if let Some(n) = name {
        if let Err(e) = r.set_tcp_congestion(n.as_bytes()) {
            eprintln!("utcp: warning: kernel socket keeps its default congestion control: TCP_CONGESTION {n}: {e}");
        }
    }
    let v = r.tcp_congestion()?;
    Ok(String::from_utf8_lossy(&v).trim_end_matches('\0').to_string())
}

impl Transport for KernelTransport {
    type Stream = TcpStream;

    fn name(&self) -> &str {
        "kernel"
    }

    fn connect_pair(&mut self) -> io::Result<(TcpStream, TcpStream)> {
        let addr = self.listener.local_addr()?;
        if !addr.ip().is_loopback() {
            return Err(io::Error::other("kernel transport is loopback-only"));
        }
        let client =
            TcpStream::connect(addr).map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}")))?;
        let me = client.local_addr()?;
        // Anything else on this machine could connect to our port too; take
        // only our own client's connection.
        let server = loop {
            let (s, peer) = self.listener.accept()?;
            if peer == me {
                break s;
            }
        };
        client.set_nodelay(true)?;
        server.set_nodelay(true)?;
        let want = self.congestion.as_deref();
        let (c, s) = (congestion(&client, want)?, congestion(&server, want)?);
        self.used = Some(if c == s { c } else { format!("{c}/{s}") });
        Ok((client, server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{run_bulk, run_rr, BenchConfig};

    #[test]
    fn binds_loopback_only() {
        let k = KernelTransport::new(None).unwrap();
        let a = k.listener.local_addr().unwrap();
        assert_eq!(a.ip(), Ipv4Addr::LOCALHOST);
        assert_ne!(a.port(), 0);
    }

    #[test]
    fn kernel_bulk_8mib_integrity() {
        let mut k = KernelTransport::new(None).unwrap();
        let cfg = BenchConfig { bytes: 8 << 20, ..BenchConfig::default() };
        let r = run_bulk(&mut k, &cfg).unwrap();
        assert!(r.integrity_ok, "{r:?}");
        assert_eq!(r.bytes, 8 << 20);
        // The same transport serves several runs.
        let cfg = BenchConfig { bytes: 1_000_003, chunk_size: 4097, seed: 9, ..cfg };
        assert!(run_bulk(&mut k, &cfg).unwrap().integrity_ok);
    }

    #[test]
    fn kernel_sockets_take_the_named_congestion_control() {
        // reno is built in and allowed to everyone; cubic needs CAP_NET_ADMIN when it is not
        // in net.ipv4.tcp_allowed_congestion_control.
        for cc in ["reno", "cubic"] {
            let mut k = KernelTransport::new(Some(cc)).unwrap();
            k.connect_pair().unwrap();
            let used = k.congestion_control().unwrap().to_string();
            if cc == "cubic" && used != cc {
                assert!(!crate::netns::is_root(), "root may set any algorithm: {used}");
                println!("cubic not allowed to this user: the default {used} ran");
                continue;
            }
            assert_eq!(used, cc);
        }
        // An unknown name: the pair still connects, on the default, and says so.
        let mut k = KernelTransport::new(Some("no-such-algorithm")).unwrap();
        k.connect_pair().unwrap();
        let used = k.congestion_control().unwrap();
        assert!(!used.is_empty() && used != "no-such-algorithm", "{used}");
    }

    #[test]
    fn kernel_rr_200() {
        let mut k = KernelTransport::new(None).unwrap();
        let cfg = BenchConfig { rr_round_trips: 200, rr_warmup: 10, ..BenchConfig::default() };
        let r = run_rr(&mut k, &cfg).unwrap();
        assert!(r.integrity_ok);
        assert_eq!(r.round_trips, 200);
        assert!(r.rtt_us.p50 > 0.0 && r.rtt_us.p50 <= r.rtt_us.p99);
    }

    #[test]
    fn kernel_rr_busy_poll() {
        let mut k = KernelTransport::new(None).unwrap();
        let cfg = BenchConfig { rr_round_trips: 200, rr_size: 1000, busy_poll_us: Some(50), ..BenchConfig::default() };
        let r = run_rr(&mut k, &cfg).unwrap();
        assert!(r.integrity_ok);
        assert_eq!(r.round_trips, 200);
    }
}
