//! utcp-drill: a packetdrill script interpreter for utcp.
//!
//! Front end: [`lexer`] (tokens), [`parser`] ([`parse_script`]) and [`ast`]. Back end: [`exec`]
//! runs a script against a fresh utcp stack in virtual time (see its docs for the timing
//! model), [`packet`] builds inbound and matches outbound packets, [`shell`] interprets the
//! setup commands, [`python`] the `%{ assert ... }%` blocks.
//!
//! [`run_paths`] is the `utcp drill` entry point: it prints one line per script
//! (`PASS path`, `FAIL path:line: reason`) and a summary line; [`Summary::ok`] says whether the
//! run passed (at least one script ran, and none failed).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// `println!` for the per-script lines, except that a closed stdout (`utcp drill DIR | head`)
/// is not a panic: the scripts still run and the [`Summary`] still says how they went.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

pub mod ast;
pub mod exec;
pub mod lexer;
pub mod packet;
pub mod parser;
pub mod python;
pub mod shell;
pub mod symbols;
pub mod sysctl_support;

pub use parser::{parse_script, ParseError};

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// Options of a `utcp drill` run (packetdrill's names). The fields are the defaults, which a
/// script's own `--flags` override; [`DrillOptions::command_line`] overrides both, as
/// packetdrill's command line does.
#[derive(Clone, Debug)]
pub struct DrillOptions {
    /// `--mss`: the MSS packetdrill hands the tun device for inbound GSO packets (0 = none).
    pub mss: u32,
    /// `--tolerance_usecs`.
    pub tolerance_usecs: i64,
    /// `--ip_version`: `ipv4`, `ipv6` (IPv6 packets, AF_INET6 sockets; the addresses default
    /// to packetdrill's IPv6 ones) or `ipv4-mapped-ipv6` (IPv4 packets, AF_INET6 sockets).
    pub ip_version: String,
    /// `-D NAME=VALUE` defines.
    pub defines: Vec<(String, String)>,
    /// `--local_ip`: the stack's address.
    pub local_ip: Ipv4Addr,
    /// `--remote_ip`: the script's peer (packetdrill also takes `A.B.C.D/N`; the prefix only
    /// shapes its route).
    pub remote_ip: Ipv4Addr,
    /// `--gateway_ip`: must lie in the local subnet, as the route packetdrill adds through it
    /// requires. On a tun device (no link layer) the gateway changes no packet, so utcp's single
    /// route out of its one device is the same route.
    pub gateway_ip: Ipv4Addr,
    /// `--netmask_ip`: the local subnet's mask (a contiguous mask).
    pub netmask_ip: Ipv4Addr,
    /// `--mtu`: the device MTU (packetdrill's tun default 1500).
    pub mtu: u32,
    /// `--tcp_ts_tick_usecs` (0 = TS val not checked).
    pub tcp_ts_tick_usecs: u32,
    /// Options given on the command line (`name`, `value`, as in a script): applied after the
    /// script's own, so they win (packetdrill's `parse_and_finalize_config()`).
    pub command_line: Vec<(String, String)>,
    /// Trace events to stderr.
    pub verbose: bool,
}

impl Default for DrillOptions {
    /// packetdrill as the Linux selftests' `ksft_runner.sh` runs it for IPv4.
    fn default() -> Self {
        DrillOptions {
            mss: 0,
            tolerance_usecs: 4000,
            ip_version: "ipv4".into(),
            defines: vec![("CMSG_LEVEL_IP".into(), "SOL_IP".into()), ("CMSG_TYPE_RECVERR".into(), "IP_RECVERR".into())],
            local_ip: Ipv4Addr::new(192, 168, 0, 1),
            remote_ip: Ipv4Addr::new(192, 0, 2, 1),
            gateway_ip: Ipv4Addr::new(192, 168, 0, 1),
            netmask_ip: Ipv4Addr::new(255, 255, 0, 0),
            mtu: 1500,
            tcp_ts_tick_usecs: 0,
            command_line: Vec::new(),
            verbose: false,
        }
    }
}

/// Result of one script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed at `line` (0 = no line) for `reason`.
    Fail {
        /// Script line.
        line: usize,
        /// Why.
        reason: String,
    },
}

/// Results of a run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Each script and its outcome.
    pub results: Vec<(PathBuf, Outcome)>,
    /// Passed count.
    pub passed: usize,
    /// Failed count (scripts, and directories that could not be read).
    pub failed: usize,
}

impl Summary {
    /// The run passed: at least one script ran and nothing failed.
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }
}

