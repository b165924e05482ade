//! CPython's own test suites under the library on the in-process loopback, each run on the
//! kernel too in the same test: `test_socket`'s TCP classes (per class, passed and run equal
//! the kernel's) and the whole module, `test_asyncio`'s stream and socket suites, and HTTP,
//! FTP, telnet, XML-RPC, WSGI and selector suites (every test's result equal to the kernel's),
//! with `UTCP_STAT_FILE` showing the connections went through utcp.
//!
//! They need CPython's `test` package: pyenv and python.org builds have it; Debian's python3
//! ships it apart (`libpython3.X-testsuite`, which .ci/run installs when missing). Without it,
//! skipped with a message.

mod common;

use common::{shared_object, stat_dir, stats};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Output};

/// The suites' imports, to probe an interpreter with.
const PROBE: &str = "import test.test_socket, test.test_asyncio.test_streams, test.test_asyncio.test_sock_lowlevel";

/// An interpreter with CPython's test package: `python3`, else Debian's `/usr/bin/python3`
/// (where `libpython3.X-testsuite` goes when `python3` is another build).
fn cpython_with_tests() -> Option<&'static str> {
    for py in ["python3", "/usr/bin/python3"] {
        if Command::new(py).args(["-c", PROBE]).output().is_ok_and(|o| o.status.success()) {
            return Some(py);
        }
    }
    eprintln!("skipped: no python3 with CPython's test package (Debian: apt-get install libpython3.X-testsuite)");
    None
}

/// One suite run at a time: CPython's tests have timeouts of their own, and a machine loaded by
/// three suites at once could make one of the two runs (kernel or utcp) time out alone.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `py -m test args…` (under the library, counters to `stats`, when `stats` is given).
fn regrtest(py: &str, args: &[&str], stats: Option<&Path>, secs: u32) -> String {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = Command::new("timeout");
    c.arg(secs.to_string()).arg(py).args(["-m", "test"]).args(args);
    c.env_remove("LD_PRELOAD").env_remove("UTCP_STAT_FILE").env_remove("UTCP_LOG");
    if let Some(d) = stats {
        c.env("LD_PRELOAD", shared_object()).env("UTCP_STAT_FILE", d.join("stat.%p"));
    }
    let o: Output = c.output().expect("run regrtest");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The per-class (passed, run) counts of a `-m test -v` log.
fn per_class(log: &str) -> HashMap<String, (u32, u32)> {
    let mut m: HashMap<String, (u32, u32)> = HashMap::new();
    for line in log.lines() {
        let Some(open) = line.find("(test.test_socket.") else { continue };
        let rest = &line[open + "(test.test_socket.".len()..];
        let Some(cls) = rest.split(['.', ')']).next() else { continue };
        let e = m.entry(cls.to_string()).or_default();
        if line.ends_with(" ok") {
            e.0 += 1;
            e.1 += 1;
        } else if line.contains(" ... FAIL") || line.contains(" ... ERROR") {
            e.1 += 1;
        }
    }
    m
}

#[test]
fn cpython_test_socket_tcp_classes_pass_as_on_the_kernel() {
    let Some(py) = cpython_with_tests() else { return };
    let args = ["test_socket", "-v", "-m", "*TCP*"];
    let klog = regrtest(py, &args, None, 100);
    let d = stat_dir("test_socket");
    let ulog = regrtest(py, &args, Some(&d), 100);
    let (kc, uc) = (per_class(&klog), per_class(&ulog));
    let mut classes: Vec<_> = kc.keys().collect();
    classes.sort();
    for c in &classes {
        eprintln!("{c:<28} kernel {:?} utcp {:?}", kc[*c], uc.get(*c));
    }
    assert!(!kc.is_empty(), "no test classes ran on the kernel:\n{klog}");
    assert_eq!(kc, uc, "per-class (passed, run) differ:\n{ulog}");
    let (_, m) = stats(&d);
    assert!(m.get("TcpActiveOpens").copied().unwrap_or(0) >= 10, "{m:?}");
    let _ = std::fs::remove_dir_all(&d);
}

/// What a result says, first word: `ok`, `FAIL`, `ERROR`, `skipped`, `expected`, `unexpected`.
fn verdict(s: &str) -> Option<&'static str> {
    let s = s.trim();
    ["ok", "FAIL", "ERROR", "skipped", "expected failure", "unexpected success"]
        .into_iter()
        .find(|v| s == *v || s.starts_with(&format!("{v} ")))
}

/// Every test's result in a `-m test -v` log: `name (module.Class.name)` → verdict. A result
/// that a test's own output pushed onto a later line is found there.
fn per_test(log: &str) -> BTreeMap<String, &'static str> {
    let lines: Vec<&str> = log.lines().collect();
    let mut m = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((name, rest)) = line.split_once(" ... ") else { continue };
        if !name.contains("(test.") {
            continue;
        }
        let v = verdict(rest).or_else(|| lines[i + 1..].iter().take(20).find_map(|l| verdict(l)));
        m.insert(name.trim().to_string(), v.unwrap_or("?"));
    }
    m
}

/// (module → (passed, skipped, other)) of a per-test map.
fn per_module(m: &BTreeMap<String, &'static str>) -> BTreeMap<String, (u32, u32, u32)> {
    let mut out: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    for (name, v) in m {
        let module = name.split('(').nth(1).and_then(|q| q.rsplitn(3, '.').nth(2)).unwrap_or("?").to_string();
        let e = out.entry(module).or_default();
        match *v {
            "ok" => e.0 += 1,
            "skipped" => e.1 += 1,
            _ => e.2 += 1,
        }
    }
    out
}

