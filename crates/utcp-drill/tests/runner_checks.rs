//! What the runner refuses rather than silently accepts, and the packetdrill options it uses:
//! shell commands it does not model, sysctl values utcp does not honour, IP versions utcp does
//! not speak, runs that find no script, and `--mtu`/`--local_ip`/`--remote_ip`/`--gateway_ip`/
//! `--netmask_ip`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use utcp_drill::{run_paths, run_text, DrillOptions, Outcome};

/// A passive open whose SYN-ACK carries `mss`.
fn passive_open(mss: u32) -> String {
    format!(
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\
         +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0\n\
         +0 bind(3, ..., ...) = 0\n\
         +0 listen(3, 1) = 0\n\
         +0 < S 0:0(0) win 65535 <mss 1460>\n\
         +0 > S. 0:0(0) ack 1 <mss {mss}>\n\
         +0 close(3) = 0\n"
    )
}

fn run(script: &str, opts: &DrillOptions) -> Outcome {
    run_text(script, Path::new("."), opts)
}

fn with_init(cmd: &str) -> String {
    format!("`{cmd}`\n{}", passive_open(1460))
}

fn fails_with(o: Outcome, what: &str) {
    match o {
        Outcome::Fail { reason, .. } => assert!(reason.contains(what), "reason '{reason}' lacks '{what}'"),
        o => panic!("expected a failure with '{what}', got {o:?}"),
    }
}

#[test]
fn unmodelled_shell_commands_fail_the_script() {
    let o = DrillOptions::default();
    fails_with(run(&with_init("echo hi"), &o), "unsupported shell command 'echo hi'");
    fails_with(run(&with_init("ip link set dev tun0 mtu 1000"), &o), "unsupported shell command 'ip link");
    fails_with(run(&with_init("tc qdisc add dev tun0 root netem delay 10ms"), &o), "unsupported shell command 'tc");
    fails_with(run(&with_init("frobnicate"), &o), "unsupported shell command 'frobnicate'");
    fails_with(run(&with_init("sysctl -q net.ipv4.tcp_ecn=0 2> /tmp/log"), &o), "redirection of stderr");
    // What the selftests' defaults.sh runs is modelled.
    for ok in [
        "ip tcp_metrics flush all > /dev/null 2>&1",
        "tc qdisc add dev tun0 root pfifo",
        "echo 0 > /proc/sys/net/ipv4/tcp_shrink_window",
        "echo hi > /dev/null",
        "true",
    ] {
        assert_eq!(run(&with_init(ok), &o), Outcome::Pass, "{ok}");
    }
}

#[test]
fn sysctls_utcp_does_not_honour_fail_the_script() {
    let o = DrillOptions::default();
    fails_with(
        run(&with_init("sysctl -q net.ipv4.tcp_ecn=1"), &o),
        "sysctl net.ipv4.tcp_ecn=1 is not supported by utcp",
    );
    fails_with(
        run(&with_init("echo 512 > /proc/sys/net/ipv4/tcp_base_mss"), &o),
        "sysctl net.ipv4.tcp_base_mss=512 is not supported by utcp",
    );
    fails_with(run(&with_init("sysctl -q net.core.netdev_max_backlog=10"), &o), "not supported by utcp");
    // The default, the value utcp behaves as, and honoured knobs are fine.
    for ok in [
        "sysctl -q net.ipv4.tcp_pacing_ss_ratio=200",
        "sysctl -q net.ipv4.tcp_ecn=0",
        "sysctl -q net.ipv4.tcp_slow_start_after_idle=0",
        "sysctl -q net.ipv4.tcp_rmem=\"4096 540000 15728640\"",
        "sysctl -q net.ipv4.tcp_fastopen=0x70403",
        "echo 1 > /proc/sys/net/ipv4/tcp_shrink_window",
        "echo 5 > /proc/sys/net/ipv4/tcp_challenge_ack_limit",
        "sysctl -q net.ipv4.tcp_syncookies=2",
    ] {
        assert_eq!(run(&with_init(ok), &o), Outcome::Pass, "{ok}");
    }
}

/// A peer whose SYN announces no MSS: Linux assumes 536 bytes over IPv4 (TCP_MSS_DEFAULT) and
/// 1220 over IPv6 (`tcp_request_sock_ipv6_ops.mss_clamp`, IPv6's minimum MTU less 60) —
/// checked on Linux 6.18 with the real packetdrill (`tcpi_snd_mss` 536 / 1220 after the same
/// handshake).
#[test]
fn a_syn_without_mss_gets_the_familys_default() {
    let script = |mss: u32| {
        format!(
            "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\
             +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0\n\
             +0 bind(3, ..., ...) = 0\n\
             +0 listen(3, 1) = 0\n\
             +0 < S 0:0(0) win 65535\n\
             +0 > S. 0:0(0) ack 1 <...>\n\
             +.1 < . 1:1(0) ack 1 win 65535\n\
             +0 accept(3, ..., ...) = 4\n\
             +0 write(4, ..., 1500) = 1500\n\
             +0 > . 1:{}({mss}) ack 1\n",
            mss + 1
        )
    };
    let v6 = DrillOptions { ip_version: "ipv6".into(), mtu: 1520, ..DrillOptions::default() };
    assert_eq!(run(&script(1220), &v6), Outcome::Pass);
    assert_eq!(run(&script(536), &DrillOptions::default()), Outcome::Pass);
}

