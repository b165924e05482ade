//! A tiny interpreter for the shell commands packetdrill scripts run in back quotes: the
//! `defaults.sh` setup files, `sysctl`, `echo > /proc/sys/...`, `cat /proc/sys/...`,
//! `set_sysctls.py`, `nstat` (against utcp's MIB) piped into `grep`, and no-ops for commands that
//! only concern a real host (`ip tcp_metrics flush`, `tc qdisc add ... root pfifo`). Anything else
//! is an error (another `ip` or `tc` command, an `echo` whose output nothing reads, a sysctl
//! value utcp does not honour, see [`crate::sysctl_support`]), so a script never passes by
//! silently skipping setup it depends on.
//!
//! A `defaults.sh` that does not exist is interpreted with the Linux selftests' `defaults.sh`
//! semantics ([`SELFTESTS_DEFAULTS`]); a file whose whole content is one relative path (a symlink
//! that lost its link-ness when copied) is followed like the symlink would be.

use crate::sysctl_support;
use std::path::{Path, PathBuf};
use utcp::stack::StackCore;

/// The Linux selftests' `tools/testing/selftests/net/packetdrill/defaults.sh`, reduced to the
/// commands this interpreter runs (used when a script calls a `defaults.sh` that is missing).
pub const SELFTESTS_DEFAULTS: &str = r#"
ip tcp_metrics flush all > /dev/null 2>&1
sysctl -q net.ipv4.tcp_rmem="4096 540000 $((15*1024*1024))"
sysctl -q net.ipv4.tcp_wmem="4096 $((256*1024)) 4194304"
sysctl -q net.ipv4.tcp_timestamps=1
sysctl -q net.ipv4.tcp_syn_retries=5
sysctl -q net.ipv4.tcp_synack_retries=5
sysctl -q net.ipv4.tcp_frto=2
sysctl -q net.ipv4.tcp_sack=1
sysctl -q net.ipv4.tcp_dsack=1
sysctl -q net.ipv4.tcp_fack=0
sysctl -q net.ipv4.tcp_reordering=3
sysctl -q net.ipv4.tcp_congestion_control=cubic
sysctl -q net.ipv4.tcp_slow_start_after_idle=0
sysctl -q net.ipv4.tcp_early_retrans=4 net.ipv4.tcp_recovery=1
sysctl -q net.ipv4.tcp_tso_win_divisor=3
sysctl -q net.ipv4.tcp_ecn=0
sysctl -q net.ipv4.tcp_pacing_ss_ratio=200
sysctl -q net.ipv4.tcp_pacing_ca_ratio=120
sysctl -q net.ipv4.tcp_notsent_lowat=4294967295 > /dev/null 2>&1
sysctl -q net.ipv4.tcp_fastopen=0x70403
sysctl -q net.ipv4.tcp_fastopen_key=a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4
sysctl -q net.ipv4.tcp_syncookies=1
tc qdisc add dev tun0 root pfifo
"#;

/// Shell state across commands of one script (nstat history).
#[derive(Default)]
pub struct Shell {
    nstat_base: Option<Vec<(&'static str, u64)>>,
}

/// Splits a command line into words, handling quotes and `$((arith))`.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let cs: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < cs.len() {
        let c = cs[i];
        if quote.is_none() && c.is_whitespace() {
            if have {
                out.push(std::mem::take(&mut cur));
                have = false;
            }
            i += 1;
            continue;
        }
        if quote.is_none() && (c == '"' || c == '\'') {
            quote = Some(c);
            have = true;
            i += 1;
            continue;
        }
        if quote == Some(c) {
            quote = None;
            i += 1;
            continue;
        }
        if c == '$' && quote != Some('\'') && cs.get(i + 1) == Some(&'(') && cs.get(i + 2) == Some(&'(') {
            let rest: String = cs[i + 3..].iter().collect();
            let end = rest.find("))").ok_or("unterminated $((")?;
            let v = arith(&rest[..end])?;
            cur.push_str(&v.to_string());
            have = true;
            i += 3 + rest[..end].chars().count() + 2;
            continue;
        }
        if c == '$' && quote != Some('\'') {
            return Err(format!("unsupported shell variable in '{line}'"));
        }
        cur.push(c);
        have = true;
        i += 1;
    }
    if quote.is_some() {
        return Err(format!("unterminated quote in '{line}'"));
    }
    if have {
        out.push(cur);
    }
    Ok(out)
}

