//! Real programs under `LD_PRELOAD=libutcp_preload.so`: CPython scripts that talk to
//! themselves over 127.0.0.1 (all on utcp's in-process loopback), checked byte for byte, with
//! `UTCP_STAT_FILE` proving the connections went through utcp. Each script is also run on the
//! kernel where it asserts behaviour (readiness, fork), so the kernel checks the script.
//! Skipped, with a message, where python3 is missing.

mod common;

use common::{shared_object, stat_dir, stats};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn python3() -> bool {
    let ok = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: python3 not found");
    }
    ok
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name)
}

/// Runs `python3 args…` (under the library when `preload`), at most `secs` seconds.
fn run_python(args: &[&str], preload: bool, stats: Option<&Path>, secs: u32) -> Output {
    let mut c = Command::new("timeout");
    c.arg(secs.to_string()).arg("python3").args(args);
    c.env_remove("LD_PRELOAD").env_remove("UTCP_STAT_FILE");
    if preload {
        c.env("LD_PRELOAD", shared_object());
    }
    if let Some(d) = stats {
        c.env("UTCP_STAT_FILE", d.join("stat.%p"));
    }
    c.output().expect("run python3")
}

fn assert_ok(o: &Output, what: &str) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{what}: {:?}\nstdout:\n{out}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// One script under the library: it passes and its process made exactly one stack whose
/// counters show `opens` active opens at least.
fn run_on_utcp(name: &str, opens: u64) -> String {
    let d = stat_dir(name);
    let o = run_python(&[script(name).to_str().unwrap()], true, Some(&d), 90);
    let out = assert_ok(&o, name);
    let (files, m) = stats(&d);
    assert_eq!(files, 1, "{name}: one stat file expected");
    let active = m.get("TcpActiveOpens").copied().unwrap_or(0);
    assert!(active >= opens, "{name}: TcpActiveOpens {active} < {opens}: {m:?}");
    let _ = std::fs::remove_dir_all(&d);
    out
}

#[test]
fn echo_16mib_in_one_process_goes_through_utcp() {
    if !python3() {
        return;
    }
    let out = run_on_utcp("echo.py", 1);
    assert!(out.contains("OK 16777216"), "{out}");
}

#[test]
fn http_server_and_urllib_in_one_process_download_16mib() {
    if !python3() {
        return;
    }
    let out = run_on_utcp("httpdl.py", 1);
    assert!(out.contains("OK 16777216"), "{out}");
}

#[test]
fn mixed_sets_poll_select_epoll_as_on_the_kernel() {
    if !python3() {
        return;
    }
    let k = run_python(&[script("mixed.py").to_str().unwrap()], false, None, 60);
    assert_ok(&k, "mixed.py on the kernel");
    run_on_utcp("mixed.py", 1);
}

#[test]
fn fork_child_gets_the_kernel_and_leaves_the_parent_alone() {
    if !python3() {
        return;
    }
    let k = run_python(&[script("fork.py").to_str().unwrap()], false, None, 60);
    // On the kernel the child's send on the inherited socket succeeds: the script says so.
    assert!(!k.status.success(), "fork.py asserts the utcp child behaviour; on the kernel it must fail");
    run_on_utcp("fork.py", 1);
}

