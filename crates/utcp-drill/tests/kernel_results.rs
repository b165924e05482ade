//! Every packetdrill script under `shared/packetdrill` runs under `utcp drill` and ends as it
//! ends on Linux 6.18: both pass, or both fail at the same line for the same kind of reason.
//! Kernel outcomes come from `shared/packetdrill/kernel-6.18-results.txt`, completed by
//! `kernel-6.18-extra-results.txt` (scripts that file does not list or lists without a line).
//! Each known difference is listed, with why, in `kernel-differences.txt`; an unlisted
//! difference fails the test, and so does a listed one that no longer differs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use utcp_drill::{run_file, DrillOptions, Outcome};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/packetdrill");
const EXTRA: &str = include_str!("kernel-6.18-extra-results.txt");
const DIFFERENCES: &str = include_str!("kernel-differences.txt");

/// How a script ended on the kernel or under utcp.
#[derive(Clone, Debug, PartialEq, Eq)]
struct End {
    pass: bool,
    /// The script line of the first error, when the message names one.
    line: Option<usize>,
    /// The kind of error ([`reason_class`]).
    class: Option<String>,
    text: String,
}

/// The kind of a failure, from packetdrill's message or utcp's: what was compared and failed.
fn reason_class(msg: &str) -> Option<String> {
    let m = msg.to_ascii_lowercase();
    if let Some(i) = m.find("live packet field ") {
        let field = m[i + 18..].split(':').next().unwrap_or("").trim().to_string();
        return Some(format!("packet field {field}"));
    }
    let classes = [
        ("timing error", "timing"),
        ("timed out waiting for packet", "no packet"),
        ("bad getsockopt optval", "getsockopt value"),
        ("error in python code", "python"),
        ("init command", "init command"),
        ("error executing", "command"),
        ("cannot run", "command"),
        ("unsupported shell command", "command"),
        ("expected non-negative result", "syscall result"),
        ("expected result", "syscall result"),
        ("expected errno", "syscall errno"),
        ("bad value in outbound tcp option", "tcp option"),
        ("unable to find fd", "bad fd"),
        ("ebadf", "bad fd"),
        ("blocked", "blocked"),
    ];
    classes.iter().find(|(k, _)| m.contains(k)).map(|(_, c)| c.to_string())
}

/// `NAME.pkt:LINE: ...` → LINE.
fn pkt_line(msg: &str) -> Option<usize> {
    let i = msg.find(".pkt:")?;
    msg[i + 5..].split(':').next()?.trim().parse().ok()
}

/// The shared file's origin names → paths under `shared/packetdrill`.
fn shared_path(origin: &str) -> Option<String> {
    const SELFTESTS: &str = "tools/testing/selftests/net/packetdrill/";
    let (head, rest) = origin.split_once('/')?;
    Some(match head {
        "google" => format!("google-packetdrill/{rest}"),
        "ligurio" => format!("ligurio-packetdrill-testcases/{rest}"),
        "linux-mainline" => format!("linux/{SELFTESTS}{rest}"),
        "linux-net-next" => format!("linux-net-next-mptcp/{SELFTESTS}{rest}"),
        "linux-patches-intel-lab-lkp" => format!("linux-patches-intel-lab-lkp/{SELFTESTS}{rest}"),
        _ => return None, // nplab: not among the shared scripts
    })
}

fn parse_results(text: &str, map: impl Fn(&str) -> Option<String>, out: &mut BTreeMap<String, End>) {
    for l in text.lines() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (head, msg) = l.split_once(" | ").map_or((l, ""), |(h, m)| (h, m.trim()));
        let mut words = head.split_whitespace();
        let (Some(origin), Some(v4)) = (words.next(), words.next()) else { continue };
        let Some(path) = map(origin) else { continue };
        let pass = match v4 {
            "v4=PASS" => true,
            "v4=FAIL" => false,
            _ => continue,
        };
        let end = End { pass, line: pkt_line(msg), class: reason_class(msg), text: msg.to_string() };
        // A later entry with a line (the extra file) completes one without.
        if out.get(&path).is_some_and(|e| e.line.is_some() && end.line.is_none()) {
            continue;
        }
        out.insert(path, end);
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("shared/packetdrill").filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "pkt") {
            out.push(p);
        }
    }
}

/// The two ends agree: both pass, or both fail at the same line (when the kernel's message
/// names one) for the same kind of reason (when both messages have a recognised kind).
fn same(kernel: &End, utcp: &End) -> bool {
    if kernel.pass || utcp.pass {
        return kernel.pass == utcp.pass;
    }
    let line_ok = kernel.line.is_none() || kernel.line == utcp.line;
    let class_ok = match (&kernel.class, &utcp.class) {
        (Some(k), Some(u)) => k == u,
        _ => true,
    };
    line_ok && class_ok
}

