//! [`UtcpBackend`]: runs scenarios on two utcp stacks joined by an in-memory link on a
//! virtual clock ([`utcp::sim::SimNet`]).
//!
//! Roles mirror [`crate::KernelBackend`]: the **local** socket is the `connect()`ing client on
//! host A (pre-options set before `connect()`), the **peer** is the socket accepted on host B
//! (with `TCP_NODELAY`). Every scenario gets a fresh pair of stacks, so runs are independent
//! and deterministic.
//!
//! Synchronisation: after every step the simulation is settled (all frames delivered, due
//! timers fired); after peer steps and a local `shutdown(SHUT_WR)` the virtual clock is run
//! forward (event to event, so delayed ACKs fire) until the effect has been processed, with
//! the same conditions the kernel backend waits for.
//!
//! Blocking calls run on a worker thread while this thread drives the simulation: whenever
//! the worker is parked in `sk_wait_data` (see [`utcp::socket::sock::Sock::sleeper`]), the
//! clock jumps to the earlier of the next simulation event and the sleeper's deadline, and
//! the sleeper is kicked to re-check it. A sleeper with nothing left that could wake it
//! within [`WATCHDOG`] of virtual time, or a call that has not returned after [`WATCHDOG`]
//! of real time, is interrupted (EINTR via [`Cancel`]) and reported as
//! [`Outcome::Harness`] ("would hang").

use crate::kernel::parse_cmsgs;
use crate::scenario::{consts::*, Outcome, Scenario, Setup, Step, FILL, NAME_LEN, WATCHDOG};
use ::utcp::api::{ADDR_A, ADDR_B};
use ::utcp::netdev::memlink::LinkConfig;
use ::utcp::sim::SimNet;
use ::utcp::socket::sock::{Cancel, Sock};
use ::utcp::syscall::{IoVec, MsgHdr, PollFd, Stack, AF_INET, F_GETFL, F_SETFL, O_NONBLOCK, SOCK_STREAM};
use ::utcp::tcp::TcpState;
use ::utcp::time::Duration;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant as RealInstant;

/// Port the peer listens on (host B).
const PEER_PORT: u16 = 5000;

/// Executes scenarios on utcp (two stacks on a virtual-clock memlink).
pub struct UtcpBackend {
    name: String,
    link: LinkConfig,
}

impl Default for UtcpBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl UtcpBackend {
    /// A backend on a link that mirrors Linux's loopback device (MTU 65536, loopback skb
    /// truesize, no delay, no impairments), like the kernel backend's 127.0.0.1.
    pub fn new() -> Self {
        Self::with_link(LinkConfig { mtu: 65536, loopback_truesize: true, ..LinkConfig::default() })
    }

    /// A backend on a link with `cfg`.
    pub fn with_link(link: LinkConfig) -> Self {
        UtcpBackend { name: "utcp".into(), link }
    }
}

/// Sysctls that shape what the receive path returns (buffer sizes and their limits, urgent
/// pointer interpretation, options): the kernel backend runs with the host's values, so
/// utcp gets the same ones. Read once from `/proc/sys`; missing files are skipped.
/// `tcp_low_latency` is deliberately not mirrored: it is a no-op in Linux 6.18, but in
/// utcp it would switch the seed's prequeue on.
pub(crate) fn host_sysctls() -> &'static [(&'static str, String)] {
    static S: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    S.get_or_init(|| {
        const NAMES: &[&str] = &[
            "net.core.rmem_max",
            "net.core.wmem_max",
            "net.core.rmem_default",
            "net.ipv4.tcp_rmem",
            "net.ipv4.tcp_wmem",
            "net.ipv4.tcp_moderate_rcvbuf",
            "net.ipv4.tcp_adv_win_scale",
            "net.ipv4.tcp_app_win",
            "net.ipv4.tcp_stdurg",
            "net.ipv4.tcp_rfc1337",
            "net.ipv4.tcp_timestamps",
            "net.ipv4.tcp_window_scaling",
            "net.ipv4.tcp_sack",
            "net.ipv4.tcp_shrink_window",
        ];
        NAMES
            .iter()
            .filter_map(|n| {
                let path = format!("/proc/sys/{}", n.replace('.', "/"));
                let v = std::fs::read_to_string(path).ok()?;
                Some((*n, v.split_whitespace().collect::<Vec<_>>().join(" ")))
            })
            .collect()
    })
}

