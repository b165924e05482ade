//! utcp against the kernel over IPv6 (issue 12): every named case with AF_INET6 sockets, the
//! kernel on `::1`, utcp on fd00::a/fd00::b. Its own test binary, as `set_ipv6` is
//! process-wide.

use utcp_oracle::cases::{check_case, named_cases};
use utcp_oracle::{compare_named, Backend, KernelBackend, Outcome, Scenario, Step, UtcpBackend};

#[test]
fn named_cases_utcp_vs_kernel_over_ipv6() {
    utcp_oracle::set_ipv6(true);
    let mut k = KernelBackend::new();
    let probe = Scenario::new(vec![Step::PeerSend(b"x".to_vec()), Step::Recv { len: 1, flags: 0 }]);
    if k.run(&probe) != [Outcome::Unit, Outcome::ret(1, b"x".to_vec())] {
        eprintln!("SKIP: the kernel backend cannot run over ::1 here");
        return;
    }
    // The kernel's sockets are AF_INET6 now (SO_DOMAIN).
    let fd = utcp_oracle::kernel::sys::socket_stream().expect("socket");
    let dom = utcp_oracle::kernel::sys::getsockopt_buf(fd, 1, 39, 4).expect("SO_DOMAIN");
    assert_eq!(i32::from_ne_bytes(dom[..4].try_into().unwrap()), 10);
    let _ = utcp_oracle::kernel::sys::close(fd);
    let mut u = UtcpBackend::new();
    let mut failures = Vec::new();
    let cases = named_cases();
    for c in &cases {
        let ou = u.run(&c.scenario);
        if let Err(e) = check_case(c, &ou) {
            failures.push(format!("[expectation] {e}"));
            continue;
        }
        let ok = k.run(&c.scenario);
        if let Err(m) = compare_named(&c.scenario, ("kernel", &ok), ("utcp", &ou)) {
            failures.push(format!("[kernel differs] case `{}`: {m}", c.name));
        }
    }
    eprintln!("named cases over IPv6: {}/{} agree with the kernel", cases.len() - failures.len(), cases.len());
    assert!(failures.is_empty(), "{} named case(s) fail over IPv6:\n{}", failures.len(), failures.join("\n"));
}

/// The random differential test over IPv6: `UTCP_ORACLE_CASES` (default 1000) generated
/// scenarios, seed from `UTCP_ORACLE_SEED` or the clock.
#[test]
fn random_utcp_vs_kernel_over_ipv6() {
    utcp_oracle::set_ipv6(true);
    let seed = utcp_oracle::gen::seed_from_env();
    let n = std::env::var("UTCP_ORACLE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let mut k = KernelBackend::new();
    let probe = Scenario::new(vec![Step::PeerSend(b"x".to_vec()), Step::Recv { len: 1, flags: 0 }]);
    if k.run(&probe) != [Outcome::Unit, Outcome::ret(1, b"x".to_vec())] {
        eprintln!("SKIP: the kernel backend cannot run over ::1 here");
        return;
    }
    let mut u = UtcpBackend::new();
    let cfg = utcp_oracle::gen::GenConfig::default();
    match utcp_oracle::run_random(&mut k, &mut u, seed, n, &cfg, true) {
        Ok(st) => {
            eprintln!("over IPv6: {} scenarios / {} steps agree (UTCP_ORACLE_SEED={seed})", st.scenarios, st.steps)
        }
        Err(f) => panic!("UTCP_ORACLE_SEED={seed}\n{f}"),
    }
}