#[test]
fn udp_unix_and_pipes_pass_through_and_never_start_the_stack() {
    if !python3() {
        return;
    }
    let d = stat_dir("passthrough");
    let o = run_python(&[script("passthrough.py").to_str().unwrap()], true, Some(&d), 60);
    assert_ok(&o, "passthrough.py");
    assert_eq!(stats(&d).0, 0, "no TCP socket: no stack, no stat file");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn no_route_off_loopback_and_refused_on_a_closed_port() {
    if !python3() {
        return;
    }
    let d = stat_dir("unreach");
    let o = run_python(&[script("unreach.py").to_str().unwrap()], true, Some(&d), 60);
    assert_ok(&o, "unreach.py");
    let (files, m) = stats(&d);
    assert_eq!(files, 1);
    // The refused connect went out as a SYN on utcp (the unroutable one never did).
    assert_eq!(m.get("TcpActiveOpens").copied().unwrap_or(0), 1, "{m:?}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sendfile_into_a_utcp_socket_as_on_the_kernel() {
    if !python3() {
        return;
    }
    let k = run_python(&[script("sendfile.py").to_str().unwrap()], false, None, 60);
    assert_ok(&k, "sendfile.py on the kernel");
    run_on_utcp("sendfile.py", 1);
}

#[test]
fn signals_interrupt_calls_asleep_in_utcp_as_on_the_kernel() {
    if !python3() {
        return;
    }
    let k = run_python(&[script("signals.py").to_str().unwrap()], false, None, 60);
    assert_ok(&k, "signals.py on the kernel");
    run_on_utcp("signals.py", 1);
}

#[test]
fn splice_relay_socket_pipe_socket_16mib_as_on_the_kernel() {
    if !python3() {
        return;
    }
    let k = run_python(&[script("splice.py").to_str().unwrap()], false, None, 60);
    assert_ok(&k, "splice.py on the kernel");
    let out = run_on_utcp("splice.py", 2);
    assert!(out.contains("OK 16777216"), "{out}");
}

#[test]
fn dual_stack_kernel_server_takes_ipv4_clients_as_on_the_kernel() {
    if !python3() {
        return;
    }
    let k = run_python(&[script("dualstack.py").to_str().unwrap()], false, None, 60);
    assert_ok(&k, "dualstack.py on the kernel");
    let d = stat_dir("dualstack");
    let o = run_python(&[script("dualstack.py").to_str().unwrap()], true, Some(&d), 60);
    assert_ok(&o, "dualstack.py");
    let (files, m) = stats(&d);
    assert_eq!(files, 1);
    // The [::] listener is utcp's (AF_INET6 is): its IPv4 clients reach it as v4-mapped peers
    // on utcp, as do the AF_INET listener's client and the refused connect.
    assert_eq!(m.get("TcpActiveOpens").copied(), Some(6), "{m:?}");
    assert_eq!(m.get("TcpPassiveOpens").copied(), Some(5), "{m:?}");
    let _ = std::fs::remove_dir_all(&d);
}

/// Another process's kernel listeners on `[::1]` and on a dual-stack `[::]`: AF_INET6 clients
/// to `[::1]:port` and `[::ffff:127.0.0.1]:port` are handed to the kernel (fd, options and
/// close-on-exec kept) and answered as on the kernel; a free port is refused by utcp.
#[test]
fn ipv6_clients_of_another_process_kernel_listener_are_handed_over() {
    if !python3() {
        return;
    }
    let k = run_python(&[script("handover6.py").to_str().unwrap()], false, None, 60);
    let kout = assert_ok(&k, "handover6.py on the kernel");
    let d = stat_dir("handover6");
    let o = run_python(&[script("handover6.py").to_str().unwrap()], true, Some(&d), 60);
    assert_eq!(assert_ok(&o, "handover6.py"), kout);
    let (files, m) = stats(&d);
    assert_eq!(files, 1);
    // Only the refused connect was utcp's: the three others went to the kernel.
    assert_eq!(m.get("TcpActiveOpens").copied(), Some(1), "{m:?}");
    assert_eq!(m.get("TcpAttemptFails").copied(), Some(1), "{m:?}");
    let _ = std::fs::remove_dir_all(&d);
}

/// `curl -6` under the library from a kernel `python3 -m http.server --bind ::1` (another
/// process): the connect to `[::1]` is handed to the kernel, the page arrives as without the
/// library, and utcp made no connection of its own.
#[test]
fn curl_6_under_the_library_reaches_a_kernel_http_server_on_ipv6_loopback() {
    if !python3() || !Command::new("curl").arg("-V").output().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: python3 or curl missing");
        return;
    }
    let dir = stat_dir("curl6");
    std::fs::write(dir.join("page.txt"), "over ::1\n").unwrap();
    let port = {
        let l = std::net::TcpListener::bind("[::1]:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut srv = Command::new("python3")
        .args(["-m", "http.server", "--bind", "::1", &port.to_string()])
        .current_dir(&dir)
        .env_remove("LD_PRELOAD")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn http.server");
    let url = format!("http://[::1]:{port}/page.txt");
    let curl = |preload: bool| {
        let mut c = Command::new("curl");
        c.args(["-6", "-s", "--max-time", "10", "--retry", "20", "--retry-connrefused", "--retry-delay", "1", &url]);
        c.env_remove("LD_PRELOAD").env_remove("UTCP_STAT_FILE");
        if preload {
            c.env("LD_PRELOAD", shared_object()).env("UTCP_STAT_FILE", dir.join("stat.%p"));
        }
        c.output().expect("curl")
    };
    let k = curl(false);
    let u = curl(true);
    let _ = srv.kill();
    let _ = srv.wait();
    assert!(k.status.success() && u.status.success(), "kernel {k:?}\nutcp {u:?}");
    assert_eq!(k.stdout, b"over ::1\n");
    assert_eq!(u.stdout, k.stdout);
    let (files, m) = stats(&dir);
    assert_eq!(files, 1, "curl under the library made a stack (its socket was utcp's until connect)");
    assert_eq!(m.get("TcpActiveOpens").copied().unwrap_or(0), 0, "handed over, not utcp's: {m:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Root, `ip`, `curl` and a TUN device: what the TUN tests need.
fn tun_unavailable() -> Option<String> {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Some("not root".into());
    }
    for tool in ["ip", "curl"] {
        if !Command::new(tool).arg("-V").output().is_ok_and(|o| o.status.success()) {
            return Some(format!("{tool} missing"));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    None
}

fn sh(cmd: &str) -> Output {
    let o = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    assert!(o.status.success(), "{cmd}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

/// A network namespace with `tun0`, the kernel at 10.77.0.1/24 and fd77::1/64 (utcp takes
/// 10.77.0.2 and fd77::2);
/// removed on drop with everything still running in it.
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        let n = format!("utcp-pl-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &n]).output();
        sh(&format!(
            "ip netns add {n} && ip -n {n} link set lo up && ip -n {n} tuntap add dev tun0 mode tun && \
             ip -n {n} addr add 10.77.0.1/24 dev tun0 && ip -n {n} addr add fd77::1/64 dev tun0 nodad && \
             ip -n {n} link set tun0 up"
        ));
        Ns(n)
    }
    fn exec(&self, cmd: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, "sh", "-c", cmd]);
        c
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("sh").args(["-c", &format!("ip netns pids {} | xargs -r kill -9", self.0)]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `http.server` (serve.py) in the namespace; `utcp`: under the library on the TUN device.
fn http_server(ns: &Ns, dir: &Path, bind: &str, utcp: Option<&Path>) -> std::process::Child {
    let env = if let Some(so) = utcp {
        format!(
            "LD_PRELOAD={} UTCP_TUN=tun0 UTCP_ADDR=10.77.0.2/24 UTCP_STAT_FILE={}/server.%p",
            so.display(),
            dir.display()
        )
    } else {
        String::new()
    };
    let py = script("serve.py");
    let child = ns
        .exec(&format!("cd {} && exec env {env} python3 {} --bind {bind} 8080", dir.display(), py.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn server");
    // Up when a plain TCP connect gets through (curl from the kernel side, or to it).
    for _ in 0..100 {
        let probe = if utcp.is_some() { "10.77.0.2" } else { "10.77.0.1" };
        let ok = ns.exec(&format!("curl -s -o /dev/null --max-time 1 http://{probe}:8080/")).status();
        if ok.is_ok_and(|s| s.success()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child
}

#[test]
fn tun_http_server_under_the_library_and_curl_under_the_library() {
    if !python3() {
        return;
    }
    if let Some(why) = tun_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = stat_dir("tun");
    let blob: Vec<u8> = (0..16u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(dir.join("blob.bin"), &blob).unwrap();
    let ns = Ns::new("http");
    // python3 -m http.server under the library on TUN; the kernel's curl downloads.
    let mut srv = http_server(&ns, &dir, "10.77.0.2", Some(&shared_object()));
    let o = ns
        .exec(&format!("curl -s --max-time 60 -o {0}/k.bin http://10.77.0.2:8080/blob.bin", dir.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "kernel curl from utcp http.server: {o:?}");
    assert!(std::fs::read(dir.join("k.bin")).unwrap() == blob, "download differs");
    let _ = Command::new("kill").args(["-TERM", &srv.id().to_string()]).status();
    let _ = srv.wait();
    let (files, m) = stats(&dir);
    assert_eq!(files, 1, "the server's stat file");
    assert!(m.get("TcpPassiveOpens").copied().unwrap_or(0) >= 1, "{m:?}");
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("server.") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    // curl under the library from the kernel's http.server.
    let mut srv = http_server(&ns, &dir, "10.77.0.1", None);
    let o = ns
        .exec(&format!(
            "env LD_PRELOAD={} UTCP_TUN=tun0 UTCP_ADDR=10.77.0.2/24 UTCP_STAT_FILE={1}/curl.%p \
             curl -s --max-time 60 -o {1}/u.bin http://10.77.0.1:8080/blob.bin",
            shared_object().display(),
            dir.display()
        ))
        .output()
        .unwrap();
    let _ = srv.kill();
    let _ = srv.wait();
    assert!(o.status.success(), "curl under the library: {o:?}");
    assert!(std::fs::read(dir.join("u.bin")).unwrap() == blob, "download differs");
    let (files, m) = stats(&dir);
    assert_eq!(files, 1, "curl's stat file");
    assert!(m.get("TcpActiveOpens").copied().unwrap_or(0) >= 1, "{m:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Over TUN and IPv6: `python3 -m http.server --bind ::` under the library with
/// `UTCP_ADDR6=fd77::2/64`, the kernel's `curl -6` downloads 16 MiB from `[fd77::2]`, the
/// bytes equal and the connection utcp's over IPv6 with no retransmission.
#[test]
fn tun_ipv6_http_server_under_the_library_and_kernel_curl_6() {
    if !python3() {
        return;
    }
    if let Some(why) = tun_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = stat_dir("tun6");
    let blob: Vec<u8> = (0..16u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    std::fs::write(dir.join("blob.bin"), &blob).unwrap();
    let ns = Ns::new("http6");
    let env = format!(
        "LD_PRELOAD={} UTCP_TUN=tun0 UTCP_ADDR=10.77.0.2/24 UTCP_ADDR6=fd77::2/64 UTCP_STAT_FILE={}/server.%p",
        shared_object().display(),
        dir.display()
    );
    let mut srv = ns
        .exec(&format!(
            "cd {} && exec env {env} python3 {} --bind :: 8080",
            dir.display(),
            script("serve.py").display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn server");
    let url = "http://[fd77::2]:8080/";
    for _ in 0..100 {
        let ok = ns.exec(&format!("curl -6 -s -o /dev/null --max-time 1 {url}")).status();
        if ok.is_ok_and(|s| s.success()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let o = ns
        .exec(&format!("curl -6 -s --max-time 60 -o {}/k.bin -w '%{{speed_download}}' {url}blob.bin", dir.display()))
        .output()
        .unwrap();
    let _ = Command::new("kill").args(["-TERM", &srv.id().to_string()]).status();
    let _ = srv.wait();
    assert!(o.status.success(), "kernel curl -6 from utcp http.server: {o:?}");
    eprintln!("curl -6 over TUN from utcp: {} bytes/s", String::from_utf8_lossy(&o.stdout));
    assert!(std::fs::read(dir.join("k.bin")).unwrap() == blob, "download differs");
    let (files, m) = stats(&dir);
    assert_eq!(files, 1, "the server's stat file");
    assert!(m.get("TcpPassiveOpens").copied().unwrap_or(0) >= 2, "{m:?}");
    assert!(m.get("Ip6InReceives").copied().unwrap_or(0) > 1000, "over IPv6: {m:?}");
    assert_eq!(m.get("TcpRetransSegs").copied().unwrap_or(0), 0, "a clean link: {m:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs hello.py under the library with `env` added; (stdout, stderr).
fn hello_with(env: &[(&str, &str)]) -> (String, String) {
    let mut c = Command::new("timeout");
    c.args(["60", "python3"]).arg(script("hello.py"));
    c.env_remove("UTCP_LOG").env_remove("UTCP_LOG_FILE").env_remove("UTCP_STAT_FILE");
    c.env("LD_PRELOAD", shared_object());
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run hello.py");
    let out = assert_ok(&o, "hello.py");
    (out, String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn utcp_log_traces_to_stderr_or_a_file_with_envfilter_syntax() {
    if !python3() {
        return;
    }
    // No UTCP_LOG: nothing on stderr.
    let (out, err) = hello_with(&[]);
    assert_eq!(out.trim(), "OK");
    assert_eq!(err, "", "stderr without UTCP_LOG");
    // The stack's state changes and the library's own events, on stderr.
    let (_, err) = hello_with(&[("UTCP_LOG", "inet_sock_set_state=trace,utcp_preload=debug")]);
    for want in ["stack created", "placeholder", "TCP_SYN_SENT", "TCP_ESTABLISHED", "TCP_FIN_WAIT1", "TCP_CLOSE"] {
        assert!(err.contains(want), "{want} missing from the trace:\n{err}");
    }
    // The filter holds: no transmit trace (target tcp_transmit_skb) was asked for.
    assert!(!err.contains("tcp_transmit_skb"), "{err}");
    // Only the transmit trace, to a file (`%p`: the pid); stderr stays clean.
    let d = stat_dir("log");
    let path = d.join("trace.%p");
    let (_, err) = hello_with(&[("UTCP_LOG", "tcp_transmit_skb=trace"), ("UTCP_LOG_FILE", path.to_str().unwrap())]);
    assert_eq!(err, "", "stderr with UTCP_LOG_FILE");
    let files: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "one trace file");
    let name = files[0].file_name().to_string_lossy().into_owned();
    assert!(name.strip_prefix("trace.").is_some_and(|p| p.parse::<u32>().is_ok()), "{name}");
    let text = std::fs::read_to_string(files[0].path()).unwrap();
    // SYN, SYN-ACK, ACK, the data and its ACK, two FINs and their ACKs at least.
    assert!(text.lines().filter(|l| l.contains("tcp_transmit_skb")).count() >= 7, "{text}");
    assert!(!text.contains("inet_sock_set_state"), "{text}");
    // A filter that does not parse: said on stderr, and the program runs on.
    let (out, err) = hello_with(&[("UTCP_LOG", "inet_sock_set_state=loud")]);
    assert_eq!(out.trim(), "OK");
    assert!(err.contains("UTCP_LOG") && err.contains("no tracing"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

/// curl's `speed_download` (bytes/s) for `url`, run by `sh` in `ns` with `env` before it.
fn curl_speed(ns: &Ns, env: &str, url: &str) -> f64 {
    let o = ns
        .exec(&format!(
            "env {env} curl -s --max-time 120 -o /dev/null -w '%{{speed_download}} %{{size_download}}' {url}"
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "curl {url}: {o:?}");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut it = text.split_whitespace();
    let speed: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let size: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    assert_eq!(size, 256 << 20, "{url}: short download");
    speed
}

/// Not a check (run with `--ignored --nocapture`; `UTCP_PRELOAD_SO` picks a release build):
/// the throughput of a 256 MiB curl download over TUN with the library on one side, and of the
/// same download between two kernels over a veth pair (the kernel-only path nearest to it),
/// from one `python3 -m http.server`, one run each.
#[test]
#[ignore]
fn measure_curl_download_over_tun_with_and_without_the_library() {
    if let Some(why) = tun_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let so = std::env::var_os("UTCP_PRELOAD_SO").map(PathBuf::from).unwrap_or_else(shared_object);
    let dir = stat_dir("tun-perf");
    let blob: Vec<u8> = (0..256u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(dir.join("blob.bin"), &blob).unwrap();
    drop(blob);
    let ns = Ns::new("perf");
    let peer = Ns(format!("{}-peer", ns.0));
    sh(&format!(
        "ip netns add {p} && ip -n {p} link set lo up && ip link add veth0 netns {n} type veth peer name veth1 netns {p} && \
         ip -n {n} addr add 10.78.0.1/24 dev veth0 && ip -n {n} link set veth0 up && \
         ip -n {p} addr add 10.78.0.2/24 dev veth1 && ip -n {p} link set veth1 up",
        n = ns.0,
        p = peer.0
    ));
    // A kernel http.server in the namespace, on both its TUN and its veth address.
    let mut srv = http_server(&ns, &dir, "0.0.0.0", None);
    let kernel = curl_speed(&peer, "", "http://10.78.0.1:8080/blob.bin");
    let utcp_env = format!("LD_PRELOAD={} UTCP_TUN=tun0 UTCP_ADDR=10.77.0.2/24", so.display());
    let utcp_curl = curl_speed(&ns, &utcp_env, "http://10.77.0.1:8080/blob.bin");
    let _ = srv.kill();
    let _ = srv.wait();
    // The http.server under the library on TUN, the kernel's curl.
    let mut srv = http_server(&ns, &dir, "10.77.0.2", Some(&so));
    let utcp_server = curl_speed(&ns, "", "http://10.77.0.2:8080/blob.bin");
    let _ = Command::new("kill").args(["-TERM", &srv.id().to_string()]).status();
    let _ = srv.wait();
    let mb = |b: f64| b / 1e6;
    eprintln!("256 MiB curl download, one run each ({}):", so.display());
    eprintln!("  kernel curl <- kernel http.server, veth:        {:8.1} MB/s", mb(kernel));
    eprintln!(
        "  curl on utcp (TUN) <- kernel http.server:       {:8.1} MB/s  ({:.2}x kernel)",
        mb(utcp_curl),
        utcp_curl / kernel
    );
    eprintln!(
        "  kernel curl <- http.server on utcp (TUN):       {:8.1} MB/s  ({:.2}x kernel)",
        mb(utcp_server),
        utcp_server / kernel
    );
    let _ = std::fs::remove_dir_all(&dir);
}