#[test]
fn every_shared_script_ends_as_on_the_kernel() {
    let shared = Path::new(SHARED);
    let text = std::fs::read_to_string(shared.join("kernel-6.18-results.txt")).unwrap_or_else(|e| {
        panic!("{SHARED}/kernel-6.18-results.txt not readable ({e}): shared/ must lie beside the repository")
    });
    let mut kernel = BTreeMap::new();
    parse_results(&text, shared_path, &mut kernel);
    parse_results(EXTRA, |p| Some(p.to_string()), &mut kernel);
    let known: BTreeMap<&str, &str> = DIFFERENCES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('|').map(|(p, why)| (p.trim(), why.trim())))
        .collect();
    let mut files = Vec::new();
    collect(shared, &mut files);
    assert!(files.len() >= 100, "only {} scripts under {SHARED}", files.len());
    let opts = DrillOptions::default();
    let (mut unexpected, mut stale, mut unsupported, mut missing) = (vec![], vec![], vec![], vec![]);
    let mut agree = 0;
    for f in &files {
        let rel = f.strip_prefix(shared).unwrap().to_string_lossy().into_owned();
        let utcp = match run_file(f, &opts) {
            Outcome::Pass => End { pass: true, line: None, class: None, text: String::new() },
            Outcome::Fail { line, reason } => {
                End { pass: false, line: Some(line), class: reason_class(&reason), text: reason }
            }
        };
        if utcp.text.to_ascii_lowercase().contains("unsupported") && utcp.class.as_deref() != Some("command") {
            unsupported.push(format!("{rel}:{}: {}", utcp.line.unwrap_or(0), utcp.text));
        }
        let Some(k) = kernel.get(&rel) else {
            missing.push(rel);
            continue;
        };
        let describe = |e: &End| {
            if e.pass {
                "PASS".to_string()
            } else {
                format!("FAIL line {} ({})", e.line.map_or("?".into(), |l| l.to_string()), e.text)
            }
        };
        let agrees = same(k, &utcp);
        println!("{} {rel}: kernel {} / utcp {}", if agrees { "same" } else { "DIFF" }, describe(k), describe(&utcp));
        match (agrees, known.get(rel.as_str())) {
            (true, None) => agree += 1,
            (true, Some(_)) => stale.push(rel.clone()),
            (false, Some(_)) => {}
            (false, None) => unexpected.push(format!("{rel}: kernel {} / utcp {}", describe(k), describe(&utcp))),
        }
    }
    println!("{agree} of {} scripts end as on the kernel; {} listed differences", files.len(), known.len());
    assert!(missing.is_empty(), "no kernel result for:\n{}", missing.join("\n"));
    assert!(unsupported.is_empty(), "utcp drill reports unsupported constructs:\n{}", unsupported.join("\n"));
    assert!(unexpected.is_empty(), "unlisted differences from the kernel:\n{}", unexpected.join("\n"));
    assert!(
        stale.is_empty(),
        "these now end as on the kernel: remove them from kernel-differences.txt:\n{}",
        stale.join("\n")
    );
    for p in known.keys() {
        assert!(files.iter().any(|f| f.ends_with(p)), "kernel-differences.txt names a missing script {p}");
    }
}

#[test]
fn reasons_are_classified() {
    let k = "x.pkt:20: error handling packet: live packet field tcp_ack_seq: expected: 10001 (0x2711) vs actual: 1";
    assert_eq!(pkt_line(k), Some(20));
    assert_eq!(reason_class(k).as_deref(), Some("packet field tcp_ack_seq"));
    assert_eq!(reason_class("live packet field tcp_ack_seq: expected: 1").as_deref(), Some("packet field tcp_ack_seq"));
    assert_eq!(reason_class("Timed out waiting for packet"), reason_class("timed out waiting for packet"));
    assert_ne!(reason_class("timing error: expected"), reason_class("live packet field tcp_psh: x"));
    let kernel =
        End { pass: false, line: Some(25), class: reason_class("live packet field tcp_psh: e"), text: String::new() };
    let later = End { line: Some(36), ..kernel.clone() };
    assert!(!same(&kernel, &later), "a different line differs");
    let other = End { class: reason_class("timing error: expected outbound packet"), ..kernel.clone() };
    assert!(!same(&kernel, &other), "a different reason differs");
    assert!(same(&kernel, &kernel.clone()));
    assert_eq!(
        shared_path("linux-mainline/tcp_x.pkt").as_deref(),
        Some("linux/tools/testing/selftests/net/packetdrill/tcp_x.pkt")
    );
}
