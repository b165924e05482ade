//! Sysctls from the host namespace: under the real packetdrill a script's shell commands
//! (`sysctl -q net.ipv4.tcp_rmem=...`) write the network namespace packetdrill runs in, so the
//! stack copies that namespace's `/proc/sys` values into its own sysctls before every call.

use std::path::PathBuf;
use utcp::sysctl::Sysctls;

/// The utcp sysctls that exist under a `/proc/sys` root, with their files.
pub struct ProcSysctls {
    knobs: Vec<(String, PathBuf)>,
    /// Values the stack refused, by name, each reported once on stderr.
    refused: parking_lot::Mutex<std::collections::HashMap<String, String>>,
}

impl ProcSysctls {
    /// Finds which of the stack's sysctls exist under `root` (Linux 6.18 has no
    /// `tcp_low_latency`, and a network namespace other than the initial one has no
    /// `netdev_max_backlog`: those keep utcp's values).
    pub fn new(root: PathBuf, sysctls: &Sysctls) -> ProcSysctls {
        let knobs = sysctls
            .dump()
            .lines()
            .filter_map(|l| l.split_once(" = ").map(|(n, _)| n.trim().to_string()))
            .map(|n| {
                let path = root.join(n.replace('.', "/"));
                (n, path)
            })
            .filter(|(_, p)| p.is_file())
            .collect();
        ProcSysctls { knobs, refused: Default::default() }
    }

    /// How many sysctls are followed.
    pub fn len(&self) -> usize {
        self.knobs.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.knobs.is_empty()
    }

    /// Copies the current values into `sysctls`. A value the stack refuses (one it does not
    /// honour) keeps utcp's value and is reported on stderr with the reason, once per value:
    /// the script's shell wrote the kernel's sysctl, so no call can fail for it.
    pub fn refresh(&self, sysctls: &Sysctls) {
        for (name, path) in &self.knobs {
            if let Ok(v) = std::fs::read_to_string(path) {
                let v = v.trim();
                if sysctls.get_by_name(name).is_ok_and(|cur| cur.split_whitespace().eq(v.split_whitespace())) {
                    continue;
                }
                if sysctls.set_by_name(name, v).is_err() {
                    let mut refused = self.refused.lock();
                    if refused.get(name).map(String::as_str) != Some(v) {
                        let why = utcp::sysctl::check_write(name, v)
                            .err()
                            .unwrap_or_else(|| format!("sysctl {name}={v}: not a valid value"));
                        eprintln!("utcp: {why}; utcp keeps {name}={}", sysctls.get_by_name(name).unwrap_or_default());
                        refused.insert(name.clone(), v.to_string());
                    }
                }
            }
        }
    }
}