/// A receive call, as run on the worker thread.
#[derive(Clone)]
enum Call {
    Recv { len: usize, flags: i32 },
    RecvMsg { iov: Vec<usize>, control_len: usize, flags: i32 },
}

fn err(e: ::utcp::Errno) -> Outcome {
    Outcome::Err(e as i32)
}

fn res<T>(r: Result<T, ::utcp::Errno>) -> Outcome {
    match r {
        Ok(_) => Outcome::ret(0, Vec::new()),
        Err(e) => err(e),
    }
}

/// Performs a receive call on `stack` (any thread).
fn do_call(stack: &Stack, fd: i32, call: &Call, cancel: Option<&Cancel>) -> Outcome {
    match call {
        Call::Recv { len, flags } => {
            let mut buf = vec![FILL; *len];
            let r = match cancel {
                Some(c) => stack.recv_cancellable(fd, &mut buf, *flags, c),
                None => stack.recv(fd, Some(&mut buf), *len, *flags),
            };
            match r {
                Ok(n) => Outcome::ret(n as i64, buf),
                Err(e) => err(e),
            }
        }
        Call::RecvMsg { iov, control_len, flags } => {
            let mut bufs: Vec<Vec<u8>> = iov.iter().map(|&n| vec![FILL; n]).collect();
            let mut ctl = vec![FILL; *control_len];
            let mut name = [FILL; NAME_LEN];
            let r = {
                let mut msg = MsgHdr {
                    name: Some(&mut name[..]),
                    namelen: NAME_LEN as u32,
                    iov: bufs.iter_mut().map(|b| IoVec { len: b.len(), base: Some(&mut b[..]) }).collect(),
                    control: if *control_len == 0 { None } else { Some(&mut ctl[..]) },
                    controllen: *control_len,
                    flags: 0,
                };
                stack
                    .recvmsg_cancellable(fd, &mut msg, *flags, cancel)
                    .map(|n| (n, msg.flags, msg.controllen, msg.namelen))
            };
            match r {
                Ok((n, msg_flags, controllen, namelen)) => Outcome::Ret {
                    ret: n as i64,
                    data: bufs.concat(),
                    msg_flags: Some(msg_flags),
                    cmsgs: parse_cmsgs(&ctl, controllen),
                    controllen: Some(controllen),
                    namelen: Some(namelen),
                    name: Some(name.to_vec()),
                },
                Err(e) => err(e),
            }
        }
    }
}

/// Per-run state.
struct Run {
    net: SimNet,
    /// Local fd on host A (-1 after close).
    local: i32,
    /// The local socket (kept after close for state queries).
    local_sk: Option<Arc<Sock>>,
    /// Peer fd on host B.
    peer: Option<i32>,
    /// Payload bytes written by the peer.
    peer_sent: u64,
    /// A worker thread is stuck: the stacks must not be touched any more.
    wedged: bool,
}

impl Run {
    fn a(&self) -> &Arc<Stack> {
        &self.net.a.stack
    }

    fn b(&self) -> &Arc<Stack> {
        &self.net.b.stack
    }

    fn local_state(&self) -> Option<TcpState> {
        self.local_sk.as_ref().map(|sk| sk.peek_tp(|tp| tp.sk_state()))
    }

    fn local_bytes_received(&self) -> u64 {
        self.local_sk.as_ref().map_or(0, |sk| sk.peek_tp(|tp| tp.bytes_received))
    }

