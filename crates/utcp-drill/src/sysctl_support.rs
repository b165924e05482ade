//! Which sysctls a script may set when it runs against utcp.
//!
//! utcp's sysctl table (`crates/utcp/src/sysctl.rs`) accepts every write so that setup files
//! run, but many knobs are stored and never read. A script that changes such a knob would pass
//! while testing nothing it asked for, so [`check_write`] refuses the write, and the script
//! fails with the reason, unless the value written is one utcp's behaviour matches: the knob's
//! default, or for a feature utcp does not implement, the value that turns the feature off.
//!
//! [`SYSCTLS`] is the one table: every knob of the stack's table (and the few names it accepts
//! without a knob), each with how utcp honours it. [`honoured`] is computed from it. The tests at
//! the bottom pin the table to the stack's sources: every [`Support::Read`] knob exists and is
//! read in the file named, no other knob is read anywhere, and no knob is missing.

use utcp::sysctl::Sysctls;

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

use Support::*;

/// Every sysctl the stack accepts, with how it is honoured. `Read` names the reader.
pub const SYSCTLS: &[(&str, Support)] = &[
    ("net.ipv4.tcp_rmem", Read("tcp/window.rs")),
    ("net.ipv4.tcp_wmem", Read("tcp/sndbuf.rs")),
    ("net.core.rmem_max", Read("syscall/ops.rs")),
    ("net.core.wmem_max", Read("syscall/ops.rs")),
    ("net.core.somaxconn", Read("syscall/ops.rs")),
    ("net.core.busy_read", Read("tcp/mod.rs")),
    ("net.ipv4.tcp_timestamps", Read("tcp/input.rs")),
    ("net.ipv4.tcp_window_scaling", Read("tcp/input.rs")),
    ("net.ipv4.tcp_sack", Read("tcp/input.rs")),
    ("net.ipv4.tcp_dsack", Read("tcp/input.rs")),
    ("net.ipv4.tcp_low_latency", Read("tcp/recvmsg.rs")),
    ("net.ipv4.tcp_moderate_rcvbuf", Read("tcp/window.rs")),
    ("net.ipv4.tcp_syn_retries", Read("tcp/timer.rs")),
    ("net.ipv4.tcp_syn_linear_timeouts", Read("tcp/timer.rs")),
    ("net.ipv4.tcp_synack_retries", Read("tcp/listen.rs")),
    ("net.ipv4.tcp_retries2", Read("tcp/timer.rs")),
    ("net.ipv4.tcp_orphan_retries", Read("tcp/timer.rs")),
    ("net.ipv4.tcp_fin_timeout", Read("tcp/input.rs")),
    ("net.ipv4.tcp_max_syn_backlog", Read("tcp/listen.rs")),
    ("net.ipv4.tcp_abort_on_overflow", Read("tcp/listen.rs")),
    ("net.ipv4.tcp_reordering", Read("tcp/mod.rs")),
    ("net.ipv4.tcp_recovery", Read("tcp/rack.rs")),
    ("net.ipv4.tcp_congestion_control", Read("tcp/mod.rs")),
    ("net.ipv4.tcp_slow_start_after_idle", Read("tcp/output.rs")),
    ("net.ipv4.tcp_notsent_lowat", Read("tcp/output.rs")),
    ("net.ipv4.ip_nonlocal_bind", Read("syscall/ops.rs")),
    ("net.ipv4.tcp_shrink_window", Read("tcp/window.rs")),
    ("net.ipv4.tcp_min_rtt_wlen", Read("tcp/undo.rs")),
    ("net.ipv4.tcp_early_retrans", Read("tcp/rack.rs")),
    ("net.ipv4.tcp_app_win", Read("tcp/window.rs")),
    ("net.ipv4.tcp_rfc1337", Read("tcp/ipv4.rs")),
    ("net.ipv4.tcp_stdurg", Read("tcp/urgent.rs")),
    ("net.ipv4.tcp_keepalive_time", Read("tcp/timer.rs")),
    ("net.ipv4.tcp_keepalive_intvl", Read("tcp/timer.rs")),
    ("net.ipv4.tcp_keepalive_probes", Read("tcp/timer.rs")),
    ("net.ipv4.tcp_invalid_ratelimit", Read("tcp/input.rs")),
    ("net.ipv4.tcp_min_snd_mss", Read("tcp/input.rs")),
    ("net.ipv4.tcp_comp_sack_nr", Read("tcp/input.rs")),
    ("net.ipv4.tcp_comp_sack_delay_ns", Read("tcp/input.rs")),
    ("net.ipv4.tcp_workaround_signed_windows", Read("tcp/window.rs")),
    ("net.ipv4.tcp_rto_min_us", Read("tcp/input.rs")),
    ("net.ipv4.ip_local_port_range", Read("stack.rs")),
    ("net.ipv4.ip_default_ttl", Read("ip/mod.rs")),
    // Features utcp does not implement: it behaves as Linux with the feature off.
    ("net.ipv4.tcp_frto", BehavesAs("0", "F-RTO (RFC 5682) is not implemented")),
    ("net.ipv4.tcp_ecn", BehavesAs("0", "ECN is not implemented: utcp never negotiates it")),
    ("net.ipv4.tcp_autocorking", BehavesAs("0", "autocorking is not implemented")),
    ("net.ipv4.tcp_no_metrics_save", BehavesAs("1", "utcp keeps no TCP metrics cache")),
    // Knobs whose value no script can observe against utcp.
    ("net.ipv4.tcp_fack", Inert("Linux itself ignores it since FACK was removed (4.15)")),
    (
        "net.ipv4.tcp_fastopen",
        Inert(
            "TCP Fast Open is not implemented; the knob only changes connections that use TFO (a Fast Open \
             option, MSG_FASTOPEN), and utcp answers those without TFO",
        ),
    ),
    ("net.ipv4.tcp_fastopen_key", Inert("only used by TCP Fast Open, which is not implemented")),
    (
        "net.ipv4.tcp_allowed_congestion_control",
        Inert("it only restricts TCP_CONGESTION for processes without CAP_NET_ADMIN; packetdrill runs as root"),
    ),
    ("net.ipv4.tcp_ecn_option", Inert("only used by AccECN, which needs a tcp_ecn utcp refuses")),
    // Stored, never read: only the default is accepted.
    ("net.core.rmem_default", NotRead("the default receive buffer of non-TCP sockets")),
    ("net.core.busy_poll", NotRead("busy polling in poll/select/epoll")),
    ("net.ipv4.tcp_syncookies", NotRead("SYN cookies")),
    ("net.ipv4.tcp_adv_win_scale", Inert("obsolete since Linux 6.6: 6.18 ignores it too (scaling_ratio replaced it)")),
    ("net.ipv4.tcp_challenge_ack_limit", NotRead("a challenge ACK rate limit")),
    ("net.ipv4.tcp_base_mss", NotRead("MTU probing")),
    ("net.ipv4.tcp_mtu_probing", NotRead("MTU probing")),
    ("net.ipv4.tcp_tso_win_divisor", NotRead("TSO deferral")),
    ("net.ipv4.tcp_backlog_ack_defer", NotRead("deferred ACKs from the socket backlog")),
    ("net.ipv4.tcp_comp_sack_slack_ns", NotRead("the compressed SACK timer slack")),
    ("net.ipv4.tcp_pacing_ss_ratio", NotRead("pacing")),
    ("net.ipv4.tcp_pacing_ca_ratio", NotRead("pacing")),
    ("net.ipv4.tcp_thin_linear_timeouts", NotRead("linear timeouts for thin streams")),
    ("net.ipv4.tcp_tw_reuse", NotRead("TIME_WAIT reuse")),
    ("net.ipv4.tcp_max_tw_buckets", NotRead("a TIME_WAIT bucket limit")),
    ("net.ipv4.tcp_limit_output_bytes", NotRead("TCP small queues")),
    ("net.ipv4.tcp_delack_max_us", NotRead("a delayed ACK maximum")),
    ("net.ipv4.ip_no_pmtu_disc", NotRead("path MTU discovery settings")),
    ("net.core.netdev_max_backlog", NotRead("a device backlog limit")),
    ("net.core.netdev_budget", NotRead("a NAPI budget")),
    ("net.core.optmem_max", NotRead("an option memory limit")),
];

