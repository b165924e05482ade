//! Bench reports: the JSON object scripts read and the human table.
//!
//! JSON keys scripts rely on (see `json_shape` test):
//! `integrity`, `bulk.{bytes,seconds,gbytes_per_s}`,
//! `rr.{size,round_trips,rtt_us.{p50,p99}}`, and with `--kernel` also
//! `kernel.{bulk,rr}` (same shape) and `ratio.{bulk,rtt_p50}`; `progress` (true when
//! progress was shown on stderr, a bar or lines).

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::args::{BenchSettings, Impairments};
use crate::bench::{BenchConfig, BulkResult, RrResult};
use crate::units::{fmt_rate, fmt_size};

/// One transport's results.
#[derive(Debug, Clone, Serialize)]
pub struct TransportReport {
    pub transport: String,
    /// "ok" iff the bulk stream arrived intact and every rr echo matched.
    pub integrity: &'static str,
    pub bulk: BulkResult,
    pub rr: RrResult,
    /// The transport's counters ([`crate::bench::Transport::counters`]).
    pub mib: Map<String, Value>,
}

impl TransportReport {
    pub fn new(transport: &str, bulk: BulkResult, rr: RrResult, mib: Map<String, Value>) -> Self {
        let ok = bulk.integrity_ok && rr.integrity_ok;
        TransportReport {
            transport: transport.to_string(),
            integrity: if ok { "ok" } else { "mismatch" },
            bulk,
            rr,
            mib,
        }
    }

    pub fn ok(&self) -> bool {
        self.integrity == "ok"
    }
}

/// Ratios of the measured transport to the kernel (and to smoltcp with `--peers`); above 1 is
/// better. The kernel ratios are null without `--kernel`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ratio {
    /// Bulk throughput, measured / kernel.
    pub bulk: Option<f64>,
    /// Median round-trip time, kernel / measured.
    pub rtt_p50: Option<f64>,
    /// 99th percentile round-trip time, kernel / measured.
    pub rtt_p99: Option<f64>,
    /// Bulk throughput, measured / smoltcp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoltcp_bulk: Option<f64>,
    /// Median round-trip time, smoltcp / measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoltcp_rtt_p50: Option<f64>,
}

/// Heap allocations during the bulk phase per data segment the receiver took in.
#[derive(Debug, Clone, Serialize)]
pub struct AllocReport {
    /// Allocations the whole process made from the first write to the last read.
    pub allocations: u64,
    /// Segments the receiving side took in meanwhile (the wire's: with GRO the stack's
    /// `TcpInSegs` counts merged packets).
    pub segments: u64,
    pub per_segment: f64,
}

/// `--peers`: other stacks run in the same process, same workloads.
#[derive(Debug, Clone, Serialize)]
pub struct Peers {
    pub smoltcp: crate::peers::PeerReport,
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    let r = num / den;
    r.is_finite().then_some(r)
}

