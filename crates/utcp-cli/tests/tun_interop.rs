//! Interop over a real TUN device: the kernel's own programs (curl, python3's http.server,
//! ping, a python client sending urgent data) against `utcp serve` / `utcp connect`.
//!
//! Each test makes its own network namespace with a persistent tun device (`tun0`, kernel side
//! 10.77.0.1/24, utcp 10.77.0.2/24), runs everything inside it, and removes it. Tests that
//! cannot run (not root, no /dev/net/tun, a missing tool) print why and return.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const UTCP: &str = env!("CARGO_BIN_EXE_utcp");
const KERNEL_IP: &str = "10.77.0.1";
const UTCP_IP: &str = "10.77.0.2";

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why this machine cannot run the interop tests, if it cannot.
fn unavailable(tools: &[&str]) -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref() != Some("0") {
        return Some("not root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    for t in ["ip"].iter().chain(tools) {
        if !have(t) {
            return Some(format!("{t} not installed"));
        }
    }
    None
}

macro_rules! require {
    ($($tool:expr),*) => {
        if let Some(why) = unavailable(&[$($tool),*]) {
            eprintln!("SKIP {}: {why}", module_path!());
            return;
        }
    };
}

fn sh(cmd: &str) -> std::process::Output {
    let o = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    assert!(o.status.success(), "{cmd}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

/// A network namespace with `tun0` (kernel 10.77.0.1/24), removed on drop.
struct Ns {
    name: String,
    dir: PathBuf,
    children: Vec<Child>,
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// The tests run one at a time: each moves real packets through the kernel, and on this
/// 2-core machine tests running side by side deschedule each other's receivers long enough
/// to provoke spurious retransmissions.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Ns {
    fn new(tag: &str) -> Ns {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("utcp-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        sh(&format!(
            "ip netns add {name} && ip -n {name} link set lo up && ip netns exec {name} sysctl -qw \
             net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && ip -n {name} tuntap add dev tun0 mode tun && ip -n \
             {name} addr add {KERNEL_IP}/24 dev tun0 && ip -n {name} link set tun0 up"
        ));
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Ns { name, dir, children: Vec::new(), _serial: serial }
    }
    /// `ip netns exec NS sh -c cmd`.
    fn cmd(&self, cmd: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, "sh", "-c", cmd]);
        c
    }
    fn run(&self, cmd: &str) -> String {
        let o = self.cmd(cmd).output().unwrap();
        assert!(
            o.status.success(),
            "{cmd}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    /// Starts `utcp ARGS` in the namespace; waits until it reports that it is up.
    fn utcp(&mut self, args: &str) -> usize {
        let mut c = self.cmd(&format!("exec {UTCP} {args}"));
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(line.starts_with("utcp: "), "utcp did not start: {line}");
        // Keep draining stderr so the child never blocks on it.
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
        });
        self.children.push(child);
        self.children.len() - 1
    }
    /// Sends SIGTERM to child `i`, waits, and returns its exit status and stdout.
    fn stop(&mut self, i: usize) -> (std::process::ExitStatus, String) {
        let mut child = self.children.remove(i);
        unsafe_free_kill(child.id(), "TERM");
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        (child.wait().unwrap(), out)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn unsafe_free_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status();
}

impl Drop for Ns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn make_file(path: &Path, len: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ len as u64;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    std::fs::write(path, v).unwrap();
}

fn sha256(path: &Path) -> String {
    let o = sh(&format!("sha256sum {}", path.display()));
    String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().to_string()
}

fn counter(nstat: &str, name: &str) -> u64 {
    nstat
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.split_whitespace().next())?.parse().ok())
        .unwrap_or(0)
}

/// Packets the kernel dropped on its tun devices (the tun ring full: tun has no
/// backpressure, so a reader that falls behind loses packets). utcp raises the ring
/// (`--txqueuelen`, default 8192) above any window the kernel can have in flight, so there
/// should be none.
fn kernel_tun_drops(ns: &Ns) -> u64 {
    let out = ns.run("for d in /sys/class/net/tun*; do cat $d/statistics/tx_dropped $d/statistics/rx_dropped; done");
    out.split_whitespace().filter_map(|v| v.parse::<u64>().ok()).sum()
}

/// The kernel's own counters in the namespace (`nstat -az`, absolute values).
fn kernel_nstat(ns: &Ns) -> String {
    ns.run("nstat -asz")
}

/// Counters that must stay 0 on a clean link, on both sides: nothing out of order, no
/// SACK recovery, no receive-side drop.
const DIRTY: [&str; 5] =
    ["TcpExtTCPOFOQueue", "TcpExtTCPOFODrop", "TcpExtTCPSackRecoveries", "TcpExtTCPBacklogDrop", "TcpExtTCPRcvQDrop"];

/// A clean link: the kernel's tun ring dropped nothing, and on both sides (utcp's counters
/// at exit, the namespace's kernel counters) nothing arrived out of order, no SACK recovery
/// ran, and every retransmission was reported by the peer as a duplicate (DSACK): nothing
/// was lost. Spurious retransmissions are the one thing a clean link can still cause on a
/// loaded machine: a receiver descheduled while it owns its socket leaves segments in its
/// backlog unacknowledged past the sender's loss-probe timeout (2 × srtt, at least 10 ms) or,
/// rarely, its RTO, and Linux retransmits then too.
fn assert_clean(ns: &Ns, nstat: &str) {
    assert_eq!(kernel_tun_drops(ns), 0, "the kernel dropped packets at its tun ring");
    let kernel = kernel_nstat(ns);
    for (who, c) in [("utcp", nstat), ("the kernel", kernel.as_str())] {
        for name in DIRTY {
            assert_eq!(counter(c, name), 0, "{who}'s {name} on a clean link:\n{c}");
        }
        let rtx = counter(c, "TcpRetransSegs");
        let dsacks = counter(c, "TcpExtTCPDSACKRecv") + counter(c, "TcpExtTCPDSACKOfoRecv");
        assert!(rtx <= dsacks, "{who}: {rtx} retransmissions, only {dsacks} reported spurious (DSACK):\n{c}");
        if rtx > 0 {
            let (tlp, rto) = (counter(c, "TcpExtTCPLossProbes"), counter(c, "TcpExtTCPTimeouts"));
            eprintln!(
                "note: {who} made {rtx} spurious retransmissions ({tlp} loss probes, {rto} timeouts), all DSACKed"
            );
        }
    }
}

