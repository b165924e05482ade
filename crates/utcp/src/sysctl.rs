//! The stack's sysctls (`net.ipv4.*`, `net.core.*`), with Linux 6.18 defaults.
//! Defaults are those of a fresh network namespace on Linux 6.18 (checked with `unshare -n sysctl`).
//!
//! Values are atomics so packet input reads them without a lock, as the kernel's `READ_ONCE`
//! of `sock_net(sk)->ipv4.sysctl_*` does. Triples such as `tcp_rmem` are stored as three values.

use crate::errno::{Errno, SysResult};
use core::sync::atomic::{AtomicI64, Ordering};

macro_rules! sysctls {
    ($( $field:ident : $name:literal = [$($def:expr),+] ),* $(,)?) => {
        /// One stack's sysctls.
        #[allow(missing_docs)]
        pub struct Sysctls { $(pub $field: Knob),* }

        impl Default for Sysctls {
            fn default() -> Self {
                Sysctls { $($field: Knob::new($name, &[$($def),+])),* }
            }
        }

        impl Sysctls {
            fn knobs(&self) -> Vec<&Knob> {
                vec![$(&self.$field),*]
            }
        }
    };
}

/// One sysctl: one to three integer values.
pub struct Knob {
    name: &'static str,
    vals: [AtomicI64; 3],
    n: usize,
}

impl Knob {
    fn new(name: &'static str, defs: &[i64]) -> Knob {
        let vals = core::array::from_fn(|i| AtomicI64::new(defs.get(i).copied().unwrap_or(0)));
        Knob { name, vals, n: defs.len() }
    }
    /// The (first) value.
    #[inline]
    pub fn get(&self) -> i64 {
        self.vals[0].load(Ordering::Relaxed)
    }
    /// Value `i` of a triple.
    #[inline]
    pub fn idx(&self, i: usize) -> i64 {
        self.vals[i].load(Ordering::Relaxed)
    }
    /// Sets the first value.
    pub fn set(&self, v: i64) {
        self.vals[0].store(v, Ordering::Relaxed)
    }
    /// The sysctl's dotted name.
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// Formats like `sysctl -n`: values separated by tabs.
    pub fn format(&self) -> String {
        (0..self.n).map(|i| self.idx(i).to_string()).collect::<Vec<_>>().join("\t")
    }
}