/// Integer arithmetic with + - * / and parentheses.
fn arith(s: &str) -> Result<i64, String> {
    fn expr(t: &[char], i: &mut usize) -> Result<i64, String> {
        let mut v = term(t, i)?;
        loop {
            skip(t, i);
            match t.get(*i) {
                Some('+') => {
                    *i += 1;
                    v += term(t, i)?
                }
                Some('-') => {
                    *i += 1;
                    v -= term(t, i)?
                }
                _ => return Ok(v),
            }
        }
    }
    fn term(t: &[char], i: &mut usize) -> Result<i64, String> {
        let mut v = atom(t, i)?;
        loop {
            skip(t, i);
            match t.get(*i) {
                Some('*') => {
                    *i += 1;
                    v *= atom(t, i)?
                }
                Some('/') => {
                    *i += 1;
                    let d = atom(t, i)?;
                    if d == 0 {
                        return Err("division by zero".into());
                    }
                    v /= d
                }
                _ => return Ok(v),
            }
        }
    }
    fn atom(t: &[char], i: &mut usize) -> Result<i64, String> {
        skip(t, i);
        if t.get(*i) == Some(&'(') {
            *i += 1;
            let v = expr(t, i)?;
            skip(t, i);
            if t.get(*i) != Some(&')') {
                return Err("missing )".into());
            }
            *i += 1;
            return Ok(v);
        }
        if t.get(*i) == Some(&'-') {
            *i += 1;
            return Ok(-atom(t, i)?);
        }
        let st = *i;
        while t.get(*i).is_some_and(|c| c.is_ascii_digit()) {
            *i += 1;
        }
        let s: String = t[st..*i].iter().collect();
        s.parse().map_err(|_| format!("bad number in arithmetic '{s}'"))
    }
    fn skip(t: &[char], i: &mut usize) {
        while t.get(*i).is_some_and(|c| c.is_whitespace()) {
            *i += 1;
        }
    }
    let t: Vec<char> = s.chars().collect();
    let mut i = 0;
    let v = expr(&t, &mut i)?;
    skip(&t, &mut i);
    if i != t.len() {
        return Err(format!("unsupported arithmetic '{s}'"));
    }
    Ok(v)
}

impl Shell {
    /// Runs a command text (possibly several lines) from directory `dir`. Returns the exit
    /// status of the last command, or an error for anything that cannot be honoured.
    pub fn run(&mut self, core: &StackCore, dir: &Path, text: &str) -> Result<i32, String> {
        self.run_depth(core, dir, text, 0)
    }

