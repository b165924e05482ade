//! The executor: runs a parsed script against a fresh utcp stack in virtual time.
//!
//! Timing model (packetdrill's, `run.c`): each event has a script time; relative times are
//! anchored to the previous event's script time when both are inbound packets, otherwise to
//! "now". Before an inbound packet, a syscall, a command or a code block, virtual time advances
//! to the event's time, firing the stack's timers on the way at their exact deadlines. An
//! outbound packet is taken from the device's capture queue; if none is queued, time advances
//! (timers fire) until one is sent; it must have been sent within the tolerance of its expected
//! time. Blocking system calls (`+0...0.5`) run on a thread while virtual time moves on; their
//! return time is checked against the end of the range.

use crate::ast::*;
use crate::packet::{self, ConnMap, MatchCfg, Tuple};
use crate::python;
use crate::shell::Shell;
use crate::symbols::symbol;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;
use utcp::netdev::{NetDevice, RxHook};
use utcp::skb::Frame;
use utcp::stack::StackCore;
use utcp::syscall::{IoVec, MsgHdr, PollFd};
use utcp::time::{Clock, Duration, Instant, VirtualClock};
use utcp::{Errno, Stack};

mod calls;
mod recvmsg;
use recvmsg::recvmsg;

/// Port packetdrill binds and connects to (`--bind_port`, `--connect_port`).
const SCRIPT_PORT: u16 = 8080;
/// First remote port used for inbound connections.
const FIRST_EPHEMERAL: u16 = 48000;
/// Virtual time of script time 0.
const EPOCH: Instant = Instant::from_millis(100_000);

/// Configuration of one run.
#[derive(Clone, Debug)]
pub struct RunCfg {
    /// Tolerance in µs.
    pub tolerance_usecs: i64,
    /// Dynamic tolerance percentage (packetdrill: 12.5).
    pub tolerance_percent: f64,
    /// `--mss` (0 = none).
    pub mss: u32,
    /// `--tcp_ts_tick_usecs`.
    pub ts_tick_usecs: u32,
    /// Local address (IPv6 under `--ip_version=ipv6`).
    pub local_ip: IpAddr,
    /// Remote address.
    pub remote_ip: IpAddr,
    /// `--ip_version=ipv4-mapped-ipv6`: IPv4 packets, AF_INET6 sockets with IPv4-mapped
    /// addresses.
    pub mapped: bool,
    /// Device MTU (`--mtu`).
    pub mtu: u32,
    /// Verbose tracing to stderr.
    pub verbose: bool,
}

/// A script failure: the line and the reason.
#[derive(Debug, Clone)]
pub struct Failure {
    /// 1-based script line (0 = not tied to a line).
    pub line: usize,
    /// Reason.
    pub reason: String,
}

fn fail<T>(line: usize, reason: impl Into<String>) -> Result<T, Failure> {
    Err(Failure { line, reason: reason.into() })
}

struct DrillDevice {
    clock: Arc<VirtualClock>,
    out: Mutex<VecDeque<(Instant, Vec<u8>)>>,
    mtu: u32,
}

impl NetDevice for DrillDevice {
    fn xmit(&self, frame: Frame) {
        self.out.lock().push_back((self.clock.now(), frame.to_vec()));
    }
    fn mtu(&self) -> u32 {
        self.mtu
    }
    fn attach(&self, _hook: RxHook) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SockState {
    New,
    Listening,
    Connecting,
    Connected,
}

/// packetdrill's `struct socket`: what the script knows about one connection.
#[derive(Debug, Clone)]
struct ScriptSock {
    state: SockState,
    script_fd: Option<i64>,
    live_fd: Option<i32>,
    local_port: u16,
    remote_port: u16,
    map: ConnMap,
    accepted: bool,
}

/// Side effects of a syscall applied by the main thread.
#[derive(Debug)]
enum Effect {
    NewFd {
        script: i64,
        live: i32,
        socket: bool,
    },
    Accepted {
        script: i64,
        live: i32,
        peer_port: u16,
    },
    Listen {
        live: i32,
    },
    /// The script fd was closed: later calls on it fail as packetdrill's `to_live_fd()`.
    Closed {
        script: i64,
    },
}

struct SysOut {
    ret: i64,
    errno: Option<Errno>,
    effects: Vec<Effect>,
    post: Result<(), String>,
    end: Instant,
    /// SCM_TIMESTAMPING checks: (cmsg index, expected script time, actual script time) in µs,
    /// held to the tolerance once the call is done (`scm_timestamping_expect_eq`).
    scm_times: Vec<(usize, i64, i64)>,
}

struct Pending {
    line: usize,
    ev: SyscallEvent,
    start: i64,
    end: i64,
    handle: std::thread::JoinHandle<SysOut>,
    /// True if the call can return on a timeout (so time must move in small steps).
    timed: bool,
    live_fd: Option<i32>,
}

/// Runner state for one script.
pub struct Runner {
    cfg: RunCfg,
    clock: Arc<VirtualClock>,
    core: Arc<StackCore>,
    stack: Arc<Stack>,
    dev: Arc<DrillDevice>,
    shell: Shell,
    fds: HashMap<i64, i32>,
    socks: Vec<ScriptSock>,
    sut: Option<usize>,
    next_port: u16,
    pending: Option<Pending>,
    last_event_time: Option<i64>,
    last_was_inbound: bool,
    dir: std::path::PathBuf,
    /// `%{ }%` blocks with the socket state captured when each ran; evaluated after the script
    /// and its cleanup command, in order, as packetdrill runs its generated Python file.
    code_events: Vec<CodeEvent>,
}

/// One code block and what its names resolve to (`run_code_event()`'s getsockopt snapshot).
struct CodeEvent {
    line: usize,
    code: String,
    info: utcp::tcp::info::TcpInfo,
    rcvbuf: i64,
    /// TCP_CC_INFO's bytes (`write_tcp_cc_info()`: BBR's `tcp_bbr_info`, empty for others).
    cc_info: Vec<u8>,
}

/// `write_tcp_bbr_cc_info()`: the names packetdrill defines from a `tcp_bbr_info`.
fn bbr_cc_var(cc: &[u8], n: &str) -> Option<i64> {
    if cc.len() < 20 {
        return None;
    }
    let u = |i: usize| u32::from_ne_bytes(cc[i * 4..i * 4 + 4].try_into().expect("4 bytes")) as i64;
    Some(match n {
        "bbr_bw_lo" => u(0),
        "bbr_bw_hi" => u(1),
        "bbr_bw" => u(0) | (u(1) << 32),
        "bbr_min_rtt" => u(2),
        "bbr_pacing_gain" => u(3),
        "bbr_cwnd_gain" => u(4),
        _ => return None,
    })
}

fn usecs(t: i64) -> String {
    format!("{:.6}", t as f64 / 1e6)
}

impl Runner {
    /// A runner with a fresh stack.
    pub fn new(cfg: RunCfg, dir: &Path) -> Runner {
        let clock = Arc::new(VirtualClock::new(EPOCH));
        let v4 = match cfg.local_ip {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => Ipv4Addr::new(192, 168, 0, 1),
        };
        let core = StackCore::new(v4, cfg.mtu, clock.clone() as Arc<dyn Clock>, 0x5eed_1234_abcd_0042);
        if let IpAddr::V6(a) = cfg.local_ip {
            // The tun device's address (packetdrill: `ip -6 addr add LOCAL/64`).
            core.net.set_addr6(a, 64);
        }
        let dev = Arc::new(DrillDevice { clock: clock.clone(), out: Mutex::new(VecDeque::new()), mtu: cfg.mtu });
        core.attach_device(dev.clone());
        let stack = Arc::new(Stack::from_core(core.clone()));
        Runner {
            cfg,
            clock,
            core,
            stack,
            dev,
            shell: Shell::default(),
            fds: HashMap::new(),
            socks: Vec::new(),
            sut: None,
            next_port: FIRST_EPHEMERAL,
            pending: None,
            last_event_time: None,
            last_was_inbound: false,
            dir: dir.to_path_buf(),
            code_events: Vec::new(),
        }
    }