sysctls! {
    tcp_rmem: "net.ipv4.tcp_rmem" = [4096, 131072, 33554432],
    // tcp_init() sizes tcp_mem from the free memory at boot (pressure at 1/16 of it, in
    // pages): these are a 24 GiB machine's.
    tcp_mem: "net.ipv4.tcp_mem" = [287907, 383879, 575814],
    tcp_wmem: "net.ipv4.tcp_wmem" = [4096, 16384, 4194304],
    rmem_max: "net.core.rmem_max" = [4194304],
    wmem_max: "net.core.wmem_max" = [4194304],
    rmem_default: "net.core.rmem_default" = [212992],
    somaxconn: "net.core.somaxconn" = [4096],
    busy_read: "net.core.busy_read" = [0],
    busy_poll: "net.core.busy_poll" = [0],
    txrehash: "net.core.txrehash" = [1],
    tcp_timestamps: "net.ipv4.tcp_timestamps" = [1],
    tcp_window_scaling: "net.ipv4.tcp_window_scaling" = [1],
    tcp_sack: "net.ipv4.tcp_sack" = [1],
    tcp_dsack: "net.ipv4.tcp_dsack" = [1],
    tcp_fack: "net.ipv4.tcp_fack" = [0],
    tcp_low_latency: "net.ipv4.tcp_low_latency" = [1],
    tcp_moderate_rcvbuf: "net.ipv4.tcp_moderate_rcvbuf" = [1],
    tcp_syn_retries: "net.ipv4.tcp_syn_retries" = [6],
    tcp_syn_linear_timeouts: "net.ipv4.tcp_syn_linear_timeouts" = [4],
    tcp_synack_retries: "net.ipv4.tcp_synack_retries" = [5],
    tcp_retries2: "net.ipv4.tcp_retries2" = [15],
    tcp_orphan_retries: "net.ipv4.tcp_orphan_retries" = [0],
    tcp_fin_timeout: "net.ipv4.tcp_fin_timeout" = [60],
    tcp_syncookies: "net.ipv4.tcp_syncookies" = [1],
    tcp_max_syn_backlog: "net.ipv4.tcp_max_syn_backlog" = [2048],
    tcp_abort_on_overflow: "net.ipv4.tcp_abort_on_overflow" = [0],
    tcp_frto: "net.ipv4.tcp_frto" = [2],
    tcp_reordering: "net.ipv4.tcp_reordering" = [3],
    tcp_max_reordering: "net.ipv4.tcp_max_reordering" = [300],
    tcp_early_retrans: "net.ipv4.tcp_early_retrans" = [3],
    tcp_recovery: "net.ipv4.tcp_recovery" = [1],
    tcp_min_rtt_wlen: "net.ipv4.tcp_min_rtt_wlen" = [300],
    tcp_slow_start_after_idle: "net.ipv4.tcp_slow_start_after_idle" = [1],
    tcp_ecn: "net.ipv4.tcp_ecn" = [2],
    tcp_adv_win_scale: "net.ipv4.tcp_adv_win_scale" = [1],
    tcp_app_win: "net.ipv4.tcp_app_win" = [31],
    tcp_shrink_window: "net.ipv4.tcp_shrink_window" = [0],
    tcp_rfc1337: "net.ipv4.tcp_rfc1337" = [0],
    tcp_stdurg: "net.ipv4.tcp_stdurg" = [0],
    tcp_keepalive_time: "net.ipv4.tcp_keepalive_time" = [7200],
    tcp_keepalive_intvl: "net.ipv4.tcp_keepalive_intvl" = [75],
    tcp_keepalive_probes: "net.ipv4.tcp_keepalive_probes" = [9],
    tcp_invalid_ratelimit: "net.ipv4.tcp_invalid_ratelimit" = [500],
    tcp_challenge_ack_limit: "net.ipv4.tcp_challenge_ack_limit" = [i32::MAX as i64],
    tcp_min_snd_mss: "net.ipv4.tcp_min_snd_mss" = [48],
    tcp_base_mss: "net.ipv4.tcp_base_mss" = [1024],
    tcp_mtu_probing: "net.ipv4.tcp_mtu_probing" = [0],
    tcp_notsent_lowat: "net.ipv4.tcp_notsent_lowat" = [u32::MAX as i64],
    tcp_tso_win_divisor: "net.ipv4.tcp_tso_win_divisor" = [3],
    tcp_min_tso_segs: "net.ipv4.tcp_min_tso_segs" = [2],
    tcp_tso_rtt_log: "net.ipv4.tcp_tso_rtt_log" = [9],
    tcp_autocorking: "net.ipv4.tcp_autocorking" = [1],
    tcp_backlog_ack_defer: "net.ipv4.tcp_backlog_ack_defer" = [1],
    tcp_comp_sack_nr: "net.ipv4.tcp_comp_sack_nr" = [44],
    tcp_comp_sack_delay_ns: "net.ipv4.tcp_comp_sack_delay_ns" = [1000000],
    tcp_comp_sack_slack_ns: "net.ipv4.tcp_comp_sack_slack_ns" = [100000],
    tcp_fastopen: "net.ipv4.tcp_fastopen" = [1],
    tcp_pacing_ss_ratio: "net.ipv4.tcp_pacing_ss_ratio" = [200],
    tcp_pacing_ca_ratio: "net.ipv4.tcp_pacing_ca_ratio" = [120],
    tcp_workaround_signed_windows: "net.ipv4.tcp_workaround_signed_windows" = [0],
    tcp_no_metrics_save: "net.ipv4.tcp_no_metrics_save" = [0],
    tcp_thin_linear_timeouts: "net.ipv4.tcp_thin_linear_timeouts" = [0],
    tcp_tw_reuse: "net.ipv4.tcp_tw_reuse" = [2],
    tcp_tw_reuse_delay: "net.ipv4.tcp_tw_reuse_delay" = [1000],
    tcp_max_tw_buckets: "net.ipv4.tcp_max_tw_buckets" = [131072],
    // tcp_init(): half the established hash table's buckets, as tcp_max_tw_buckets.
    tcp_max_orphans: "net.ipv4.tcp_max_orphans" = [131072],
    tcp_limit_output_bytes: "net.ipv4.tcp_limit_output_bytes" = [4194304],
    tcp_rto_min_us: "net.ipv4.tcp_rto_min_us" = [200000],
    ip_local_port_range: "net.ipv4.ip_local_port_range" = [32768, 60999],
    ip_default_ttl: "net.ipv4.ip_default_ttl" = [64],
    // A name in Linux; stored as 0 = cubic, 1 = reno, 2 = bbr (`CongAlgo`), read and written by
    // name.
    tcp_congestion_control: "net.ipv4.tcp_congestion_control" = [0],
    ip_nonlocal_bind: "net.ipv4.ip_nonlocal_bind" = [0],
    ip_no_pmtu_disc: "net.ipv4.ip_no_pmtu_disc" = [0],
    netdev_max_backlog: "net.core.netdev_max_backlog" = [1000],
    netdev_budget: "net.core.netdev_budget" = [300],
    optmem_max: "net.core.optmem_max" = [131072],
    hop_limit: "net.ipv6.conf.all.hop_limit" = [64],
    auto_flowlabels: "net.ipv6.auto_flowlabels" = [1],
    ratelimit: "net.ipv6.icmp.ratelimit" = [1000],
    bindv6only: "net.ipv6.bindv6only" = [0],
}

