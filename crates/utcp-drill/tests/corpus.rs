//! Parse the packetdrill corpus in /work/shared/packetdrill (sibling of the
//! repository). Skips (with a message) when the directory is absent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use utcp_drill::ast::{EventKind, TimeSpec};
use utcp_drill::parse_script;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/packetdrill");

fn corpus_dir() -> Option<PathBuf> {
    let p = PathBuf::from(CORPUS);
    // CI and every developer checkout have shared/ beside the repository: a missing corpus
    // is a broken setup, not a pass.
    assert!(p.is_dir(), "packetdrill corpus not found at {CORPUS}: shared/packetdrill must lie beside the repository");
    Some(p)
}

fn collect_pkt(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_pkt(&p, out);
        } else if p.extension().is_some_and(|e| e == "pkt") {
            out.push(p);
        }
    }
}

#[test]
fn oracle_scripts_parse() {
    let Some(dir) = corpus_dir() else { return };
    let list = std::fs::read_to_string(dir.join("oracle-6.18.txt")).expect("oracle list");
    let mut n = 0;
    let mut failures = Vec::new();
    for rel in list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        n += 1;
        let path = dir.join(rel);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{rel}: cannot read: {e}"));
                continue;
            }
        };
        match parse_script(&text, &HashMap::new()) {
            Ok(script) => {
                assert!(!script.events.is_empty(), "{rel}: no events");
                // Every event line must be within the file and point at a
                // non-blank line.
                let lines: Vec<&str> = text.lines().collect();
                for ev in &script.events {
                    assert!(ev.line >= 1 && ev.line <= lines.len(), "{rel}: bad line {}", ev.line);
                    assert!(!lines[ev.line - 1].trim().is_empty(), "{rel}:{} blank", ev.line);
                }
            }
            Err(e) => failures.push(format!("{rel}:{e}")),
        }
    }
    assert_eq!(n, 40, "oracle list should name 40 scripts");
    assert!(failures.is_empty(), "oracle scripts failed to parse:\n{}", failures.join("\n"));
}

#[test]
fn whole_corpus_parse_count() {
    let Some(dir) = corpus_dir() else { return };
    let mut files = Vec::new();
    collect_pkt(&dir, &mut files);
    let mut ok = 0;
    let mut failures = Vec::new();
    for f in &files {
        let text = match std::fs::read(f) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                failures.push(format!("{}: {e}", f.display()));
                continue;
            }
        };
        match parse_script(&text, &HashMap::new()) {
            Ok(_) => ok += 1,
            Err(e) => failures.push(format!("{}:{e}", f.strip_prefix(&dir).unwrap_or(f).display())),
        }
    }
    println!("corpus: {ok}/{} .pkt scripts parse", files.len());
    for f in &failures {
        println!("  FAIL {f}");
    }
    assert!(!files.is_empty());
}

#[test]
fn oracle_blocking_read_shape() {
    let Some(dir) = corpus_dir() else { return };
    let text = std::fs::read_to_string(
        dir.join("linux/tools/testing/selftests/net/packetdrill/tcp_blocking_blocking-read.pkt"),
    )
    .unwrap();
    let s = parse_script(&text, &HashMap::new()).unwrap();
    let blocking = s.events.iter().filter(|e| matches!(e.time, TimeSpec::Blocking { .. })).count();
    assert!(blocking >= 1);
    assert!(s.events.iter().any(|e| matches!(&e.kind, EventKind::Syscall(c) if c.name == "read")));
}
