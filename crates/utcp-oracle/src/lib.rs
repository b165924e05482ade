//! `utcp-oracle`: a kernel differential test harness.
//!
//! Scenarios ([`scenario::Scenario`]) describe what a remote peer does and
//! which receive-side calls the local socket makes. A [`scenario::Backend`]
//! executes a scenario and returns one [`scenario::Outcome`] per step;
//! [`scenario::compare`] diffs two backends' outcomes. [`kernel::KernelBackend`]
//! runs scenarios on real Linux TCP sockets over 127.0.0.1 and is the oracle.
//! [`gen`] produces random (but always non-hanging) scenarios from a seed and
//! as a proptest strategy; [`cases`] holds named scenarios documenting Linux
//! behaviour together with the outcomes Linux 6.18 produces.
//!
//! # Writing another backend
//!
//! Implement [`Backend::run`] following the contract in [`scenario`]: the
//! local socket is the active opener, pre-options are applied before
//! `connect()`, every peer step must have been fully processed by the local
//! stack before the next step runs, receive buffers are pre-filled with
//! [`scenario::FILL`] and recorded whole, and a blocking call that does not
//! return within [`scenario::WATCHDOG`] is reported as
//! [`Outcome::Harness`]. Then:
//!
//! ```no_run
//! use utcp_oracle::{gen::{seed_from_env, GenConfig}, run_random, KernelBackend};
//! # fn other() -> KernelBackend { KernelBackend::new() }
//! let seed = seed_from_env();
//! println!("UTCP_ORACLE_SEED={seed}");
//! let (mut kernel, mut other) = (KernelBackend::new(), other());
//! if let Err(f) = run_random(&mut kernel, &mut other, seed, 2000, &GenConfig::default(), true) {
//!     panic!("{f}"); // prints seeds, the mismatch and a minimised scenario
//! }
//! ```
//!
//! and check [`cases::named_cases`] with [`cases::check_case`].
#![warn(missing_docs)]

pub mod cases;
pub mod errno_table;
pub mod gen;
pub mod kernel;
pub mod scenario;
pub mod utcp;

pub use self::utcp::UtcpBackend;

/// Both backends run their scenarios over IPv6 (the kernel on `::1`, utcp on fd00::a/fd00::b
/// with AF_INET6 sockets) instead of IPv4. Process-wide: set it before any run (its own test
/// binary, `tests/ipv6.rs`).
pub fn set_ipv6(on: bool) {
    IPV6.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`set_ipv6`] is on.
pub fn ipv6() -> bool {
    IPV6.load(std::sync::atomic::Ordering::Relaxed)
}

static IPV6: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
pub use kernel::KernelBackend;
pub use scenario::{
    compare, compare_named, describe, differential, Backend, Cmsg, IoctlReq, Mismatch, Outcome, PreOpt, Scenario,
    Setup, Step,
};

use std::fmt;

/// Statistics of a successful [`run_random`].
#[derive(Clone, Debug)]
pub struct RandomStats {
    /// Scenarios run.
    pub scenarios: u64,
    /// Steps run (per backend).
    pub steps: u64,
    /// Wall time for the whole run (both backends).
    pub elapsed: std::time::Duration,
}

/// A failed random run, with everything needed to reproduce it.
#[derive(Debug)]
pub struct RandomFailure {
    /// The run seed (`UTCP_ORACLE_SEED`).
    pub run_seed: u64,
    /// Index of the failing scenario within the run.
    pub index: u64,
    /// Seed of the failing scenario (`gen::generate(seed, &cfg)`).
    pub scenario_seed: u64,
    /// The mismatch on the generated scenario.
    pub mismatch: Mismatch,
    /// A minimised scenario that still mismatches, and its mismatch.
    pub minimized: Option<(Scenario, Mismatch)>,
}

impl fmt::Display for RandomFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "random scenario #{} failed (run seed {} -- rerun with UTCP_ORACLE_SEED={}; \
             scenario = gen::generate({}, &cfg))",
            self.index, self.run_seed, self.run_seed, self.scenario_seed
        )?;
        writeln!(f, "{}", self.mismatch)?;
        if let Some((sc, m)) = &self.minimized {
            writeln!(f, "minimised ({} steps):\n{sc}{m}", sc.steps.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for RandomFailure {}

/// Run `n` random scenarios (seeds derived from `run_seed`) on both
/// backends and compare. On the first mismatch, optionally minimise it with
/// [`gen::shrink`] and return a [`RandomFailure`] naming the seeds.
pub fn run_random(
    a: &mut dyn Backend,
    b: &mut dyn Backend,
    run_seed: u64,
    n: u64,
    cfg: &gen::GenConfig,
    minimize: bool,
) -> Result<RandomStats, Box<RandomFailure>> {
    let start = std::time::Instant::now();
    let mut steps = 0u64;
    for i in 0..n {
        let s = gen::scenario_seed(run_seed, i);
        let sc = gen::generate(s, cfg);
        steps += sc.steps.len() as u64;
        if let Err(m) = differential(&sc, a, b) {
            let minimized = minimize.then(|| {
                let small = gen::shrink(&sc, |c| differential(c, a, b).is_err());
                let m = differential(&small, a, b).err();
                m.map(|m| (small, m))
            });
            return Err(Box::new(RandomFailure {
                run_seed,
                index: i,
                scenario_seed: s,
                mismatch: m,
                minimized: minimized.flatten(),
            }));
        }
    }
    Ok(RandomStats { scenarios: n, steps, elapsed: start.elapsed() })
}
