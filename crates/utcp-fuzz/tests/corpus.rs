//! Every fuzz target on the stable toolchain: the committed corpus (`fuzz/corpus/<target>/`,
//! seeds and regression inputs) replayed, then a seeded random pass (fixed seed, so every run
//! feeds the same inputs). A panic in a harness is an invariant broken.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use utcp_fuzz::TARGETS;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = corpus_dir(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    for p in &files {
        let data = std::fs::read(p).expect("corpus file");
        eprintln!("{target}: {}", p.display());
        f(&data);
    }
    files.len()
}

fn random(f: fn(&[u8]), seed: u64, cases: usize, max_len: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..cases {
        let len = rng.gen_range(0..max_len);
        let mut data = vec![0u8; len];
        rng.fill_bytes(&mut data);
        f(&data);
    }
}

fn target(name: &str) -> fn(&[u8]) {
    TARGETS.iter().find(|(n, _)| *n == name).expect("target").1
}

#[test]
fn corpus_replays_for_every_target() {
    for (name, f) in TARGETS {
        assert!(replay(name, f) >= 3, "{name}: fewer than 3 corpus files");
    }
}

#[test]
fn random_packet_input() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut total = utcp_fuzz::packet_input::Stats::default();
    let mut closed = 0;
    for _ in 0..200 {
        let mut data = vec![0u8; rng.gen_range(0..3000)];
        rng.fill_bytes(&mut data);
        let s = utcp_fuzz::packet_input::run_stats(&data);
        total.ops += s.ops;
        total.bytes_read += s.bytes_read;
        total.bytes_written += s.bytes_written;
        closed += usize::from(s.closed);
    }
    eprintln!("{total:?}, {closed} of 200 runs ended closed");
    // The pass reaches the data path: most inputs decode, streams are read and checked, and
    // not every run ends in a reset.
    assert!(total.ops > 200 * 20, "{total:?}");
    assert!(total.bytes_read > 100_000, "{total:?}");
    assert!(closed < 200, "every run ended closed");
}

#[test]
fn random_wire() {
    random(target("wire"), 2, 20_000, 200);
}

#[test]
fn random_calls() {
    random(target("calls"), 3, 200, 1500);
}

#[test]
fn random_drill_parser() {
    random(target("drill_parser"), 4, 5_000, 400);
}