    fn now_script(&self) -> i64 {
        (self.clock.now().micros() - EPOCH.micros()) as i64
    }

    fn vt(t: i64) -> Instant {
        Instant::from_micros(EPOCH.micros() + t.max(0) as u64)
    }

    fn trace(&self, s: impl FnOnce() -> String) {
        if self.cfg.verbose {
            eprintln!("[{}] {}", usecs(self.now_script()), s());
        }
    }

    /// Runs an untimed shell command (init/cleanup).
    pub fn run_command(&mut self, line: usize, text: &str) -> Result<(), Failure> {
        let dir = self.dir.clone();
        match self.shell.run(&self.core, &dir, text) {
            Ok(0) => Ok(()),
            Ok(st) => fail(line, format!("error executing command '{}': exit status {st}", text.trim())),
            Err(e) => fail(line, e),
        }
    }

    /// Runs all events.
    pub fn run(&mut self, script: &Script) -> Result<(), Failure> {
        for ev in &script.events {
            self.event(ev)?;
        }
        if let Some(p) = &self.pending {
            let line = p.line;
            let until = self.now_script() + 10_000_000;
            self.advance_until_idle(until)?;
            if self.pending.is_some() {
                return fail(line, "runtime error: exiting while a blocking system call is in progress");
            }
        }
        Ok(())
    }

    fn resolve_times(&self, ev: &Event) -> (i64, i64, bool) {
        let inbound = matches!(&ev.kind, EventKind::Packet(p) if p.direction == Direction::Inbound);
        let offset =
            if self.last_was_inbound && inbound { self.last_event_time.unwrap_or(0) } else { self.now_script() };
        match ev.time {
            TimeSpec::Absolute(t) => (t, t, false),
            TimeSpec::Relative(d) => (offset + d, offset + d, false),
            TimeSpec::Any => (offset, offset, true),
            TimeSpec::Range { start, end } => {
                let s = if start.relative { offset + start.usecs } else { start.usecs };
                let e = if end.relative { offset + end.usecs } else { end.usecs };
                (s, e, false)
            }
            TimeSpec::Blocking { start, end } => {
                let s = if start.relative { offset + start.usecs } else { start.usecs };
                let e = if end.relative { offset + end.usecs } else { end.usecs };
                (s, e, false)
            }
        }
    }

    fn tolerance(&self, script_usecs: i64) -> i64 {
        let mut tol = self.cfg.tolerance_usecs;
        if let Some(last) = self.last_event_time {
            let dyn_tol = (self.cfg.tolerance_percent / 100.0 * (script_usecs - last) as f64) as i64;
            tol = tol.max(dyn_tol);
        }
        tol
    }

    fn event(&mut self, ev: &Event) -> Result<(), Failure> {
        let (t, t_end, any) = self.resolve_times(ev);
        let line = ev.line;
        self.trace(|| format!("line {line}: event at {}", usecs(t)));
        match &ev.kind {
            EventKind::Packet(p) => match p.direction {
                Direction::Inbound => {
                    self.advance_to(t)?;
                    self.inbound(line, p)?;
                }
                Direction::Outbound => {
                    let is_range = matches!(ev.time, TimeSpec::Range { .. });
                    self.outbound(line, p, t, t_end, any, is_range)?;
                }
            },
            EventKind::Syscall(sc) => {
                self.advance_to(t)?;
                self.check_script_fd(line, sc)?;
                if let TimeSpec::Blocking { .. } = ev.time {
                    self.blocking_syscall(line, sc, t, t_end)?;
                } else {
                    let until = t + 10_000_000;
                    self.advance_until_idle(until)?;
                    if let Some(p) = &self.pending {
                        return fail(p.line, "blocking system call did not return");
                    }
                    self.plain_syscall(line, sc)?;
                }
            }
            EventKind::Command(text) => {
                self.advance_to(t)?;
                let dir = self.dir.clone();
                match self.shell.run(&self.core, &dir, text) {
                    Ok(0) => {}
                    Ok(st) => {
                        return fail(line, format!("error executing command '{}': exit status {st}", text.trim()))
                    }
                    Err(e) => return fail(line, e),
                }
            }
            EventKind::Code(code) => {
                self.advance_to(t)?;
                self.code(line, code)?;
            }
        }
        self.last_event_time = Some(t);
        self.last_was_inbound = matches!(&ev.kind, EventKind::Packet(p) if p.direction == Direction::Inbound);
        Ok(())
    }

    // ---------------------------------------------------------------- time

    /// Moves virtual time to script time `target`, firing timers and letting a pending blocking
    /// call finish.
    fn advance_to(&mut self, target: i64) -> Result<(), Failure> {
        let target_i = Self::vt(target);
        let mut guard = 0u64;
        loop {
            guard += 1;
            if guard > 50_000_000 {
                return fail(0, "internal error: time does not advance");
            }
            self.check_pending()?;
            let now = self.clock.now();
            if let Some(nt) = self.core.next_timer() {
                if nt <= now {
                    self.core.run_timers(now);
                    self.settle_pending();
                    continue;
                }
            }
            if now >= target_i {
                return Ok(());
            }
            let mut step = target_i;
            if let Some(nt) = self.core.next_timer() {
                step = step.min(nt);
            }
            if self.pending.as_ref().is_some_and(|p| p.timed) {
                step = step.min(now + Duration::from_millis(1));
            }
            self.clock.advance_to(step);
            self.core.run_timers(step);
            if let Some(p) = &self.pending {
                if p.timed {
                    if let Some(fd) = p.live_fd {
                        if let Ok(s) = self.stack.sockfd_lookup(fd) {
                            s.sk.wake_all();
                        }
                    }
                }
                self.settle_pending();
            }
        }
    }