fn download_and_check(mode: &str, len: usize, tag: &str) {
    let mut ns = Ns::new(tag);
    let www = ns.file("www");
    std::fs::create_dir_all(&www).unwrap();
    make_file(&www.join("big"), len);
    let pcap = ns.file("s.pcap");
    let srv = ns.utcp(&format!(
        "serve --tun tun0 --addr {UTCP_IP}/24 --port 8080 {mode} --pcap {} http {}",
        pcap.display(),
        www.display()
    ));
    let kcap = have("dumpcap").then(|| capture_tun0(&mut ns, "k.pcap"));
    let got = ns.file("got");
    let t = Instant::now();
    let out = ns.run(&format!(
        "curl -sS --max-time 120 -o {} -w '%{{http_code}} %{{size_download}}' http://{UTCP_IP}:8080/big",
        got.display()
    ));
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(out, format!("200 {len}"));
    assert_eq!(sha256(&got), sha256(&www.join("big")));
    eprintln!("{tag}: {len} bytes utcp->kernel in {secs:.2}s ({:.1} MB/s)", len as f64 / secs / 1e6);
    let (st, nstat) = ns.stop(srv);
    assert!(st.success(), "serve exit {st:?}");
    assert!(counter(&nstat, "TcpPassiveOpens") == 1, "{nstat}");
    if let Some((i, kpcap)) = kcap {
        settle_capture(&kpcap);
        let (_, _) = ns.stop(if i > srv { i - 1 } else { i });
        same_packets_as_the_kernel_saw(&pcap, &kpcap, mode.is_empty());
    } else {
        eprintln!("dumpcap not installed: pcap not compared with the kernel's capture");
    }
    assert_clean(&ns, &nstat);
    if mode.is_empty() {
        assert!(counter(&nstat, "TunTxGso") > 0, "offloads on but no GSO packet written:\n{nstat}");
    }
    // The capture is complete after SIGTERM and tshark reads it without complaint.
    if have("tshark") {
        let o = sh(&format!(
            "tshark -r {} -o tcp.check_checksum:TRUE -T fields -e tcp.flags.str -e tcp.len",
            pcap.display()
        ));
        let text = String::from_utf8_lossy(&o.stdout);
        let o2 = sh(&format!("tshark -r {} -Y '_ws.malformed || _ws.expert.severity >= error' ", pcap.display()));
        assert!(o2.stdout.is_empty(), "malformed or bad-checksum packets:\n{}", String::from_utf8_lossy(&o2.stdout));
        let flags: Vec<&str> = text.lines().map(|l| l.split('\t').next().unwrap_or("")).collect();
        assert!(flags.iter().any(|f| f.contains('S') && !f.contains('A')), "no SYN");
        assert!(flags.iter().any(|f| f.contains('S') && f.contains('A')), "no SYN-ACK");
        assert!(flags.iter().filter(|f| f.contains('F')).count() >= 2, "no FIN exchange");
        let data: u64 = text.lines().filter_map(|l| l.split('\t').nth(1)?.parse::<u64>().ok()).sum();
        assert!(data >= len as u64, "pcap holds {data} payload bytes, less than the file");
    } else {
        eprintln!("tshark not installed: pcap not checked");
    }
}

/// Starts `dumpcap` on the kernel's tun0 (the capture tcpdump would make there); returns the
/// child's index and the file.
fn capture_tun0(ns: &mut Ns, name: &str) -> (usize, PathBuf) {
    let f = ns.file(name);
    let mut child = ns
        .cmd(&format!("exec dumpcap -q -P -i tun0 -s 128 -B 64 -w {}", f.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("Capturing on") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "dumpcap did not start");
    }
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
    });
    ns.children.push(child);
    // "Capturing on" comes before the capture is live: ping utcp until a packet reaches the
    // file (only TCP packets are compared, so the probes do not matter).
    for _ in 0..100 {
        if std::fs::metadata(&f).map(|m| m.len() > 24).unwrap_or(false) {
            break;
        }
        let _ = ns.cmd(&format!("ping -c1 -W1 -q {UTCP_IP}")).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
    (ns.children.len() - 1, f)
}

/// Waits until dumpcap has written what the kernel handed it: its file has not grown for
/// 500 ms (at most 20 s). SIGTERM before that loses the packets still in its ring (dumpcap's
/// own report then says "flushed:N"), and the comparison would find the kernel's capture short.
fn settle_capture(f: &Path) {
    let size = || std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
    let t = Instant::now();
    let (mut last, mut since) = (size(), Instant::now());
    while t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
        let now = size();
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= Duration::from_millis(500) {
            return;
        }
    }
}

/// Each direction's packets, as `src seq ip.len flags tcp.len` lines, from a capture.
fn packet_lines(pcap: &Path, src: &str) -> Vec<String> {
    let o = sh(&format!(
        "tshark -r {} -Y 'ip.src == {src} && tcp' -T fields -e tcp.seq_raw -e ip.len -e tcp.flags -e tcp.len -e ip.checksum",
        pcap.display()
    ));
    String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()
}

