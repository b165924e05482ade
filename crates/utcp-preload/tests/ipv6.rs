//! AF_INET6 stream sockets under the library: a C program (tests/c/ipv6.c) over `::1` and
//! IPv4-mapped addresses — the sockaddr_in6 length rules and errno of bind, connect, accept,
//! getsockname, getpeername, recvfrom, recvmsg, sendto and sendmsg, IPV6_V6ONLY on and off
//! with an IPv4 client, mapped peers, AF_UNSPEC connect and the IPPROTO_IPV6 options — prints
//! the same lines on the kernel and under the library in the same run, and its stat file shows
//! the connections were utcp's. Skipped, with a message, where cc is missing.

mod common;

use common::{have, shared_object, stat_dir, stats};
use std::path::Path;
use std::process::Command;

#[test]
fn ipv6_c_program_answers_as_on_the_kernel() {
    let dir = stat_dir("c-ipv6");
    if !have("cc", "") {
        return;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/ipv6.c");
    let exe = dir.join("ipv6");
    let o = Command::new("cc").args(["-O2", "-Wall", "-o"]).arg(&exe).arg(&src).output().expect("cc");
    assert!(o.status.success(), "cc ipv6.c: {}", String::from_utf8_lossy(&o.stderr));
    let run = |preload: bool| {
        let mut c = Command::new(&exe);
        c.env_remove("LD_PRELOAD").env_remove("UTCP_STAT_FILE");
        if preload {
            c.env("LD_PRELOAD", shared_object()).env("UTCP_STAT_FILE", dir.join("stat.%p"));
        }
        let o = c.output().expect("run ipv6");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "ipv6 (preload {preload}): {:?}\n{out}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        out
    };
    let kernel = run(false);
    assert!(kernel.ends_with("done\n"), "{kernel}");
    assert!(kernel.contains("accepted IPv4 peer: len 28 AF_INET6 ::ffff:127.0.0.1 port"), "{kernel}");
    let utcp = run(true);
    for (k, u) in kernel.lines().zip(utcp.lines()) {
        assert_eq!(k, u, "kernel vs utcp\n--- kernel\n{kernel}\n--- utcp\n{utcp}");
    }
    assert_eq!(kernel, utcp);
    let (files, m) = stats(&dir);
    assert_eq!(files, 1, "one stack");
    // Nine connects reached utcp's TCP (two refused: the IPv4 client of the V6ONLY listener and
    // the closed port), seven were accepted; most of it over IPv6.
    assert_eq!(m.get("TcpActiveOpens").copied(), Some(9), "{m:?}");
    assert_eq!(m.get("TcpPassiveOpens").copied(), Some(7), "{m:?}");
    assert_eq!(m.get("TcpAttemptFails").copied(), Some(2), "{m:?}");
    assert!(m.get("Ip6InReceives").copied().unwrap_or(0) >= 20, "{m:?}");
    assert_eq!(m.get("TcpRetransSegs").copied().unwrap_or(0), 0, "a clean loopback: {m:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