/// The sysctls the stack reads (computed from [`SYSCTLS`]).
pub fn honoured() -> impl Iterator<Item = &'static str> {
    SYSCTLS.iter().filter(|(_, s)| matches!(s, Read(_))).map(|(n, _)| *n)
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
    let default = Sysctls::default().get_by_name(name).ok();
    let is_default = default.as_deref().is_some_and(|d| same_value(d, value));
    let refuse = |why: String| Err(format!("sysctl {name}={value} is not supported by utcp ({why})"));
    match support {
        Read(_) | Inert(_) => Ok(()),
        BehavesAs(v, _) if is_default || same_value(v, value) => Ok(()),
        BehavesAs(v, why) => refuse(format!("{why}; utcp behaves as {name}={v}")),
        NotRead(_) if is_default => Ok(()),
        NotRead(what) => refuse(format!(
            "the stack does not read it, {what} is not implemented; only the default {} is accepted",
            default.unwrap_or_default().replace('\t', " ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    const UTCP_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../utcp/src");

    /// The knob's field in `Sysctls` (the last component of its name).
    fn field(name: &str) -> &str {
        name.rsplit('.').next().unwrap_or(name)
    }

    /// `text` reads the knob: `NAME.get()` or `NAME.idx(` with `NAME` a whole word.
    fn reads(text: &str, name: &str) -> bool {
        let f = field(name);
        [".get()", ".idx("].iter().any(|m| {
            let pat = format!("{f}{m}");
            text.match_indices(&pat)
                .any(|(i, _)| !text[..i].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_'))
        })
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("crates/utcp/src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("sysctl.rs") {
                out.push(p);
            }
        }
    }

    /// Every knob of the stack's table, by name.
    fn stack_knobs() -> Vec<String> {
        Sysctls::default().dump().lines().filter_map(|l| l.split(" = ").next()).map(str::to_string).collect()
    }

    #[test]
    fn honoured_sysctls_are_in_the_stacks_table_and_read_where_named() {
        let s = Sysctls::default();
        for (name, sup) in SYSCTLS {
            let Read(file) = sup else { continue };
            assert!(s.knob(name).is_some(), "{name} is listed as honoured but is not in utcp's sysctl table");
            let text = std::fs::read_to_string(Path::new(UTCP_SRC).join(file)).expect(file);
            assert!(reads(&text, name), "{name} is listed as read in {file}, which does not read it");
        }
        assert!(honoured().count() >= 30);
    }

    #[test]
    fn every_stack_knob_is_classified_and_only_read_ones_are_read() {
        let mut files = Vec::new();
        rust_files(Path::new(UTCP_SRC), &mut files);
        let texts: Vec<(PathBuf, String)> =
            files.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).expect("source"))).collect();
        for name in stack_knobs() {
            let sup = support(&name).unwrap_or_else(|| panic!("{name}: add it to SYSCTLS"));
            if matches!(sup, Read(_)) {
                continue;
            }
            if let Some((p, _)) = texts.iter().find(|(_, t)| reads(t, &name)) {
                panic!("{name} is now read in {}: list it as Read", p.display());
            }
        }
        // A name without a knob has no default to keep: it is either inert or fixed.
        for (name, sup) in SYSCTLS {
            if Sysctls::default().knob(name).is_none() {
                assert!(matches!(sup, BehavesAs(..) | Inert(_)), "{name}: no knob, so no default to keep");
            }
        }
    }

    #[test]
    fn writes_are_checked() {
        assert!(check_write("net.ipv4.tcp_rmem", "4096 540000 15728640").is_ok());
        let e = check_write("net.ipv4.tcp_ecn", "1").unwrap_err();
        assert!(e.starts_with("sysctl net.ipv4.tcp_ecn=1 is not supported by utcp"), "{e}");
        assert!(check_write("net.ipv4.tcp_ecn", "0").is_ok(), "ECN off is what utcp does");
        assert!(check_write("net.ipv4.tcp_ecn", "2").is_ok(), "the default");
        assert!(check_write("net.ipv4.tcp_shrink_window", "1").is_ok(), "honoured");
        assert!(check_write("net.ipv4.tcp_challenge_ack_limit", "5").is_err());
        assert!(check_write("net.ipv4.tcp_notsent_lowat", "4294967295").is_ok());
        assert!(check_write("net.ipv4.tcp_notsent_lowat", "16384").is_ok(), "honoured");
        assert!(check_write("net.ipv4.tcp_fastopen", "0x70403").is_ok());
        assert!(check_write("net.ipv4.tcp_syncookies", "0x1").is_ok());
        assert!(check_write("net.ipv4.tcp_syncookies", "2").is_err());
        assert!(check_write("net.ipv4.tcp_congestion_control", "cubic").is_ok());
        assert!(check_write("net.ipv4.tcp_congestion_control", "reno").is_ok());
        // Modules utcp lacks: the stack itself refuses them.
        assert!(Sysctls::default().set_by_name("net.ipv4.tcp_congestion_control", "bbr").is_err());
        assert!(check_write("net.ipv4.no_such_knob", "1").is_ok(), "left to the stack");
    }
}
