//! `utcp bench --pcap FILE` writes a whole capture: every record complete (the writer is
//! flushed at the end, after the connections have closed, so the FINs are in it), wall-clock
//! timestamps as tcpdump writes them, and, when tshark is installed, no malformed packet.

use std::process::Command;
use utcp::netdev::pcap::read_pcap;

#[test]
fn bench_pcap_is_complete_and_wall_clocked() {
    let dir = std::env::temp_dir().join(format!("utcp-bench-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_utcp"))
        .args(["bench", "--bytes", "8M", "--round-trips", "50", "--no-progress", "--json", "--pcap"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["integrity"], "ok");
    for host in ["client", "server"] {
        assert_eq!(v["mib"]["devices"][host]["rx_dropped"], 0, "{host}");
        assert_eq!(v["mib"]["devices"][host]["tx_dropped"], 0, "{host}");
    }
    let bytes = std::fs::read(&path).unwrap();
    let pkts = read_pcap(&bytes).expect("a complete capture (no record cut short)");
    assert!(pkts.len() > 5000, "{} packets", pkts.len());
    // The wire's packets (GRO, on by default, merges only what the receiving stack sees).
    assert!(pkts.iter().all(|(_, p)| p.len() <= 1500), "a packet larger than the MTU in the capture");
    // Both connections (bulk, rr) closed in both directions: four FINs on the wire.
    let fins = pkts
        .iter()
        .filter(|(_, p)| {
            let ihl = (p[0] & 15) as usize * 4;
            p.len() > ihl + 13 && p[ihl + 13] & 1 != 0
        })
        .count();
    assert_eq!(fins, 4, "the closing FINs are in the capture");
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let first = pkts[0].0.nanos();
    assert!(first <= wall && wall - first < 600_000_000_000, "timestamps are wall-clock: {first}");
    if let Ok(t) = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&path)
        .args(["-Y", "_ws.malformed || _ws.expert.severity >= error"])
        .output()
    {
        assert!(t.status.success(), "tshark: {}", String::from_utf8_lossy(&t.stderr));
        assert!(t.stdout.is_empty(), "tshark found malformed packets: {}", String::from_utf8_lossy(&t.stdout));
        assert!(!String::from_utf8_lossy(&t.stderr).contains("cut short"));
    } else {
        eprintln!("tshark not installed: skipping its check");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
