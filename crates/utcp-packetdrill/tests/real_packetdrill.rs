//! Runs oracle scripts through the real packetdrill with utcp as its shared object
//! (`--so_filename`). Ignored by default (`cargo test -p utcp-packetdrill -- --ignored`); it then
//! needs a packetdrill binary (`$PACKETDRILL`, or a build in /tmp/packetdrill-src), root and a
//! working `unshare`, and otherwise says why and returns. CI
//! has no packetdrill (the project ships no way to build it): there `utcp drill` is the oracle.
//!
//! The command line is the README's: a network namespace of its own with a `tun0` (the scripts'
//! `defaults.sh` ends with `tc qdisc add dev tun0 ...`), the library preloaded as well (so that
//! `%{ }%` code events, which packetdrill runs with the real `getsockopt`, reach utcp).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `shared/packetdrill` beside the repository (or `$PD_SHARED`).
fn shared() -> PathBuf {
    std::env::var_os("PD_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/packetdrill"))
}

const SELFTESTS: &str = "linux/tools/testing/selftests/net/packetdrill";

/// Scripts that pass on Linux 6.18 and under `utcp drill`.
const PASSING: &[&str] = &[
    "tcp_basic_client.pkt",
    "tcp_basic_server.pkt",
    "tcp_blocking_blocking-read.pkt",
    "tcp_close_close-local-close-then-remote-fin.pkt",
    "tcp_inq_client.pkt",
    "tcp_rcv_zero_wnd_fin.pkt",
    "tcp_tcp_info_tcp-info-last_data_recv.pkt",
];

fn packetdrill() -> Option<PathBuf> {
    let p = std::env::var_os("PACKETDRILL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/packetdrill-src/gtests/net/packetdrill/packetdrill"));
    p.is_file().then_some(p)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn unshare_works() -> bool {
    Command::new("unshare").args(["-n", "true"]).status().is_ok_and(|s| s.success())
}

/// The cdylib: beside the test binary's `deps/` directory, built with cargo if missing.
fn shared_object() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.to_path_buf();
    let so = dir.join("libutcp_packetdrill.so");
    if !so.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target_dir = dir.parent()?.to_path_buf();
        let st = Command::new(cargo)
            .args(["build", "-p", "utcp-packetdrill"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .status()
            .ok()?;
        if !st.success() {
            return None;
        }
    }
    so.is_file().then_some(so)
}

/// The selftests' arguments for IPv4 (`ksft_runner.sh`).
const IPV4_ARGS: &[&str] = &[
    "--ip_version=ipv4",
    "--local_ip=192.168.0.1",
    "--gateway_ip=192.168.0.1",
    "--netmask_ip=255.255.0.0",
    "--remote_ip=192.0.2.1",
    "-D",
    "CMSG_LEVEL_IP=SOL_IP",
    "-D",
    "CMSG_TYPE_RECVERR=IP_RECVERR",
];

/// The selftests' arguments for IPv6, and the library's address and MTU to match
/// (`--so_flags`).
const IPV6_ARGS: &[&str] = &[
    "--so_flags=local_ip=fd3d:0a0b:17d6::1,mtu=1520",
    "--ip_version=ipv6",
    "--mtu=1520",
    "--local_ip=fd3d:0a0b:17d6::1",
    "--gateway_ip=fd3d:0a0b:17d6:8888::1",
    "--remote_ip=fd3d:fa7b:d17d::1",
    "-D",
    "CMSG_LEVEL_IP=SOL_IPV6",
    "-D",
    "CMSG_TYPE_RECVERR=IPV6_RECVERR",
];

/// Runs one script with IPv4's arguments; `(exit status == 0, stdout + stderr)`.
fn run(pd: &Path, so: &Path, script: &Path) -> (bool, String) {
    run_with(pd, so, script, IPV4_ARGS)
}

/// Runs one script with `args`.
fn run_with(pd: &Path, so: &Path, script: &Path, args: &[&str]) -> (bool, String) {
    let dir = script.parent().expect("script dir");
    let out = Command::new("timeout")
        .current_dir(dir)
        .arg("120")
        .args(["unshare", "-n", "sh", "-c"])
        .arg(r#"ip tuntap add dev tun0 mode tun && exec env LD_PRELOAD="$SO" "$0" "$@""#)
        .arg(pd)
        .arg(format!("--so_filename={}", so.display()))
        .args(args)
        .arg(script.file_name().expect("script name"))
        .env("SO", so)
        .output()
        .expect("run packetdrill");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
#[ignore = "needs a local packetdrill build and root; run with `cargo test -p utcp-packetdrill -- --ignored` (README)"]
fn oracle_scripts_under_real_packetdrill() {
    let Some(pd) = packetdrill() else {
        eprintln!("skipping: no packetdrill binary ($PACKETDRILL or /tmp/packetdrill-src/.../packetdrill)");
        return;
    };
    if !is_root() {
        eprintln!("skipping: packetdrill needs root (for unshare -n and a tun device)");
        return;
    }
    if !unshare_works() {
        eprintln!("skipping: `unshare -n` is not available here");
        return;
    }
    let dir = shared().join(SELFTESTS);
    // shared/ lies beside the repository in CI and on every checkout: missing is an error.
    assert!(
        dir.join("defaults.sh").is_file(),
        "{} not found: shared/packetdrill must lie beside the repository (or set PD_SHARED)",
        dir.display()
    );
    let Some(so) = shared_object() else {
        panic!("could not build libutcp_packetdrill.so");
    };
    let mut failed = Vec::new();
    for (family, args) in [("ipv4", IPV4_ARGS), ("ipv6", IPV6_ARGS)] {
        for s in PASSING {
            let (ok, out) = run_with(&pd, &so, &dir.join(s), args);
            println!("{} {family} {s}", if ok { "PASS" } else { "FAIL" });
            if !ok {
                failed.push(format!("{family} {s}:\n{out}"));
            }
        }
    }
    assert!(failed.is_empty(), "scripts failed under packetdrill + utcp:\n{}", failed.join("\n"));
    // Every oracle script passes under `utcp drill` now (expected-failures.txt is empty): a
    // failing script failing rather than hanging is checked by the test below.
}

#[test]
fn a_packet_that_cannot_come_fails_the_script_instead_of_hanging() {
    let (Some(pd), true, true) = (packetdrill(), is_root(), unshare_works()) else {
        eprintln!("skipping: needs packetdrill, root and unshare -n");
        return;
    };
    let Some(so) = shared_object() else {
        panic!("could not build libutcp_packetdrill.so");
    };
    let dir = std::env::temp_dir().join(format!("utcp-pd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let script = dir.join("never.pkt");
    // After the handshake nothing is armed: the data segment the script waits for can never be
    // sent (packetdrill's so mode waits for it with no timeout).
    std::fs::write(
        &script,
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\
         +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0\n\
         +0 bind(3, ..., ...) = 0\n\
         +0 listen(3, 1) = 0\n\
         +0 < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>\n\
         +0 > S. 0:0(0) ack 1 <...>\n\
         +.1 < . 1:1(0) ack 1 win 257\n\
         +0 accept(3, ..., ...) = 4\n\
         +0 > P. 1:11(10) ack 1\n",
    )
    .expect("write script");
    let started = std::time::Instant::now();
    let (ok, out) = run(&pd, &so, &script);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!ok, "script passed:\n{out}");
    assert!(out.contains("no packet can be sent"), "unexpected failure:\n{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "took {:?}", started.elapsed());
}
