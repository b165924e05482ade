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
/// makes no difference there.
pub struct KernelTransport {
    listener: TcpListener,
}

impl KernelTransport {
    pub fn new() -> io::Result<KernelTransport> {
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on 127.0.0.1: {e}")))?;
        Ok(KernelTransport { listener })
    }
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
        Ok((client, server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{run_bulk, run_rr, BenchConfig};

    #[test]
    fn binds_loopback_only() {
        let k = KernelTransport::new().unwrap();
        let a = k.listener.local_addr().unwrap();
        assert_eq!(a.ip(), Ipv4Addr::LOCALHOST);
        assert_ne!(a.port(), 0);
    }

    #[test]
    fn kernel_bulk_8mib_integrity() {
        let mut k = KernelTransport::new().unwrap();
        let cfg = BenchConfig { bytes: 8 << 20, ..BenchConfig::default() };
        let r = run_bulk(&mut k, &cfg).unwrap();
        assert!(r.integrity_ok, "{r:?}");
        assert_eq!(r.bytes, 8 << 20);
        // The same transport serves several runs.
        let cfg = BenchConfig { bytes: 1_000_003, chunk_size: 4097, seed: 9, ..cfg };
        assert!(run_bulk(&mut k, &cfg).unwrap().integrity_ok);
    }

    #[test]
    fn kernel_rr_200() {
        let mut k = KernelTransport::new().unwrap();
        let cfg = BenchConfig { rr_round_trips: 200, rr_warmup: 10, ..BenchConfig::default() };
        let r = run_rr(&mut k, &cfg).unwrap();
        assert!(r.integrity_ok);
        assert_eq!(r.round_trips, 200);
        assert!(r.rtt_us.p50 > 0.0 && r.rtt_us.p50 <= r.rtt_us.p99);
    }

    #[test]
    fn kernel_rr_busy_poll() {
        let mut k = KernelTransport::new().unwrap();
        let cfg = BenchConfig { rr_round_trips: 200, rr_size: 1000, busy_poll_us: Some(50), ..BenchConfig::default() };
        let r = run_rr(&mut k, &cfg).unwrap();
        assert!(r.integrity_ok);
        assert_eq!(r.round_trips, 200);
    }
}