    /// Runs the simulation (virtual time) until `cond` holds; false after the watchdog.
    fn wait_until(&self, mut cond: impl FnMut(&Run) -> bool) -> bool {
        self.net.run_until(Duration::from_millis(WATCHDOG.as_millis() as u64), || cond(self))
    }

    fn setup(link: LinkConfig, sc: &Scenario) -> Result<Run, String> {
        let net = SimNet::new(link);
        for h in [&net.a, &net.b] {
            for (name, value) in host_sysctls() {
                // Knobs utcp does not have are skipped.
                let _ = h.stack.core.net.sysctl.set_by_name(name, value);
            }
        }
        let mut run = Run { net, local: -1, local_sk: None, peer: None, peer_sent: 0, wedged: false };
        let a = run.a().clone();
        let b = run.b().clone();
        // crate::ipv6(): AF_INET6 sockets over fd00::a / fd00::b.
        let (fam, addr_a, addr_b): (i32, std::net::IpAddr, std::net::IpAddr) = if crate::ipv6() {
            (::utcp::syscall::AF_INET6, ::utcp::api::ADDR6_A.into(), ::utcp::api::ADDR6_B.into())
        } else {
            (AF_INET, ADDR_A.into(), ADDR_B.into())
        };
        let local = a.socket(fam, SOCK_STREAM, 0).map_err(|e| format!("socket: {e:?}"))?;
        run.local = local;
        run.local_sk = Some(a.sockfd_lookup(local).map_err(|e| format!("lookup: {e:?}"))?.sk.clone());
        for o in &sc.pre_opts {
            a.setsockopt_int(local, o.level, o.name, o.val).map_err(|e| format!("pre-option {o:?}: {e:?}"))?;
        }
        match sc.setup {
            Setup::Fresh => {}
            Setup::Listening => {
                a.bind(local, std::net::SocketAddr::new(addr_a, 0)).map_err(|e| format!("bind: {e:?}"))?;
                a.listen(local, 16).map_err(|e| format!("listen: {e:?}"))?;
            }
            Setup::Connected => {
                let l = b.socket(fam, SOCK_STREAM, 0).map_err(|e| format!("listener socket: {e:?}"))?;
                b.bind(l, std::net::SocketAddr::new(addr_b, PEER_PORT)).map_err(|e| format!("listener bind: {e:?}"))?;
                b.listen(l, 64).map_err(|e| format!("listen: {e:?}"))?;
                // Connect without blocking (nothing would drive the virtual clock), then
                // restore blocking mode.
                let fl = a.fcntl(local, F_GETFL, 0).map_err(|e| format!("F_GETFL: {e:?}"))?;
                a.fcntl(local, F_SETFL, fl | O_NONBLOCK).map_err(|e| format!("F_SETFL: {e:?}"))?;
                let dst = std::net::SocketAddr::new(addr_b, PEER_PORT);
                match a.connect(local, dst) {
                    Ok(()) | Err(::utcp::Errno::EINPROGRESS) => {}
                    Err(e) => return Err(format!("connect: {e:?}")),
                }
                let est = run.wait_until(|r| r.local_state() != Some(TcpState::SynSent));
                if !est {
                    return Err("handshake timed out".into());
                }
                a.connect(local, dst).map_err(|e| format!("connect completion: {e:?}"))?;
                a.fcntl(local, F_SETFL, fl).map_err(|e| format!("F_SETFL: {e:?}"))?;
                let fl_b = b.fcntl(l, F_GETFL, 0).map_err(|e| format!("F_GETFL: {e:?}"))?;
                b.fcntl(l, F_SETFL, fl_b | O_NONBLOCK).map_err(|e| format!("F_SETFL: {e:?}"))?;
                let (p, _) = b.accept4(l, 0).map_err(|e| format!("accept: {e:?}"))?;
                b.close(l).map_err(|e| format!("close listener: {e:?}"))?;
                b.setsockopt_int(p, SOL_TCP, TCP_NODELAY, 1).map_err(|e| format!("peer TCP_NODELAY: {e:?}"))?;
                // The peer never blocks: a short write is a harness error, not a hang.
                let fl_p = b.fcntl(p, F_GETFL, 0).map_err(|e| format!("F_GETFL: {e:?}"))?;
                b.fcntl(p, F_SETFL, fl_p | O_NONBLOCK).map_err(|e| format!("F_SETFL: {e:?}"))?;
                run.peer = Some(p);
                run.net.settle();
            }
        }
        Ok(run)
    }

