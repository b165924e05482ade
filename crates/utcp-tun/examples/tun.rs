//! utcp on a TUN device, talking to the Linux kernel's own TCP.
//!
//! ```text
//! sudo cargo run -p utcp-tun --example tun
//! ```
//!
//! The example makes a network namespace with a tun device (`tun0`: the kernel side is
//! 10.77.0.1/24, utcp is 10.77.0.2), runs itself again inside it, and there: a kernel socket
//! (`std::net`) listens on 10.77.0.1:7 and echoes; a utcp stack on `tun0` connects to it,
//! sends 1 MiB, shuts its write side down and reads the echo to EOF. It prints utcp's
//! counters that changed and the device's, then removes the namespace.
//!
//! Without root, `/dev/net/tun` or the `ip` tool it says why it skips, and exits 0.
//!
//! (It lives in `utcp-tun`, not `utcp`: the device crate depends on the stack, not the other
//! way round.)

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4};
use std::process::{Command, Stdio};
use std::sync::Arc;
use utcp::api::TcpStream;
use utcp::host::{HostThreads, MonotonicClock};
use utcp::netdev::NetDevice;
use utcp::stack::StackCore;
use utcp::time::Clock;
use utcp::Stack;
use utcp_tun::{TunConfig, TunDevice};

const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const UTCP_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const PORT: u16 = 7;
const BYTES: usize = 1 << 20;
/// Set in the environment of the copy that runs inside the namespace.
const INNER: &str = "UTCP_TUN_EXAMPLE_INNER";

/// Why this machine cannot run the example, if it cannot.
fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
    if euid != Some("0") {
        return Some("not root (creating a network namespace and a tun device needs it)".into());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    let ip = Command::new("ip").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !ip.is_ok_and(|s| s.success()) {
        return Some("the ip tool (iproute2) is not installed".into());
    }
    None
}

fn sh(cmd: &str) -> Result<(), String> {
    let o = Command::new("sh").args(["-c", cmd]).output().map_err(|e| format!("sh: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd}: {}", String::from_utf8_lossy(&o.stderr).trim()))
    }
}

/// The namespace, removed on drop.
struct Netns(String);

impl Netns {
    fn create() -> Result<Netns, String> {
        let name = format!("utcp-example-{}", std::process::id());
        let _ = sh(&format!("ip netns del {name} 2>/dev/null"));
        let ns = Netns(name);
        let n = &ns.0;
        sh(&format!("ip netns add {n}"))?;
        sh(&format!(
            "ip -n {n} link set lo up && ip netns exec {n} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
             net.ipv6.conf.default.disable_ipv6=1 && ip -n {n} tuntap add dev tun0 mode tun && \
             ip -n {n} addr add {KERNEL_IP}/24 dev tun0 && ip -n {n} link set tun0 up"
        ))?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&format!("ip netns del {}", self.0));
    }
}

/// Outside: make the namespace and run this program again inside it.
fn outer() -> Result<(), String> {
    if let Some(why) = unavailable() {
        println!("tun example skipped: {why}");
        return Ok(());
    }
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) => {
            println!("tun example skipped: cannot set up a network namespace with a tun device: {e}");
            return Ok(());
        }
    };
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.0]).arg(exe).env(INNER, "1");
    if cfg!(test) {
        // Run as a test: the copy runs just this test.
        cmd.args(["--exact", "tests::runs_to_completion", "--nocapture", "--test-threads=1"]);
    }
    let st = cmd.status().map_err(|e| format!("ip netns exec: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("the run inside the namespace failed: {st}"))
    }
}

fn byte(i: usize) -> u8 {
    (i ^ (i >> 8) ^ (i >> 16).wrapping_mul(7)) as u8
}

/// Inside the namespace: the kernel echoes, utcp sends.
fn inner() -> Result<(), String> {
    // The kernel's side: an echo server on tun0's address.
    let kernel = std::net::TcpListener::bind((KERNEL_IP, PORT)).map_err(|e| format!("kernel bind: {e}"))?;
    let echo = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut s, _) = kernel.accept()?;
        let mut r = s.try_clone()?;
        std::io::copy(&mut r, &mut s)
    });

    // utcp's side: a stack on tun0 with its host threads.
    let tun = TunDevice::open(&TunConfig {
        name: "tun0".into(),
        offload: true,
        mtu: 1500,
        txqueuelen: utcp_tun::DEFAULT_TXQUEUELEN,
    })
    .map_err(|e| format!("opening tun0: {e}"))?;
    let tun = Arc::new(tun);
    let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::default());
    let core = StackCore::new(UTCP_IP, 1500, clock, std::process::id() as u64 ^ 0x7e57);
    core.attach_device(tun.clone() as Arc<dyn NetDevice>);
    let threads = HostThreads::start(core.clone(), Some(tun.clone()));
    let stack = Arc::new(Stack::from_core(core));
    let mode = if tun.offload() { "offloads (vnet hdr, csum, tso4)" } else { "plain" };
    println!("utcp {UTCP_IP} on {} ({mode}) -> kernel {KERNEL_IP}:{PORT}", tun.name());

    let before: std::collections::HashMap<_, _> = stack.core.net.mib.snapshot().into_iter().collect();
    let mut c = TcpStream::connect(&stack, SocketAddrV4::new(KERNEL_IP, PORT)).map_err(|e| format!("connect: {e}"))?;
    let data: Vec<u8> = (0..BYTES).map(byte).collect();
    let mut r = TcpStream::from_fd(&stack, stack.dup(c.fd()).map_err(|e| format!("dup: {e}"))?);
    let reader = std::thread::spawn(move || {
        let mut back = Vec::with_capacity(BYTES);
        r.read_to_end(&mut back).map(|_| back)
    });
    c.write_all(&data).map_err(|e| format!("send: {e}"))?;
    c.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
    let back = reader.join().map_err(|_| "reader panicked")?.map_err(|e| format!("recv: {e}"))?;
    let echoed = echo.join().map_err(|_| "echo panicked")?.map_err(|e| format!("kernel echo: {e}"))?;
    if back != data || echoed != BYTES as u64 {
        return Err(format!("echo differs: sent {BYTES}, kernel echoed {echoed}, got back {}", back.len()));
    }
    println!("{BYTES} bytes to the kernel and back, intact");
    drop(c);
    std::thread::sleep(std::time::Duration::from_millis(50)); // let the last ACKs leave
    println!("utcp counters that changed:");
    for (n, v) in stack.core.net.mib.snapshot() {
        let b = before.get(n).copied().unwrap_or(0);
        if v != b {
            println!("  {n:<28}{}", v - b);
        }
    }
    print!("tun0:\n{}", tun.stats.nstat());
    threads.stop();
    Ok(())
}

fn run() -> Result<(), String> {
    if std::env::var_os(INNER).is_some() {
        inner()
    } else {
        outer()
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("tun example: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_to_completion() {
        super::run().unwrap();
    }
}
