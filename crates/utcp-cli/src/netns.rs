//! The kernel baseline under loss: `--kernel` with `--loss P` runs the kernel's workloads in a
//! network namespace this bench creates (and removes), on its loopback at the utcp link's MTU
//! with offloads off, where an iptables `statistic` rule drops the same share of packets. This
//! kernel has no netem. Loopback packets pass the INPUT hook once, so the rule drops P of each
//! direction. The workloads run in a child `utcp bench --kernel-only` started with
//! `ip netns exec`, whose JSON is read back.

use std::io;
use std::process::Command;

use serde_json::{Map, Value};

use crate::bench::{BenchConfig, BulkResult, RrResult};

/// A namespace with a lossy loopback; removed on drop.
pub struct LossNetns {
    name: String,
    pub loss: f64,
    pub mtu: u16,
    /// Whether `ethtool -K lo tso off gso off gro off` succeeded.
    pub offloads_off: bool,
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when this process runs as root (needed for namespaces and iptables).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

impl LossNetns {
    /// Creates the namespace; `Err` says why the kernel side cannot run (and is skipped).
    pub fn create(loss: f64, mtu: u16) -> Result<LossNetns, String> {
        if !is_root() {
            return Err("the lossy kernel baseline needs root (a network namespace and iptables)".into());
        }
        let name = format!("utcp-bench-{}", std::process::id());
        run(&["ip", "netns", "add", &name])?;
        let mut ns = LossNetns { name, loss, mtu, offloads_off: false };
        ns.offloads_off = ns.setup()?; // on an error, dropping `ns` removes the namespace
        Ok(ns)
    }

    fn exec(&self, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        run(&v)
    }

    fn setup(&self) -> Result<bool, String> {
        self.exec(&["ip", "link", "set", "lo", "mtu", &self.mtu.to_string(), "up"])?;
        let offloads_off = self.exec(&["ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off"]).is_ok();
        if !offloads_off {
            eprintln!("utcp: warning: could not turn loopback offloads off in the namespace (ethtool missing?)");
        }
        if self.loss > 0.0 {
            let p = format!("{}", self.loss);
            self.exec(&[
                "iptables",
                "-A",
                "INPUT",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &p,
                "-j",
                "DROP",
            ])
            .map_err(|e| format!("{e} (iptables with the statistic match is needed)"))?;
        }
        Ok(offloads_off)
    }

    /// The namespace's default congestion control (`net.ipv4.tcp_congestion_control`, which a
    /// new namespace inherits from the host: BBR on the development machine). The workloads'
    /// sockets do not use it: `--kernel-congestion` sets theirs (only the init namespace may
    /// make a restricted algorithm such as cubic the default: EPERM here).
    pub fn congestion_control(&self) -> String {
        self.exec(&["sysctl", "-n", "net.ipv4.tcp_congestion_control"])
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"))
    }

    /// Runs the workloads in the namespace.
    /// Returns the results and the congestion control the kernel sockets reported.
    pub fn run_kernel(
        &self,
        cfg: &BenchConfig,
        streams: u32,
        congestion: &str,
    ) -> io::Result<(BulkResult, RrResult, Option<String>)> {
        let exe = std::env::current_exe()?;
        let exe = exe.to_string_lossy().into_owned();
        let (bytes, chunk) = (cfg.bytes.to_string(), cfg.chunk_size.to_string());
        let (rr, trips, warm, seed) =
            (cfg.rr_size.to_string(), cfg.rr_round_trips.to_string(), cfg.rr_warmup.to_string(), cfg.seed.to_string());
        let mut args = vec![
            exe.as_str(),
            "bench",
            "--kernel-only",
            "--json",
            "--no-progress",
            "--bytes",
            &bytes,
            "--chunk",
            &chunk,
            "--rr-size",
            &rr,
            "--round-trips",
            &trips,
            "--warmup",
            &warm,
            "--seed",
            &seed,
            "--kernel-congestion",
            congestion,
        ];
        let st = streams.to_string();
        args.extend_from_slice(&["--streams", &st]);
        let bp = cfg.busy_poll_us.map(|u| u.to_string());
        if let Some(bp) = &bp {
            args.extend_from_slice(&["--busy-poll", bp]);
        }
        let out = self.exec(&args).map_err(io::Error::other)?;
        let v: Value = serde_json::from_str(&out).map_err(|e| io::Error::other(format!("child report: {e}")))?;
        let bulk = serde_json::from_value(v["bulk"].clone()).map_err(|e| io::Error::other(format!("bulk: {e}")))?;
        let rr = serde_json::from_value(v["rr"].clone()).map_err(|e| io::Error::other(format!("rr: {e}")))?;
        let used = v["kernel_link"]["congestion_control"].as_str().map(str::to_string);
        Ok((bulk, rr, used))
    }

    /// The namespace's nonzero TCP counters (`/proc/net/snmp` Tcp, `/proc/net/netstat` TcpExt)
    /// and the packets the loss rule dropped.
    pub fn counters(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (file, prefix) in [("/proc/net/snmp", "Tcp:"), ("/proc/net/netstat", "TcpExt:")] {
            let Ok(text) = self.exec(&["cat", file]) else { continue };
            let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
            if let [names, values] = rows[..] {
                for (n, v) in names.split_whitespace().zip(values.split_whitespace()).skip(1) {
                    if let Ok(v) = v.parse::<i64>() {
                        if v != 0 {
                            m.insert(format!("{}{n}", prefix.trim_end_matches(':')), v.into());
                        }
                    }
                }
            }
        }
        if let Ok(t) = self.exec(&["iptables", "-L", "INPUT", "-v", "-x", "-n"]) {
            if let Some(pkts) = t.lines().find(|l| l.contains("statistic")).and_then(|l| l.split_whitespace().next()) {
                if let Ok(p) = pkts.parse::<u64>() {
                    m.insert("dropped_by_rule".into(), p.into());
                }
            }
        }
        m
    }
}

impl Drop for LossNetns {
    fn drop(&mut self) {
        if let Err(e) = run(&["ip", "netns", "del", &self.name]) {
            eprintln!("utcp: warning: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossy_namespace_drops_and_is_removed() {
        if !is_root() || run(&["iptables", "-V"]).is_err() || run(&["ping", "-V"]).is_err() {
            println!("skipped: needs root, iptables and ping");
            return;
        }
        let ns = match LossNetns::create(0.5, 1500) {
            Ok(ns) => ns,
            Err(e) => {
                println!("skipped: {e}");
                return;
            }
        };
        let name = ns.name.clone();
        // Pings over the lossy loopback: about half of the 40 packets (20 echoes, 20 replies)
        // are dropped; some get through.
        let _ = ns.exec(&["ping", "-c", "20", "-i", "0.01", "-W", "0.1", "-q", "127.0.0.1"]);
        let c = ns.counters();
        let dropped = c.get("dropped_by_rule").and_then(Value::as_u64).unwrap_or(0);
        drop(ns);
        let list = run(&["ip", "netns", "list"]).unwrap();
        assert!(!list.contains(&name), "namespace {name} left behind");
        assert!(dropped > 0 && dropped < 40, "{dropped}");
    }
}
