//! The part `utcp serve` and `utcp connect` share: a utcp stack on a TUN device (optionally
//! recorded with `--pcap`), its host threads, SIGINT/SIGTERM, and the closing counters.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use utcp::host::{HostThreads, MonotonicClock};
use utcp::netdev::pcap::PcapDevice;
use utcp::netdev::NetDevice;
use utcp::stack::StackCore;
use utcp::time::Clock;
use utcp::Stack;
use utcp_tun::{TunConfig, TunDevice};

/// Flags every TUN command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct TunArgs {
    /// TUN interface: an existing persistent one (ip tuntap add dev NAME mode tun) or a new one
    #[arg(long, value_name = "NAME")]
    pub tun: String,
    /// utcp's address and prefix on the interface, e.g. 10.77.0.2/24
    #[arg(long, value_name = "ADDR/N", value_parser = parse_cidr)]
    pub addr: (Ipv4Addr, u8),
    /// utcp's IPv6 address and prefix on the interface, e.g. fd77::2/64 (TCP over IPv6 and
    /// ICMPv6 echo; `serve` then listens on both families)
    #[arg(long, value_name = "ADDR6/N", value_parser = parse_cidr6)]
    pub addr6: Option<(std::net::Ipv6Addr, u8)>,
    /// Interface MTU (the kernel side's `ip link` MTU)
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u32).range(576..=65535))]
    pub mtu: u32,
    /// Raise the device's txqueuelen (its ring toward utcp) to at least N packets; 0: leave it
    #[arg(long, value_name = "N", default_value_t = utcp_tun::DEFAULT_TXQUEUELEN)]
    pub txqueuelen: u32,
    /// Plain mode only: no IFF_VNET_HDR, no checksum/TSO offloads
    #[arg(long)]
    pub no_offload: bool,
    /// Record every packet in a pcap file (closed complete on exit, SIGINT and SIGTERM included)
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
}

/// Parses `A.B.C.D/N`.
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, n) = s.split_once('/').ok_or_else(|| format!("{s:?}: expected ADDR/PREFIX, e.g. 10.77.0.2/24"))?;
    let a: Ipv4Addr = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
    let n: u8 = n.parse().map_err(|e| format!("{n:?}: {e}"))?;
    if n > 32 {
        return Err(format!("prefix /{n} is longer than 32"));
    }
    Ok((a, n))
}

/// Parses `ADDR6/N`.
pub fn parse_cidr6(s: &str) -> Result<(std::net::Ipv6Addr, u8), String> {
    let (a, n) = s.split_once('/').ok_or_else(|| format!("{s:?}: expected ADDR6/PREFIX, e.g. fd77::2/64"))?;
    let a: std::net::Ipv6Addr = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
    let n: u8 = n.parse().map_err(|e| format!("{n:?}: {e}"))?;
    if n > 128 {
        return Err(format!("prefix /{n} is longer than 128"));
    }
    Ok((a, n))
}

/// A utcp stack running on a TUN device.
pub struct TunHost {
    /// The stack.
    pub stack: Arc<Stack>,
    /// The TUN device.
    pub tun: Arc<TunDevice>,
    dev: Arc<dyn NetDevice>,
    threads: Option<HostThreads>,
    prefix: (Ipv4Addr, u8),
    prefix6: Option<(std::net::Ipv6Addr, u8)>,
}

impl TunHost {
    /// Opens the device and starts the stack on it.
    pub fn start(a: &TunArgs) -> Result<TunHost, String> {
        let tun = TunDevice::open(&TunConfig {
            name: a.tun.clone(),
            offload: !a.no_offload,
            mtu: a.mtu,
            txqueuelen: a.txqueuelen,
        })
        .map_err(|e| format!("opening TUN device {:?}: {e}", a.tun))?;
        let tun = Arc::new(tun);
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::default());
        let dev: Arc<dyn NetDevice> = match &a.pcap {
            Some(p) => Arc::new(
                PcapDevice::create(tun.clone(), p, clock.clone()).map_err(|e| format!("{}: {e}", p.display()))?,
            ),
            None => tun.clone(),
        };
        let secret = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ (std::process::id() as u64) << 32;
        let core = StackCore::new(a.addr.0, a.mtu, clock, secret);
        if let Some((a6, n)) = a.addr6 {
            core.net.set_addr6(a6, n);
        }
        core.attach_device(dev.clone());
        let threads = HostThreads::start(core.clone(), Some(dev.clone()));
        Ok(TunHost {
            stack: Arc::new(Stack::from_core(core)),
            tun,
            dev,
            threads: Some(threads),
            prefix: a.addr,
            prefix6: a.addr6,
        })
    }

    /// Whether `dst` is on the interface's subnet of its family (utcp has no gateway: every
    /// route is on-link); no IPv6 address, no IPv6 subnet.
    pub fn on_link(&self, dst: std::net::IpAddr) -> bool {
        match dst {
            std::net::IpAddr::V4(dst) => {
                let (a, n) = self.prefix;
                let mask = if n == 0 { 0 } else { u32::MAX << (32 - n as u32) };
                u32::from(a) & mask == u32::from(dst) & mask
            }
            std::net::IpAddr::V6(dst) => self.prefix6.is_some_and(|(a, n)| {
                let mask = if n == 0 { 0 } else { u128::MAX << (128 - n as u32) };
                u128::from(a) & mask == u128::from(dst) & mask
            }),
        }
    }

    /// One line saying which mode the device is in.
    pub fn describe(&self) -> String {
        let mode = if self.tun.offload() { "offloads (vnet hdr, csum, tso4)" } else { "plain" };
        let v6 = self.stack.core.net.local_addr6().map(|a| format!(" and {a}")).unwrap_or_default();
        format!("utcp: {}{v6} on {} ({mode})", self.prefix.0, self.tun.name())
    }

    /// Lets queued frames go out, stops the threads, completes the pcap and prints the
    /// counters (nstat format) on stdout.
    pub fn finish(mut self) -> Result<(), String> {
        // Give FINs/ACKs queued by the last closes a moment to leave.
        std::thread::sleep(Duration::from_millis(50));
        self.stack.core.dev_flush();
        if let Some(t) = self.threads.take() {
            t.stop();
        }
        let r = self.dev.sync().map_err(|e| format!("pcap: {e}"));
        out!("{}", self.stack.mib().nstat(false));
        out!("{}", self.tun.stats.nstat());
        r
    }
}

/// Runs `work` on its own thread and waits for it or for SIGINT/SIGTERM; on a signal calls
/// `interrupt` (which should make `work` return soon) and waits up to a second more.
/// Returns `work`'s result, or `Err(signal)` when interrupted.
pub fn run_until_signal<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    interrupt: impl FnOnce(),
) -> Result<T, i32> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("utcp-main".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .expect("spawn");
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(v) => return Ok(v),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(0),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(sig) = utcp_tun::sys::signalled() {
            interrupt();
            let _ = rx.recv_timeout(Duration::from_secs(1));
            return Err(sig);
        }
    }
}
