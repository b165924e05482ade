//! Runs the packetdrill scripts that pass on Linux 6.18 (`oracle-6.18.txt`) and our own
//! kernel-verified scripts; every one must pass under `utcp drill`, in IPv4, in IPv6 with the
//! arguments the Linux selftests give packetdrill for it (`ksft_runner.sh`), and in
//! ipv4-mapped-ipv6.

use std::path::{Path, PathBuf};
use utcp_drill::{run_file, DrillOptions, Outcome};

/// `shared/packetdrill` beside the repository (as on the developers' machines and in CI).
const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/packetdrill");

/// Scripts known to fail under utcp, each with the reason (STYLE.md §14). A listed script that
/// starts passing fails the test until its entry is removed, so the list only shrinks.
const EXPECTED_FAILURES: &str = include_str!("expected-failures.txt");
/// Scripts that fail in IPv6 only, each with the reason.
const EXPECTED_FAILURES_IPV6: &str = include_str!("expected-failures-ipv6.txt");

/// The selftests' IPv6 arguments.
fn ipv6_opts() -> DrillOptions {
    let cl = |k: &str, v: &str| (k.to_string(), v.to_string());
    DrillOptions {
        ip_version: "ipv6".into(),
        mtu: 1520,
        command_line: vec![
            cl("local_ip", "fd3d:0a0b:17d6::1"),
            cl("gateway_ip", "fd3d:0a0b:17d6:8888::1"),
            cl("remote_ip", "fd3d:fa7b:d17d::1"),
        ],
        defines: vec![cl("CMSG_LEVEL_IP", "SOL_IPV6"), cl("CMSG_TYPE_RECVERR", "IPV6_RECVERR")],
        ..DrillOptions::default()
    }
}

/// IPv4 packets, AF_INET6 sockets.
fn mapped_opts() -> DrillOptions {
    let cl = |k: &str, v: &str| (k.to_string(), v.to_string());
    DrillOptions {
        ip_version: "ipv4-mapped-ipv6".into(),
        defines: vec![cl("CMSG_LEVEL_IP", "SOL_IPV6"), cl("CMSG_TYPE_RECVERR", "IPV6_RECVERR")],
        ..DrillOptions::default()
    }
}

fn expected_failures(v6: bool) -> Vec<(String, String)> {
    let extra = if v6 { EXPECTED_FAILURES_IPV6 } else { "" };
    EXPECTED_FAILURES
        .lines()
        .chain(extra.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (p, r) = l.split_once('|').unwrap_or((l, ""));
            (p.trim().to_string(), r.trim().to_string())
        })
        .collect()
}

fn run_all(files: &[PathBuf], opts: DrillOptions) {
    let opts = DrillOptions { verbose: std::env::var_os("DRILL_VERBOSE").is_some(), ..opts };
    let filter = std::env::var("DRILL_FILTER").ok();
    let expected = expected_failures(opts.ip_version == "ipv6");
    let mut failed = Vec::new();
    let mut newly_passing = Vec::new();
    let mut n = 0;
    for f in files {
        if filter.as_ref().is_some_and(|x| !f.to_string_lossy().contains(x.as_str())) {
            continue;
        }
        n += 1;
        let known = expected.iter().find(|(p, _)| f.to_string_lossy().ends_with(p.as_str()));
        match (run_file(f, &opts), known) {
            (Outcome::Pass, None) => println!("PASS {}", f.display()),
            (Outcome::Pass, Some(_)) => newly_passing.push(f.display().to_string()),
            (o, Some((_, why))) => println!("KNOWN-FAIL {}: {:?} ({why})", f.display(), o),
            (o, None) => {
                println!("FAIL {}: {:?}", f.display(), o);
                failed.push(format!("{}: {:?}", f.display(), o));
            }
        }
    }
    println!("{} of {} ran; {} unexpected failures", n, files.len(), failed.len());
    assert!(failed.is_empty(), "{} scripts failed:\n{}", failed.len(), failed.join("\n"));
    assert!(
        newly_passing.is_empty(),
        "these scripts now pass: remove them from tests/expected-failures.txt:\n{}",
        newly_passing.join("\n")
    );
}

fn oracle_files() -> Vec<PathBuf> {
    let list = Path::new(SHARED).join("oracle-6.18.txt");
    // CI and every developer checkout have shared/ beside the repository: a missing corpus
    // is a broken setup, not a pass.
    let text = std::fs::read_to_string(&list).unwrap_or_else(|e| {
        panic!("{} not readable ({e}): shared/packetdrill must lie beside the repository", list.display())
    });
    let files: Vec<PathBuf> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| Path::new(SHARED).join(l))
        .collect();
    files
}

#[test]
fn oracle_6_18_scripts_pass() {
    run_all(&oracle_files(), DrillOptions::default());
}

#[test]
fn oracle_6_18_scripts_pass_in_ipv6() {
    run_all(&oracle_files(), ipv6_opts());
}

#[test]
fn oracle_6_18_scripts_pass_in_ipv4_mapped_ipv6() {
    run_all(&oracle_files(), mapped_opts());
}

fn own_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/packetdrill");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/packetdrill")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pkt"))
        .collect();
    files.sort();
    files
}

#[test]
fn own_scripts_pass() {
    run_all(&own_files(), DrillOptions::default());
}

#[test]
fn own_scripts_pass_in_ipv6() {
    run_all(&own_files(), ipv6_opts());
}

#[test]
fn own_scripts_pass_in_ipv4_mapped_ipv6() {
    run_all(&own_files(), mapped_opts());
}