    fn run_depth(&mut self, core: &StackCore, dir: &Path, text: &str, depth: usize) -> Result<i32, String> {
        if depth > 8 {
            return Err("too deeply nested shell scripts".into());
        }
        let mut status = 0;
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut input: Option<String> = None;
            let parts: Vec<&str> = line.split('|').collect();
            for (k, part) in parts.iter().enumerate() {
                let mut w = words(part)?;
                // Drop redirections.
                let mut out_file: Option<String> = None;
                let mut j = 0;
                while j < w.len() {
                    let x = w[j].clone();
                    if x == "2>&1" || x == "&>/dev/null" {
                        w.remove(j);
                    } else if x == ">" || x == ">>" || x == "2>" {
                        if j + 1 < w.len() {
                            let f = w.remove(j + 1);
                            if x == ">" || x == ">>" {
                                out_file = Some(f);
                            } else if f != "/dev/null" {
                                return Err(format!("unsupported redirection of stderr to {f}"));
                            }
                        }
                        w.remove(j);
                    } else if let Some(f) = x.strip_prefix('>') {
                        out_file = Some(f.to_string());
                        w.remove(j);
                    } else {
                        j += 1;
                    }
                }
                if w.is_empty() {
                    return Err(format!("unsupported shell syntax: '{line}'"));
                }
                if w[0] == "echo" && out_file.is_none() && k + 1 == parts.len() {
                    // Its output would go to packetdrill's stdout, which nothing here models.
                    return Err(format!(
                        "unsupported shell command '{}': echo is only run redirected to /proc/sys/... or \
                         /dev/null, or piped",
                        w.join(" ")
                    ));
                }
                let (st, out) = self.command(core, dir, &w, input.take(), depth)?;
                status = st;
                match out_file.as_deref() {
                    Some("/dev/null") | None => {}
                    Some(f) if f.starts_with("/proc/sys/") => {
                        if w[0] != "echo" {
                            return Err(format!("unsupported redirection: '{line}'"));
                        }
                        set_sysctl(core, f, out.trim())?;
                    }
                    Some(f) => return Err(format!("unsupported redirection to {f}")),
                }
                input = Some(out);
                if status != 0 {
                    break;
                }
            }
        }
        Ok(status)
    }

    fn command(
        &mut self,
        core: &StackCore,
        dir: &Path,
        w: &[String],
        input: Option<String>,
        depth: usize,
    ) -> Result<(i32, String), String> {
        let cmd = w[0].as_str();
        let base = cmd.rsplit('/').next().unwrap_or(cmd);
        match base {
            "sysctl" => {
                let mut out = String::new();
                let mut print_value = false;
                for a in &w[1..] {
                    match a.as_str() {
                        "-q" | "-w" | "-e" => {}
                        "-n" => print_value = true,
                        a if a.starts_with('-') => return Err(format!("unsupported sysctl flag {a}")),
                        a => match a.split_once('=') {
                            Some((k, v)) => set_sysctl(core, k, v)?,
                            None => {
                                let v = core.net.sysctl.get_by_name(a).map_err(|_| format!("unknown sysctl {a}"))?;
                                if print_value {
                                    out.push_str(&format!("{v}\n"));
                                } else {
                                    out.push_str(&format!("{a} = {v}\n"));
                                }
                            }
                        },
                    }
                }
                Ok((0, out))
            }
            // utcp keeps no TCP metrics cache (so there is nothing to flush), and its device
            // sends packets out in order at once, as a pfifo qdisc does.
            "ip" if matches!(w.get(1).map(String::as_str), Some("tcp_metrics" | "tcpmetrics"))
                && w.get(2).is_some_and(|a| a == "flush") =>
            {
                Ok((0, String::new()))
            }
            "tc" if is_pfifo_qdisc(&w[1..]) => Ok((0, String::new())),
            "ip" | "tc" => Err(format!(
                "unsupported shell command '{}': utcp drill models only `ip tcp_metrics flush` and a pfifo \
                 `tc qdisc add`",
                w.join(" ")
            )),
            "true" | ":" => Ok((0, String::new())),
            "echo" => Ok((0, format!("{}\n", w[1..].join(" ")))),
            "cat" => {
                let mut out = String::new();
                for f in &w[1..] {
                    if f.starts_with("/proc/sys/") {
                        let v = core.net.sysctl.get_by_name(f).map_err(|_| format!("unknown sysctl file {f}"))?;
                        out.push_str(&format!("{v}\n"));
                    } else {
                        return Err(format!("unsupported: cat {f}"));
                    }
                }
                Ok((0, out))
            }
            "nstat" => {
                let snap = core.net.mib.snapshot();
                let mut reset = false;
                let mut all = false;
                for a in &w[1..] {
                    match a.as_str() {
                        "-n" => reset = true,
                        "-a" => all = true,
                        "-z" => all = true,
                        "-s" => {}
                        other => return Err(format!("unsupported nstat argument {other}")),
                    }
                }
                let base = if all { None } else { self.nstat_base.as_ref() };
                let mut out = String::from("#kernel\n");
                for (name, v) in &snap {
                    let old = base.and_then(|b| b.iter().find(|(n, _)| n == name).map(|x| x.1)).unwrap_or(0);
                    let d = v.wrapping_sub(old);
                    if d != 0 {
                        out.push_str(&format!("{name:<32}{d:<19}0.0\n"));
                    }
                }
                self.nstat_base = Some(snap);
                if reset {
                    out.clear();
                }
                Ok((0, out))
            }
            "grep" => {
                let mut quiet = false;
                let mut pat: Option<&str> = None;
                for a in &w[1..] {
                    match a.as_str() {
                        "-q" => quiet = true,
                        a if a.starts_with('-') && pat.is_none() => return Err(format!("unsupported grep flag {a}")),
                        a => pat = Some(a),
                    }
                }
                let pat = pat.ok_or("grep without a pattern")?;
                if pat.chars().any(|c| "^$[]*.\\+?(){}".contains(c)) {
                    return Err(format!("unsupported grep pattern '{pat}'"));
                }
                let input = input.ok_or("grep without input")?;
                let m: Vec<&str> = input.lines().filter(|l| l.contains(pat)).collect();
                let st = if m.is_empty() { 1 } else { 0 };
                let out = if quiet { String::new() } else { m.iter().map(|l| format!("{l}\n")).collect() };
                Ok((st, out))
            }
            _ if base.ends_with(".py") || cmd == "python3" || cmd == "python" => {
                let args: Vec<&String> =
                    if base.ends_with(".py") { w[1..].iter().collect() } else { w[2..].iter().collect() };
                let script = if base.ends_with(".py") { base } else { w.get(1).map(|s| s.as_str()).unwrap_or("") };
                if !script.ends_with("set_sysctls.py") {
                    return Err(format!("unsupported python script {script}"));
                }
                for a in args {
                    let (k, v) = a.split_once('=').ok_or_else(|| format!("bad set_sysctls.py argument {a}"))?;
                    set_sysctl(core, k, v)?;
                }
                Ok((0, String::new()))
            }
            _ if base.ends_with(".sh") || cmd.contains('/') => {
                let text = resolve_script(dir, cmd)?;
                let (text, sdir) = text;
                let st = self.run_depth(core, &sdir, &text, depth + 1)?;
                Ok((st, String::new()))
            }
            _ => Err(format!("unsupported shell command '{}'", w.join(" "))),
        }
    }
}