/// The default value of a knob, as `sysctl -n` prints it (`None`: no knob).
fn default_value(name: &str) -> Option<String> {
    Sysctls::default().get_by_name(name).ok()
}

/// How utcp honours one sysctl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// The stack reads the knob: every value takes effect. The string names the file (under
    /// `crates/utcp/src/`) that reads it.
    Read(&'static str),
    /// The stack does not read the knob; it always behaves as Linux does with the value given
    /// (the feature is not implemented). Writing that value or the default is accepted.
    BehavesAs(&'static str, &'static str),
    /// Writing any value changes nothing a packetdrill script can observe against utcp (why).
    Inert(&'static str),
    /// The stack does not read the knob (what is missing): only its default is accepted.
    NotRead(&'static str),
}

/// Every sysctl the stack accepts, with how it is honoured. `Read` names the reader.
pub const SYSCTLS: &[(&str, Support)] = &[
    ("net.ipv4.tcp_rmem", Support::Read("tcp/window.rs")),
    ("net.ipv4.tcp_mem", Support::Read("tcp/sk_mem.rs")),
    ("net.ipv4.tcp_wmem", Support::Read("tcp/sndbuf.rs")),
    ("net.core.rmem_max", Support::Read("socket/sockopt.rs")),
    ("net.core.wmem_max", Support::Read("socket/sockopt.rs")),
    ("net.core.txrehash", Support::Read("socket/sockopt.rs")),
    ("net.core.somaxconn", Support::Read("syscall/ops.rs")),
    ("net.core.busy_read", Support::Read("tcp/mod.rs")),
    ("net.ipv4.tcp_timestamps", Support::Read("tcp/input.rs")),
    ("net.ipv4.tcp_window_scaling", Support::Read("tcp/input.rs")),
    ("net.ipv4.tcp_sack", Support::Read("tcp/input.rs")),
    ("net.ipv4.tcp_dsack", Support::Read("tcp/input.rs")),
    ("net.ipv4.tcp_low_latency", Support::Read("tcp/recvmsg.rs")),
    ("net.ipv4.tcp_moderate_rcvbuf", Support::Read("tcp/window.rs")),
    ("net.ipv4.tcp_syn_retries", Support::Read("tcp/timer.rs")),
    ("net.ipv4.tcp_syn_linear_timeouts", Support::Read("tcp/timer.rs")),
    ("net.ipv4.tcp_min_tso_segs", Support::Read("tcp/cong.rs")),
    ("net.ipv4.tcp_tso_rtt_log", Support::Read("tcp/tso.rs")),
    ("net.ipv4.tcp_tso_win_divisor", Support::Read("tcp/tso.rs")),
    ("net.ipv4.tcp_synack_retries", Support::Read("tcp/listen.rs")),
    ("net.ipv4.tcp_retries2", Support::Read("tcp/timer.rs")),
    ("net.ipv4.tcp_orphan_retries", Support::Read("tcp/orphan.rs")),
    ("net.ipv4.tcp_fin_timeout", Support::Read("tcp/input.rs")),
    ("net.ipv4.tcp_max_syn_backlog", Support::Read("tcp/listen.rs")),
    ("net.ipv4.tcp_abort_on_overflow", Support::Read("tcp/listen.rs")),
    ("net.ipv4.tcp_syncookies", Support::Read("tcp/listen.rs")),
    ("net.ipv4.tcp_reordering", Support::Read("tcp/mod.rs")),
    ("net.ipv4.tcp_max_reordering", Support::Read("tcp/rack.rs")),
    ("net.ipv4.tcp_recovery", Support::Read("tcp/rack.rs")),
    ("net.ipv4.tcp_congestion_control", Support::Read("tcp/mod.rs")),
    ("net.ipv4.tcp_slow_start_after_idle", Support::Read("tcp/output.rs")),
    ("net.ipv4.tcp_notsent_lowat", Support::Read("tcp/output.rs")),
    ("net.ipv4.ip_nonlocal_bind", Support::Read("syscall/ops.rs")),
    ("net.ipv4.tcp_shrink_window", Support::Read("tcp/window.rs")),
    ("net.ipv4.tcp_min_rtt_wlen", Support::Read("tcp/undo.rs")),
    ("net.ipv4.tcp_early_retrans", Support::Read("tcp/rack.rs")),
    ("net.ipv4.tcp_frto", Support::Read("tcp/loss.rs")),
    ("net.ipv4.tcp_app_win", Support::Read("tcp/window.rs")),
    ("net.ipv4.tcp_rfc1337", Support::Read("tcp/ipv4.rs")),
    ("net.ipv4.tcp_stdurg", Support::Read("tcp/urgent.rs")),
    ("net.ipv4.tcp_keepalive_time", Support::Read("tcp/timer.rs")),
    ("net.ipv4.tcp_keepalive_intvl", Support::Read("tcp/timer.rs")),
    ("net.ipv4.tcp_keepalive_probes", Support::Read("tcp/timer.rs")),
    ("net.ipv4.tcp_invalid_ratelimit", Support::Read("tcp/input.rs")),
    ("net.ipv4.tcp_challenge_ack_limit", Support::Read("tcp/input.rs")),
    ("net.ipv4.tcp_min_snd_mss", Support::Read("tcp/input.rs")),
    ("net.ipv4.tcp_comp_sack_nr", Support::Read("tcp/input.rs")),
    ("net.ipv4.tcp_comp_sack_delay_ns", Support::Read("tcp/input.rs")),
    ("net.ipv4.tcp_comp_sack_slack_ns", Support::Read("tcp/input.rs")),
    ("net.ipv4.tcp_workaround_signed_windows", Support::Read("tcp/window.rs")),
    ("net.ipv4.tcp_rto_min_us", Support::Read("tcp/mod.rs")),
    ("net.ipv4.ip_local_port_range", Support::Read("stack.rs")),
    ("net.ipv4.ip_default_ttl", Support::Read("ip/mod.rs")),
    ("net.ipv6.conf.all.hop_limit", Support::Read("ip/ipv6.rs")),
    ("net.ipv6.auto_flowlabels", Support::Read("ip/ipv6.rs")),
    ("net.ipv6.icmp.ratelimit", Support::Read("ip/icmpv6.rs")),
    ("net.ipv6.bindv6only", Support::Read("ip/ipv6_sockglue.rs")),
    // Features utcp does not implement: it behaves as Linux with the feature off.
    ("net.ipv4.tcp_ecn", Support::BehavesAs("0", "ECN is not implemented: utcp never negotiates it")),
    ("net.ipv4.tcp_autocorking", Support::BehavesAs("0", "autocorking is not implemented")),
    ("net.ipv4.tcp_no_metrics_save", Support::BehavesAs("1", "utcp keeps no TCP metrics cache")),
    // Knobs whose value no script can observe against utcp.
    ("net.ipv4.tcp_fack", Support::Inert("Linux itself ignores it since FACK was removed (4.15)")),
    (
        "net.ipv4.tcp_fastopen",
        Support::Inert(
            "TCP Fast Open is not implemented; the knob only changes connections that use TFO (a Fast Open \
             option, MSG_FASTOPEN), and utcp answers those without TFO",
        ),
    ),
    ("net.ipv4.tcp_fastopen_key", Support::Inert("only used by TCP Fast Open, which is not implemented")),
    (
        "net.ipv4.tcp_allowed_congestion_control",
        Support::Inert(
            "it only restricts TCP_CONGESTION for processes without CAP_NET_ADMIN; packetdrill runs as root",
        ),
    ),
    ("net.ipv4.tcp_ecn_option", Support::Inert("only used by AccECN, which needs a tcp_ecn utcp refuses")),
    // Stored, never read: only the default is accepted.
    (
        "net.core.rmem_default",
        Support::Inert(
            "only non-TCP sockets keep it: sock_init_data() sets sk_rcvbuf from it and tcp_init_sock() \
             replaces that with tcp_rmem[1] (SO_RCVBUF of a new TCP socket reads 131072 with any \
             rmem_default on 6.18), and utcp has TCP sockets only; a non-initial netns shows it read-only",
        ),
    ),
    ("net.core.busy_poll", Support::NotRead("busy polling in poll/select/epoll (sock_poll()'s sk_busy_loop() for busy_poll us)")),
    (
        "net.ipv4.tcp_adv_win_scale",
        Support::Inert("obsolete since Linux 6.6: 6.18 ignores it too (scaling_ratio replaced it)"),
    ),
    ("net.ipv4.tcp_base_mss", Support::NotRead("MTU probing")),
    ("net.ipv4.tcp_mtu_probing", Support::NotRead("MTU probing")),
    // DEVIATION(linux): the default 1 is accepted, but utcp ACKs as with 0: a segment processed
    // from the socket backlog that calls for an immediate ACK sends it at once, where Linux sets
    // TCP_ACK_DEFERRED and sends one ACK from tcp_release_cb().
    (
        "net.ipv4.tcp_backlog_ack_defer",
        Support::BehavesAs("0", "TCP_ACK_DEFERRED (one ACK after the socket backlog) is not implemented"),
    ),
    ("net.ipv4.tcp_pacing_ss_ratio", Support::Read("tcp/pacing.rs")),
    ("net.ipv4.tcp_pacing_ca_ratio", Support::Read("tcp/pacing.rs")),
    ("net.ipv4.tcp_thin_linear_timeouts", Support::Read("tcp/timer.rs")),
    ("net.ipv4.tcp_max_tw_buckets", Support::Read("tcp/timer.rs")),
    ("net.ipv4.tcp_max_orphans", Support::Read("tcp/orphan.rs")),
    ("net.ipv4.tcp_tw_reuse", Support::Read("tcp/ipv4.rs")),
    ("net.ipv4.tcp_tw_reuse_delay", Support::Read("tcp/ipv4.rs")),
    ("net.ipv4.tcp_limit_output_bytes", Support::NotRead("TCP small queues (tcp_small_queue_check(): utcp does not count the bytes a socket has in the device queue)")),
    ("net.ipv4.ip_no_pmtu_disc", Support::NotRead("path MTU discovery settings")),
    // DEVIATION(linux): Linux has it only in the initial namespace (global, not per netns: a
    // packetdrill script in its own netns cannot write it); each utcp stack keeps its own.
    ("net.core.netdev_budget", Support::Read("host/mod.rs")),
    (
        "net.core.netdev_max_backlog",
        Support::NotRead(
            "a bound on utcp's inline receive backlog that behaves as Linux's: that backlog also holds \
             the frames a socket builds before its lock is released, which Linux's loopback hands to \
             the softirq one by one (local_bh_enable() after each), so 1000 would drop where Linux \
             does not",
        ),
    ),
    ("net.core.optmem_max", Support::NotRead("option memory accounting (sk_omem_alloc: MSG_ZEROCOPY notifications, socket filters)")),
];

/// The sysctls the stack reads (computed from [`SYSCTLS`]).
pub fn honoured() -> impl Iterator<Item = &'static str> {
    SYSCTLS.iter().filter(|(_, s)| matches!(s, Support::Read(_))).map(|(n, _)| *n)
}

/// How `name` (dotted) is honoured, if it is in the table.
pub fn support(name: &str) -> Option<Support> {
    SYSCTLS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The integers of a sysctl value as `sysctl -w` parses them; `None` when one is not a number.
fn numbers(v: &str) -> Option<Vec<i64>> {
    v.split_whitespace()
        .map(|p| match p.strip_prefix("0x") {
            Some(h) => i64::from_str_radix(h, 16).ok(),
            None => p.parse().ok(),
        })
        .collect()
}

/// Both values mean the same (as numbers when both are numbers, else as words).
fn same_value(a: &str, b: &str) -> bool {
    match (numbers(a), numbers(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.split_whitespace().eq(b.split_whitespace()),
    }
}

/// Checks that writing `value` to `name` (dotted) is something utcp honours. The error is the
/// reason a script fails. Names outside the table are left to the stack (it refuses unknown ones).
pub fn check_write(name: &str, value: &str) -> Result<(), String> {
    let Some(support) = support(name) else { return Ok(()) };
    let default = default_value(name);
    let is_default = default.as_deref().is_some_and(|d| same_value(d, value));
    let refuse = |why: String| Err(format!("sysctl {name}={value} is not supported by utcp ({why})"));
    match support {
        Support::Read(_) | Support::Inert(_) => Ok(()),
        Support::BehavesAs(v, _) if is_default || same_value(v, value) => Ok(()),
        Support::BehavesAs(v, why) => refuse(format!("{why}; utcp behaves as {name}={v}")),
        Support::NotRead(_) if is_default => Ok(()),
        Support::NotRead(what) => refuse(format!(
            "the stack does not read it, {what} is not implemented; only the default {} is accepted",
            default.unwrap_or_default().replace('\t', " ")
        )),
    }
}

impl Sysctls {
    /// Finds a knob by dotted (`net.ipv4.tcp_rmem`) or slashed (`net/ipv4/tcp_rmem`) name.
    pub fn knob(&self, name: &str) -> Option<&Knob> {
        let name = name.trim().trim_start_matches("/proc/sys/").replace('/', ".");
        self.knobs().into_iter().find(|k| k.name == name)
    }

    /// `sysctl -w name="v1 v2 v3"`. Unknown names are `ENOENT`; bad values, and values the
    /// stack does not honour (see [`check_write`] for the reason), `EINVAL`.
    pub fn set_by_name(&self, name: &str, value: &str) -> SysResult<()> {
        let dotted = name.trim().trim_start_matches("/proc/sys/").replace('/', ".");
        // A value the stack would not honour is refused (why: `check_write`).
        if check_write(&dotted, value).is_err() {
            return Err(Errno::EINVAL);
        }
        let Some(k) = self.knob(&dotted) else {
            // Names without a knob that are accepted: inert, or fixed to what utcp does.
            if support(&dotted).is_some() {
                return Ok(());
            }
            return Err(Errno::ENOENT);
        };
        if k.name == "net.ipv4.tcp_congestion_control" {
            // tcp_set_default_congestion_control(): a built-in name (see `CongAlgo`).
            let v = match value.trim() {
                "cubic" => 0,
                "reno" => 1,
                "bbr" => 2,
                _ => return Err(Errno::ENOENT),
            };
            k.set(v);
            return Ok(());
        }
        let parts: Vec<&str> = value.split_whitespace().collect();
        if parts.is_empty() || parts.len() > k.n.max(1) {
            return Err(Errno::EINVAL);
        }
        let mut vals = Vec::with_capacity(parts.len());
        for p in &parts {
            let v = if let Some(hex) = p.strip_prefix("0x") {
                i64::from_str_radix(hex, 16).map_err(|_| Errno::EINVAL)?
            } else {
                p.parse::<i64>().map_err(|_| Errno::EINVAL)?
            };
            vals.push(v);
        }
        // proc_dou8vec_minmax() / proc_douintvec_minmax(): a value out of range is EINVAL.
        let bounds = match k.name {
            "net.ipv4.tcp_tw_reuse" => Some((0, 2)),
            // 1 ms to TCP_PAWS_MSL (60 s).
            "net.ipv4.tcp_tw_reuse_delay" => Some((1, 60_000)),
            // addrconf_sysctl_hop_limit(): 1 to 255; auto_flowlabels: 0 to
            // IP6_AUTO_FLOW_LABEL_MAX (3); icmpv6_time: a non-negative ms count.
            "net.ipv6.conf.all.hop_limit" => Some((1, 255)),
            "net.ipv6.auto_flowlabels" => Some((0, 3)),
            "net.ipv6.icmp.ratelimit" => Some((0, i64::from(i32::MAX))),
            "net.ipv6.bindv6only" => Some((0, 1)),
            _ => None,
        };
        if bounds.is_some_and(|(lo, hi)| vals.iter().any(|v| *v < lo || *v > hi)) {
            return Err(Errno::EINVAL);
        }
        for (i, v) in vals.into_iter().enumerate() {
            k.vals[i].store(v, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `sysctl -n name`.
    pub fn get_by_name(&self, name: &str) -> SysResult<String> {
        let k = self.knob(name).ok_or(Errno::ENOENT)?;
        if k.name == "net.ipv4.tcp_congestion_control" {
            return Ok(match k.get() {
                1 => "reno",
                2 => "bbr",
                _ => "cubic",
            }
            .to_string());
        }
        Ok(k.format())
    }

    /// All knobs as `name = value` lines.
    pub fn dump(&self) -> String {
        self.knobs()
            .iter()
            .map(|k| format!("{} = {}\n", k.name, self.get_by_name(k.name).unwrap_or_else(|_| k.format())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_get() {
        let s = Sysctls::default();
        assert_eq!(s.tcp_rmem.idx(1), 131072);
        assert_eq!(s.tcp_rmem.idx(2), 33554432);
        s.set_by_name("net.ipv4.tcp_rmem", "4096 540000 15728640").unwrap();
        assert_eq!(s.tcp_rmem.idx(2), 15728640);
        s.set_by_name("/proc/sys/net/ipv4/tcp_low_latency", "0").unwrap();
        assert_eq!(s.tcp_low_latency.get(), 0);
        assert_eq!(s.set_by_name("net.ipv4.nope", "1"), Err(Errno::ENOENT));
        assert_eq!(s.set_by_name("net.ipv4.tcp_sack", "x"), Err(Errno::EINVAL));
        assert!(s.set_by_name("net.ipv4.tcp_fastopen_key", "a-b").is_ok());
        // Values the stack does not honour are refused by the stack itself, with a reason.
        assert_eq!(s.set_by_name("net.ipv4.tcp_ecn", "1"), Err(Errno::EINVAL));
        assert_eq!(s.tcp_ecn.get(), 2, "a refused write changes nothing");
        assert!(check_write("net.ipv4.tcp_ecn", "1").unwrap_err().contains("ECN is not implemented"));
        assert!(s.set_by_name("net.ipv4.tcp_syncookies", "2").is_ok(), "honoured");
        assert!(s.set_by_name("net.ipv4.tcp_syncookies", "0").is_ok());
        assert!(s.set_by_name("net.ipv4.tcp_tw_reuse", "1").is_ok(), "honoured");
        assert_eq!(s.set_by_name("net.ipv4.tcp_tw_reuse", "3"), Err(Errno::EINVAL), "0..=2");
        assert_eq!(s.set_by_name("net.ipv4.tcp_tw_reuse_delay", "0"), Err(Errno::EINVAL), "1..=60000");
        assert_eq!(s.set_by_name("net.ipv4.tcp_tw_reuse_delay", "60001"), Err(Errno::EINVAL));
        assert!(s.set_by_name("net.ipv4.tcp_tw_reuse_delay", "60000").is_ok());
        assert!(s.set_by_name("net.ipv4.tcp_shrink_window", "1").is_ok(), "honoured");
        // Linux 6.18 has no such sysctl (TCP_DELACK_MAX_US is a socket option only).
        assert_eq!(s.set_by_name("net.ipv4.tcp_delack_max_us", "1000"), Err(Errno::ENOENT));
        assert_eq!(s.get_by_name("net.ipv4.tcp_rmem").unwrap(), "4096\t540000\t15728640");
    }
}