    /// Advances time until the pending call (if any) has finished or `until` is reached.
    fn advance_until_idle(&mut self, until: i64) -> Result<(), Failure> {
        while self.pending.is_some() && self.now_script() < until {
            let now = self.now_script();
            let next = self
                .core
                .next_timer()
                .map(|t| (t.micros() - EPOCH.micros()) as i64)
                .unwrap_or(until)
                .clamp(now + 1, until)
                .min(now + 1000);
            self.advance_to(next)?;
        }
        self.check_pending()
    }

    /// Gives a running blocking call a moment to finish after something changed.
    fn settle_pending(&self) {
        let Some(p) = &self.pending else { return };
        let deadline = std::time::Instant::now() + StdDuration::from_millis(if p.timed { 2 } else { 20 });
        while !p.handle.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(StdDuration::from_micros(50));
        }
    }

    // ---------------------------------------------------------------- packets

    fn sut(&self) -> Option<&ScriptSock> {
        self.sut.map(|i| &self.socks[i])
    }

    fn inbound(&mut self, line: usize, p: &PacketEvent) -> Result<(), Failure> {
        let Some(spec) = p.tcp() else {
            return fail(line, "unsupported inbound packet type (only TCP)");
        };
        if !p.encap.is_empty() {
            return fail(line, "unsupported: encapsulated packets");
        }
        packet::flag_bits(&spec.flags).or_else(|e| fail(line, e))?;
        // handle_listen_for_script_packet(): any inbound packet to a listening socket (not
        // only a SYN: packetdrill does not look at the flags) makes a new child.
        if self.sut().is_some_and(|s| s.state == SockState::Listening) {
            let port = self.next_port;
            self.next_port = self.next_port.wrapping_add(1);
            let parent = self.sut().expect("sut").clone();
            self.socks.push(ScriptSock {
                state: SockState::Connected,
                script_fd: None,
                live_fd: None,
                local_port: parent.local_port,
                remote_port: port,
                map: ConnMap::default(),
                accepted: false,
            });
            self.sut = Some(self.socks.len() - 1);
        }
        let Some(s) = self.sut() else {
            return fail(line, "no socket for inbound packet");
        };
        if s.remote_port == 0 {
            return fail(line, "inbound packet for a socket with no connection");
        }
        let (mut tos, mut ttl) = (0u8, 64u8);
        if let Some(ip) = &p.ip {
            if let Some(t) = ip.tos {
                tos = match t {
                    TosSpec::Ecn(IpEcn::NotEct) => 0,
                    TosSpec::Ecn(IpEcn::Ect1) => 1,
                    TosSpec::Ecn(IpEcn::Ect0) => 2,
                    TosSpec::Ecn(IpEcn::Ce) => 3,
                    TosSpec::Ect01 => return fail(line, "ect01 is only allowed on outbound packets"),
                    TosSpec::Tos(v) => v,
                };
            }
            if let Some(t) = ip.ttl {
                ttl = t;
            }
        }
        let tuple =
            Tuple { src: self.cfg.remote_ip, dst: self.cfg.local_ip, sport: s.remote_port, dport: s.local_port };
        let mut spec = spec.clone();
        if p.ports.is_some() {
            return fail(line, "unsupported: explicit ports on inbound packets");
        }
        if spec.win.is_none() {
            spec.win = Some(0);
        }
        let bytes = packet::build_inbound(&spec, tuple, &s.map, tos, ttl).or_else(|e| fail(line, e))?;
        self.trace(|| format!("inject {} bytes", bytes.len()));
        let ip_len = bytes.len() as u32;
        let mut frame = utcp::ip::frame_from_wire(bytes::Bytes::from(bytes));
        // packetdrill writes every packet to its tun device behind a virtio_net_hdr, with
        // gso_type TCPV4 and gso_size = --mss when that is given (netdev.c linux_tun_write());
        // the kernel keeps gso_size on packets longer than it (virtio_net_hdr_to_skb()).
        frame.gso_size = self.cfg.mss;
        frame.truesize = tun_skb_truesize(ip_len);
        frame.layout = utcp::netdev::tun_skb_layout(ip_len);
        frame.napi_id = 0;
        self.core.netif_receive(frame);
        self.settle_pending();
        Ok(())
    }

    /// Takes the next captured outbound packet that belongs to the socket under test (packets
    /// of other connections are dropped, as packetdrill's sniffer does).
    fn take_outbound(&mut self) -> Option<(Instant, packet::Parsed)> {
        loop {
            let (t, bytes) = self.dev.out.lock().pop_front()?;
            let Ok(p) = packet::parse(&bytes) else { continue };
            let Some(i) = self.sut else { continue };
            let s = &mut self.socks[i];
            let tup = p.tuple;
            if tup.src != self.cfg.local_ip || tup.dst != self.cfg.remote_ip {
                continue;
            }
            if s.remote_port != 0 && tup.sport == s.local_port && tup.dport == s.remote_port {
                return Some((t, p));
            }
            if s.state == SockState::Connecting && p.flags & 0x12 == 0x02 && tup.dport == SCRIPT_PORT {
                s.local_port = tup.sport;
                s.remote_port = tup.dport;
                s.state = SockState::Connected;
                return Some((t, p));
            }
            self.trace(|| format!("dropping outbound packet not for the socket under test: {}", packet::dump(&p)));
        }
    }

