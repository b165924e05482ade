//! Property: over random impairments (loss ≤ 10 %, reordering, duplication, corruption, delay)
//! and sizes, every byte arrives exactly once and in order, and the connection closes cleanly.
//! Fixed RNG seed, so every run explores the same cases.

mod common;

use common::transfer;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use utcp::netdev::memlink::LinkConfig;
use utcp::tcp::TcpState;
use utcp::time::Duration;

fn link() -> impl Strategy<Value = LinkConfig> {
    // GRO on or off: merging must not change what arrives, whatever the wire did.
    (0.0..=0.1f64, 0.0..=0.2f64, 0.0..=0.05f64, 0.0..=0.01f64, 0u64..=20, any::<u64>(), any::<bool>()).prop_map(
        |(loss, reorder, dup, corrupt, delay_ms, seed, gro)| LinkConfig {
            loss,
            reorder,
            dup,
            corrupt,
            delay: Duration::from_millis(delay_ms),
            seed,
            gro,
            ..LinkConfig::default()
        },
    )
}

#[test]
fn impaired_transfers_deliver_the_exact_stream_and_close() {
    let cfg = Config { cases: 64, failure_persistence: None, ..Config::default() };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[0x5a; 32]);
    let mut runner = TestRunner::new_with_rng(cfg, rng);
    let strategy = (link(), 1usize..=256 * 1024, prop::option::of(any::<u32>()));
    let ran = std::cell::Cell::new(0u32);
    let lossy = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |(cfg, len, isn)| {
            ran.set(ran.get() + 1);
            let (sent, got, net) = transfer(cfg.clone(), len, isn);
            prop_assert_eq!(got.len(), sent.len(), "length differs under {:?}", cfg);
            prop_assert!(got == sent, "stream corrupted, duplicated or reordered under {:?}", cfg);
            // A's FIN was delivered (B read EOF); now B closes too and both ends finish.
            let (a, b) = (&net.a.stack, &net.b.stack);
            for fd in 3..8 {
                let _ = b.close(fd);
            }
            let done = net.run_until(Duration::from_secs(300), || {
                a.core
                    .sockets()
                    .iter()
                    .chain(b.core.sockets().iter())
                    .all(|sk| sk.peek_tp(|tp| matches!(tp.state, TcpState::TimeWait | TcpState::Close)))
            });
            prop_assert!(done, "connection did not close under {:?}", cfg);
            prop_assert_eq!(a.core.net.mib.get(utcp::mib::LinuxMib::TCPAbortOnTimeout), 0);
            if net.a.port.as_ref().unwrap().stats().lost > 0 {
                lossy.set(lossy.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(ran.get(), 64);
    assert!(lossy.get() > 32, "most cases lost frames: {}", lossy.get());
}