#[test]
fn ipv6_and_ipv4_mapped_ipv6_run_as_packetdrill_runs_them() {
    // IPv6 packets: the MSS is the MTU less 60 (1440 at the default 1500; the selftests'
    // --mtu=1520 gives 1460, as IPv4's 1500 does).
    let v6 = DrillOptions { ip_version: "ipv6".into(), ..DrillOptions::default() };
    assert_eq!(run(&passive_open(1440), &v6), Outcome::Pass);
    fails_with(run(&passive_open(1460), &v6), "mss");
    let v6_1520 = DrillOptions { mtu: 1520, ..v6.clone() };
    assert_eq!(run(&passive_open(1460), &v6_1520), Outcome::Pass);
    // IPv4 packets to an AF_INET6 socket.
    let mapped = DrillOptions { ip_version: "ipv4-mapped-ipv6".into(), ..DrillOptions::default() };
    assert_eq!(run(&passive_open(1460), &mapped), Outcome::Pass);
    // An IPv4 address given for IPv6 (or the reverse) is refused.
    let bad = DrillOptions { command_line: vec![("local_ip".into(), "192.168.0.1".into())], ..v6.clone() };
    fails_with(run(&passive_open(1440), &bad), "needs IPv6 addresses");
    let bad = DrillOptions { command_line: vec![("local_ip".into(), "fd3d:a0b:17d6::1".into())], ..mapped };
    fails_with(run(&passive_open(1460), &bad), "needs IPv4 addresses");
    // In a script (packetdrill's lexer has no word for ipv4-mapped-ipv6 there).
    let script = format!("--ip_version=ipv6\n{}", passive_open(1440));
    assert_eq!(run(&script, &DrillOptions::default()), Outcome::Pass);
    fails_with(run(&format!("--ip_version=foo\n{}", passive_open(1460)), &DrillOptions::default()), "bad --ip_version");
}

#[test]
fn a_run_without_scripts_is_not_ok() {
    let dir = std::env::temp_dir().join(format!("utcp-drill-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sum = run_paths(std::slice::from_ref(&dir), &DrillOptions::default());
    assert!(sum.results.is_empty() && !sum.ok());
    std::fs::write(dir.join("a.pkt"), passive_open(1460)).unwrap();
    assert!(run_paths(std::slice::from_ref(&dir), &DrillOptions::default()).ok());
    std::fs::remove_dir_all(&dir).unwrap();
    let missing = PathBuf::from("/nonexistent/utcp-drill/x.pkt");
    assert!(!run_paths(&[missing], &DrillOptions::default()).ok());
}

#[test]
fn mtu_sets_the_device_mtu() {
    // The SYN-ACK advertises the device MTU less 40 bytes of headers.
    let o = DrillOptions { mtu: 1000, ..DrillOptions::default() };
    assert_eq!(run(&passive_open(960), &o), Outcome::Pass);
    fails_with(run(&passive_open(1460), &o), "mss");
    assert_eq!(run(&format!("--mtu=1200\n{}", passive_open(1160)), &DrillOptions::default()), Outcome::Pass);
    fails_with(run(&format!("--mtu=20\n{}", passive_open(1460)), &DrillOptions::default()), "bad --mtu");
    assert_eq!(run(&passive_open(1460), &DrillOptions::default()), Outcome::Pass, "1500 by default");
    // As in packetdrill, the command line overrides the script.
    let cli = DrillOptions { command_line: vec![("mtu".into(), "1000".into())], ..DrillOptions::default() };
    assert_eq!(run(&format!("--mtu=1200\n{}", passive_open(960)), &cli), Outcome::Pass);
}

#[test]
fn addresses_are_used_and_checked() {
    let o = DrillOptions {
        local_ip: Ipv4Addr::new(10, 1, 0, 1),
        remote_ip: Ipv4Addr::new(198, 51, 100, 7),
        gateway_ip: Ipv4Addr::new(10, 1, 0, 254),
        netmask_ip: Ipv4Addr::new(255, 255, 255, 0),
        ..DrillOptions::default()
    };
    assert_eq!(run(&passive_open(1460), &o), Outcome::Pass);
    let script = format!("--local_ip=10.2.0.1\n--gateway_ip=10.2.0.1\n--remote_ip=192.0.2.9\n{}", passive_open(1460));
    assert_eq!(run(&script, &DrillOptions::default()), Outcome::Pass);
    let bad = DrillOptions { gateway_ip: Ipv4Addr::new(10, 9, 0, 1), ..o.clone() };
    fails_with(run(&passive_open(1460), &bad), "not in the local subnet");
    let bad = DrillOptions { netmask_ip: Ipv4Addr::new(255, 0, 255, 0), ..o };
    fails_with(run(&passive_open(1460), &bad), "not a contiguous netmask");
}