/// `tc qdisc add|replace dev DEV root pfifo|pfifo_fast` (the selftests' defaults.sh).
fn is_pfifo_qdisc(args: &[String]) -> bool {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    matches!(a.as_slice(), ["qdisc", "add" | "replace", "dev", _, "root", "pfifo" | "pfifo_fast"])
}

/// Finds a shell file the way executing `cmd` from `dir` would: follows "symlink files" (a file
/// whose whole content is one relative path), and falls back to the selftests' `defaults.sh` for
/// a missing `defaults.sh`.
fn resolve_script(dir: &Path, cmd: &str) -> Result<(String, PathBuf), String> {
    let mut path = dir.join(cmd);
    for _ in 0..8 {
        match std::fs::read_to_string(&path) {
            Ok(t) => {
                let trimmed = t.trim();
                let pdir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| dir.to_path_buf());
                if !trimmed.contains('\n')
                    && !trimmed.contains(' ')
                    && !trimmed.starts_with('#')
                    && (trimmed.ends_with(".sh") || trimmed.contains('/'))
                {
                    path = pdir.join(trimmed);
                    continue;
                }
                return Ok((t, pdir));
            }
            Err(_) => {
                if path.file_name().is_some_and(|n| n == "defaults.sh") {
                    // DEVIATION(linux): the script's directory lacks defaults.sh (the corpus copy
                    // dropped it); the Linux selftests' defaults.sh is what these scripts run with.
                    return Ok((SELFTESTS_DEFAULTS.to_string(), dir.to_path_buf()));
                }
                return Err(format!("cannot run {}: no such file", path.display()));
            }
        }
    }
    Err(format!("too many levels of symbolic links resolving {cmd}"))
}

/// Writes a sysctl, refusing a value utcp would not honour ([`sysctl_support::check_write`]).
fn set_sysctl(core: &StackCore, key: &str, value: &str) -> Result<(), String> {
    let dotted = key.trim().trim_start_matches("/proc/sys/").replace('/', ".");
    sysctl_support::check_write(&dotted, value)?;
    if core.net.sysctl.knob(&dotted).is_none() && sysctl_support::support(&dotted).is_some() {
        // A name utcp has no knob for, accepted as inert or fixed: nothing to store.
        return Ok(());
    }
    core.net.sysctl.set_by_name(&dotted, value).map_err(|e| format!("cannot set sysctl {dotted}={value}: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_arith() {
        assert_eq!(
            words(r#"sysctl -q net.ipv4.tcp_rmem="4096 131072 $((32*1024*1024))""#).unwrap(),
            vec!["sysctl", "-q", "net.ipv4.tcp_rmem=4096 131072 33554432"]
        );
        assert_eq!(arith("15*1024*1024").unwrap(), 15728640);
        assert_eq!(arith("(2+3)*4").unwrap(), 20);
        assert!(words("echo $HOME").is_err());
    }
}