/// Runs `suites` on the kernel and under the library: every test's result equal, the
/// `required` suites run on the kernel (more than 10 tests passed), `opens` active and passive
/// opens on utcp at least.
fn suites_as_on_the_kernel(tag: &str, suites: &[&str], extra: &[&str], required: &[&str], opens: u64) {
    let Some(py) = cpython_with_tests() else { return };
    let mut args: Vec<&str> = suites.to_vec();
    args.extend_from_slice(extra);
    args.push("-v");
    let klog = regrtest(py, &args, None, 300);
    let d = stat_dir(tag);
    let ulog = regrtest(py, &args, Some(&d), 300);
    let (k, u) = (per_test(&klog), per_test(&ulog));
    let (km, um) = (per_module(&k), per_module(&u));
    for (module, c) in &km {
        eprintln!("{module:<36} kernel (ok, skipped, other) {c:?} utcp {:?}", um.get(module));
    }
    for s in required {
        let module = format!("test.{s}");
        assert!(km.get(&module).is_some_and(|c| c.0 > 10), "{module} did not run on the kernel:\n{klog}");
    }
    let differ: Vec<_> = k
        .iter()
        .filter(|(n, v)| u.get(*n) != Some(*v))
        .map(|(n, v)| format!("{n}: kernel {v}, utcp {:?}", u.get(n)))
        .collect();
    assert!(differ.is_empty(), "results differ:\n{}\n--- utcp log\n{ulog}", differ.join("\n"));
    assert_eq!(k.len(), u.len(), "tests run differ");
    let (_, m) = stats(&d);
    assert!(m.get("TcpActiveOpens").copied().unwrap_or(0) >= opens, "{m:?}");
    assert!(m.get("TcpPassiveOpens").copied().unwrap_or(0) >= opens, "{m:?}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn cpython_test_asyncio_streams_and_sockets_pass_as_on_the_kernel() {
    let suites = [
        "test_asyncio.test_streams",
        "test_asyncio.test_sock_lowlevel",
        "test_asyncio.test_server",
        "test_asyncio.test_sendfile",
        "test_asyncio.test_events",
        "test_asyncio.test_selector_events",
    ];
    suites_as_on_the_kernel("test_asyncio", &suites, &[], &suites[..2], 50);
}

/// More of CPython's suites that use TCP over 127.0.0.1 (HTTP servers and clients, FTP,
/// telnet, XML-RPC, WSGI, select/poll/epoll/selectors); `test_socketserver` needs the
/// `network` resource and is left out.
#[test]
fn cpython_http_ftp_xmlrpc_and_selector_suites_pass_as_on_the_kernel() {
    let suites = [
        "test_httpservers",
        "test_urllib2_localnet",
        "test_ftplib",
        "test_telnetlib",
        "test_xmlrpc",
        "test_wsgiref",
        "test_selectors",
        "test_poll",
        "test_epoll",
        "test_select",
    ];
    suites_as_on_the_kernel("cpython-more", &suites, &[], &["test_httpservers", "test_ftplib", "test_xmlrpc"], 50);
}

/// All of `test_socket` (UDP, AF_UNIX, socketpair, create_server's dual-stack tests, …: what is
/// not TCP is the kernel's, and must stay as it was), each test's result equal to the
/// kernel's. The VSOCK classes are left out: they hang where the host has no vsock transport.
#[test]
fn cpython_test_socket_whole_module_as_on_the_kernel() {
    suites_as_on_the_kernel("test_socket-all", &["test_socket"], &["-i", "*VSOCK*"], &["test_socket"], 10);
}

/// `test_socket`'s IPv6 TCP cases (CreateServerTest, CreateServerFunctionalTest test_tcp6 and
/// the dual-stack client tests, GeneralModuleTests' ipv6 cases): each result equal to the
/// kernel's, the dual-stack servers' connections utcp's over IPv6.
#[test]
fn cpython_test_socket_ipv6_cases_pass_as_on_the_kernel() {
    let Some(py) = cpython_with_tests() else { return };
    let args = [
        "test_socket",
        "-v",
        "-m",
        "*IPv6*",
        "-m",
        "*ipv6*",
        "-m",
        "*tcp6*",
        "-m",
        "*dual_stack*",
        "-m",
        "*dualstack*",
    ];
    let klog = regrtest(py, &args, None, 300);
    let d = stat_dir("test_socket-ipv6");
    let ulog = regrtest(py, &args, Some(&d), 300);
    let (k, u) = (per_test(&klog), per_test(&ulog));
    eprintln!("test_socket ipv6 cases: kernel {:?} utcp {:?}", per_module(&k), per_module(&u));
    for t in ["test_tcp6", "test_dual_stack_client_v4", "test_dual_stack_client_v6", "test_dualstack_ipv6_family"] {
        assert!(k.iter().any(|(n, v)| n.contains(t) && *v == "ok"), "{t} did not pass on the kernel:\n{klog}");
    }
    assert_eq!(k, u, "results differ\n--- utcp log\n{ulog}");
    let (_, m) = stats(&d);
    assert!(m.get("TcpPassiveOpens").copied().unwrap_or(0) >= 3, "{m:?}");
    assert!(m.get("Ip6InReceives").copied().unwrap_or(0) > 0, "{m:?}");
    let _ = std::fs::remove_dir_all(&d);
}
