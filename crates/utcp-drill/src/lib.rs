//! utcp-drill: a packetdrill script interpreter for utcp.
//!
//! Front end: [`lexer`] (tokens), [`parser`] ([`parse_script`]) and [`ast`]. Back end: [`exec`]
//! runs a script against a fresh utcp stack in virtual time (see its docs for the timing
//! model), [`packet`] builds inbound and matches outbound packets, [`shell`] interprets the
//! setup commands, [`python`] the `%{ assert ... }%` blocks.
//!
//! [`run_paths`] is the `utcp drill` entry point: it prints one line per script
//! (`PASS path`, `FAIL path:line: reason`, `SKIP path: reason`) and a summary line.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ast;
pub mod exec;
pub mod lexer;
pub mod packet;
pub mod parser;
pub mod python;
pub mod shell;
pub mod symbols;

pub use parser::{parse_script, ParseError};

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Command-line options of `utcp drill` (packetdrill's names). Scripts' own `--flags` override.
#[derive(Clone, Debug)]
pub struct DrillOptions {
    /// `--mss`: the MSS packetdrill hands the tun device for inbound GSO packets (0 = none).
    pub mss: u32,
    /// `--tolerance_usecs`.
    pub tolerance_usecs: i64,
    /// `--ip_version` (`ipv4`; `ipv6` scripts are skipped).
    pub ip_version: String,
    /// `-D NAME=VALUE` defines.
    pub defines: Vec<(String, String)>,
    /// `--local_ip`.
    pub local_ip: Ipv4Addr,
    /// `--remote_ip`.
    pub remote_ip: Ipv4Addr,
    /// `--gateway_ip` (accepted; utcp has a single on-link route).
    pub gateway_ip: Ipv4Addr,
    /// `--netmask_ip` (accepted).
    pub netmask_ip: Ipv4Addr,
    /// `--tcp_ts_tick_usecs` (0 = TS val not checked).
    pub tcp_ts_tick_usecs: u32,
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
            tcp_ts_tick_usecs: 0,
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
    /// Not run, with the reason.
    Skip(String),
}

/// Results of a run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Each script and its outcome.
    pub results: Vec<(PathBuf, Outcome)>,
    /// Passed count.
    pub passed: usize,
    /// Failed count.
    pub failed: usize,
    /// Skipped count.
    pub skipped: usize,
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => return,
        };
        entries.sort();
        for e in entries {
            if e.is_dir() {
                collect(&e, out);
            } else if e.extension().is_some_and(|x| x == "pkt") {
                out.push(e);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
}

/// Runs scripts (directories recurse to `*.pkt`), printing one line per script and a summary.
pub fn run_paths(paths: &[PathBuf], opts: &DrillOptions) -> Summary {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files);
    }
    let mut sum = Summary::default();
    for f in files {
        let o = run_file(&f, opts);
        match &o {
            Outcome::Pass => {
                sum.passed += 1;
                println!("PASS {}", f.display());
            }
            Outcome::Fail { line, reason } => {
                sum.failed += 1;
                println!("FAIL {}:{}: {}", f.display(), line, reason);
            }
            Outcome::Skip(r) => {
                sum.skipped += 1;
                println!("SKIP {}: {}", f.display(), r);
            }
        }
        sum.results.push((f, o));
    }
    println!("{} passed, {} failed, {} skipped", sum.passed, sum.failed, sum.skipped);
    sum
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
        local_ip: opts.local_ip,
        remote_ip: opts.remote_ip,
        verbose: opts.verbose,
    };
    let mut ip_version = opts.ip_version.clone();
    for (k, v) in &script.options {
        let val = v.clone().unwrap_or_default();
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
            "local_ip" => val.parse().map(|a| cfg.local_ip = a).map_err(|_| format!("bad --local_ip {val}")),
            "remote_ip" => val.parse().map(|a| cfg.remote_ip = a).map_err(|_| format!("bad --remote_ip {val}")),
            other => Err(format!("unsupported option --{other}")),
        };
        if let Err(e) = r {
            return Outcome::Fail { line: 1, reason: e };
        }
    }
    if ip_version != "ipv4" {
        return Outcome::Skip(format!("--ip_version={ip_version}: utcp is IPv4-only"));
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
    Outcome::Pass
}