    fn is_blocking(&self, flags: i32) -> bool {
        flags & MSG_DONTWAIT == 0 && self.a().fcntl(self.local, F_GETFL, 0).is_ok_and(|fl| fl & O_NONBLOCK == 0)
    }

    /// Runs a receive call; blocking ones on a worker thread while the clock is driven.
    fn call(&mut self, call: Call, flags: i32) -> Outcome {
        if !self.is_blocking(flags) {
            let o = do_call(self.a(), self.local, &call, None);
            self.net.settle();
            return o;
        }
        let (tx, rx) = mpsc::channel();
        let cancel = Cancel::new();
        let stack = self.a().clone();
        let fd = self.local;
        let c2 = cancel.clone();
        let spawned = std::thread::Builder::new().name("utcp-oracle-call".into()).spawn(move || {
            let o = do_call(&stack, fd, &call, Some(&c2));
            let _ = tx.send(o);
        });
        if let Err(e) = spawned {
            return Outcome::Harness(format!("spawn worker: {e}"));
        }
        let real_start = RealInstant::now();
        let virt_limit = self.net.now() + Duration::from_millis(WATCHDOG.as_millis() as u64);
        let sk = self.local_sk.clone();
        let mut hang = false;
        let mut last_kick: Option<u64> = None;
        let mut spins = 0u32;
        let outcome = loop {
            match rx.try_recv() {
                Ok(o) => break Some(o),
                Err(mpsc::TryRecvError::Disconnected) => break None,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            if real_start.elapsed() > WATCHDOG {
                hang = true;
                cancel.cancel();
                break rx.recv_timeout(std::time::Duration::from_millis(200)).ok();
            }
            let sleeper = sk.as_ref().and_then(|s| s.sleeper());
            match sleeper {
                Some((seq, deadline)) if last_kick != Some(seq) => {
                    // The worker sleeps: let the simulation run up to the next thing that
                    // can change its mind.
                    self.net.settle();
                    if sk.as_ref().and_then(|s| s.sleeper()).map(|x| x.0) != Some(seq) {
                        continue; // woken by something the settle did
                    }
                    let next = match (self.net.next_event(), deadline) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    match next {
                        Some(t) if t <= virt_limit => {
                            self.net.clock.advance_to(t);
                            self.net.settle();
                        }
                        _ => {
                            hang = true;
                            cancel.cancel();
                            break rx.recv_timeout(WATCHDOG).ok();
                        }
                    }
                    last_kick = Some(seq);
                    if let Some(s) = &sk {
                        s.kick_sleepers();
                    }
                    spins = 0;
                }
                _ => {
                    spins += 1;
                    if spins < 64 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
            }
        };
        match outcome {
            None => {
                self.wedged = true;
                Outcome::Harness("blocking call did not return (worker wedged)".into())
            }
            Some(_) if hang => Outcome::Harness("blocking call would hang".into()),
            Some(o) => {
                self.net.settle();
                o
            }
        }
    }

    fn peer_send(&mut self, data: &[u8], flags: i32) -> Outcome {
        let Some(p) = self.peer else {
            return Outcome::Harness("peer send without an open peer".into());
        };
        match self.b().send(p, Some(data), data.len(), flags | MSG_NOSIGNAL) {
            Ok(n) if n == data.len() => {}
            Ok(n) => return Outcome::Harness(format!("peer short send {n}/{}", data.len())),
            Err(e) => return Outcome::Harness(format!("peer send failed: {e:?}")),
        }
        self.peer_sent += data.len() as u64;
        let want = self.peer_sent;
        if self.wait_until(|r| r.local_bytes_received() >= want || r.local_state() == Some(TcpState::Close)) {
            Outcome::Unit
        } else {
            Outcome::Harness("peer data did not reach the local socket".into())
        }
    }

    fn wait_fin_processed(&self) -> bool {
        self.wait_until(|r| {
            !matches!(r.local_state(), Some(TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2))
        })
    }

    fn step(&mut self, step: &Step) -> Outcome {
        let a = self.a().clone();
        let local = self.local;
        let o = match step {
            Step::PeerSend(d) => return self.peer_send(d, 0),
            Step::PeerSendOob(d) => return self.peer_send(d, MSG_OOB),
            Step::PeerShutdownWr => {
                let Some(p) = self.peer else {
                    return Outcome::Harness("no peer".into());
                };
                if let Err(e) = self.b().shutdown(p, ::utcp::syscall::SHUT_WR) {
                    return Outcome::Harness(format!("peer shutdown: {e:?}"));
                }
                return if self.wait_fin_processed() {
                    Outcome::Unit
                } else {
                    Outcome::Harness("peer FIN not processed".into())
                };
            }
            Step::PeerClose | Step::PeerReset => {
                let Some(p) = self.peer.take() else {
                    return Outcome::Harness("no peer".into());
                };
                let reset = matches!(step, Step::PeerReset);
                if reset {
                    let mut l = [0u8; 8];
                    l[..4].copy_from_slice(&1i32.to_ne_bytes());
                    if let Err(e) = self.b().setsockopt(p, SOL_SOCKET, SO_LINGER, &l) {
                        return Outcome::Harness(format!("peer SO_LINGER: {e:?}"));
                    }
                }
                if let Err(e) = self.b().close(p) {
                    return Outcome::Harness(format!("peer close: {e:?}"));
                }
                let ok = if reset {
                    self.wait_until(|r| r.local_state() == Some(TcpState::Close))
                } else {
                    self.wait_fin_processed()
                };
                return if ok { Outcome::Unit } else { Outcome::Harness("peer close/reset not processed".into()) };
            }
            Step::Recv { len, flags } => return self.call(Call::Recv { len: *len, flags: *flags }, *flags),
            Step::RecvMsg { iov, control_len, flags } => {
                return self.call(Call::RecvMsg { iov: iov.clone(), control_len: *control_len, flags: *flags }, *flags)
            }
            Step::SetOpt { level, name, val } => res(a.setsockopt_int(local, *level, *name, *val)),
            Step::SetRcvTimeo { usec } => {
                let mut tv = [0u8; 16];
                tv[..8].copy_from_slice(&((usec / 1_000_000) as i64).to_ne_bytes());
                tv[8..].copy_from_slice(&((usec % 1_000_000) as i64).to_ne_bytes());
                res(a.setsockopt(local, SOL_SOCKET, SO_RCVTIMEO, &tv))
            }
            Step::SetNonblocking(on) => match a.fcntl(local, F_GETFL, 0) {
                Ok(fl) => {
                    let fl = if *on { fl | O_NONBLOCK } else { fl & !O_NONBLOCK };
                    res(a.fcntl(local, F_SETFL, fl))
                }
                Err(e) => err(e),
            },
            Step::Ioctl { req } => match a.ioctl(local, req.request()) {
                Ok(v) => Outcome::ret(0, v.to_ne_bytes().to_vec()),
                Err(e) => err(e),
            },
            Step::GetOpt { level, name } => {
                let mut buf = [FILL; 64];
                match a.getsockopt(local, *level, *name, &mut buf) {
                    Ok(n) => Outcome::ret(0, buf[..n].to_vec()),
                    Err(e) => err(e),
                }
            }
            Step::Poll { events } => {
                let mut p = [PollFd { fd: local, events: *events, revents: 0 }];
                match a.poll(&mut p, Some(Duration::ZERO)) {
                    Ok(n) => Outcome::ret(n as i64, p[0].revents.to_ne_bytes().to_vec()),
                    Err(e) => err(e),
                }
            }
            Step::ShutdownRd => res(a.shutdown(local, ::utcp::syscall::SHUT_RD)),
            Step::ShutdownWr => {
                let r = a.shutdown(local, ::utcp::syscall::SHUT_WR);
                if r.is_ok() {
                    // Wait until our FIN is acknowledged (the kernel backend does the same).
                    let ok = self.wait_until(|r| {
                        !matches!(r.local_state(), Some(TcpState::FinWait1 | TcpState::Closing | TcpState::LastAck))
                    });
                    if !ok {
                        return Outcome::Harness("local FIN was not acknowledged".into());
                    }
                }
                res(r)
            }
            Step::LocalClose => {
                let r = a.close(local);
                self.local = -1;
                res(r)
            }
        };
        self.net.settle();
        o
    }
}

/// Runs `sc` from scratch, handing each step's outcome to `emit` as soon as it is known.
fn run_scenario(link: LinkConfig, sc: &Scenario, mut emit: impl FnMut(Outcome)) {
    let n = sc.steps.len();
    let mut run = match Run::setup(link, sc) {
        Ok(r) => r,
        Err(e) => {
            (0..n).for_each(|_| emit(Outcome::Harness(format!("setup: {e}"))));
            return;
        }
    };
    let mut poisoned = false;
    for step in &sc.steps {
        if poisoned || run.wedged {
            emit(Outcome::Harness("poisoned by an earlier harness error".into()));
            continue;
        }
        let o = if step.is_peer() && sc.setup != Setup::Connected {
            Outcome::Harness("peer step in a scenario without a peer".into())
        } else {
            run.step(step)
        };
        poisoned = o.is_harness();
        emit(o);
    }
    if run.wedged {
        // A worker still holds the stacks; leak them rather than block on teardown.
        std::mem::forget(run);
    }
}

/// Real-time limit for one step of the scenario thread (a blocking call has its own
/// [`WATCHDOG`] inside; everything else runs on the virtual clock and takes microseconds).
const STEP_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

impl crate::scenario::Backend for UtcpBackend {
    /// Runs the scenario on its own thread, so that a deadlock or a panic inside utcp becomes
    /// an [`Outcome::Harness`] for the step (and the rest) instead of hanging or aborting the
    /// caller; a stuck thread is leaked.
    fn run(&mut self, scenario: &Scenario) -> Vec<Outcome> {
        let n = scenario.steps.len();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let progress: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(Vec::with_capacity(n)));
        let link = self.link.clone();
        let sc = scenario.clone();
        let p2 = progress.clone();
        let spawned = std::thread::Builder::new().name("utcp-oracle-scenario".into()).spawn(move || {
            run_scenario(link, &sc, |o| p2.lock().unwrap_or_else(|e| e.into_inner()).push(o));
            let _ = done_tx.send(());
        });
        if let Err(e) = spawned {
            return vec![Outcome::Harness(format!("spawn scenario thread: {e}")); n];
        }
        let taken = |p: &Mutex<Vec<Outcome>>| std::mem::take(&mut *p.lock().unwrap_or_else(|e| e.into_inner()));
        let mut seen = 0;
        let why = loop {
            match done_rx.recv_timeout(STEP_LIMIT) {
                Ok(()) => return taken(&progress),
                Err(mpsc::RecvTimeoutError::Disconnected) => break "scenario thread died (utcp panic?)",
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now = progress.lock().unwrap_or_else(|e| e.into_inner()).len();
                    if now == seen {
                        break "step did not complete (utcp deadlock?)";
                    }
                    seen = now;
                }
            }
        };
        let mut out = taken(&progress);
        out.truncate(n);
        if out.len() < n {
            out.push(Outcome::Harness(why.into()));
        }
        while out.len() < n {
            out.push(Outcome::Harness("poisoned by an earlier harness error".into()));
        }
        out
    }

    fn name(&self) -> &str {
        &self.name
    }
}
