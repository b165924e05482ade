//! `utcp soak`, bounded: four connection slots for 2 s on a link with 2 % loss, reordering
//! and duplication (real threads, real clock), with random reads, writes, shutdowns, closes
//! and resets. Every clean stream arrives byte-exact, nothing hangs, every socket reaches
//! TIME_WAIT or CLOSE and then leaves the tables, and the heap comes back to near where it
//! started (what remains is bounded per connection: table capacity, not sockets).

use serde_json::Value;
use std::process::Command;

#[test]
fn short_impaired_soak_is_clean() {
    let o = Command::new(env!("CARGO_BIN_EXE_utcp"))
        .args(["soak", "--connections", "4", "--seconds", "2", "--loss", "0.02", "--reorder", "0.02"])
        .args(["--dup", "0.02", "--json"])
        .output()
        .expect("run utcp soak");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {out}"));
    assert!(n("connections") >= 4, "{out}");
    assert!(n("clean_streams") > 0 && n("verified_bytes") > 0, "{out}");
    for k in ["mismatched_streams", "hung_connections", "unexpected_errors", "sockets_left"] {
        assert_eq!(n(k), 0, "{k}: {out}");
    }
    let growth = n("heap_end").saturating_sub(n("heap_start"));
    assert!(growth < 64 * 1024 * n("connections"), "heap grew {growth} bytes: {out}");
}