    fn outbound(
        &mut self,
        line: usize,
        p: &PacketEvent,
        t: i64,
        t_end: i64,
        any: bool,
        range: bool,
    ) -> Result<(), Failure> {
        let Some(spec) = p.tcp() else {
            return fail(line, "unsupported outbound packet type (only TCP)");
        };
        let tol = self.tolerance(t);
        let limit = if any { self.now_script() + 600_000_000 } else { t.max(t_end) + tol + 2_000_000 };
        let (mut when, mut live) = self.wait_outbound(line, limit)?;
        // packetdrill without --strict_segments (run_packet.c sniff_outbound_live_packet()):
        // while the sniffed payload is shorter than the script packet's, sniff the next
        // packet of the flow and aggregate them (verify_packet_fragments(),
        // aggregate_packets()): headers of the last, sequence number and CWR of the first.
        let expected = spec.payload_len as usize;
        let mut prev = live.clone();
        while live.payload.len() < expected {
            let (w2, next) = self.wait_outbound(line, limit)?;
            let sniffed = live.payload.len();
            let same = next.tuple == prev.tuple
                && next.doff == prev.doff
                && next.flags & !0x89 == prev.flags & !0x89
                && next.res == prev.res
                && next.seq == prev.seq.wrapping_add(prev.payload.len() as u32)
                && next.ack == prev.ack
                && next.win == prev.win
                && next.urg == prev.urg;
            let last = next.payload.len() >= expected - sniffed;
            if !same || (!last && next.payload.len() != prev.payload.len()) {
                return fail(
                    line,
                    format!(
                        "fragment mismatch aggregating toward {expected} payload bytes: previous {} then {}",
                        packet::dump(&prev),
                        packet::dump(&next)
                    ),
                );
            }
            let mut agg = next.clone();
            agg.seq = live.seq;
            agg.flags = (next.flags & !0x80) | (live.flags & 0x80);
            agg.payload = [live.payload.as_slice(), next.payload.as_slice()].concat();
            agg.tot_len = next.tot_len.wrapping_add(live.payload.len() as u16);
            self.trace(|| format!("aggregated outbound fragment: {}", packet::dump(&next)));
            prev = next;
            live = agg;
            when = w2;
        }
        let i = self.sut.expect("sut");
        let s = &mut self.socks[i];
        let (sflags, _) = packet::flag_bits(&spec.flags).or_else(|e| fail(line, e))?;
        if live.flags & 0x02 != 0 && sflags & 0x02 != 0 && s.map.live_local_isn.is_none() {
            s.map.live_local_isn = Some(live.seq);
            s.map.script_local_isn = spec.seq_start;
        }
        let mcfg = MatchCfg { ts_tick_usecs: self.cfg.ts_tick_usecs, tolerance_usecs: self.cfg.tolerance_usecs };
        packet::verify_outbound(spec, &live, &mut s.map, &mcfg).or_else(|e| fail(line, e))?;
        // Timing.
        if !any {
            let actual = (when.micros() - EPOCH.micros()) as i64;
            if range {
                if actual < t - tol || actual > t_end + tol {
                    return fail(
                        line,
                        format!(
                            "timing error: expected outbound packet in time range {}~{} sec but happened at {} sec",
                            usecs(t),
                            usecs(t_end),
                            usecs(actual)
                        ),
                    );
                }
            } else if actual < t - tol || actual > t + tol {
                return fail(
                    line,
                    format!(
                        "timing error: expected outbound packet at {} sec but happened at {} sec; tolerance {} sec",
                        usecs(t),
                        usecs(actual),
                        usecs(tol)
                    ),
                );
            }
        }
        Ok(())
    }

    /// Waits (advancing virtual time up to `limit`) for the next outbound packet of the socket
    /// under test.
    fn wait_outbound(&mut self, line: usize, limit: i64) -> Result<(Instant, packet::Parsed), Failure> {
        loop {
            if let Some(x) = self.take_outbound() {
                return Ok(x);
            }
            let now = self.now_script();
            if now >= limit {
                return fail(line, "timed out waiting for packet");
            }
            // Rounded up to the script's µs: a timer due within the current µs (an EDT pacing
            // deadline, in ns) is reached, not waited for at the same instant forever.
            let next = self
                .core
                .next_timer()
                .map(|x| (x.nanos() - EPOCH.nanos()).div_ceil(1000) as i64)
                .unwrap_or(limit)
                .clamp(now, limit);
            if next <= now && self.core.next_timer().is_none() && self.pending.is_none() {
                return fail(line, "timed out waiting for packet");
            }
            self.advance_to(next.max(now + if self.pending.is_some() { 1000 } else { 0 }).min(limit))?;
        }
    }

    // ---------------------------------------------------------------- code

    /// `run_code_event()`: captures TCP_INFO and SO_MEMINFO of the socket under test now; the
    /// code itself runs in [`Runner::run_code_events`].
    fn code(&mut self, line: usize, code: &str) -> Result<(), Failure> {
        let Some(fd) = self.sut().and_then(|s| s.live_fd) else {
            return fail(line, "no socket to use for code");
        };
        let info = self.stack.tcp_info(fd).map_err(|e| Failure { line, reason: format!("TCP_INFO: {e:?}") })?;
        let sock = self.stack.sockfd_lookup(fd).map_err(|e| Failure { line, reason: format!("{e:?}") })?;
        let rcvbuf = sock.sk.peek_tp(|tp| tp.rcvbuf) as i64;
        let mut cc_info = vec![0u8; 20];
        let n = self
            .stack
            .getsockopt(fd, utcp::syscall::SOL_TCP, utcp::syscall::opt::TCP_CC_INFO, &mut cc_info)
            .unwrap_or(0);
        cc_info.truncate(n);
        self.code_events.push(CodeEvent { line, code: code.to_string(), info, rcvbuf, cc_info });
        Ok(())
    }

