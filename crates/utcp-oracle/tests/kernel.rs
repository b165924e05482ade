//! Kernel-only tests: the named cases document Linux behaviour (and will be
//! run against utcp as well); the random tests check that the harness is
//! deterministic, i.e. that the kernel agrees with itself.

use proptest::prelude::*;
use utcp_oracle::cases::{check_case, named_cases, NamedCase};
use utcp_oracle::gen::{self, seed_from_env, GenConfig};
use utcp_oracle::{compare_named, Backend, KernelBackend};

fn find(name: &str) -> NamedCase {
    named_cases().into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case {name}"))
}

fn run_case(name: &str) {
    let case = find(name);
    let mut k = KernelBackend::new();
    let out = k.run(&case.scenario);
    if let Err(e) = check_case(&case, &out) {
        panic!("{e}");
    }
}

macro_rules! kernel_cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_case(stringify!($name));
            }
        )*

        #[test]
        fn every_named_case_has_a_test() {
            let listed = [$(stringify!($name)),*];
            for c in named_cases() {
                assert!(listed.contains(&c.name), "named case `{}` has no #[test]", c.name);
            }
        }
    };
}

kernel_cases!(
    oob_none_einval,
    oob_read_once,
    oob_peek,
    oob_len0,
    oob_msgflags,
    oob_inline,
    oob_lost_when_read_past,
    oob_waitall_stops_at_mark,
    oob_second_urgent_replaces_first,
    fin_read_returns_zero_repeatedly,
    waitall_fin_short_count,
    rst_with_queued_data,
    rst_so_error_consumes,
    rst_after_fin_is_epipe,
    recv_on_listener,
    recv_on_fresh_socket,
    msg_trunc_discards,
    msg_trunc_peek,
    rcvlowat_nonblocking,
    rcvlowat_zero_is_one,
    recv_len_zero,
    peek_then_read,
    peek_off,
    tcp_inq_cmsg,
    cmsg_ctrunc,
    timestamp_cmsg,
    recvmsg_name_untouched,
    errqueue_empty,
    shut_rd_then_data,
    shut_rdwr_then_data_resets,
    rcvbuf_doubled,
    rcvtimeo_eagain,
    nonblocking_eagain,
    closed_fd_ebadf,
    bad_option,
    poll_urgent,
    oob_after_reset_enotconn,
    peek_off_beyond_data,
    fionread_stops_at_mark,
    time_wait_is_close,
    listener_shut_rd_disconnects,
    cmsg_cloexec_echoed,
    rcvlowat_grows_rcvbuf,
);

#[test]
fn named_cases_are_valid_and_deterministic() {
    let mut a = KernelBackend::new();
    let mut b = KernelBackend::new();
    for c in named_cases() {
        assert_eq!(c.expect.len(), c.scenario.steps.len(), "case {}", c.name);
        if let Err((i, e)) = gen::validate(&c.scenario) {
            panic!("case {} step #{i} invalid: {e}", c.name);
        }
        let oa = a.run(&c.scenario);
        let ob = b.run(&c.scenario);
        if let Err(m) = compare_named(&c.scenario, ("run1", &oa), ("run2", &ob)) {
            panic!("case {} is not deterministic:\n{m}", c.name);
        }
    }
}

#[test]
fn generator_only_emits_valid_scenarios() {
    let cfg = GenConfig::default();
    let seed = seed_from_env();
    eprintln!("generator_only_emits_valid_scenarios: UTCP_ORACLE_SEED={seed}");
    for i in 0..5000 {
        let s = gen::scenario_seed(seed, i);
        let sc = gen::generate(s, &cfg);
        if let Err((j, e)) = gen::validate(&sc) {
            panic!("UTCP_ORACLE_SEED={seed}, scenario seed {s}: step #{j} invalid: {e}\n{sc}");
        }
        assert_eq!(sc, gen::generate(s, &cfg), "generation is not deterministic");
    }
}

/// The harness must be deterministic: the same random scenarios run twice on
/// the kernel must give identical (normalised) outcomes, with no harness
/// errors (waits timing out, blocking calls that would hang).
#[test]
fn kernel_agrees_with_itself_random() {
    let seed = seed_from_env();
    let n = std::env::var("UTCP_ORACLE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
    eprintln!("kernel_agrees_with_itself_random: UTCP_ORACLE_SEED={seed}, {n} scenarios");
    let mut a = KernelBackend::new();
    let mut b = KernelBackend::new();
    match utcp_oracle::run_random(&mut a, &mut b, seed, n, &GenConfig::default(), true) {
        Ok(st) => eprintln!("{} scenarios / {} steps (x2) in {:?}", st.scenarios, st.steps, st.elapsed),
        Err(f) => panic!("UTCP_ORACLE_SEED={seed}\n{f}"),
    }
}

proptest! {
    // Seeded from UTCP_ORACLE_SEED (printed), like the other random tests.
    #![proptest_config({
        let seed = seed_from_env();
        eprintln!("proptest_kernel_self_agreement: UTCP_ORACLE_SEED={seed}");
        ProptestConfig {
            cases: 64,
            rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
            ..ProptestConfig::default()
        }
    })]

    #[test]
    fn proptest_kernel_self_agreement(sc in gen::scenario_strategy(GenConfig::default())) {
        let mut a = KernelBackend::new();
        let oa = a.run(&sc);
        let ob = a.run(&sc);
        if let Err(m) = compare_named(&sc, ("run1", &oa), ("run2", &ob)) {
            prop_assert!(false, "{}", m);
        }
    }
}

/// An invalid scenario (blocking recv that cannot complete) must be reported
/// as a harness error by the watchdog, not hang the test.
#[test]
fn watchdog_reports_would_hang() {
    let sc = utcp_oracle::cases::case_would_hang();
    assert!(gen::validate(&sc).is_err());
    let mut k = KernelBackend::new();
    let t = std::time::Instant::now();
    let out = k.run(&sc);
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(out[0], utcp_oracle::Outcome::Unit);
    assert!(out[1].is_harness(), "{}", out[1]);
    assert!(out[2].is_harness(), "{}", out[2]);
    // The backend is still usable afterwards.
    let ok = named_cases().into_iter().find(|c| c.name == "peek_then_read").unwrap();
    check_case(&ok, &k.run(&ok.scenario)).unwrap();
}
