//! The utcp side of `utcp bench`: two utcp stacks joined by a memlink, in real time.

use crate::args::BenchSettings;
use crate::bench::{BenchStream, Transport};
use std::io;
use std::net::SocketAddrV4;
use std::sync::Arc;
use utcp::api::{TcpListener, TcpStream, ADDR_A, ADDR_B};
use utcp::host::{HostThreads, MonotonicClock};
use utcp::netdev::memlink::{self, Delivery, LinkConfig};
use utcp::netdev::pcap::PcapDevice;
use utcp::netdev::NetDevice;
use utcp::stack::StackCore;
use utcp::tcp::TcpState;
use utcp::time::Clock;
use utcp::Stack;

impl BenchStream for TcpStream {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        TcpStream::set_nonblocking(self, on)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

/// Two utcp hosts on a memlink.
pub struct UtcpTransport {
    client: Arc<Stack>,
    server: Arc<Stack>,
    /// Listeners on ports 5001, 5002, …: one serves the workloads; `--idle` uses several,
    /// since a client address has ~28,000 ephemeral ports towards each server port.
    listeners: Vec<TcpListener>,
    next: usize,
    busy_poll_us: Option<u64>,
    /// Each host's device (the client's wrapped in the pcap recorder with `--pcap`).
    devs: Vec<Arc<dyn NetDevice>>,
    /// The client's memlink port: what it delivered to the server counts the wire's
    /// segments (GRO hands the server's stack fewer, merged, packets).
    client_port: Arc<memlink::MemPort>,
    _threads: Vec<HostThreads>,
}

impl UtcpTransport {
    /// Builds the link and both stacks from the bench settings.
    pub fn new(s: &BenchSettings) -> io::Result<UtcpTransport> {
        Self::with_listeners(s, 1)
    }

    /// A transport that can hold `n` connections at once: RLIMIT_NOFILE raised on both stacks
    /// and one listener per 25,000 connections.
    pub fn for_connections(s: &BenchSettings, n: u64) -> io::Result<UtcpTransport> {
        let t = Self::with_listeners(s, n.div_ceil(25_000) as usize)?;
        let limit = (n as usize + 1024).min(utcp::syscall::fdtable::NR_OPEN);
        for st in [&t.client, &t.server] {
            st.set_rlimit_nofile(limit).map_err(|e| io::Error::other(format!("RLIMIT_NOFILE {limit}: {e:?}")))?;
        }
        Ok(t)
    }