/// Collects the scripts under `path` (a file as given, a directory's `*.pkt` recursively),
/// and the directories that cannot be read, with the error.
fn collect(path: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<(PathBuf, String)>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => return errors.push((path.to_path_buf(), format!("cannot read directory: {e}"))),
        };
        entries.sort();
        for e in entries {
            if e.is_dir() {
                collect(&e, out, errors);
            } else if e.extension().is_some_and(|x| x == "pkt") {
                out.push(e);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
}

/// Runs scripts (directories recurse to `*.pkt`), printing one line per script and a summary.
/// A run that finds no script prints why on stderr and is not [`Summary::ok`].
pub fn run_paths(paths: &[PathBuf], opts: &DrillOptions) -> Summary {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        collect(p, &mut files, &mut errors);
    }
    let mut sum = Summary::default();
    for (dir, e) in errors {
        sum.failed += 1;
        say!("FAIL {}: {e}", dir.display());
    }
    for f in files {
        let o = run_file(&f, opts);
        match &o {
            Outcome::Pass => {
                sum.passed += 1;
                say!("PASS {}", f.display());
            }
            Outcome::Fail { line, reason } => {
                sum.failed += 1;
                say!("FAIL {}:{}: {}", f.display(), line, reason);
            }
        }
        sum.results.push((f, o));
    }
    say!("{} passed, {} failed", sum.passed, sum.failed);
    if sum.results.is_empty() {
        let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!("utcp drill: error: no packetdrill script (*.pkt) found in {}", list.join(", "));
    }
    sum
}

/// The local subnet as packetdrill configures it: `netmask` must be contiguous and `gateway`
/// inside `local/netmask` (else its `ip route add ... via GATEWAY` fails and it stops).
pub fn check_network(local: Ipv4Addr, gateway: Ipv4Addr, netmask: Ipv4Addr) -> Result<(), String> {
    let m = u32::from(netmask);
    if m.leading_ones() + m.trailing_zeros() != 32 {
        return Err(format!("bad --netmask_ip {netmask}: not a contiguous netmask"));
    }
    if u32::from(local) & m != u32::from(gateway) & m {
        let net = Ipv4Addr::from(u32::from(local) & m);
        return Err(format!(
            "--gateway_ip {gateway} is not in the local subnet {net}/{} (--local_ip {local}, --netmask_ip {netmask})",
            m.leading_ones()
        ));
    }
    Ok(())
}

/// `A.B.C.D` or `A.B.C.D/N` (an IPv6 address, with a prefix up to 128), as packetdrill's
/// `--remote_ip` takes it.
pub fn parse_remote_ip(v: &str) -> Result<IpAddr, String> {
    let (addr, prefix) = v.split_once('/').map_or((v, None), |(a, p)| (a, Some(p)));
    let a: IpAddr = addr.parse().map_err(|_| format!("bad --remote_ip {v}: not an IP address"))?;
    let max = if a.is_ipv6() { 128 } else { 32 };
    if prefix.is_some_and(|p| p.parse::<u8>().map_or(true, |n| n > max)) {
        return Err(format!("bad --remote_ip {v}: the prefix length must be 0 to {max}"));
    }
    Ok(a)
}

/// packetdrill's IPv6 defaults (config.c): local, remote and gateway addresses.
pub const V6_DEFAULTS: (&str, &str, &str) = ("fd3d:0a0b:17d6::1", "fd3d:fa7b:d17d::1", "fd3d:0a0b:17d6:8888::1");

/// packetdrill's `--mtu` (as `ip link set mtu` takes it for a tun device: 68 to 65535).
pub fn parse_mtu(v: &str) -> Result<u32, String> {
    v.parse::<u32>().ok().filter(|m| (68..=65535).contains(m)).ok_or_else(|| format!("bad --mtu {v}: 68 to 65535"))
}

/// Runs one script file.
pub fn run_file(path: &Path, opts: &DrillOptions) -> Outcome {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Outcome::Fail { line: 0, reason: format!("cannot read script: {e}") },
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    run_text(&text, &dir, opts)
}

