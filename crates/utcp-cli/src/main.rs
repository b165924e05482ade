//! `utcp`: command-line front end of the utcp userspace TCP/IP stack.
//!
//! `utcp bench` runs two workloads (bulk throughput with an integrity check,
//! request/response latency) over utcp and, with `--kernel`, over kernel TCP
//! on loopback for comparison. `--json` prints one JSON object on stdout
//! (see `report.rs` for its keys); progress bars only ever go to stderr.
//!
//! Exit status (also in `--help` and the README): see [`EXIT_STATUS`].
#![forbid(unsafe_code)]

/// mimalloc (glibc malloc serializes cross-thread frees on an arena lock, and segment
/// buffers are allocated by one thread and freed by another), counting every allocation so
/// that `utcp bench` can report `alloc.per_segment`.
#[global_allocator]
static GLOBAL: utcp_alloc::Counting<mimalloc::MiMalloc> = utcp_alloc::Counting::new(mimalloc::MiMalloc);

/// `println!` for the command's output, except that a closed pipe (`utcp bench --json | head`)
/// ends the process quietly, as SIGPIPE ends a C program, instead of panicking: Rust ignores
/// SIGPIPE, so the write fails with EPIPE and `println!` would panic with a backtrace.
macro_rules! outln {
    ($($t:tt)*) => { $crate::write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` with [`outln!`]'s handling of a closed pipe.
macro_rules! out {
    ($($t:tt)*) => { $crate::write_stdout(format_args!($($t)*)) };
}

mod args;
mod bench;
mod connect;
mod flood;
mod http;
mod kernel;
mod multi;
mod netns;
mod peers;
mod report;
mod serve;
mod soak;
mod tun_host;
mod units;
mod utcp_transport;

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::args::{BenchArgs, BenchSettings};
use crate::bench::{run_bulk, run_rr, BenchConfig, Transport};
use crate::kernel::KernelTransport;
use crate::report::{AllocReport, Report, TransportReport};
// The utcp transport: two utcp stacks on a memlink, built from the validated settings. Everything
// else (workloads, kernel baseline, ratios, JSON) is generic over `bench::Transport`.
use crate::utcp_transport::UtcpTransport;

/// Exit status of a bench run whose data arrived damaged (the report is still printed).
const EXIT_MISMATCH: u8 = 4;
/// Exit status of a bench run that outlasted `--timeout`.
const EXIT_TIMEOUT: u8 = 3;
/// Exit status when the output's reader went away (a closed pipe): 128 + SIGPIPE.
const EXIT_BROKEN_PIPE: i32 = 141;

/// The exit statuses, as `--help` shows them.
const EXIT_STATUS: &str = "\
Exit status:
  0  success (bench: every transport's data arrived intact; drill: every script passed)
  1  the run failed (an error, or a drill script failed, or drill found no script)
  2  usage error (bad command line)
  3  bench: the run outlasted --timeout
  4  bench: a transport delivered damaged data (integrity mismatch; the report is still printed)
  141  the output's reader went away (a closed pipe; as a program killed by SIGPIPE)";

#[derive(Parser, Debug)]
#[command(
    name = "utcp",
    version,
    about = "utcp: a userspace TCP/IP stack",
    propagate_version = true,
    after_long_help = EXIT_STATUS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
enum Command {
    /// Benchmark bulk throughput and request/response latency, optionally
    /// side by side with kernel TCP on loopback (--kernel)
    Bench(BenchArgs),
    /// Run packetdrill scripts (files or directories of *.pkt) against utcp in virtual time
    Drill(DrillArgs),
    /// Run a short transfer between two utcp hosts and print their counters as nstat does
    Stat(StatArgs),
    /// Serve echo, discard or HTTP files on a TUN device, until SIGINT/SIGTERM
    Serve(serve::ServeArgs),
    /// Echo, discard or HTTP client on a TUN device
    Connect(connect::ConnectArgs),
    /// Flood a utcp listener on a memlink with spoofed SYNs while a real client connects and
    /// transfers through it
    Flood(flood::FloodArgs),
    /// Soak: N connections on an impaired memlink for S seconds with random reads, writes,
    /// shutdowns, closes and resets; every clean stream checked byte for byte
    Soak(soak::SoakArgs),
}

/// `utcp drill` flags, as packetdrill takes them (defaults: the Linux selftests' IPv4 ones).
#[derive(clap::Args, Debug)]
#[command(after_long_help = "Exit status: 0 when every script passed; 1 when a script failed or none was found; 2 on \
                             a usage error.")]
struct DrillArgs {
    /// Script files or directories (searched recursively for *.pkt)
    #[arg(required = true)]
    paths: Vec<std::path::PathBuf>,
    /// MSS of inbound GSO packets (packetdrill --mss) [default: none]
    #[arg(long, value_name = "N")]
    mss: Option<u32>,
    /// Timing tolerance in microseconds [default: 4000]
    #[arg(long = "tolerance_usecs", value_name = "USECS")]
    tolerance_usecs: Option<i64>,
    /// IP version: ipv4, ipv6 (IPv6 packets and sockets), ipv4-mapped-ipv6 (IPv4 packets, AF_INET6 sockets) [default: ipv4]
    #[arg(long = "ip_version", value_name = "VERSION", value_parser = ["ipv4", "ipv6", "ipv4-mapped-ipv6"])]
    ip_version: Option<String>,
    /// The stack's address [default: 192.168.0.1]
    #[arg(long = "local_ip", value_name = "ADDR")]
    local_ip: Option<std::net::IpAddr>,
    /// The script's peer address, A.B.C.D or A.B.C.D/N [default: 192.0.2.1]
    #[arg(long = "remote_ip", value_name = "ADDR", value_parser = remote_ip)]
    remote_ip: Option<String>,
    /// Gateway to the peer; must be in the local subnet [default: 192.168.0.1]
    #[arg(long = "gateway_ip", value_name = "ADDR")]
    gateway_ip: Option<std::net::IpAddr>,
    /// Netmask of the local subnet [default: 255.255.0.0]
    #[arg(long = "netmask_ip", value_name = "MASK")]
    netmask_ip: Option<std::net::Ipv4Addr>,
    /// Device MTU [default: 1500]
    #[arg(long, value_name = "N", value_parser = utcp_drill::parse_mtu)]
    mtu: Option<u32>,
    /// NAME=VALUE defines
    #[arg(short = 'D', value_name = "NAME=VALUE")]
    defines: Vec<String>,
    /// Print every event as it runs
    #[arg(short, long)]
    verbose: bool,
}

/// `utcp stat` flags.
#[derive(clap::Args, Debug)]
struct StatArgs {
    /// Bytes to transfer before printing the counters (e.g. 1M, 64K, or a byte count)
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = units::parse_size, allow_hyphen_values = true)]
    bytes: u64,
    /// Print zero counters too (nstat -a)
    #[arg(short, long)]
    all: bool,
}

/// Checks a `--remote_ip` value, keeping its text (the script runner parses it again).
fn remote_ip(v: &str) -> Result<String, String> {
    utcp_drill::parse_remote_ip(v).map(|_| v.to_string())
}

fn cmd_drill(a: &DrillArgs) -> Result<ExitCode, String> {
    let mut o = utcp_drill::DrillOptions::default();
    // As in packetdrill, flags given on the command line override the script's own.
    let given = [
        ("mss", a.mss.map(|v| v.to_string())),
        ("tolerance_usecs", a.tolerance_usecs.map(|v| v.to_string())),
        ("ip_version", a.ip_version.clone()),
        ("local_ip", a.local_ip.map(|v| v.to_string())),
        ("remote_ip", a.remote_ip.clone()),
        ("gateway_ip", a.gateway_ip.map(|v| v.to_string())),
        ("netmask_ip", a.netmask_ip.map(|v| v.to_string())),
        ("mtu", a.mtu.map(|v| v.to_string())),
    ];
    o.command_line = given.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect();
    for d in &a.defines {
        let (k, v) = d.split_once('=').ok_or_else(|| format!("-D {d}: expected NAME=VALUE"))?;
        o.defines.push((k.to_string(), v.to_string()));
    }
    o.verbose = a.verbose;
    let sum = utcp_drill::run_paths(&a.paths, &o);
    Ok(if sum.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn cmd_stat(a: &StatArgs) -> Result<ExitCode, String> {
    use std::io::{Read, Write};
    use std::net::SocketAddrV4;
    let (ha, hb) = utcp::api::memlink_pair(utcp::netdev::memlink::LinkConfig::default());
    let addr = SocketAddrV4::new(utcp::api::ADDR_B, 9);
    let l =
        utcp::api::TcpListener::bind(&hb.stack, addr, 8).map_err(|e| format!("stat: cannot listen on {addr}: {e}"))?;
    let mut c =
        utcp::api::TcpStream::connect(&ha.stack, addr).map_err(|e| format!("stat: cannot connect to {addr}: {e}"))?;
    let (mut s, _) = l.accept().map_err(|e| format!("stat: accept on {addr}: {e}"))?;
    let n = a.bytes;
    let t = std::thread::spawn(move || -> io::Result<()> {
        let buf = vec![0x5au8; 64 * 1024];
        let mut left = n;
        while left > 0 {
            let k = left.min(buf.len() as u64) as usize;
            c.write_all(&buf[..k])?;
            left -= k as u64;
        }
        c.shutdown(std::net::Shutdown::Write)
    });
    let mut buf = vec![0u8; 64 * 1024];
    let read = loop {
        match s.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
    };
    t.join().map_err(|_| "stat: the writer thread panicked".to_string())?.map_err(|e| format!("stat: send: {e}"))?;
    read.map_err(|e| format!("stat: receive: {e}"))?;
    outln!("# host A ({})", utcp::api::ADDR_A);
    out!("{}", ha.stack.mib().nstat(a.all));
    outln!("# host B ({})", utcp::api::ADDR_B);
    out!("{}", hb.stack.mib().nstat(a.all));
    Ok(ExitCode::SUCCESS)
}

/// Runs both workloads over one transport (the bulk one as `streams` concurrent streams when
/// above 1), and counts the allocations the bulk phase made per received segment.
fn run_transport<T: Transport>(
    t: &mut T,
    cfg: &BenchConfig,
    streams: u32,
) -> io::Result<(TransportReport, Option<AllocReport>)> {
    let ctx = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    let name = t.name().to_string();
    let (a0, s0) = (utcp_alloc::allocations(), t.segments_in());
    let bulk = match streams {
        1 => run_bulk(t, cfg),
        n => multi::run_streams(t, cfg, n as usize),
    }
    .map_err(|e| ctx(&format!("{name} bulk"), e))?;
    let (a1, s1) = (utcp_alloc::allocations(), t.segments_in());
    let alloc = s0.zip(s1).map(|(s0, s1)| {
        let segments = s1.saturating_sub(s0);
        let allocations = a1 - a0;
        AllocReport { allocations, segments, per_segment: allocations as f64 / segments.max(1) as f64 }
    });
    let rr = run_rr(t, cfg).map_err(|e| ctx(&format!("{name} rr"), e))?;
    Ok((TransportReport::new(&name, bulk, rr, t.counters()), alloc))
}

/// Runs the workloads over `main` and, if given, over `baseline`, and
/// builds the report (ratios are main relative to baseline).
fn run_bench<M: Transport, B: Transport>(
    s: &BenchSettings,
    main: &mut M,
    baseline: Option<&mut B>,
) -> io::Result<Report> {
    let (main, alloc) = run_transport(main, &s.cfg, s.streams)?;
    let baseline = baseline.map(|b| run_transport(b, &s.cfg, s.streams).map(|r| r.0)).transpose()?;
    let mut r = Report::new(s, main, baseline);
    r.alloc = alloc;
    Ok(r)
}

/// The kernel baseline in a lossy namespace (`--kernel --loss P`); `Err` is the reason it was
/// skipped.
fn run_lossy_kernel(s: &BenchSettings) -> Result<(TransportReport, serde_json::Value), String> {
    let ns = netns::LossNetns::create(s.impairments.loss, s.mtu)?;
    let (bulk, rr, used) =
        ns.run_kernel(&s.cfg, s.streams, &s.kernel_congestion).map_err(|e| format!("kernel in namespace: {e}"))?;
    let link = serde_json::json!({
        "where": "network namespace, loopback",
        "mtu": ns.mtu,
        "offloads_off": ns.offloads_off,
        "loss": ns.loss,
        "rule": "iptables -m statistic --mode random (INPUT: each direction once)",
        "congestion_control": used,
        "namespace_default_congestion_control": ns.congestion_control(),
        "not_applied": not_applied(&s.impairments),
    });
    Ok((TransportReport::new("kernel", bulk, rr, ns.counters()), link))
}

/// Where the plain kernel baseline ran, and the congestion control its sockets used.
fn kernel_link(k: &KernelTransport) -> serde_json::Value {
    serde_json::json!({"where": "loopback", "congestion_control": k.congestion_control()})
}

/// Impairments the lossy kernel namespace does not reproduce (iptables expresses loss only).
fn not_applied(i: &args::Impairments) -> Vec<&'static str> {
    let mut v = Vec::new();
    for (name, on) in [
        ("reorder", i.reorder > 0.0),
        ("dup", i.dup > 0.0),
        ("corrupt", i.corrupt > 0.0),
        ("delay", !i.delay.is_zero()),
        ("rate", i.rate.is_some()),
    ] {
        if on {
            v.push(name);
        }
    }
    v
}

/// `--idle N`: N utcp connections (and with `--kernel`, N kernel ones), memory per socket.
fn cmd_idle(s: &BenchSettings, n: u64) -> Result<ExitCode, String> {
    let mut u = UtcpTransport::for_connections(s, n).map_err(|e| format!("utcp transport: {e}"))?;
    let (idle, pairs) = multi::run_idle(&mut u, n).map_err(|e| format!("utcp idle: {e}"))?;
    let mib = u.counters();
    drop(pairs);
    let v = serde_json::json!({"transport": "utcp", "idle": idle, "mib": mib});
    if s.json {
        outln!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
    } else {
        outln!(
            "utcp idle: {} connections, {:.0} bytes per socket (RSS {} -> {} bytes), set up at {:.0} connections/s",
            idle.connections,
            idle.bytes_per_socket,
            idle.rss_before,
            idle.rss_after,
            idle.setup_per_s
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_bench(a: &BenchArgs) -> Result<ExitCode, String> {
    let s = a.settings()?;
    if let Some(limit) = s.timeout {
        // A stalled transport may block a workload thread forever, and a
        // generic stream offers no way to cancel that: end the process.
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            eprintln!("utcp: error: bench did not finish within {limit:?} (--timeout)");
            std::process::exit(EXIT_TIMEOUT.into());
        });
    }
    if let Some(n) = s.idle {
        return cmd_idle(&s, n);
    }
    let lossy_kernel = s.with_kernel && s.impairments.loss > 0.0;
    let mut report = if s.kernel_only {
        let mut k = KernelTransport::new(Some(&s.kernel_congestion)).map_err(|e| format!("kernel transport: {e}"))?;
        let r = run_bench(&s, &mut k, None::<&mut KernelTransport>);
        r.map(|r| r.with_kernel_link(kernel_link(&k)))
    } else {
        let mut u = match s.streams {
            1 => UtcpTransport::new(&s),
            n => UtcpTransport::for_connections(&s, n.into()),
        }
        .map_err(|e| format!("utcp transport: {e}"))?;
        let mut k = match s.with_kernel && !lossy_kernel {
            true => {
                Some(KernelTransport::new(Some(&s.kernel_congestion)).map_err(|e| format!("kernel transport: {e}"))?)
            }
            false => None,
        };
        let r = run_bench(&s, &mut u, k.as_mut());
        let utcp_cc = u.congestion_control();
        r.map(|r| match &k {
            Some(k) => r.with_kernel_link(kernel_link(k)),
            None => r,
        })
        .map(|mut r| {
            r.utcp_congestion_control = Some(utcp_cc);
            r
        })
    }
    .map_err(|e| e.to_string())?;
    if lossy_kernel {
        report = match run_lossy_kernel(&s) {
            Ok((k, link)) => {
                let cc = report.utcp_congestion_control.take();
                let mut r = Report::new(&s, report.main, Some(k)).with_alloc(report.alloc);
                r.kernel_link = Some(link);
                r.utcp_congestion_control = cc;
                r
            }
            Err(why) => {
                eprintln!("utcp: kernel side skipped: {why}");
                report.kernel_link = Some(serde_json::json!({ "skipped": why }));
                report
            }
        };
    }
    if s.peers {
        let p = peers::run_smoltcp(&s.cfg, s.mtu).map_err(|e| format!("smoltcp: {e}"))?;
        report = report.with_peers(p);
    }

    if s.json {
        outln!("{}", report.to_json());
    } else {
        out!("{}", report.to_table());
    }
    Ok(if report.all_ok() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_MISMATCH) })
}

/// `utcp soak`: exit status 0 when nothing was lost, mismatched or hung, 4 otherwise.
fn cmd_soak(a: &soak::SoakArgs) -> Result<ExitCode, String> {
    let r = soak::run(a)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?);
    } else {
        outln!(
            "connections {} (clean {}, reset {}), verified {} bytes, mismatched {}, hung {}, unexpected errors {}, \
             rss {} -> {} bytes ({} before the soak's threads first ran, peak {}), heap {} -> {} bytes, {:.1} s",
            r.connections,
            r.clean_streams,
            r.reset_streams,
            r.verified_bytes,
            r.mismatched_streams,
            r.hung_connections,
            r.unexpected_errors,
            r.rss_start,
            r.rss_end,
            r.rss_before_threads,
            r.rss_peak,
            r.heap_start,
            r.heap_end,
            r.seconds
        );
    }
    let ok = r.mismatched_streams == 0
        && r.hung_connections == 0
        && r.unexpected_errors == 0
        && r.sockets_left == 0
        && r.connections > 0;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_MISMATCH) })
}

/// Writes the command's output; on a closed pipe the process exits with status 141 (the
/// shell's 128 + SIGPIPE, what `set -o pipefail` sees of a C program killed by SIGPIPE), on
/// any other write error with 1 and a message on stderr.
fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut o = io::stdout().lock();
    if let Err(e) = o.write_fmt(args).and_then(|()| o.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(EXIT_BROKEN_PIPE);
        }
        eprintln!("utcp: error: writing the output: {e}");
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Bench(a) => cmd_bench(a),
        Command::Drill(a) => cmd_drill(a),
        Command::Stat(a) => cmd_stat(a),
        Command::Serve(a) => serve::cmd_serve(a),
        Command::Connect(a) => connect::cmd_connect(a),
        Command::Flood(a) => flood::cmd_flood(a),
        Command::Soak(a) => cmd_soak(a),
    };
    result.unwrap_or_else(|e| {
        eprintln!("utcp: error: {e}");
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use serde_json::Value;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    struct UnixPair;
    impl Transport for UnixPair {
        type Stream = UnixStream;
        fn name(&self) -> &str {
            "unix"
        }
        fn connect_pair(&mut self) -> io::Result<(UnixStream, UnixStream)> {
            UnixStream::pair()
        }
    }

    fn small(extra: &[&str]) -> BenchSettings {
        let mut argv = vec!["utcp", "bench", "--bytes", "4M", "--round-trips", "100", "--no-progress"];
        argv.extend_from_slice(extra);
        let Command::Bench(a) = Cli::try_parse_from(argv).unwrap().command else { panic!("not bench") };
        a.settings().unwrap()
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
        assert!(Cli::try_parse_from(["utcp", "bench", "--kernel", "--json"]).is_ok());
        assert!(Cli::try_parse_from(["utcp", "bench", "--loss", "2"]).is_err());
        assert!(Cli::try_parse_from(["utcp"]).is_err());
    }

    /// `--congestion` sets utcp's algorithm on both stacks (the report names it); an unknown
    /// name is refused when the transport is built.
    #[test]
    fn congestion_selects_utcp_algorithm() {
        let s = small(&["--congestion", "bbr"]);
        let mut u = UtcpTransport::new(&s).unwrap();
        assert_eq!(u.congestion_control(), "bbr");
        let r = run_bench(&s, &mut u, None::<&mut KernelTransport>).unwrap();
        assert!(r.all_ok());
        let s = small(&["--congestion", "vegas"]);
        let e = UtcpTransport::new(&s).err().expect("vegas refused");
        assert!(e.to_string().contains("--congestion vegas"), "{e}");
    }

    #[test]
    fn kernel_only_report() {
        let s = small(&["--kernel-only", "--json"]);
        let r = run_bench(&s, &mut KernelTransport::new(None).unwrap(), None::<&mut KernelTransport>).unwrap();
        assert!(r.all_ok());
        let v: Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["integrity"], "ok");
        assert_eq!(v["transport"], "kernel");
        assert_eq!(v["bulk"]["bytes"], 4 << 20);
        assert_eq!(v["rr"]["round_trips"], 100);
        assert!(v["rr"]["rtt_us"]["p99"].is_number());
        assert!(v.get("kernel").is_none());
    }

    #[test]
    fn utcp_streams_idle_and_alloc_on_a_clean_link() {
        let s = small(&["--streams", "8"]);
        let mut u = UtcpTransport::new(&s).unwrap();
        let r = run_bench(&s, &mut u, None::<&mut KernelTransport>).unwrap();
        assert!(r.all_ok());
        let a = r.alloc.as_ref().expect("utcp counts its segments");
        assert!(a.segments >= (4 << 20) / 1460 && a.allocations > 0, "{a:?}");
        let v: Value = serde_json::from_str(&r.to_json()).unwrap();
        assert!(v["alloc"]["per_segment"].is_number());
        // Eight streams on two shared cores: a reader preempted while it owns its socket holds
        // its ACKs (they wait in the backlog for release_sock) past the 10 ms PTO floor, so a
        // loss probe can fire and be DSACKed, as Linux's would under the same stall. The strict
        // clean-link check (no probe at all) is `real_threads::clean_*`; here, nothing but
        // probes: no out-of-order data, no RTO, no fast retransmit.
        let n = |m: &Value, k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
        for side in ["client", "server"] {
            let m = &v["mib"][side];
            assert_eq!(n(m, "TcpExtTCPOFOQueue"), 0, "{side} OFO on a clean link: {m}");
            assert_eq!(n(m, "TcpExtTCPTimeouts"), 0, "{side} RTO on a clean link: {m}");
            assert!(n(m, "TcpRetransSegs") <= n(m, "TcpExtTCPLossProbes"), "{side} retransmits on a clean link: {m}");
        }
        let mut u = UtcpTransport::for_connections(&s, 300).unwrap();
        let (idle, mut pairs) = multi::run_idle(&mut u, 300).unwrap();
        assert_eq!((idle.connections, pairs.len()), (300, 300));
        // RSS is the whole process's and other tests free memory while this one runs, so its
        // growth is a report, not something to assert. What must hold: every idle pair is still
        // open and moves a byte each way after all 300 were set up.
        assert!(idle.rss_before > 0 && idle.bytes_per_socket.is_finite());
        let mut b = [0u8; 1];
        for (i, (c, s)) in pairs.iter_mut().enumerate() {
            c.write_all(&[i as u8]).unwrap();
            s.read_exact(&mut b).unwrap();
            assert_eq!(b[0], i as u8, "pair {i}");
            s.write_all(&[!(i as u8)]).unwrap();
            c.read_exact(&mut b).unwrap();
            assert_eq!(b[0], !(i as u8), "pair {i}");
        }
    }

    #[test]
    fn peers_report_smoltcp_ratios() {
        let s = small(&["--peers", "--json"]);
        let mut u = UtcpTransport::new(&s).unwrap();
        let r = run_bench(&s, &mut u, None::<&mut KernelTransport>).unwrap();
        let r = r.with_peers(peers::run_smoltcp(&s.cfg, s.mtu).unwrap());
        let v: Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["peers"]["smoltcp"]["integrity"], "ok");
        assert!(v["peers"]["smoltcp"]["bulk"]["gbytes_per_s"].is_number());
        assert!(v["peers"]["smoltcp"]["rr"]["rtt_us"]["p50"].is_number());
        assert!(v["ratio"]["smoltcp_bulk"].is_number());
        assert!(v["ratio"]["bulk"].is_null(), "no kernel ran");
        assert!(r.to_table().contains("smoltcp"));
    }

    #[test]
    fn generic_main_with_kernel_baseline() {
        // Any transport can stand in for utcp; the kernel is the baseline.
        let s = small(&["--kernel", "--busy-poll", "20"]);
        let mut k = KernelTransport::new(None).unwrap();
        let r = run_bench(&s, &mut UnixPair, Some(&mut k)).unwrap();
        let v: Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["transport"], "unix");
        assert_eq!(v["kernel"]["transport"], "kernel");
        assert_eq!(v["kernel"]["integrity"], "ok");
        assert!(v["ratio"]["bulk"].is_number());
        assert!(v["ratio"]["rtt_p50"].is_number());
        assert!(r.to_table().contains("ratio"));
    }
}