    fn with_listeners(s: &BenchSettings, listeners: usize) -> io::Result<UtcpTransport> {
        let imp = &s.impairments;
        let delivery = if s.cfg.busy_poll_us.is_some() { Delivery::BusyPoll } else { Delivery::Inline };
        let cfg = LinkConfig {
            mtu: s.mtu as u32,
            delivery,
            loss: imp.loss,
            reorder: imp.reorder,
            dup: imp.dup,
            corrupt: imp.corrupt,
            delay: imp.delay,
            rate_bps: imp.rate,
            seed: imp.seed,
            gso_max_size: s.gso_max_size,
            gro: s.gro,
            ..LinkConfig::default()
        };
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::default());
        let (pa, pb) = memlink::pair(cfg, clock.clone());
        let client_port = pa.clone();
        let mut threads = Vec::new();
        let mut stacks = Vec::new();
        let mut devs = Vec::new();
        for (i, (addr, port)) in [(ADDR_A, pa), (ADDR_B, pb)].into_iter().enumerate() {
            let core = StackCore::new(addr, s.mtu as u32, clock.clone(), imp.seed ^ (0x9e37_79b9 * (i as u64 + 1)));
            core.net
                .sysctl
                .set_by_name("net.ipv4.tcp_congestion_control", &s.congestion)
                .map_err(|e| io::Error::other(format!("--congestion {}: {e}", s.congestion)))?;
            let dev: Arc<dyn NetDevice> = match (&s.pcap, i) {
                (Some(path), 0) => Arc::new(PcapDevice::create(port.clone(), path, clock.clone()).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot create pcap file {}: {e}", path.display()))
                })?),
                _ => port.clone(),
            };
            devs.push(dev.clone());
            core.attach_device(dev);
            threads.push(HostThreads::start(core.clone(), Some(port)));
            stacks.push(Arc::new(Stack::from_core(core)));
        }
        let server = stacks.pop().expect("server");
        let client = stacks.pop().expect("client");
        let listeners = (0..listeners.max(1))
            .map(|i| {
                let addr = SocketAddrV4::new(ADDR_B, 5001 + i as u16);
                TcpListener::bind(&server, addr, 128)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(UtcpTransport {
            client,
            server,
            listeners,
            next: 0,
            busy_poll_us: s.cfg.busy_poll_us,
            devs,
            client_port,
            _threads: threads,
        })
    }

    /// The client stack's congestion control (`net.ipv4.tcp_congestion_control`).
    pub fn congestion_control(&self) -> String {
        let name = "net.ipv4.tcp_congestion_control";
        self.client.core.net.sysctl.get_by_name(name).unwrap_or_else(|e| format!("unknown ({e:?})"))
    }

    /// Waits (up to 2 s) until every connection has finished closing (the last FINs and ACKs
    /// are on the wire), then writes out the capture, so that a pcap holds the whole run.
    fn settle_and_sync(&self) {
        let t = std::time::Instant::now();
        let closing = |st: &Stack| {
            st.core
                .sockets()
                .iter()
                .any(|sk| sk.peek_tp(|tp| !matches!(tp.state, TcpState::Close | TcpState::TimeWait | TcpState::Listen)))
        };
        while (closing(&self.client) || closing(&self.server)) && t.elapsed() < std::time::Duration::from_secs(2) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        for d in &self.devs {
            if let Err(e) = d.sync() {
                eprintln!("utcp: warning: pcap capture incomplete: {e}");
            }
        }
    }
}

impl Drop for UtcpTransport {
    fn drop(&mut self) {
        for d in &self.devs {
            let _ = d.sync();
        }
    }
}

fn counters(stack: &Stack) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (name, v) in stack.mib().snapshot() {
        if v != 0 {
            m.insert(name.to_string(), v.into());
        }
    }
    serde_json::Value::Object(m)
}

impl Transport for UtcpTransport {
    type Stream = TcpStream;

    fn name(&self) -> &str {
        "utcp"
    }

    fn connect_pair(&mut self) -> io::Result<(TcpStream, TcpStream)> {
        let i = self.next;
        self.next = (i + 1) % self.listeners.len();
        let addr = SocketAddrV4::new(ADDR_B, 5001 + i as u16);
        let ctx = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what} {addr}: {e}"));
        let c = TcpStream::connect(&self.client, addr).map_err(|e| ctx("cannot connect to", e))?;
        let (srv, _) = self.listeners[i].accept().map_err(|e| ctx("accept on", e))?;
        for s in [&c, &srv] {
            s.set_nodelay(true)?;
            if let Some(us) = self.busy_poll_us {
                s.set_busy_poll(us.min(u32::MAX as u64) as u32)?;
            }
        }
        Ok((c, srv))
    }

    fn segments_in(&self) -> Option<u64> {
        // The wire's segments, not TcpInSegs: with GRO the stack counts merged packets.
        Some(self.client_port.stats().delivered)
    }

    fn counters(&self) -> serde_json::Map<String, serde_json::Value> {
        self.settle_and_sync();
        let mut m = serde_json::Map::new();
        m.insert("client".into(), counters(&self.client));
        m.insert("server".into(), counters(&self.server));
        // Device drops (`ip -s link`'s rx_dropped / tx_dropped): not MIB counters in Linux
        // either, but a frame a full ring dropped must show somewhere.
        let mut devs = serde_json::Map::new();
        for (name, d) in ["client", "server"].into_iter().zip(&self.devs) {
            let st = d.dev_stats();
            devs.insert(name.into(), serde_json::json!({"rx_dropped": st.rx_dropped, "tx_dropped": st.tx_dropped}));
        }
        m.insert("devices".into(), serde_json::Value::Object(devs));
        m
    }
}
