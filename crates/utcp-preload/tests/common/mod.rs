//! What the tests that run programs under the library share: the library's path and the
//! counters its `UTCP_STAT_FILE`s hold.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cdylib `cargo test` built with this test binary (in the same `deps/` directory: the
/// copy beside `deps/` is only refreshed by `cargo build` and may be stale), else that copy,
/// else built with cargo.
pub fn shared_object() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps dir");
    let fresh = deps.join("libutcp_preload.so");
    if fresh.is_file() {
        return fresh;
    }
    let dir = deps.parent().expect("target dir").to_path_buf();
    let so = dir.join("libutcp_preload.so");
    if !so.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "utcp-preload"])
            .env("CARGO_TARGET_DIR", dir.parent().expect("target root"))
            .status()
            .expect("cargo build");
        assert!(st.success(), "could not build libutcp_preload.so");
    }
    assert!(so.is_file(), "{} missing", so.display());
    so
}

/// A fresh directory for one run's files.
pub fn stat_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("utcp-preload-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// The counters of every stat file in `dir` (`stat.*`, `server.*`, `curl.*`: one per process
/// that made a stack), summed, and how many files there were.
pub fn stats(dir: &Path) -> (usize, HashMap<String, u64>) {
    let mut files = 0;
    let mut m = HashMap::new();
    for e in std::fs::read_dir(dir).expect("stat dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !["stat.", "server.", "curl."].iter().any(|p| name.starts_with(p)) {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut it = line.split_whitespace();
            if let (Some(k), Some(v)) = (it.next(), it.next()) {
                *m.entry(k.to_string()).or_insert(0) += v.parse::<u64>().unwrap_or(0);
            }
        }
    }
    (files, m)
}

/// Whether `tool` runs (`tool --version` or `-V` succeeds); says so when it does not.
pub fn have(tool: &str, why: &str) -> bool {
    let ok = ["--version", "-V"].iter().any(|a| Command::new(tool).arg(a).output().is_ok_and(|o| o.status.success()));
    if !ok {
        eprintln!("skipped{why}: {tool} not found");
    }
    ok
}
