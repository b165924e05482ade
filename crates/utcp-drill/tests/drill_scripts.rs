//! Runs the packetdrill scripts that pass on Linux 6.18 (`oracle-6.18.txt`) and our own
//! kernel-verified scripts; every one must pass under `utcp drill`.

use std::path::{Path, PathBuf};
use utcp_drill::{run_file, DrillOptions, Outcome};

/// `shared/packetdrill` beside the repository (as on the developers' machines and in CI).
const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/packetdrill");

/// Scripts known to fail under utcp, each with the reason (STYLE.md §14). A listed script that
/// starts passing fails the test until its entry is removed, so the list only shrinks.
const EXPECTED_FAILURES: &str = include_str!("expected-failures.txt");

fn expected_failures() -> Vec<(String, String)> {
    EXPECTED_FAILURES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (p, r) = l.split_once('|').unwrap_or((l, ""));
            (p.trim().to_string(), r.trim().to_string())
        })
        .collect()
}

fn run_all(files: &[PathBuf]) {
    let opts = DrillOptions { verbose: std::env::var_os("DRILL_VERBOSE").is_some(), ..DrillOptions::default() };
    let filter = std::env::var("DRILL_FILTER").ok();
    let expected = expected_failures();
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

#[test]
fn oracle_6_18_scripts_pass() {
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
    run_all(&files);
}

#[test]
fn own_scripts_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/packetdrill");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/packetdrill")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pkt"))
        .collect();
    files.sort();
    run_all(&files);
}