/// utcp's pcap holds the packets that crossed the tun device as the kernel's own capture on
/// tun0 shows them: the same packets in each direction (GSO super-packets as one packet of
/// their whole IP length, with the same IP checksum), in the same order.
fn same_packets_as_the_kernel_saw(ours: &Path, kernel: &Path, offload: bool) {
    for src in [UTCP_IP, KERNEL_IP] {
        let (a, b) = (packet_lines(ours, src), packet_lines(kernel, src));
        assert!(!a.is_empty(), "nothing from {src} in utcp's pcap");
        if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
            panic!(
                "packets from {src} differ at #{i}: utcp's pcap {:?}, the kernel's capture {:?} ({} vs {} packets)",
                a.get(i),
                b.get(i),
                a.len(),
                b.len()
            );
        }
        let big = a.iter().filter(|l| l.split('\t').nth(1).and_then(|v| v.parse::<u32>().ok()) > Some(1500)).count();
        if offload && src == UTCP_IP {
            assert!(big > 0, "no super-packet in the capture of an offloaded transfer");
        }
        eprintln!("{src}: {} packets, {big} larger than the MTU, identical in both captures", a.len());
    }
}

#[test]
fn curl_downloads_64mib_with_offloads() {
    require!("curl", "sha256sum");
    download_and_check("", 64 << 20, "dl-off");
}

#[test]
fn curl_downloads_16mib_plain_mode() {
    require!("curl", "sha256sum");
    download_and_check("--no-offload", 16 << 20, "dl-plain");
}

#[test]
fn curl_keepalive_1000_requests_on_one_connection() {
    require!("curl");
    let mut ns = Ns::new("ka");
    let www = ns.file("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("small"), b"hello over utcp\n").unwrap();
    let srv = ns.utcp(&format!("serve --tun tun0 --addr {UTCP_IP}/24 --port 8080 http {}", www.display()));
    let cfg = ns.file("urls");
    let mut urls = String::new();
    for i in 0..1000 {
        let path = if i % 100 == 99 { "missing" } else { "small" };
        urls.push_str(&format!("url = \"http://{UTCP_IP}:8080/{path}\"\noutput = \"/dev/null\"\n"));
    }
    std::fs::write(&cfg, urls).unwrap();
    let out = ns.run(&format!("curl -sS --max-time 120 -K {} -w '%{{num_connects}} %{{http_code}}\\n'", cfg.display()));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1000);
    let connects: u32 = lines.iter().map(|l| l.split(' ').next().unwrap().parse::<u32>().unwrap()).sum();
    assert_eq!(connects, 1, "curl opened more than one connection");
    assert_eq!(lines.iter().filter(|l| l.ends_with(" 404")).count(), 10);
    assert_eq!(lines.iter().filter(|l| l.ends_with(" 200")).count(), 990);
    let (_, nstat) = ns.stop(srv);
    assert_eq!(counter(&nstat, "TcpPassiveOpens"), 1);
    assert_clean(&ns, &nstat);
}

#[test]
fn fifty_concurrent_curl_clients() {
    require!("curl", "sha256sum");
    let mut ns = Ns::new("par");
    let www = ns.file("www");
    std::fs::create_dir_all(&www).unwrap();
    make_file(&www.join("f"), 1 << 20);
    let want = sha256(&www.join("f"));
    let srv = ns.utcp(&format!("serve --tun tun0 --addr {UTCP_IP}/24 --port 8080 http {}", www.display()));
    let mut kids = Vec::new();
    for i in 0..50 {
        let out = ns.file(&format!("got{i}"));
        kids.push((
            ns.cmd(&format!("curl -sS --max-time 120 -o {} http://{UTCP_IP}:8080/f", out.display())).spawn().unwrap(),
            out,
        ));
    }
    for (mut k, out) in kids {
        assert!(k.wait().unwrap().success());
        assert_eq!(sha256(&out), want);
    }
    let (_, nstat) = ns.stop(srv);
    assert_eq!(counter(&nstat, "TcpPassiveOpens"), 50);
}