    /// `code_execute()`: runs the script's code blocks in order, with one set of Python
    /// variables, after the script and its cleanup command passed. A failure names the block's
    /// line ("error in Python code").
    pub fn run_code_events(&mut self) -> Result<(), Failure> {
        let mut vars = HashMap::new();
        for ev in &self.code_events {
            let mut lookup = |n: &str| -> Result<i64, String> {
                if let Some(v) = ev.info.field(n) {
                    return Ok(v);
                }
                if n == "SK_MEMINFO_RCVBUF" {
                    return Ok(ev.rcvbuf);
                }
                if let Some(v) = bbr_cc_var(&ev.cc_info, n) {
                    return Ok(v);
                }
                if let Some(v) = symbol(n) {
                    return Ok(v);
                }
                Err(format!("unsupported python name '{n}'"))
            };
            python::eval(&ev.code, &mut vars, &mut lookup)
                .or_else(|e| fail(ev.line, format!("error in Python code: {e}")))?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- syscalls

    fn pre_syscall(&mut self, sc: &SyscallEvent) {
        if sc.name == "connect" {
            if let Some(i) = self.sut {
                let s = &mut self.socks[i];
                s.state = SockState::Connecting;
                s.remote_port = 0;
            }
        }
    }

    /// `to_live_fd()`: packetdrill maps a call's script fd to the live one before the call, and
    /// fails the call when the script has no such fd open (never reaching the stack's EBADF).
    fn check_script_fd(&self, line: usize, sc: &SyscallEvent) -> Result<(), Failure> {
        const FD_FIRST: &[&str] = &[
            "read",
            "readv",
            "write",
            "writev",
            "recv",
            "recvfrom",
            "recvmsg",
            "send",
            "sendto",
            "sendmsg",
            "close",
            "shutdown",
            "bind",
            "listen",
            "accept",
            "connect",
            "getsockopt",
            "setsockopt",
            "fcntl",
            "ioctl",
            "getsockname",
            "getpeername",
            "epoll_ctl",
            "epoll_wait",
        ];
        if !FD_FIRST.contains(&sc.name.as_str()) {
            return Ok(());
        }
        match sc.args.first().and_then(Expr::as_int) {
            Some(fd) if !self.fds.contains_key(&fd) => {
                fail(line, format!("{}: unable to find fd with script fd {fd}", sc.name))
            }
            _ => Ok(()),
        }
    }

    fn live_fd_of(&self, e: Option<&Expr>) -> Option<i32> {
        let v = e?.as_int()?;
        Some(*self.fds.get(&v).unwrap_or(&(v as i32)))
    }

    fn spawn(&self, line: usize, sc: &SyscallEvent, timed_hint: &mut bool) -> std::thread::JoinHandle<SysOut> {
        let stack = self.stack.clone();
        let clock = self.clock.clone();
        let fds = self.fds.clone();
        let sc2 = sc.clone();
        let net = ScriptNet::of(&self.cfg);
        *timed_hint = match sc.name.as_str() {
            "poll" | "epoll_wait" => sc.args.get(2).and_then(|e| int(e).ok()).is_some_and(|t| t > 0),
            "read" | "recv" | "recvfrom" | "recvmsg" | "accept" => self
                .live_fd_of(sc.args.first())
                .and_then(|fd| stack.getsockopt(fd, 1, 20, &mut [0u8; 16]).ok().map(|_| fd))
                .is_some_and(|fd| {
                    let mut b = [0u8; 16];
                    let _ = stack.getsockopt(fd, 1, 20, &mut b);
                    b.iter().any(|&x| x != 0)
                }),
            "write" | "send" | "sendto" | "sendmsg" | "connect" => self.live_fd_of(sc.args.first()).is_some_and(|fd| {
                let mut b = [0u8; 16];
                let _ = stack.getsockopt(fd, 1, 21, &mut b);
                b.iter().any(|&x| x != 0)
            }),
            _ => false,
        };
        let _ = line;
        std::thread::spawn(move || {
            let mut out =
                SysOut { ret: 0, errno: None, effects: Vec::new(), post: Ok(()), end: EPOCH, scm_times: Vec::new() };
            let r = do_syscall(&stack, &clock, &fds, &sc2, &net, &mut out);
            out.end = clock.now();
            match r {
                Ok(v) => out.ret = v,
                Err(SysErr::Errno(e)) => {
                    out.ret = -1;
                    out.errno = Some(e);
                }
                Err(SysErr::Script(s)) => {
                    out.ret = i64::MIN;
                    out.post = Err(s);
                }
            }
            out
        })
    }

    fn plain_syscall(&mut self, line: usize, sc: &SyscallEvent) -> Result<(), Failure> {
        self.pre_syscall(sc);
        let mut timed = false;
        let h = self.spawn(line, sc, &mut timed);
        let deadline = std::time::Instant::now() + StdDuration::from_secs(5);
        while !h.is_finished() {
            if std::time::Instant::now() > deadline {
                return fail(line, format!("{} call blocked (a non-blocking call was expected)", sc.name));
            }
            std::thread::sleep(StdDuration::from_micros(20));
        }
        let out = h.join().map_err(|_| Failure { line, reason: format!("{}: internal panic", sc.name) })?;
        self.finish_syscall(line, sc, out)
    }

    fn blocking_syscall(&mut self, line: usize, sc: &SyscallEvent, t: i64, t_end: i64) -> Result<(), Failure> {
        if self.pending.is_some() {
            let until = t + 10_000_000;
            self.advance_until_idle(until)?;
        }
        self.pre_syscall(sc);
        let mut timed = false;
        let handle = self.spawn(line, sc, &mut timed);
        let live_fd = self.live_fd_of(sc.args.first());
        self.pending = Some(Pending { line, ev: sc.clone(), start: t, end: t_end, handle, timed, live_fd });
        // Wait for the call to finish or block.
        let deadline = std::time::Instant::now() + StdDuration::from_millis(20);
        while let Some(p) = &self.pending {
            if p.handle.is_finished() || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(StdDuration::from_micros(50));
        }
        self.check_pending()
    }

    /// If the pending blocking call has finished, checks its result and return time.
    fn check_pending(&mut self) -> Result<(), Failure> {
        if !self.pending.as_ref().is_some_and(|p| p.handle.is_finished()) {
            return Ok(());
        }
        let p = self.pending.take().expect("pending");
        let out = p.handle.join().map_err(|_| Failure { line: p.line, reason: "internal panic".into() })?;
        let end_actual = (out.end.micros() - EPOCH.micros()) as i64;
        let sc = p.ev.clone();
        self.finish_syscall(p.line, &sc, out)?;
        let mut tol = self.cfg.tolerance_usecs;
        let dyn_tol = (self.cfg.tolerance_percent / 100.0 * (p.end - p.start) as f64) as i64;
        tol = tol.max(dyn_tol);
        if end_actual < p.end - tol || end_actual > p.end + tol {
            return fail(
                p.line,
                format!(
                    "timing error: expected system call return at {} sec but happened at {} sec; tolerance {} sec",
                    usecs(p.end),
                    usecs(end_actual),
                    usecs(tol)
                ),
            );
        }
        Ok(())
    }

    fn finish_syscall(&mut self, line: usize, sc: &SyscallEvent, out: SysOut) -> Result<(), Failure> {
        self.trace(|| format!("{} returned {} {:?}", sc.name, out.ret, out.errno));
        if out.ret == i64::MIN {
            return fail(line, out.post.err().unwrap_or_default());
        }
        for &(i, want, got) in &out.scm_times {
            if (want - got).abs() > self.cfg.tolerance_usecs {
                let why = format!("Bad timestamp 0 in scm_timestamping {i}: expected={want} actual={got} (script µs)");
                return fail(line, why);
            }
        }
        let fd_call =
            matches!(sc.name.as_str(), "socket" | "accept" | "accept4" | "epoll_create" | "epoll_create1" | "dup");
        let errtext = |e: Option<Errno>| match e {
            Some(e) => format!(" with errno {} ({})", e.as_i32(), e.name()),
            None => String::new(),
        };
        match sc.expected() {
            SyscallResult::Ellipsis => {}
            SyscallResult::Int(v) => {
                // end_syscall(): an fd-returning call expecting an fd (CHECK_FD, v >= 0) only
                // needs a non-negative result; otherwise the result must match exactly.
                if fd_call && v >= 0 {
                    if out.ret < 0 {
                        return fail(
                            line,
                            format!(
                                "{}: Expected non-negative result but got {}{}",
                                sc.name,
                                out.ret,
                                errtext(out.errno)
                            ),
                        );
                    }
                } else if out.ret != v {
                    return fail(
                        line,
                        format!("{}: Expected result {v} but got {}{}", sc.name, out.ret, errtext(out.errno)),
                    );
                }
            }
            SyscallResult::Errno { value, name } => {
                if out.ret != value {
                    return fail(
                        line,
                        format!("{}: Expected result {value} but got {}{}", sc.name, out.ret, errtext(out.errno)),
                    );
                }
                let want = Errno::from_name(&name).or_else(|| (name == "EWOULDBLOCK").then_some(Errno::EAGAIN));
                let Some(want) = want else {
                    return fail(line, format!("unknown errno {name}"));
                };
                if out.errno != Some(want) {
                    return fail(
                        line,
                        format!(
                            "{}: Expected errno {} ({}) but got {}",
                            sc.name,
                            want.as_i32(),
                            name,
                            out.errno.map(|e| format!("{} ({})", e.as_i32(), e.name())).unwrap_or("none".into())
                        ),
                    );
                }
            }
            SyscallResult::Other(e) => {
                let v = int(&e).or_else(|m| fail(line, m))?;
                if out.ret != v {
                    return fail(line, format!("{}: Expected result {v} but got {}", sc.name, out.ret));
                }
            }
        }
        if let Err(e) = out.post {
            return fail(line, format!("{}: {e}", sc.name));
        }
        for eff in out.effects {
            match eff {
                Effect::NewFd { script, live, socket } => {
                    self.fds.insert(script, live);
                    if socket {
                        self.socks.push(ScriptSock {
                            state: SockState::New,
                            script_fd: Some(script),
                            live_fd: Some(live),
                            local_port: 0,
                            remote_port: 0,
                            map: ConnMap::default(),
                            accepted: false,
                        });
                        self.sut = Some(self.socks.len() - 1);
                    }
                }
                Effect::Closed { script } => {
                    self.fds.remove(&script);
                }
                Effect::Listen { live } => {
                    if let Some(s) = self.socks.iter_mut().rev().find(|s| s.live_fd == Some(live)) {
                        s.state = SockState::Listening;
                        s.local_port = SCRIPT_PORT;
                    }
                }
                Effect::Accepted { script, live, peer_port } => {
                    self.fds.insert(script, live);
                    if let Some(s) = self.socks.iter_mut().find(|s| !s.accepted && s.remote_port == peer_port) {
                        s.accepted = true;
                        s.script_fd = Some(script);
                        s.live_fd = Some(live);
                    } else {
                        return fail(line, "unable to find socket matching accept() call");
                    }
                }
            }
        }
        if sc.name == "connect" {
            if let Some(i) = self.sut {
                if self.socks[i].state == SockState::New {
                    self.socks[i].state = SockState::Connecting;
                }
            }
        }
        Ok(())
    }
}

// -------------------------------------------------------------------- syscall bodies

enum SysErr {
    Errno(Errno),
    Script(String),
}

impl From<Errno> for SysErr {
    fn from(e: Errno) -> Self {
        SysErr::Errno(e)
    }
}

fn serr<T>(s: impl Into<String>) -> Result<T, SysErr> {
    Err(SysErr::Script(s.into()))
}

/// Integer value of an expression.
pub fn int(e: &Expr) -> Result<i64, String> {
    match e {
        Expr::Int(v) => Ok(*v),
        Expr::Symbol(s) => symbol(s)
            .or_else(|| Errno::from_name(s).map(|e| e.as_i32() as i64))
            .ok_or_else(|| format!("unknown symbol {s}")),
        Expr::Or(_, _) => {
            let mut v = 0;
            for t in e.or_terms() {
                v |= int(t)?;
            }
            Ok(v)
        }
        Expr::Call { name, args } if name == "htons" && args.len() == 1 => Ok((int(&args[0])? as u16).to_be() as i64),
        Expr::Call { name, args } if name == "htonl" && args.len() == 1 => Ok((int(&args[0])? as u32).to_be() as i64),
        other => Err(format!("expected an integer, got {other}")),
    }
}

fn arg(sc: &SyscallEvent, i: usize) -> Result<&Expr, SysErr> {
    match sc.args.get(i) {
        Some(e) => Ok(e),
        None => serr(format!("{}: missing argument {}", sc.name, i + 1)),
    }
}

fn iarg(sc: &SyscallEvent, i: usize) -> Result<i64, SysErr> {
    int(arg(sc, i)?).map_err(SysErr::Script)
}

fn is_null(e: &Expr) -> bool {
    matches!(e, Expr::Symbol(s) if s == "NULL") || matches!(e, Expr::Int(0))
}

/// Bytes of a setsockopt value.
fn value_bytes(e: &Expr) -> Result<Vec<u8>, String> {
    Ok(match e {
        Expr::List(items) => {
            let mut v = Vec::new();
            for it in items {
                v.extend_from_slice(&(int(it)? as i32).to_ne_bytes());
            }
            v
        }
        Expr::Struct(items) => {
            let mut v = Vec::new();
            for it in items {
                match it {
                    Expr::Named { name, value, .. } if matches!(name.as_str(), "l_onoff" | "l_linger") => {
                        v.extend_from_slice(&(int(value)? as i32).to_ne_bytes())
                    }
                    Expr::Named { name, value, .. } if matches!(name.as_str(), "tv_sec" | "tv_usec") => {
                        v.extend_from_slice(&int(value)?.to_ne_bytes())
                    }
                    other => return Err(format!("unsupported struct field {other}")),
                }
            }
            v
        }
        Expr::Call { name, args } if name == "inet6_addr" && args.len() == 1 => {
            let Expr::Str(s) = &args[0] else { return Err("inet6_addr needs a string".into()) };
            let a: std::net::Ipv6Addr = s.parse().map_err(|_| format!("bad IPv6 address {s}"))?;
            a.octets().to_vec()
        }
        Expr::Call { name, args } if name == "inet_addr" && args.len() == 1 => {
            let Expr::Str(s) = &args[0] else { return Err("inet_addr needs a string".into()) };
            let a: Ipv4Addr = s.parse().map_err(|_| format!("bad IPv4 address {s}"))?;
            a.octets().to_vec()
        }
        Expr::Str(s) => s.as_bytes().to_vec(),
        other => (int(other)? as i32).to_ne_bytes().to_vec(),
    })
}

fn buf_arg(e: &Expr, len: usize) -> Option<Vec<u8>> {
    if is_null(e) {
        None
    } else {
        Some(vec![0u8; len])
    }
}

#[allow(clippy::too_many_arguments)]
/// The addresses a script's `...` stands for, and the socket family: packetdrill's
/// `socket_domain` (AF_INET6 for `ipv6` and `ipv4-mapped-ipv6`, whose socket() calls it turns
/// from AF_INET into AF_INET6) and the live addresses in that family's form.
#[derive(Clone, Copy, Debug)]
pub struct ScriptNet {
    /// The local address and the script's port.
    pub local: SocketAddr,
    /// The remote address and the script's port.
    pub remote: SocketAddr,
    /// The family socket() creates for AF_INET.
    pub domain: i32,
}

impl ScriptNet {
    /// The addresses of `cfg`.
    pub fn of(cfg: &RunCfg) -> ScriptNet {
        let form = |a: IpAddr| match a {
            IpAddr::V4(v) if cfg.mapped => IpAddr::V6(v.to_ipv6_mapped()),
            a => a,
        };
        let v6 = cfg.mapped || cfg.local_ip.is_ipv6();
        ScriptNet {
            local: SocketAddr::new(form(cfg.local_ip), SCRIPT_PORT),
            remote: SocketAddr::new(form(cfg.remote_ip), SCRIPT_PORT),
            domain: if v6 { 10 } else { 2 },
        }
    }
}

fn do_syscall(
    stack: &Stack,
    _clock: &VirtualClock,
    fds: &HashMap<i64, i32>,
    sc: &SyscallEvent,
    net: &ScriptNet,
    out: &mut SysOut,
) -> Result<i64, SysErr> {
    let (local, remote) = (net.local, net.remote);
    let fd = |i: usize| -> Result<i32, SysErr> {
        let v = iarg(sc, i)?;
        Ok(*fds.get(&v).unwrap_or(&(v as i32)))
    };
    let script_result = match &sc.result {
        Expr::Int(v) => Some(*v),
        _ => None,
    };
    if let Some(r) = calls::extra(stack, &fd, sc, script_result, out) {
        return r;
    }
    match sc.name.as_str() {
        "socket" => {
            let dom = match arg(sc, 0)? {
                Expr::Ellipsis => 2,
                e => int(e).map_err(SysErr::Script)?,
            };
            // packetdrill's syscall_socket(): AF_INET is the configured socket domain.
            let dom = if dom == 2 { net.domain as i64 } else { dom };
            let r = stack.socket(dom as i32, iarg(sc, 1)? as i32, iarg(sc, 2)? as i32)?;
            if let Some(s) = script_result {
                out.effects.push(Effect::NewFd { script: s, live: r, socket: true });
            }
            Ok(r as i64)
        }
        "bind" => {
            let f = fd(0)?;
            stack.bind(f, local)?;
            Ok(0)
        }
        "listen" => {
            let f = fd(0)?;
            stack.listen(f, iarg(sc, 1)? as i32)?;
            out.effects.push(Effect::Listen { live: f });
            Ok(0)
        }
        "accept" | "accept4" => {
            let f = fd(0)?;
            let flags = if sc.name == "accept4" { iarg(sc, 3)? as i32 } else { 0 };
            let (nfd, peer) = stack.accept4_addr(f, flags)?;
            if let Some(s) = script_result {
                out.effects.push(Effect::Accepted { script: s, live: nfd, peer_port: peer.port() });
            }
            Ok(nfd as i64)
        }
        "connect" => {
            let f = fd(0)?;
            stack.connect(f, remote)?;
            Ok(0)
        }
        "read" => {
            let f = fd(0)?;
            let n = iarg(sc, 2)? as usize;
            let mut b = buf_arg(arg(sc, 1)?, n);
            Ok(stack.read(f, b.as_deref_mut(), n)? as i64)
        }
        "recv" | "recvfrom" => {
            let f = fd(0)?;
            let n = iarg(sc, 2)? as usize;
            let flags = iarg(sc, 3)? as i32;
            let mut b = buf_arg(arg(sc, 1)?, n);
            if sc.name == "recvfrom" {
                let mut addr = [0u8; 28];
                let mut alen = 28u32;
                let null_addr = sc.args.get(4).is_some_and(is_null);
                Ok(stack.recvfrom(
                    f,
                    b.as_deref_mut(),
                    n,
                    flags,
                    if null_addr { None } else { Some(&mut addr) },
                    if null_addr { None } else { Some(&mut alen) },
                )? as i64)
            } else {
                Ok(stack.recv(f, b.as_deref_mut(), n, flags)? as i64)
            }
        }
        "write" | "send" | "sendto" => {
            let f = fd(0)?;
            let n = iarg(sc, 2)? as usize;
            let b = buf_arg(arg(sc, 1)?, n);
            if sc.name == "write" {
                Ok(stack.write(f, b.as_deref(), n)? as i64)
            } else {
                let flags = iarg(sc, 3)? as i32;
                Ok(stack.send(f, b.as_deref(), n, flags)? as i64)
            }
        }
        "recvmsg" => recvmsg(stack, sc, fd(0)?, out),
        "close" => {
            stack.close(fd(0)?)?;
            if let Some(script) = sc.args.first().and_then(Expr::as_int) {
                out.effects.push(Effect::Closed { script });
            }
            Ok(0)
        }
        "shutdown" => {
            stack.shutdown(fd(0)?, iarg(sc, 1)? as i32)?;
            Ok(0)
        }
        "setsockopt" => {
            let f = fd(0)?;
            let mut v = value_bytes(arg(sc, 3)?).map_err(SysErr::Script)?;
            if let Some(l) = sc.args.get(4).and_then(|e| int(e).ok()) {
                v.resize(l as usize, 0);
            }
            stack.setsockopt(f, iarg(sc, 1)? as i32, iarg(sc, 2)? as i32, &v)?;
            Ok(0)
        }
        "getsockopt" => {
            let f = fd(0)?;
            let want_len = match arg(sc, 4)? {
                Expr::List(l) if l.len() == 1 => Some(int(&l[0]).map_err(SysErr::Script)?),
                Expr::Ellipsis => None,
                e => Some(int(e).map_err(SysErr::Script)?),
            };
            let mut b = vec![0u8; want_len.unwrap_or(256).max(0) as usize];
            let n = stack.getsockopt(f, iarg(sc, 1)? as i32, iarg(sc, 2)? as i32, &mut b)?;
            if let Some(l) = want_len {
                if n as i64 != l {
                    out.post = Err(format!("Bad getsockopt optlen: expected: {l} actual: {n}"));
                }
            }
            if out.post.is_ok() {
                let want = value_bytes(arg(sc, 3)?);
                match (arg(sc, 3)?, want) {
                    (Expr::Ellipsis, _) => {}
                    (_, Ok(w)) => {
                        if b[..n.min(b.len())] != w[..] {
                            out.post = Err(format!(
                                "Bad getsockopt optval: expected: {} actual: {:?}",
                                arg(sc, 3)?,
                                &b[..n.min(b.len())]
                            ));
                        }
                    }
                    (_, Err(e)) => out.post = Err(e),
                }
            }
            Ok(0)
        }
        "fcntl" => {
            let f = fd(0)?;
            let cmd = iarg(sc, 1)? as i32;
            let a = if sc.args.len() > 2 { iarg(sc, 2)? as i32 } else { 0 };
            let r = stack.fcntl(f, cmd, a)?;
            if matches!(cmd, utcp::syscall::F_DUPFD | utcp::syscall::F_DUPFD_CLOEXEC) {
                if let Some(s) = script_result {
                    out.effects.push(Effect::NewFd { script: s, live: r, socket: false });
                }
            }
            Ok(r as i64)
        }
        "ioctl" => {
            let f = fd(0)?;
            let req = iarg(sc, 1)? as u64;
            let v = stack.ioctl(f, req)?;
            if let Some(Expr::List(l)) = sc.args.get(2) {
                if l.len() == 1 {
                    let want = int(&l[0]).map_err(SysErr::Script)?;
                    if want != v as i64 {
                        out.post = Err(format!("Bad ioctl value: expected: {want} actual: {v}"));
                    }
                }
            }
            Ok(0)
        }
        "poll" => {
            let Expr::List(items) = arg(sc, 0)? else { return serr("poll: expected a pollfd array") };
            let mut pfds = Vec::new();
            let mut want = Vec::new();
            for it in items {
                let fdv = it.field("fd").map(|x| int(x.1)).transpose().map_err(SysErr::Script)?.unwrap_or(-1);
                let ev = it.field("events").map(|x| int(x.1)).transpose().map_err(SysErr::Script)?.unwrap_or(0);
                let rev = it.field("revents").map(|x| int(x.1)).transpose().map_err(SysErr::Script)?;
                pfds.push(PollFd { fd: *fds.get(&fdv).unwrap_or(&(fdv as i32)), events: ev as i16, revents: 0 });
                want.push(rev);
            }
            let timeout = iarg(sc, 2)?;
            if sc.args.len() > 1 && iarg(sc, 1)? != items.len() as i64 {
                return serr(format!("nfds {} does not match {}-element pollfd array", iarg(sc, 1)?, items.len()));
            }
            let n = stack.poll(&mut pfds, (timeout >= 0).then(|| Duration::from_millis(timeout as u64)))?;
            for (p, w) in pfds.iter().zip(want) {
                if let Some(w) = w {
                    if p.revents as u16 as i64 != w {
                        out.post = Err(format!("poll revents: expected: 0x{w:x} actual: 0x{:x}", p.revents as u16));
                    }
                }
            }
            Ok(n as i64)
        }
        "epoll_create" | "epoll_create1" => {
            let a = iarg(sc, 0)? as i32;
            let r = if sc.name == "epoll_create1" { stack.epoll_create1(a)? } else { stack.epoll_create(a)? };
            if let Some(s) = script_result {
                out.effects.push(Effect::NewFd { script: s, live: r, socket: false });
            }
            Ok(r as i64)
        }
        "epoll_ctl" => {
            let ep = fd(0)?;
            let op = iarg(sc, 1)? as i32;
            let f = fd(2)?;
            let evs = arg(sc, 3)?;
            let events = evs.field("events").map(|x| int(x.1)).transpose().map_err(SysErr::Script)?.unwrap_or(0);
            let data = ["fd", "ptr", "u32", "u64"]
                .iter()
                .find_map(|n| evs.field(n))
                .map(|x| int(x.1))
                .transpose()
                .map_err(SysErr::Script)?
                .unwrap_or(0);
            stack.epoll_ctl(ep, op, f, events as u32, data as u64)?;
            Ok(0)
        }
        "epoll_wait" => {
            let ep = fd(0)?;
            let evs = arg(sc, 1)?;
            let max = iarg(sc, 2)? as i32;
            let timeout = iarg(sc, 3)?;
            let v = stack.epoll_wait(ep, max, (timeout >= 0).then(|| Duration::from_millis(timeout as u64)))?;
            if let Some((e, d)) = v.first() {
                let we = evs.field("events").map(|x| int(x.1)).transpose().map_err(SysErr::Script)?;
                if let Some(we) = we {
                    if we as u32 != *e {
                        out.post = Err(format!("epoll_event->events: expected: 0x{we:x} actual: 0x{e:x}"));
                    }
                }
                let wd = ["fd", "ptr", "u32", "u64"].iter().find_map(|n| evs.field(n));
                if let Some((_, wd)) = wd {
                    let wd = int(wd).map_err(SysErr::Script)?;
                    if out.post.is_ok() && wd as u64 != *d {
                        out.post = Err(format!("epoll_event->data: expected: {wd} actual: {d}"));
                    }
                }
            }
            Ok(v.len() as i64)
        }
        "pipe" => {
            let Expr::List(l) = arg(sc, 0)? else { return serr("pipe: expected [rfd, wfd]") };
            let (r, w) = stack.pipe()?;
            if l.len() == 2 {
                let (sr, sw) = (int(&l[0]).map_err(SysErr::Script)?, int(&l[1]).map_err(SysErr::Script)?);
                out.effects.push(Effect::NewFd { script: sr, live: r, socket: false });
                out.effects.push(Effect::NewFd { script: sw, live: w, socket: false });
            }
            Ok(0)
        }
        "splice" => {
            let fi = fd(0)?;
            let fo = fd(2)?;
            if !is_null(arg(sc, 1)?) || !is_null(arg(sc, 3)?) {
                return serr("splice: offsets are not supported");
            }
            let n = iarg(sc, 4)? as usize;
            let flags = iarg(sc, 5)? as i32;
            Ok(stack.splice(fi, fo, n, flags)? as i64)
        }
        other => serr(format!("unsupported system call {other}")),
    }
}

pub use utcp::netdev::tun_skb_truesize;

#[cfg(test)]
mod tun_truesize_tests {
    use super::tun_skb_truesize;

    #[test]
    fn matches_kernel_measurements() {
        // (TCP payload with a 40-byte header, SO_MEMINFO rmem_alloc delta) on 6.18.44.
        for (payload, truesize) in [
            (1, 832),
            (100, 832),
            (500, 1280),
            (1000, 2304),
            (1460, 2304),
            (2000, 4352),
            (3990, 8448),
            (4000, 8448),
            (5000, 8448),
            (8000, 12544),
            (9000, 12544),
            (12300, 16640),
            (16000, 20736),
            (20000, 20736),
            (24600, 28928),
            (30000, 33024),
            (40000, 41216),
            (60000, 61696),
        ] {
            assert_eq!(tun_skb_truesize(payload + 40), truesize, "payload {payload}");
        }
    }
}