impl Ratio {
    pub fn of(m: &TransportReport, k: &TransportReport) -> Ratio {
        Ratio {
            bulk: ratio(m.bulk.gbytes_per_s, k.bulk.gbytes_per_s),
            rtt_p50: ratio(k.rr.rtt_us.p50, m.rr.rtt_us.p50),
            rtt_p99: ratio(k.rr.rtt_us.p99, m.rr.rtt_us.p99),
            ..Ratio::default()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigReport {
    #[serde(flatten)]
    pub bench: BenchConfig,
    pub mtu: u16,
    /// The utcp link's `gso_max_size` (0: no TSO/GSO).
    pub gso_max_size: u32,
    /// GRO on the utcp link's receive (`--no-gro`: false).
    pub gro: bool,
    pub pcap: Option<String>,
}

/// The whole `utcp bench` report. The measured transport's fields sit at
/// the top level; with `--kernel` the baseline sits under `kernel`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub main: TransportReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<TransportReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Ratio>,
    pub config: ConfigReport,
    pub impairments: Impairments,
    /// Progress was shown on stderr (a bar or lines) during any workload.
    pub progress: bool,
    /// `alloc.per_segment` of the measured transport (absent for the kernel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alloc: Option<AllocReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Peers>,
    /// Where the kernel baseline ran (plain loopback, or a lossy namespace), or why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_link: Option<Value>,
    /// The utcp stack's congestion control (`net.ipv4.tcp_congestion_control`), absent
    /// when utcp did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utcp_congestion_control: Option<String>,
}

impl Report {
    pub fn new(s: &BenchSettings, main: TransportReport, kernel: Option<TransportReport>) -> Self {
        let ratio = kernel.as_ref().map(|k| Ratio::of(&main, k));
        let progress =
            std::iter::once(&main).chain(kernel.as_ref()).any(|t| t.bulk.progress_shown || t.rr.progress_shown);
        Report {
            progress,
            main,
            kernel,
            ratio,
            config: ConfigReport {
                bench: s.cfg.clone(),
                mtu: s.mtu,
                gso_max_size: s.gso_max_size,
                gro: s.gro,
                pcap: s.pcap.as_ref().map(|p| p.display().to_string()),
            },
            impairments: s.impairments.clone(),
            alloc: None,
            peers: None,
            kernel_link: None,
            utcp_congestion_control: None,
        }
    }

    /// Sets `kernel_link`.
    pub fn with_kernel_link(mut self, link: Value) -> Self {
        self.kernel_link = Some(link);
        self
    }

    /// Sets `alloc`.
    pub fn with_alloc(mut self, alloc: Option<AllocReport>) -> Self {
        self.alloc = alloc;
        self
    }

    /// Adds the smoltcp peer's results and the utcp/smoltcp ratios.
    pub fn with_peers(mut self, smoltcp: crate::peers::PeerReport) -> Self {
        let r = self.ratio.get_or_insert_with(Ratio::default);
        r.smoltcp_bulk = ratio(self.main.bulk.gbytes_per_s, smoltcp.bulk.gbytes_per_s);
        r.smoltcp_rtt_p50 = ratio(smoltcp.rr.rtt_us.p50, self.main.rr.rtt_us.p50);
        self.peers = Some(Peers { smoltcp });
        self
    }

    /// Every transport that ran kept its data intact.
    pub fn all_ok(&self) -> bool {
        self.main.ok() && self.kernel.iter().all(|k| k.ok())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }

    /// A compact table, transports side by side.
    pub fn to_table(&self) -> String {
        let c = &self.config.bench;
        let mut out = String::new();
        let wait = match c.busy_poll_us {
            Some(us) => format!("busy-poll {us}us"),
            None => "blocking".into(),
        };
        let _ = writeln!(
            out,
            "utcp bench: bulk {} ({} writes), rr {} B x {} (+{} warm-up, {wait}), seed {}",
            fmt_size(c.bytes),
            fmt_size(c.chunk_size as u64),
            c.rr_size,
            c.rr_round_trips,
            c.rr_warmup,
            c.seed,
        );
        if self.main.transport != "kernel" {
            let _ = writeln!(
                out,
                "{} link: mtu {}{}{}, impairments: {}{}",
                self.main.transport,
                self.config.mtu,
                if self.config.gso_max_size > 0 {
                    format!(", gso {}", self.config.gso_max_size)
                } else {
                    String::new()
                },
                if self.config.gro { ", gro" } else { "" },
                describe_impairments(&self.impairments),
                self.config.pcap.as_ref().map(|p| format!(", pcap {p}")).unwrap_or_default(),
            );
        }
        if self.kernel.is_some() {
            let _ = writeln!(out, "kernel: TCP over 127.0.0.1, TCP_NODELAY");
        }
        out.push('\n');

        let peer = self.peers.as_ref().map(|p| {
            let s = &p.smoltcp;
            TransportReport::new(&s.transport, s.bulk.clone(), s.rr.clone(), Map::new())
        });
        let cols: Vec<&TransportReport> =
            std::iter::once(&self.main).chain(self.kernel.as_ref()).chain(peer.as_ref()).collect();
        let _ = write!(out, "{:<24}", "");
        for t in &cols {
            let _ = write!(out, "{:>12}", t.transport);
        }
        let kratio = self.ratio.as_ref().filter(|_| self.kernel.is_some());
        if kratio.is_some() {
            let _ = write!(out, "{:>10}", "ratio");
        }
        out.push('\n');

        type Getter = fn(&TransportReport) -> String;
        type RatioGetter = fn(&Ratio) -> Option<f64>;
        let rows: [(&str, Getter, Option<RatioGetter>); 10] = [
            ("bulk GB/s", |t| format!("{:.3}", t.bulk.gbytes_per_s), Some(|r| r.bulk)),
            ("bulk seconds", |t| format!("{:.3}", t.bulk.seconds), None),
            ("bulk integrity", |t| ok_str(t.bulk.integrity_ok), None),
            ("rr rtt p50 us", |t| format!("{:.1}", t.rr.rtt_us.p50), Some(|r| r.rtt_p50)),
            ("rr rtt p99 us", |t| format!("{:.1}", t.rr.rtt_us.p99), Some(|r| r.rtt_p99)),
            ("rr rtt p99.9 us", |t| format!("{:.1}", t.rr.rtt_us.p999), None),
            ("rr rtt min us", |t| format!("{:.1}", t.rr.rtt_us.min), None),
            ("rr rtt mean us", |t| format!("{:.1}", t.rr.rtt_us.mean), None),
            ("rr rtt max us", |t| format!("{:.1}", t.rr.rtt_us.max), None),
            ("rr integrity", |t| ok_str(t.rr.integrity_ok), None),
        ];
        for (label, get, rget) in rows {
            let _ = write!(out, "{label:<24}");
            for t in &cols {
                let _ = write!(out, "{:>12}", get(t));
            }
            if let (Some(r), Some(rget)) = (kratio, rget) {
                let s = rget(r).map(|v| format!("{v:.2}x")).unwrap_or_else(|| "-".into());
                let _ = write!(out, "{s:>10}");
            }
            out.push('\n');
        }
        if kratio.is_some() {
            let _ =
                writeln!(out, "(ratio > 1: {} is better; bulk = {0}/kernel, rtt = kernel/{0})", self.main.transport);
        }
        if let Some(r) = &self.ratio {
            if let (Some(b), Some(l)) = (r.smoltcp_bulk, r.smoltcp_rtt_p50) {
                let _ = writeln!(out, "utcp/smoltcp: bulk {b:.2}x, rtt p50 {l:.2}x (smoltcp/utcp)");
            }
        }
        if let Some(a) = &self.alloc {
            let _ = writeln!(
                out,
                "allocations: {:.2} per received segment ({} over {} segments)",
                a.per_segment, a.allocations, a.segments
            );
        }
        if let Some(k) = &self.kernel_link {
            let _ = writeln!(out, "kernel link: {k}");
        }
        for t in &cols {
            if !t.mib.is_empty() {
                let _ = writeln!(out, "\n{} counters:", t.transport);
                for (k, v) in &t.mib {
                    let _ = writeln!(out, "  {k:<30} {v}");
                }
            }
        }
        let _ = writeln!(out, "\nintegrity: {}", if self.all_ok() { "ok" } else { "MISMATCH" });
        out
    }
}

fn ok_str(ok: bool) -> String {
    if ok { "ok" } else { "MISMATCH" }.into()
}

fn describe_impairments(i: &Impairments) -> String {
    if i.is_none() {
        return "none".into();
    }
    let mut parts = Vec::new();
    for (name, p) in [("loss", i.loss), ("reorder", i.reorder), ("dup", i.dup), ("corrupt", i.corrupt)] {
        if p > 0.0 {
            parts.push(format!("{name} {}%", p * 100.0));
        }
    }
    if !i.delay.is_zero() {
        parts.push(format!("delay {:?}", i.delay));
    }
    if let Some(r) = i.rate {
        parts.push(format!("rate {}", fmt_rate(r)));
    }
    parts.push(format!("seed {}", i.seed));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Percentiles;
    use std::time::Duration;

    fn fake(name: &str, gbps: f64, p50: f64) -> TransportReport {
        let bulk = BulkResult {
            bytes: 1 << 30,
            seconds: (1u64 << 30) as f64 / gbps / 1e9,
            gbytes_per_s: gbps,
            integrity_ok: true,
            client_bytes: 1 << 30,
            server_bytes: 1 << 30,
            client_hash: 0xdead_beef,
            server_hash: 0xdead_beef,
            progress_shown: name == "kernel",
        };
        let rr = RrResult {
            size: 1,
            round_trips: 20_000,
            warmup: 100,
            seconds: 0.5,
            rtt_us: Percentiles { p50, p99: p50 * 2.0, ..Percentiles::default() },
            integrity_ok: true,
            mismatched_responses: 0,
            progress_shown: false,
        };
        let mut mib = Map::new();
        if name == "utcp" {
            mib.insert("tcp.retrans_segs".into(), 3.into());
        }
        TransportReport::new(name, bulk, rr, mib)
    }

    fn settings() -> BenchSettings {
        BenchSettings {
            cfg: BenchConfig::default(),
            impairments: Impairments {
                loss: 0.01,
                delay: Duration::from_micros(100),
                rate: Some(10_000_000_000),
                ..Impairments::default()
            },
            mtu: 1500,
            gso_max_size: 0,
            gro: true,
            pcap: None,
            with_kernel: true,
            kernel_only: false,
            kernel_congestion: "cubic".into(),
            congestion: "cubic".into(),
            json: true,
            timeout: None,
            peers: false,
            idle: None,
            streams: 1,
        }
    }

    #[test]
    fn json_shape() {
        let r = Report::new(&settings(), fake("utcp", 4.0, 10.0), Some(fake("kernel", 2.0, 20.0)));
        let v: Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["integrity"], "ok");
        for part in [&v, &v["kernel"]] {
            for k in ["bytes", "seconds", "gbytes_per_s"] {
                assert!(part["bulk"][k].is_number(), "bulk.{k}");
            }
            for k in ["size", "round_trips"] {
                assert!(part["rr"][k].is_number(), "rr.{k}");
            }
            for k in ["p50", "p99"] {
                assert!(part["rr"]["rtt_us"][k].is_number(), "rr.rtt_us.{k}");
            }
        }
        assert_eq!(v["ratio"]["bulk"], 2.0);
        assert_eq!(v["ratio"]["rtt_p50"], 2.0);
        assert_eq!(v["transport"], "utcp");
        assert_eq!(v["mib"]["tcp.retrans_segs"], 3);
        assert_eq!(v["impairments"]["loss"], 0.01);
        assert_eq!(v["config"]["mtu"], 1500);
        assert_eq!(v["config"]["bytes"], 1u64 << 30);
        assert_eq!(v["progress"], true, "the kernel run showed progress");

        let r = Report::new(&settings(), fake("utcp", 4.0, 10.0), None);
        let v: Value = serde_json::from_str(&r.to_json()).unwrap();
        assert!(v.get("kernel").is_none() && v.get("ratio").is_none());
        assert_eq!(v["progress"], false);
        assert!(v["mib"].is_object());
    }

    #[test]
    fn mismatch_and_ratio_edge_cases() {
        let mut m = fake("utcp", 4.0, 0.0);
        m.bulk.integrity_ok = false;
        let m = TransportReport::new("utcp", m.bulk, m.rr, Map::new());
        let r = Report::new(&settings(), m, Some(fake("kernel", 2.0, 20.0)));
        let v: Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["integrity"], "mismatch");
        assert_eq!(v["kernel"]["integrity"], "ok");
        assert!(v["ratio"]["rtt_p50"].is_null());
        assert!(!r.all_ok());
        assert!(r.to_table().contains("MISMATCH"));
    }

    #[test]
    fn table_has_both_columns() {
        let r = Report::new(&settings(), fake("utcp", 4.0, 10.0), Some(fake("kernel", 2.0, 20.0)));
        let t = r.to_table();
        assert!(t.contains("utcp") && t.contains("kernel") && t.contains("2.00x"), "{t}");
        assert!(t.contains("loss 1%") && t.contains("tcp.retrans_segs"), "{t}");
        let r = Report::new(&settings(), fake("kernel", 2.0, 20.0), None);
        assert!(!r.to_table().contains("ratio"));
    }
}