/// Starts `python3 -m http.server` on the kernel side, serving `dir` on port 8000.
fn python_server(ns: &mut Ns, dir: &Path) {
    let child = ns
        .cmd(&format!("exec python3 -m http.server --bind {KERNEL_IP} -d {} 8000", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ns.children.push(child);
    // Wait until it listens.
    let t = Instant::now();
    while !ns.run("ss -Hltn 'sport = :8000'").contains("8000") {
        assert!(t.elapsed() < Duration::from_secs(20), "python3 http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn utcp_connect_http(ns: &Ns, mode: &str, want: &Path, tag: &str) -> String {
    let got = ns.file("got");
    let t = Instant::now();
    let o = ns
        .cmd(&format!(
            "exec {UTCP} connect --tun tun0 --addr {UTCP_IP}/24 {mode} http http://{KERNEL_IP}:8000/big --output {}",
            got.display()
        ))
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(o.status.success(), "utcp connect: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sha256(&got), sha256(want));
    let len = std::fs::metadata(want).unwrap().len();
    eprintln!("{tag}: {len} bytes kernel->utcp in {secs:.2}s ({:.1} MB/s)", len as f64 / secs / 1e6);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn utcp_connect_downloads_from_python_http_server() {
    require!("python3", "sha256sum", "ss");
    let mut ns = Ns::new("py");
    let www = ns.file("www");
    std::fs::create_dir_all(&www).unwrap();
    make_file(&www.join("big"), 32 << 20);
    python_server(&mut ns, &www);
    let nstat = utcp_connect_http(&ns, "", &www.join("big"), "py-off");
    assert_eq!(counter(&nstat, "TcpActiveOpens"), 1);
    assert_clean(&ns, &nstat);
    let nstat = utcp_connect_http(&ns, "--no-offload", &www.join("big"), "py-plain");
    assert_clean(&ns, &nstat);
}

#[test]
fn two_percent_loss_both_directions() {
    require!("python3", "curl", "sha256sum", "ss", "iptables");
    let mut ns = Ns::new("loss");
    // Random loss on the kernel side, both ways (this kernel has no netem). A locally sent
    // segment that netfilter drops is not lost (the sender sees the error and sends it again),
    // so the kernel->utcp sender sits in a second namespace behind a veth pair and the tun
    // namespace forwards and drops (FORWARD); utcp's /16 makes 10.77.5.2 on-link.
    ns.run(
        "iptables -A INPUT -i tun0 -m statistic --mode random --probability 0.02 -j DROP && iptables -A OUTPUT -o tun0 \
         -m statistic --mode random --probability 0.02 -j DROP && iptables -A FORWARD -m statistic --mode random \
         --probability 0.02 -j DROP",
    );
    let peer = PeerNs::new(&ns);
    let www = ns.file("www");
    std::fs::create_dir_all(&www).unwrap();
    make_file(&www.join("big"), 8 << 20);
    // kernel -> utcp, through the forwarding hop
    let mut py = peer
        .cmd(&format!("exec python3 -m http.server --bind 10.77.5.2 -d {} 8000", www.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !String::from_utf8_lossy(&peer.cmd("ss -Hltn 'sport = :8000'").output().unwrap().stdout).contains("8000") {
        assert!(t.elapsed() < Duration::from_secs(20), "python3 http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = ns.file("got");
    let o = ns
        .cmd(&format!(
            "exec {UTCP} connect --tun tun0 --addr {UTCP_IP}/16 --no-offload http http://10.77.5.2:8000/big --output {}",
            got.display()
        ))
        .output()
        .unwrap();
    let _ = py.kill();
    let _ = py.wait();
    assert!(o.status.success(), "utcp connect: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sha256(&got), sha256(&www.join("big")));
    let nstat = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(counter(&nstat, "TcpExtTCPOFOQueue") > 0, "no loss seen by utcp?\n{nstat}");
    // utcp -> kernel
    let srv = ns.utcp(&format!("serve --tun tun0 --addr {UTCP_IP}/24 --port 8080 --no-offload http {}", www.display()));
    let got = ns.file("got2");
    let out =
        ns.run(&format!("curl -sS --max-time 300 -o {} -w '%{{http_code}}' http://{UTCP_IP}:8080/big", got.display()));
    assert_eq!(out, "200");
    assert_eq!(sha256(&got), sha256(&www.join("big")));
    let (_, nstat) = ns.stop(srv);
    assert!(counter(&nstat, "TcpRetransSegs") > 0, "no retransmission under 2% loss?\n{nstat}");
    let n = ns.run("iptables -L -v -n -x | awk '/statistic/ {s += $1} END {print s}'");
    assert!(n.trim().parse::<u64>().unwrap() > 0, "iptables dropped nothing");
}

/// A second namespace behind a veth pair (10.77.5.2/24 there, 10.77.5.1/24 in `ns`, which
/// forwards), removed on drop.
struct PeerNs(String);

impl PeerNs {
    fn new(ns: &Ns) -> PeerNs {
        let p = format!("{}-p", ns.name);
        let _ = Command::new("ip").args(["netns", "del", &p]).stderr(Stdio::null()).status();
        sh(&format!(
            "ip netns add {p} && ip -n {p} link set lo up && ip link add vp{pid} netns {n} type veth peer name vq{pid} \
             netns {p} && ip -n {n} addr add 10.77.5.1/24 dev vp{pid} && ip -n {p} addr add 10.77.5.2/24 dev vq{pid} && \
             ip -n {n} link set vp{pid} up && ip -n {p} link set vq{pid} up && ip -n {p} route add 10.77.0.0/24 via \
             10.77.5.1 && ip netns exec {n} sysctl -qw net.ipv4.ip_forward=1",
            n = ns.name,
            pid = std::process::id()
        ));
        PeerNs(p)
    }
    fn cmd(&self, cmd: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, "sh", "-c", cmd]);
        c
    }
}

impl Drop for PeerNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A second tun device (kernel side 10.77.1.1/24) for a second utcp process; the kernel
/// forwards between the two.
fn second_tun(ns: &Ns, tun0_mtu: u32) {
    ns.run(&format!(
        "sysctl -qw net.ipv4.ip_forward=1 && ip link set tun0 mtu {tun0_mtu} && ip tuntap add dev tun1 mode tun && ip \
         addr add 10.77.1.1/24 dev tun1 && ip link set tun1 up"
    ));
}

fn connect_on_tun1(ns: &Ns, client: &str) -> (bool, String, String) {
    let o = ns.cmd(&format!("exec {UTCP} connect --tun tun1 --addr 10.77.1.2/16 {client}")).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn utcp_echo_and_discard_through_the_kernel() {
    // Two utcp processes on two tun devices of one namespace, the kernel routing between them.
    require!();
    let mut ns = Ns::new("echo");
    second_tun(&ns, 1500);
    let echo = ns.utcp(&format!("serve --tun tun0 --addr {UTCP_IP}/16 --port 7 echo"));
    let (ok, nstat, err) = connect_on_tun1(&ns, &format!("echo {UTCP_IP}:7 --bytes 4M"));
    assert!(ok, "{err}");
    assert!(err.contains("4194304 bytes sent and received intact"), "{err}");
    assert_clean(&ns, &nstat);
    let (_, nstat) = ns.stop(echo);
    assert_clean(&ns, &nstat);
    let discard = ns.utcp(&format!("serve --tun tun0 --addr {UTCP_IP}/16 --port 9 --no-offload discard"));
    let (ok, _, err) = connect_on_tun1(&ns, &format!("--no-offload discard {UTCP_IP}:9 --bytes 16M"));
    assert!(ok, "{err}");
    let (_, nstat) = ns.stop(discard);
    assert!(counter(&nstat, "TcpInSegs") > (16 << 20) / 1448, "{nstat}");
}

#[test]
fn sigint_exits_cleanly_with_complete_pcap() {
    require!("curl");
    let mut ns = Ns::new("sig");
    let www = ns.file("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("a"), b"abc").unwrap();
    let pcap = ns.file("p.pcap");
    let srv = ns.utcp(&format!(
        "serve --tun tun0 --addr {UTCP_IP}/24 --port 8080 --pcap {} http {}",
        pcap.display(),
        www.display()
    ));
    assert_eq!(ns.run(&format!("curl -sS http://{UTCP_IP}:8080/a")), "abc");
    let mut child = ns.children.remove(srv);
    unsafe_free_kill(child.id(), "INT");
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(out.starts_with("#kernel\n"), "{out}");
    // Every record is whole: walk the file record by record.
    let b = std::fs::read(&pcap).unwrap();
    let mut off = 24;
    let mut n = 0;
    while off < b.len() {
        let caplen = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + caplen;
        n += 1;
    }
    assert_eq!(off, b.len(), "truncated pcap");
    assert!(n >= 8, "only {n} packets captured");
}

#[test]
fn kernel_ping_gets_echo_replies() {
    require!("ping");
    let mut ns = Ns::new("ping");
    let srv = ns.utcp(&format!("serve --tun tun0 --addr {UTCP_IP}/24 --port 7 echo"));
    let out = ns.run(&format!("ping -c 3 -i 0.2 -W 5 -s 1000 {UTCP_IP}"));
    assert!(out.contains("3 received"), "{out}");
    let (_, nstat) = ns.stop(srv);
    assert_eq!(counter(&nstat, "IcmpInEchos"), 3, "{nstat}");
    assert_eq!(counter(&nstat, "IcmpOutEchoReps"), 3, "{nstat}");
}

#[test]
fn connect_errors_from_rst_and_icmp() {
    require!("iptables");
    let ns = Ns::new("refused");
    let connect = |port: u16| {
        ns.cmd(&format!("exec {UTCP} connect --tun tun0 --addr {UTCP_IP}/24 echo {KERNEL_IP}:{port} --bytes 1"))
            .output()
            .unwrap()
    };
    // A closed kernel port answers the SYN with a RST: ECONNREFUSED.
    let o = connect(9);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Connection refused (os error 111)"));
    // ICMP port unreachable (iptables REJECT) on a connecting socket is a hard error: the same
    // errno, now from tcp_v4_err; host unreachable gives EHOSTUNREACH.
    ns.run("iptables -A INPUT -p tcp --dport 7001 -j REJECT --reject-with icmp-port-unreachable");
    ns.run("iptables -A INPUT -p tcp --dport 7002 -j REJECT --reject-with icmp-host-unreachable");
    let o = connect(7001);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("Connection refused (os error 111)"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("IcmpInDestUnreachs"), "no ICMP counted");
    let o = connect(7002);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("No route to host (os error 113)"), "{err}");
}

#[test]
fn icmp_frag_needed_from_a_kernel_router_lowers_the_mss() {
    // utcp (tun1, MTU 1500) -> kernel router -> tun0 with MTU 1400 -> utcp echo server. The
    // router answers 1500-byte DF segments with frag-needed (mtu 1400); the transfer only
    // completes if utcp lowers its MSS and resends in smaller segments.
    require!();
    let mut ns = Ns::new("pmtu");
    second_tun(&ns, 1400);
    // The server keeps MTU 1500, so it advertises MSS 1460 and the client sends full segments.
    let echo = ns.utcp(&format!("serve --tun tun0 --addr {UTCP_IP}/16 --port 7 echo"));
    for mode in ["", "--no-offload"] {
        let (ok, nstat, err) = connect_on_tun1(&ns, &format!("{mode} echo {UTCP_IP}:7 --bytes 1M"));
        assert!(ok, "{err}");
        assert!(counter(&nstat, "IcmpInDestUnreachs") >= 1, "no frag-needed arrived:\n{nstat}");
        assert!(counter(&nstat, "TcpRetransSegs") >= 1, "nothing resent after the MSS drop:\n{nstat}");
    }
    let _ = ns.stop(echo);
}

// ---- Urgent data and the error queue: a utcp socket in this test binary, next to the kernel's

const URGENT_PY: &str = include_str!("tun/urgent.py");
const RECVERR_PY: &str = include_str!("tun/recverr.py");
const POLLIN: i16 = 0x1;
const POLLPRI: i16 = 0x2;
const POLLOUT: i16 = 0x4;

/// A utcp stack on the namespace's tun0, in this process (run inside the namespace by
/// `ip netns exec` re-running this test binary on one `#[ignore]`d child test).
fn child_stack(offload: bool) -> (std::sync::Arc<utcp::Stack>, utcp::host::HostThreads) {
    use std::sync::Arc;
    let tun = utcp_tun::TunDevice::open(&utcp_tun::TunConfig {
        name: "tun0".into(),
        offload,
        mtu: 1500,
        txqueuelen: utcp_tun::DEFAULT_TXQUEUELEN,
    })
    .expect("open tun0");
    assert_eq!(tun.offload(), offload, "offload mode refused");
    let dev: Arc<dyn utcp::netdev::NetDevice> = Arc::new(tun);
    let clock: Arc<dyn utcp::time::Clock> = Arc::new(utcp::host::MonotonicClock::default());
    let core = utcp::stack::StackCore::new(UTCP_IP.parse().unwrap(), 1500, clock, std::process::id() as u64);
    core.attach_device(dev.clone());
    let threads = utcp::host::HostThreads::start(core.clone(), Some(dev));
    (Arc::new(utcp::Stack::from_core(core)), threads)
}

/// Re-runs this test binary's `test` (an ignored child) inside the namespace with `env`.
fn child(ns: &Ns, test: &str, env: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    ns.cmd(&format!("{env} exec {} --exact {test} --ignored --nocapture --test-threads 1", exe.display()))
}

/// A line the child printed (`R: ...`; the test harness may have printed `test NAME ... `
/// before the first one on the same line).
fn child_line(l: &str) -> Option<&str> {
    l.find("R: ").map(|i| &l[i + 3..])
}

fn errno_name(e: utcp::Errno) -> &'static str {
    e.name()
}

/// `recvmsg` into a fresh buffer of `n` bytes, printed as urgent.py prints it.
fn urgent_recv(st: &utcp::Stack, fd: i32, n: usize, flags: i32, name: &str) -> String {
    let mut buf = vec![0u8; n];
    let mut msg = utcp::syscall::MsgHdr::default();
    msg.iov.push(utcp::syscall::IoVec { base: Some(&mut buf[..]), len: n });
    let r = st.recvmsg(fd, &mut msg, flags);
    let mflags = msg.flags;
    drop(msg);
    match r {
        Ok(k) => {
            let hex: String = buf[..k].iter().map(|b| format!("{b:02x}")).collect();
            format!("recvmsg({n}, {name}) = {k} {hex} flags={mflags:#x}")
        }
        Err(e) => format!("recvmsg({n}, {name}) = {}", errno_name(e)),
    }
}

fn poll_one(st: &utcp::Stack, fd: i32) -> i16 {
    let mut p = [utcp::syscall::PollFd { fd, events: POLLIN | POLLPRI | POLLOUT, revents: 0 }];
    st.poll(&mut p, Some(Duration::ZERO)).unwrap();
    p[0].revents
}

/// The utcp reader of `urgent_data_reaches_utcp_as_it_reaches_the_kernel`: the calls
/// urgent.py's `reader` makes, printed the same way (prefixed `R: `).
#[test]
#[ignore = "child process of urgent_data_reaches_utcp_as_it_reaches_the_kernel"]
fn urgent_reader_child() {
    use utcp::syscall::{opt, FIONREAD, SIOCATMARK, SOL_SOCKET};
    use utcp::tcp::recvmsg::{MSG_DONTWAIT, MSG_OOB, MSG_PEEK};
    let Ok(args) = std::env::var("UTCP_URGENT_CHILD") else { return };
    let mut a = args.split(' ');
    let (offload, inline) = (a.next() == Some("offload"), a.next() == Some("1"));
    let (st, threads) = child_stack(offload);
    let l = st.socket(utcp::syscall::AF_INET, utcp::syscall::SOCK_STREAM, 0).unwrap();
    st.setsockopt_int(l, SOL_SOCKET, opt::SO_REUSEADDR, 1).unwrap();
    st.setsockopt_int(l, SOL_SOCKET, opt::SO_OOBINLINE, inline as i32).unwrap();
    st.bind(l, std::net::SocketAddrV4::new(UTCP_IP.parse().unwrap(), 5555)).unwrap();
    st.listen(l, 1).unwrap();
    println!("R: listening");
    let (c, _) = st.accept4(l, 0).unwrap();
    let stdin = std::io::stdin();
    let mut line = String::new();
    let steps = |n: usize| {
        for _ in 0..n {
            println!("R: atmark {}", st.ioctl(c, SIOCATMARK).unwrap());
            println!("R: {}", urgent_recv(&st, c, 1, MSG_OOB | MSG_PEEK, "OOB|PEEK"));
            println!("R: {}", urgent_recv(&st, c, 100, MSG_OOB | MSG_DONTWAIT, "OOB|DONTWAIT"));
            println!("R: {}", urgent_recv(&st, c, 100, MSG_DONTWAIT, "DONTWAIT"));
        }
    };
    for phase in [b"1", b"2"] {
        stdin.read_line(&mut line).unwrap();
        println!("R: inq {} poll {:#x}", st.ioctl(c, FIONREAD).unwrap(), poll_one(&st, c));
        steps(4);
        st.send(c, Some(phase), 1, 0).unwrap();
    }
    println!("R: done");
    // Stay up until the client has read the last byte and gone (the parent closes stdin).
    while stdin.read_line(&mut line).unwrap_or(0) > 0 {}
    threads.stop();
}

/// Runs urgent.py's client against a reader that waits for a line on its stdin before each
/// phase; relays the client's "sent" lines (every byte acknowledged) to the reader.
/// Returns the reader's output lines.
fn urgent_run(ns: &Ns, mut reader: Command, prefix: &str, host: &str) -> Vec<String> {
    let script = ns.file("urgent.py");
    let mut r = reader.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut out = BufReader::new(r.stdout.take().unwrap());
    let mut lines = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "reader exited before listening: {lines:?}");
        let l = line.trim_end();
        if let Some(l) = if prefix.is_empty() { Some(l) } else { child_line(l) } {
            lines.push(l.to_string());
            if l == "listening" {
                break;
            }
        }
    }
    let mut cl = ns
        .cmd(&format!("exec python3 {} client {host} 5555", script.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = r.stdin.take().unwrap();
    for l in BufReader::new(cl.stdout.take().unwrap()).lines() {
        assert_eq!(l.unwrap(), "sent");
        std::io::Write::write_all(&mut stdin, b"go\n").unwrap();
    }
    assert!(cl.wait().unwrap().success(), "urgent.py client failed");
    drop(stdin);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    lines.extend(
        rest.lines().filter_map(|l| if prefix.is_empty() { Some(l) } else { child_line(l) }).map(str::to_string),
    );
    assert!(r.wait().unwrap().success(), "reader failed: {lines:?}");
    lines
}

#[test]
fn urgent_data_reaches_utcp_as_it_reaches_the_kernel() {
    // A kernel client sends normal and urgent data (send(MSG_OOB)) in two phases; the
    // reader makes the same calls (SIOCATMARK, recvmsg with MSG_OOB|MSG_PEEK, MSG_OOB,
    // plain, poll for POLLPRI), with SO_OOBINLINE off and on. utcp's answers over tun0
    // (offloads on and off) must equal the kernel reader's over the namespace's loopback.
    require!("python3");
    let ns = Ns::new("urg");
    std::fs::write(ns.file("urgent.py"), URGENT_PY).unwrap();
    for inline in [0, 1] {
        let kreader =
            ns.cmd(&format!("exec python3 -u {} reader 127.0.0.1 5555 {inline}", ns.file("urgent.py").display()));
        let kernel = urgent_run(&ns, kreader, "", "127.0.0.1");
        assert!(kernel.len() > 30 && kernel.last().map(String::as_str) == Some("done"), "{kernel:?}");
        assert!(kernel.iter().any(|l| l.contains("flags=0x1")) == (inline == 0), "{kernel:?}");
        for mode in ["offload", "plain"] {
            let c = child(&ns, "urgent_reader_child", &format!("UTCP_URGENT_CHILD='{mode} {inline}'"));
            let ours = urgent_run(&ns, c, "R: ", UTCP_IP);
            for (i, (k, u)) in kernel.iter().zip(&ours).enumerate() {
                assert_eq!(u, k, "call #{i} differs (SO_OOBINLINE {inline}, {mode}); kernel:\n{}", kernel.join("\n"));
            }
            assert_eq!(ours.len(), kernel.len(), "{ours:?}");
            eprintln!("SO_OOBINLINE {inline}, {mode}: {} calls answered as the kernel answers", ours.len());
        }
    }
}

/// The utcp side of `icmp_errors_reach_the_error_queue_as_on_the_kernel`: recverr.py's calls
/// on a utcp socket, printed the same way (prefixed `R: `).
#[test]
#[ignore = "child process of icmp_errors_reach_the_error_queue_as_on_the_kernel"]
fn recverr_child() {
    use utcp::syscall::{opt, SOL_IP, SOL_SOCKET};
    use utcp::tcp::recvmsg::MSG_ERRQUEUE;
    let Ok(args) = std::env::var("UTCP_RECVERR_CHILD") else { return };
    let mut a = args.split(' ');
    let offload = a.next() == Some("offload");
    let dst: std::net::SocketAddrV4 = a.next().unwrap().parse().unwrap();
    let (st, threads) = child_stack(offload);
    let s = st.socket(utcp::syscall::AF_INET, utcp::syscall::SOCK_STREAM, 0).unwrap();
    st.setsockopt_int(s, SOL_IP, opt::IP_RECVERR, 1).unwrap();
    match st.connect(s, dst) {
        Ok(()) => println!("R: connect 0"),
        Err(e) => println!("R: connect {}", errno_name(e)),
    }
    println!("R: poll {:#x}", poll_one(&st, s));
    println!("R: SO_ERROR {}", st.getsockopt_int(s, SOL_SOCKET, opt::SO_ERROR).unwrap());
    loop {
        let mut data = vec![0u8; 4096];
        let mut name = [0u8; 16];
        let mut control = vec![0u8; 1024];
        let mut msg = utcp::syscall::MsgHdr {
            name: Some(&mut name[..]),
            namelen: 16,
            control: Some(&mut control[..]),
            controllen: 1024,
            ..Default::default()
        };
        msg.iov.push(utcp::syscall::IoVec { base: Some(&mut data[..]), len: 4096 });
        let r = st.recvmsg(s, &mut msg, MSG_ERRQUEUE);
        let (flags, controllen, namelen) = (msg.flags, msg.controllen, msg.namelen);
        drop(msg);
        let n = match r {
            Ok(n) => n,
            Err(e) => {
                println!("R: errqueue {}", errno_name(e));
                break;
            }
        };
        assert_eq!(namelen, 16);
        let addr = std::net::Ipv4Addr::new(name[4], name[5], name[6], name[7]);
        let port = u16::from_be_bytes([name[2], name[3]]);
        println!("R: errqueue {n} flags {flags:#x} name {addr}:{port} {}", quoted_tcp(&data[..n]));
        for c in utcp::syscall::parse_cmsgs(&control[..controllen]) {
            let d = &c.data;
            let u32_at = |i: usize| u32::from_ne_bytes(d[i..i + 4].try_into().unwrap());
            let u16_at = |i: usize| u16::from_ne_bytes(d[i..i + 2].try_into().unwrap());
            let tail: String = d[24..32].iter().map(|b| format!("{b:02x}")).collect();
            println!(
                "R: cmsg {} {} {} ee ({}, {}, {}, {}, {}, {}, {}) offender {} {} {}.{}.{}.{} {tail}",
                c.level,
                c.ty,
                d.len(),
                u32_at(0),
                d[4],
                d[5],
                d[6],
                d[7],
                u32_at(8),
                u32_at(12),
                u16_at(16),
                u16_at(18),
                d[20],
                d[21],
                d[22],
                d[23]
            );
        }
        println!("R: poll {:#x}", poll_one(&st, s));
    }
    println!("R: poll {:#x}", poll_one(&st, s));
    let mut b = [0u8; 10];
    match st.recv(s, Some(&mut b), 10, 0) {
        Ok(n) => println!("R: recv {n}"),
        Err(e) => println!("R: recv {}", errno_name(e)),
    }
    threads.stop();
}

/// recverr.py's `quoted`: the quoted TCP header's destination port, flags, length and
/// option kinds.
fn quoted_tcp(d: &[u8]) -> String {
    let dport = u16::from_be_bytes([d[2], d[3]]);
    let hdr = (d[12] >> 4) as usize * 4;
    let (mut i, mut kinds) = (20, Vec::new());
    while i < hdr.min(d.len()) {
        kinds.push(d[i].to_string());
        i += if d[i] <= 1 { 1 } else { d[i + 1].max(1) as usize };
    }
    format!("dport {dport} flags {:#x} hdr {hdr} kinds [{}]", d[13], kinds.join(", "))
}

#[test]
fn icmp_errors_reach_the_error_queue_as_on_the_kernel() {
    // A connect to a port the kernel side REJECTs (ICMP port unreachable, host
    // unreachable) with IP_RECVERR on: the errno, poll (POLLERR while the queue holds an
    // error), SO_ERROR, each recvmsg(MSG_ERRQUEUE) (the quoted SYN, msg_name, MSG_ERRQUEUE in
    // msg_flags, the IP_RECVERR cmsg: sock_extended_err with SO_EE_ORIGIN_ICMP, type, code
    // and the SO_EE_OFFENDER address), EAGAIN once it is empty. The kernel's socket, connecting
    // over the namespace's loopback to the same REJECTed ports, is the reference.
    require!("python3", "iptables");
    let ns = Ns::new("rerr");
    std::fs::write(ns.file("recverr.py"), RECVERR_PY).unwrap();
    ns.run("iptables -A INPUT -p tcp --dport 7001 -j REJECT --reject-with icmp-port-unreachable");
    ns.run("iptables -A INPUT -p tcp --dport 7002 -j REJECT --reject-with icmp-host-unreachable");
    for port in [7001, 7002] {
        let k = ns.run(&format!("python3 {} 127.0.0.1 {port}", ns.file("recverr.py").display()));
        let kernel: Vec<String> = k.lines().map(|l| l.replace("127.0.0.1", "PEER")).collect();
        for mode in ["offload", "plain"] {
            let o = child(&ns, "recverr_child", &format!("UTCP_RECVERR_CHILD='{mode} {KERNEL_IP}:{port}'"))
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let ours: Vec<String> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(child_line)
                .map(|l| l.replace(KERNEL_IP, "PEER"))
                .collect();
            // The kernel can queue the error twice: an ICMP that arrives while connect() still
            // owns the socket (loopback answers at once) is only soft, the SYN is sent again
            // a second later and that ICMP ends the connect. Over tun the first one already
            // finds the socket released. Every queued record must be the kernel's record.
            let records = |v: &[String]| -> Vec<String> {
                let mut out: Vec<String> = Vec::new();
                for l in v.iter().filter(|l| !l.starts_with("poll")) {
                    // An errqueue line and its cmsg line equal to the pair before: the same
                    // error queued again.
                    let n = out.len();
                    if l.starts_with("cmsg") && n >= 3 && out[n - 3] == out[n - 1] && out[n - 2] == *l {
                        out.pop();
                        continue;
                    }
                    out.push(l.clone());
                }
                out
            };
            let dedup = |mut v: Vec<String>| {
                v.dedup();
                v
            };
            let (mut k2, mut o2) = (records(&kernel), records(&ours));
            if kernel.iter().filter(|l| l.starts_with("errqueue 40")).count() > 1 {
                // The kernel's SO_ERROR then reports the first ICMP's soft error (sk_err_soft),
                // which a single ICMP never leaves behind.
                k2.retain(|l| !l.starts_with("SO_ERROR"));
                o2.retain(|l| !l.starts_with("SO_ERROR"));
            }
            assert_eq!(o2, k2, "port {port} {mode}: utcp\n{}\nkernel\n{}", ours.join("\n"), kernel.join("\n"));
            let polls =
                |v: &[String]| -> Vec<String> { dedup(v.iter().filter(|l| l.starts_with("poll")).cloned().collect()) };
            assert_eq!(polls(&ours), polls(&kernel), "poll answers, port {port} {mode}");
            assert!(ours.iter().any(|l| l.starts_with("cmsg 0 11 32 ee (")), "{ours:?}");
            eprintln!("port {port}, {mode}: {}", ours.join(" | "));
        }
    }
}

/// IPv6 over the TUN device (issue 12): the kernel's `ping -6` gets echo replies, and one
/// dual-stack `utcp serve` listener echoes a kernel client's bytes over IPv6 and over IPv4.
#[test]
fn ipv6_ping_and_dual_stack_echo_through_the_kernel() {
    require!("ping", "python3");
    let mut ns = Ns::new("ipv6");
    // Ns::new turns IPv6 off in the namespace; this test turns it on for tun0, with an
    // address that needs no duplicate address detection.
    ns.run(
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.tun0.disable_ipv6=0 && \
         ip addr add fd77::1/64 dev tun0 nodad",
    );
    let srv = ns.utcp(&format!("serve --tun tun0 --addr {UTCP_IP}/24 --addr6 fd77::2/64 --port 7 echo"));
    let out = ns.run("ping -6 -c 3 -i 0.2 -W 5 -s 1000 fd77::2");
    assert!(out.contains("3 received"), "{out}");
    let client = |fam: &str, addr: &str| {
        format!(
            "python3 -c 'import socket,os\n\
             s=socket.socket(socket.{fam},socket.SOCK_STREAM); s.connect((\"{addr}\",7)); print(s.getpeername())\n\
             d=os.urandom(1<<20); s.sendall(d); s.shutdown(socket.SHUT_WR); b=b\"\"\n\
             while True:\n  x=s.recv(65536)\n  if not x: break\n  b+=x\n\
             print(\"echo ok\" if b==d else \"echo BAD %d\" % len(b))'"
        )
    };
    let out = ns.run(&client("AF_INET6", "fd77::2"));
    assert!(out.contains("echo ok") && out.contains("fd77::2"), "{out}");
    let out = ns.run(&client("AF_INET", UTCP_IP));
    assert!(out.contains("echo ok"), "{out}");
    let (_, nstat) = ns.stop(srv);
    assert_eq!(counter(&nstat, "Icmp6InEchos"), 3, "{nstat}");
    assert_eq!(counter(&nstat, "Icmp6OutEchoReplies"), 3, "{nstat}");
    assert!(counter(&nstat, "Ip6InDelivers") > 700, "{nstat}");
    assert_eq!(counter(&nstat, "TcpInErrs"), 0, "{nstat}");
    // The other way round: utcp connect downloads over IPv6 from a kernel server.
    let www = ns.file("www6");
    std::fs::create_dir_all(&www).unwrap();
    make_file(&www.join("big"), 4 << 20);
    let child = ns
        .cmd(&format!("exec python3 -m http.server --bind fd77::1 -d {} 8001", www.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ns.children.push(child);
    let t = Instant::now();
    while !ns.run("ss -Hltn 'sport = :8001'").contains("8001") {
        assert!(t.elapsed() < Duration::from_secs(20), "python3 http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = ns.file("got6");
    let o = ns
        .cmd(&format!(
            "exec {UTCP} connect --tun tun0 --addr {UTCP_IP}/24 --addr6 fd77::2/64 http http://[fd77::1]:8001/big --output {}",
            got.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "utcp connect: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sha256(&got), sha256(&www.join("big")));
    let nstat = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(counter(&nstat, "Ip6InDelivers") > 2000, "{nstat}");
    // Off its subnet there is no route.
    let o = ns
        .cmd(&format!("exec {UTCP} connect --tun tun0 --addr {UTCP_IP}/24 --addr6 fd77::2/64 echo [fd78::1]:7"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not on fd77::2/64"), "{o:?}");
}