/// Runs a script given as text, with `dir` as its working directory.
pub fn run_text(text: &str, dir: &Path, opts: &DrillOptions) -> Outcome {
    let defines: HashMap<String, String> = opts.defines.iter().cloned().collect();
    let script = match parse_script(text, &defines) {
        Ok(s) => s,
        Err(e) => return Outcome::Fail { line: e.line, reason: format!("parse error: {}", e.message) },
    };
    let mut cfg = exec::RunCfg {
        tolerance_usecs: opts.tolerance_usecs,
        tolerance_percent: 12.5,
        mss: opts.mss,
        ts_tick_usecs: opts.tcp_ts_tick_usecs,
        local_ip: opts.local_ip.into(),
        remote_ip: opts.remote_ip.into(),
        mapped: false,
        mtu: opts.mtu,
        verbose: opts.verbose,
    };
    let (mut gateway, mut netmask): (IpAddr, Ipv4Addr) = (opts.gateway_ip.into(), opts.netmask_ip);
    let mut given = (false, false, false);
    let mut ip_version = opts.ip_version.clone();
    let script_opts = script.options.iter().map(|(k, v)| (1, k, v.clone().unwrap_or_default()));
    let cli_opts = opts.command_line.iter().map(|(k, v)| (0, k, v.clone()));
    for (line, k, val) in script_opts.chain(cli_opts) {
        let num = || val.parse::<i64>().map_err(|_| format!("bad value for --{k}: {val}"));
        let r: Result<(), String> = match k.as_str() {
            "tolerance_usecs" => num().map(|n| cfg.tolerance_usecs = n),
            "tolerance_percent" => {
                val.parse::<f64>().map(|n| cfg.tolerance_percent = n).map_err(|_| format!("bad value for --{k}: {val}"))
            }
            "mss" => num().map(|n| cfg.mss = n as u32),
            "tcp_ts_tick_usecs" => num().map(|n| cfg.ts_tick_usecs = n as u32),
            "ip_version" => {
                ip_version = val.clone();
                Ok(())
            }
            "define" | "verbose" => Ok(()),
            "local_ip" => {
                given.0 = true;
                val.parse().map(|a| cfg.local_ip = a).map_err(|_| format!("bad --local_ip {val}"))
            }
            "remote_ip" => {
                given.1 = true;
                parse_remote_ip(&val).map(|a| cfg.remote_ip = a)
            }
            "gateway_ip" => {
                given.2 = true;
                val.parse().map(|a| gateway = a).map_err(|_| format!("bad --gateway_ip {val}"))
            }
            "netmask_ip" => val.parse().map(|a| netmask = a).map_err(|_| format!("bad --netmask_ip {val}")),
            "mtu" => parse_mtu(&val).map(|m| cfg.mtu = m),
            other => Err(format!("unsupported option --{other}")),
        };
        if let Err(e) = r {
            return Outcome::Fail { line, reason: e };
        }
    }
    let v6 = match ip_version.as_str() {
        "ipv4" => false,
        "ipv4-mapped-ipv6" => {
            cfg.mapped = true;
            false
        }
        "ipv6" => {
            let d = |s: &str| s.parse::<IpAddr>().expect("default");
            if !given.0 {
                cfg.local_ip = d(V6_DEFAULTS.0);
            }
            if !given.1 {
                cfg.remote_ip = d(V6_DEFAULTS.1);
            }
            if !given.2 {
                gateway = d(V6_DEFAULTS.2);
            }
            true
        }
        other => return Outcome::Fail { line: 0, reason: format!("bad --ip_version: {other}") },
    };
    let family = |a: &IpAddr| a.is_ipv6() == v6;
    if !family(&cfg.local_ip) || !family(&cfg.remote_ip) || !family(&gateway) {
        let want = if v6 { "IPv6" } else { "IPv4" };
        return Outcome::Fail { line: 0, reason: format!("--ip_version={ip_version} needs {want} addresses") };
    }
    if let (IpAddr::V4(l), IpAddr::V4(g)) = (cfg.local_ip, gateway) {
        if let Err(e) = check_network(l, g, netmask) {
            return Outcome::Fail { line: 0, reason: e };
        }
    }
    let mut runner = exec::Runner::new(cfg, dir);
    if let Some(c) = &script.init_command {
        if let Err(f) = runner.run_command(c.line, &c.text) {
            return Outcome::Fail { line: f.line, reason: format!("error executing init command: {}", f.reason) };
        }
    }
    let r = runner.run(&script);
    let cleanup = script.cleanup_command.as_ref().map(|c| runner.run_command(c.line, &c.text));
    if let Err(f) = r {
        return Outcome::Fail { line: f.line, reason: f.reason };
    }
    if let Some(Err(f)) = cleanup {
        return Outcome::Fail { line: f.line, reason: format!("error executing cleanup command: {}", f.reason) };
    }
    if let Err(f) = runner.run_code_events() {
        return Outcome::Fail { line: f.line, reason: f.reason };
    }
    Outcome::Pass
}
