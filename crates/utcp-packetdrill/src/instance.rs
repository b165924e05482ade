//! One packetdrill instance: a utcp stack on a virtual clock, the device packetdrill sniffs, and
//! the bookkeeping that lets a blocking call on packetdrill's syscall thread sleep in the stack
//! while the main thread injects packets and moves time.
//!
//! Time model. packetdrill reads the time with `gettimeofday`, sleeps with `usleep` and, for an
//! outbound packet, loops on `netdev_receive` with no timeout. So:
//! - `usleep(d)` moves the virtual clock by `d`, stopping at every timer deadline (and every
//!   deadline of a sleeping call: `SO_RCVTIMEO`, a `poll` timeout) to fire it;
//! - `gettimeofday` returns the clock and then moves it forward by [`CREEP`], because packetdrill
//!   spins on it for the last microseconds before an event;
//! - `netdev_receive` hands over the next transmitted packet, moving the clock from deadline to
//!   deadline until one is sent; when nothing can ever be sent (no timer armed, no sleeping call
//!   with a deadline) it reports an empty read, which packetdrill fails on (never a hang).
//!
//! Before the clock moves, and after a packet is injected, the main thread waits (real time,
//! bounded) until every call running on another thread has either returned and read its end
//! time, or sleeps with no wakeup pending: the virtual clock never runs ahead of a thread that
//! is still working.

use crate::sysctl::ProcSysctls;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Duration as StdDuration;
use utcp::errno::{Errno, SysResult};
use utcp::netdev::{NetDevice, RxHook};
use utcp::skb::Frame;
use utcp::socket::sock::{Cancel, Sock};
use utcp::stack::StackCore;
use utcp::time::{Clock, Duration, Instant, VirtualClock};
use utcp::Stack;

/// Virtual time at which an instance starts (as `utcp drill` does).
pub const EPOCH: Instant = Instant::from_millis(100_000);
/// How far each `gettimeofday` call moves the clock.
pub const CREEP: Duration = Duration::from_micros(1);
/// `netdev_receive` gives up when no packet is sent within this much virtual time.
pub const MAX_SNIFF_WAIT: Duration = Duration::from_secs(4 * 3600);
/// Longest real time to wait for another thread's call to return or sleep.
const SETTLE_MAX: StdDuration = StdDuration::from_secs(2);
/// A returned call on another thread that never reads the clock is forgotten after this.
const RETURNED_MAX: StdDuration = StdDuration::from_millis(200);
/// Real time the main thread must stay out of the library before a sleeping call on another
/// thread moves the clock to its own deadline.
const MAIN_IDLE: StdDuration = StdDuration::from_millis(10);

/// Options from `--so_flags` (`key=value` words separated by spaces or commas).
#[derive(Clone, Debug)]
pub struct Config {
    /// The stack's address (`local_ip=`; packetdrill's `--local_ip`): an IPv6 one (for
    /// `--ip_version=ipv6`) is the interface's IPv6 address, with a /64 prefix.
    pub local_ip: IpAddr,
    /// Device MTU (`mtu=`).
    pub mtu: u32,
    /// Where sysctls are read from before each call (`proc_sys=PATH`, `proc_sys=off`).
    pub proc_sys: Option<PathBuf>,
    /// Trace time moves and packets to stderr (`verbose=1`).
    pub verbose: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            local_ip: Ipv4Addr::new(192, 168, 0, 1).into(),
            mtu: 1500,
            proc_sys: Some(PathBuf::from("/proc/sys")),
            verbose: false,
        }
    }
}

impl Config {
    /// Parses `--so_flags`; unknown words are reported on stderr and ignored.
    pub fn parse(flags: &str) -> Config {
        let mut c = Config::default();
        for w in flags.split(|ch: char| ch == ',' || ch.is_whitespace()).filter(|w| !w.is_empty()) {
            let (k, v) = w.split_once('=').unwrap_or((w, "1"));
            match k {
                "local_ip" => match v.parse() {
                    Ok(a) => c.local_ip = a,
                    Err(_) => eprintln!("utcp-packetdrill: bad local_ip '{v}'"),
                },
                "mtu" => match v.parse() {
                    Ok(m) => c.mtu = m,
                    Err(_) => eprintln!("utcp-packetdrill: bad mtu '{v}'"),
                },
                "proc_sys" => c.proc_sys = (v != "off").then(|| PathBuf::from(v)),
                "verbose" => c.verbose = v != "0",
                _ => eprintln!("utcp-packetdrill: unknown so_flag '{w}'"),
            }
        }
        c
    }
}

/// The device: what the stack transmits waits here for `netdev_receive`.
struct SniffDevice {
    clock: Arc<VirtualClock>,
    mtu: u32,
    out: Mutex<VecDeque<(Instant, Vec<u8>)>>,
}

impl NetDevice for SniffDevice {
    fn xmit(&self, frame: Frame) {
        self.out.lock().push_back((self.clock.now(), frame.to_vec()));
    }
    fn mtu(&self) -> u32 {
        self.mtu
    }
    fn attach(&self, _hook: RxHook) {}
}

/// A call in progress (or, on another thread, returned but not yet timed by packetdrill).
struct CallRec {
    id: u64,
    thread: ThreadId,
    main: bool,
    /// The socket the call may sleep on.
    sk: Option<Arc<Sock>>,
    /// Returned (real time); waits for its thread's `gettimeofday` (packetdrill's end time).
    returned: Option<std::time::Instant>,
    /// `(sleep_seq, ev_gen)` when last seen sleeping.
    observed: Option<(u64, u64)>,
    /// The `sleep_seq` this call was kicked out of (its deadline passed).
    kicked: Option<u64>,
    /// Sleeping in our own wait (poll, epoll_wait) since tick generation `g`.
    own_park: Option<u64>,
    /// Deadline of our own wait.
    own_deadline: Option<Instant>,
}

/// One utcp stack driven by packetdrill.
pub struct Instance {
    cfg: Config,
    clock: Arc<VirtualClock>,
    core: Arc<StackCore>,
    stack: Stack,
    dev: Arc<SniffDevice>,
    main_thread: ThreadId,
    calls: Mutex<Vec<CallRec>>,
    next_call: AtomicU64,
    /// Bumped whenever readiness may have changed (packet in, timers, clock moved).
    tick: Mutex<u64>,
    tick_cv: Condvar,
    /// MSS announced by the remote end's SYN (the GSO size of later big packets).
    peer_mss: std::sync::atomic::AtomicU32,
    sysctls: Option<ProcSysctls>,
    /// Bumped each time packetdrill's main thread enters the library (it moves time).
    main_activity: AtomicU64,
    /// Serializes moving the clock (the main thread, and watchers of sleeping calls).
    drive: Mutex<()>,
}

impl Instance {
    /// A fresh stack; the calling thread is packetdrill's main thread.
    pub fn new(cfg: Config) -> Instance {
        let clock = Arc::new(VirtualClock::new(EPOCH));
        let v4 = match cfg.local_ip {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => Ipv4Addr::new(192, 168, 0, 1),
        };
        let core = StackCore::new(v4, cfg.mtu, clock.clone() as Arc<dyn Clock>, 0x5eed_1234_abcd_0042);
        if let IpAddr::V6(a) = cfg.local_ip {
            core.net.set_addr6(a, 64);
        }
        let dev = Arc::new(SniffDevice { clock: clock.clone(), mtu: cfg.mtu, out: Mutex::new(VecDeque::new()) });
        core.attach_device(dev.clone());
        let stack = Stack::from_core(core.clone());
        let sysctls = cfg.proc_sys.clone().map(|root| ProcSysctls::new(root, &core.net.sysctl));
        let inst = Instance {
            cfg,
            clock,
            core,
            stack,
            dev,
            main_thread: std::thread::current().id(),
            calls: Mutex::new(Vec::new()),
            next_call: AtomicU64::new(1),
            tick: Mutex::new(0),
            tick_cv: Condvar::new(),
            peer_mss: std::sync::atomic::AtomicU32::new(0),
            sysctls,
            main_activity: AtomicU64::new(0),
            drive: Mutex::new(()),
        };
        inst.refresh_sysctls();
        inst
    }

    /// The socket API.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The stack's shared state.
    pub fn core(&self) -> &Arc<StackCore> {
        &self.core
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    fn is_main(&self) -> bool {
        std::thread::current().id() == self.main_thread
    }

    /// Notes that the main thread is in the library (and so drives time itself).
    fn main_entered(&self) {
        if self.is_main() {
            self.main_activity.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn trace(&self, f: impl FnOnce() -> String) {
        if self.cfg.verbose {
            let t = self.clock.now().saturating_since(EPOCH);
            eprintln!("utcp-packetdrill [{}.{:06}] {}", t.as_secs(), t.subsec_micros(), f());
        }
    }

    /// Copies the namespace's `/proc/sys` values into the stack's sysctls.
    pub fn refresh_sysctls(&self) {
        if let Some(s) = &self.sysctls {
            s.refresh(&self.core.net.sysctl);
        }
    }

    // ------------------------------------------------------------------ time

    /// `gettimeofday`: the clock, which then creeps forward by [`CREEP`].
    pub fn gettimeofday(&self) -> Instant {
        self.main_entered();
        let now = self.clock.now();
        self.clock.advance(CREEP);
        if !self.is_main() {
            // packetdrill's end time of a blocking call: that call is now fully done.
            let me = std::thread::current().id();
            self.calls.lock().retain(|c| !(c.thread == me && c.returned.is_some()));
        }
        now
    }

    /// `usleep`: moves the clock by `us`, firing timers on the way.
    pub fn usleep(&self, us: u64) {
        self.main_entered();
        let target = self.clock.now() + Duration::from_micros(us);
        self.advance_to(target);
    }

    /// Moves the clock to `target`, stopping at every deadline on the way.
    pub fn advance_to(&self, target: Instant) {
        let _drive = self.drive.lock();
        loop {
            self.catch_up();
            let now = self.clock.now();
            if now >= target {
                return;
            }
            let mut step = target;
            if let Some(t) = self.next_deadline() {
                step = step.min(t);
            }
            if step <= now {
                step = (now + Duration::from_micros(1)).min(target);
            }
            self.clock.advance_to(step);
        }
    }

    /// Fires due timers and wakes calls whose deadline passed, letting other threads settle
    /// before and after.
    fn catch_up(&self) {
        self.settle();
        let now = self.clock.now();
        if self.core.next_timer().is_some_and(|t| t <= now) {
            self.core.run_timers(now);
        }
        self.kick_due(now);
        self.bump_tick();
        self.settle();
    }

    /// The earliest time something can happen: a timer or the deadline of a sleeping call.
    fn next_deadline(&self) -> Option<Instant> {
        let mut next = self.core.next_timer();
        let calls = self.calls.lock();
        for c in calls.iter().filter(|c| c.returned.is_none()) {
            let dl = match &c.sk {
                Some(sk) => sk.sleeper().and_then(|(_, dl)| dl),
                None => c.own_deadline,
            };
            if let Some(d) = dl {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        next
    }

    /// Kicks calls sleeping past their deadline out of `sk_wait_data`.
    fn kick_due(&self, now: Instant) {
        let mut calls = self.calls.lock();
        for c in calls.iter_mut().filter(|c| c.returned.is_none()) {
            let Some(sk) = &c.sk else { continue };
            if let Some((seq, Some(dl))) = sk.sleeper() {
                if dl <= now && c.kicked != Some(seq) {
                    if self.cfg.verbose {
                        eprintln!("utcp-packetdrill: call {} passed its deadline: waking it", c.id);
                    }
                    c.kicked = Some(seq);
                    sk.kick_sleepers();
                }
            }
        }
    }

    fn bump_tick(&self) {
        let mut g = self.tick.lock();
        *g = g.wrapping_add(1);
        self.tick_cv.notify_all();
    }

    /// Waits (real time, bounded) until every call on another thread has returned and been
    /// timed, or sleeps with no wakeup pending.
    fn settle(&self) {
        let start = std::time::Instant::now();
        let mut spins = 0u32;
        while !self.others_settled() {
            if start.elapsed() > SETTLE_MAX {
                eprintln!("utcp-packetdrill: a blocking call neither returned nor slept within {SETTLE_MAX:?}");
                return;
            }
            spins += 1;
            if spins < 200 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(StdDuration::from_micros(20));
            }
        }
    }

    fn others_settled(&self) -> bool {
        let tick = *self.tick.lock();
        let mut calls = self.calls.lock();
        calls.retain(|c| c.returned.is_none_or(|t| t.elapsed() < RETURNED_MAX));
        calls.iter_mut().filter(|c| !c.main).all(|c| {
            if c.returned.is_some() {
                return false;
            }
            if c.sk.is_none() {
                return c.own_park == Some(tick);
            }
            let sk = c.sk.as_ref().expect("sk");
            match sk.sleeper() {
                None => false,
                Some((seq, _)) if c.kicked == Some(seq) => false,
                Some((seq, _)) => {
                    let ev = sk.ev_gen.load(Ordering::SeqCst);
                    match c.observed {
                        Some((s, e)) if s == seq => e == ev,
                        _ => {
                            c.observed = Some((seq, ev));
                            true
                        }
                    }
                }
            }
        })
    }

    // ------------------------------------------------------------------ device

    /// `netdev_send`: packetdrill injects one IP packet.
    pub fn netdev_send(&self, bytes: &[u8]) {
        self.main_entered();
        self.refresh_sysctls();
        self.catch_up();
        self.trace(|| format!("inject {} bytes", bytes.len()));
        let mut frame = utcp::ip::frame_from_wire(bytes::Bytes::copy_from_slice(bytes));
        // Model the tun device packetdrill uses without a .so: the skb's truesize as tun
        // allocates it, and GSO packets carrying the MSS the remote end announced in its SYN
        // (packetdrill's --mss is not passed to a .so; scripts announce the same value).
        let ip_len = bytes.len() as u32;
        frame.truesize = utcp::netdev::tun_skb_truesize(ip_len);
        frame.layout = utcp::netdev::tun_skb_layout(ip_len);
        if let Some(mss) = syn_mss(bytes) {
            self.peer_mss.store(mss as u32, std::sync::atomic::Ordering::Relaxed);
        }
        frame.gso_size = self.peer_mss.load(std::sync::atomic::Ordering::Relaxed);
        self.core.netif_receive(frame);
        self.bump_tick();
        self.settle();
    }

    /// `netdev_receive`: the next packet the stack sends (copied into `buf`, truncated to its
    /// size) and its time; `None` when no packet can be sent any more.
    pub fn netdev_receive(&self, buf: &mut [u8]) -> Option<(usize, Instant)> {
        self.main_entered();
        self.refresh_sysctls();
        let start = self.clock.now();
        loop {
            self.catch_up();
            if let Some((t, pkt)) = self.dev.out.lock().pop_front() {
                let n = pkt.len().min(buf.len());
                buf[..n].copy_from_slice(&pkt[..n]);
                self.trace(|| format!("sniffed {} bytes", pkt.len()));
                return Some((n, t));
            }
            let now = self.clock.now();
            let next = self.next_deadline();
            match next {
                None => {
                    eprintln!(
                        "utcp-packetdrill: no packet can be sent any more (no timer armed, no call sleeping \
                         with a deadline): failing the wait for an outbound packet"
                    );
                    return None;
                }
                Some(t) if t.saturating_since(start) > MAX_SNIFF_WAIT => {
                    eprintln!(
                        "utcp-packetdrill: no packet sent within {:?} of virtual time: failing the wait",
                        MAX_SNIFF_WAIT
                    );
                    return None;
                }
                Some(t) => {
                    let t = if t <= now { now + Duration::from_micros(1) } else { t };
                    self.trace(|| format!("nothing to send: moving to {:?}", t.saturating_since(EPOCH)));
                    self.advance_to(t);
                }
            }
        }
    }

    // ------------------------------------------------------------------ calls

    fn register(&self, sk: Option<Arc<Sock>>, main: bool) -> u64 {
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        self.calls.lock().push(CallRec {
            id,
            thread: std::thread::current().id(),
            main,
            sk,
            returned: None,
            observed: None,
            kicked: None,
            own_park: None,
            own_deadline: None,
        });
        id
    }

    fn finish(&self, id: u64) {
        let mut calls = self.calls.lock();
        if let Some(i) = calls.iter().position(|c| c.id == id) {
            if calls[i].main {
                calls.remove(i);
            } else {
                calls[i].returned = Some(std::time::Instant::now());
            }
        }
    }

    fn sock_of(&self, fd: Option<i32>) -> Option<Arc<Sock>> {
        fd.and_then(|fd| self.stack.sockfd_lookup(fd).ok()).map(|s| s.sk.clone())
    }

    fn enter(&self) {
        self.main_entered();
        self.refresh_sysctls();
        if self.is_main() {
            self.catch_up();
        }
    }

    /// Runs a call that never sleeps. (On packetdrill's syscall thread it is still tracked, so
    /// that the clock waits for its end time to be read.)
    pub fn call<R>(&self, f: impl FnOnce(&Stack) -> R) -> R {
        self.enter();
        if self.is_main() {
            return f(&self.stack);
        }
        let id = self.register(None, false);
        let r = f(&self.stack);
        self.finish(id);
        r
    }

    /// Runs a call that may sleep on `fd`'s socket. On another thread it just sleeps (the main
    /// thread moves time). On the main thread nobody else can: a watcher moves the clock to
    /// the next deadline while the call sleeps, and interrupts it (EINTR) when nothing can
    /// ever wake it, as a signal would.
    pub fn blocking<R>(&self, fd: i32, f: impl FnOnce(&Stack, &Cancel) -> R) -> R {
        self.enter();
        let main = self.is_main();
        let sk = self.sock_of(Some(fd));
        let id = self.register(sk.clone(), main);
        let cancel = Cancel::new();
        let r = if let Some(sock) = sk.as_ref() {
            let done = AtomicBool::new(false);
            std::thread::scope(|s| {
                if main {
                    s.spawn(|| self.watch_main(id, sock, &done, &cancel));
                } else {
                    s.spawn(|| self.watch_idle_main(id, sock, &done));
                }
                let r = f(&self.stack, &cancel);
                done.store(true, Ordering::SeqCst);
                r
            })
        } else {
            f(&self.stack, &cancel)
        };
        self.finish(id);
        if !main {
            self.bump_tick();
        }
        r
    }

    /// Drives time for a call sleeping on the main thread.
    fn watch_main(&self, id: u64, sk: &Arc<Sock>, done: &AtomicBool, cancel: &Cancel) {
        let mut seen: Option<(u64, u64, std::time::Instant)> = None;
        while !done.load(Ordering::SeqCst) {
            std::thread::sleep(StdDuration::from_micros(100));
            let Some((seq, _)) = sk.sleeper() else {
                seen = None;
                continue;
            };
            let ev = sk.ev_gen.load(Ordering::SeqCst);
            match seen {
                Some((s, e, since)) if s == seq && e == ev => {
                    if since.elapsed() < StdDuration::from_millis(1) {
                        continue;
                    }
                }
                _ => {
                    seen = Some((seq, ev, std::time::Instant::now()));
                    continue;
                }
            }
            seen = None;
            match self.next_deadline() {
                Some(t) => {
                    let t = t.max(self.clock.now());
                    self.trace(|| {
                        format!("call {id} sleeps on the main thread: moving to {:?}", t.saturating_since(EPOCH))
                    });
                    self.advance_to(t);
                    // A deadline that passed at `t` is kicked by advance_to's catch_up.
                }
                None => {
                    eprintln!(
                        "utcp-packetdrill: a call on packetdrill's main thread would sleep forever (nothing can \
                         wake it): interrupting it (EINTR)"
                    );
                    cancel.cancel();
                    return;
                }
            }
        }
    }

    /// Drives time for a call sleeping on packetdrill's syscall thread while the main thread
    /// does not: packetdrill's main thread waits on a condition variable for a blocking call
    /// to end (at the end of a script, or before the next call), reading no clock. Once it
    /// has stayed out of the library for [`MAIN_IDLE`] (real time) and the call sleeps with a
    /// deadline (SO_RCVTIMEO, SO_SNDTIMEO), the clock moves to that deadline, so the timeout
    /// fires as under `utcp drill`.
    fn watch_idle_main(&self, id: u64, sk: &Arc<Sock>, done: &AtomicBool) {
        let mut seen: Option<(u64, u64, std::time::Instant)> = None;
        while !done.load(Ordering::SeqCst) {
            std::thread::sleep(StdDuration::from_micros(500));
            let activity = self.main_activity.load(Ordering::SeqCst);
            let Some((seq, Some(deadline))) = sk.sleeper() else {
                seen = None;
                continue;
            };
            match seen {
                Some((a, s, since)) if a == activity && s == seq => {
                    if since.elapsed() < MAIN_IDLE {
                        continue;
                    }
                }
                _ => {
                    seen = Some((activity, seq, std::time::Instant::now()));
                    continue;
                }
            }
            seen = None;
            let t = deadline.max(self.clock.now());
            self.trace(|| {
                format!("call {id} sleeps while the main thread waits: moving to {:?}", t.saturating_since(EPOCH))
            });
            // Not advance_to(): its settle() would wait for this very call to return, while
            // the call waits (in `blocking`) for this watcher to end.
            let _drive = self.drive.lock();
            if self.clock.now() < t {
                self.clock.advance_to(t);
            }
            let now = self.clock.now();
            if self.core.next_timer().is_some_and(|x| x <= now) {
                self.core.run_timers(now);
            }
            self.kick_due(now);
            self.bump_tick();
        }
    }

    /// `poll`/`epoll_wait`: calls `check` (which must not sleep) until it reports ready or
    /// `timeout` (virtual time) passes.
    pub fn wait_ready<T>(
        &self,
        timeout: Option<Duration>,
        mut check: impl FnMut(&Stack) -> SysResult<(T, bool)>,
    ) -> SysResult<T> {
        self.enter();
        let main = self.is_main();
        let deadline = timeout.map(|t| self.clock.now() + t);
        let id = self.register(None, main);
        if let Some(c) = self.calls.lock().iter_mut().find(|c| c.id == id) {
            c.own_deadline = deadline;
        }
        let r = loop {
            let gen = *self.tick.lock();
            let (v, ready) = match check(&self.stack) {
                Ok(x) => x,
                Err(e) => break Err(e),
            };
            if ready || deadline.is_some_and(|d| self.clock.now() >= d) {
                break Ok(v);
            }
            if main {
                match self.next_deadline() {
                    Some(t) => self.advance_to(t.max(self.clock.now() + Duration::from_micros(1))),
                    None => {
                        eprintln!(
                            "utcp-packetdrill: poll/epoll_wait on packetdrill's main thread would wait forever: \
                             interrupting it (EINTR)"
                        );
                        break Err(Errno::EINTR);
                    }
                }
                continue;
            }
            let mut g = self.tick.lock();
            if *g != gen {
                continue;
            }
            if let Some(c) = self.calls.lock().iter_mut().find(|c| c.id == id) {
                c.own_park = Some(gen);
            }
            while *g == gen {
                self.tick_cv.wait_for(&mut g, StdDuration::from_millis(50));
            }
            drop(g);
            if let Some(c) = self.calls.lock().iter_mut().find(|c| c.id == id) {
                c.own_park = None;
            }
        };
        self.finish(id);
        r
    }
}

/// The MSS option of an IPv4 TCP SYN, if `bytes` is one.
fn syn_mss(bytes: &[u8]) -> Option<u16> {
    // An IPv6 packet from packetdrill has its TCP header after the fixed header.
    let ihl = if *bytes.first()? >> 4 == 6 { 40 } else { ((*bytes.first()? & 0xf) as usize) * 4 };
    let tcp = bytes.get(ihl..)?;
    if tcp.len() < 20 || tcp[13] & 0x02 == 0 {
        return None;
    }
    let doff = ((tcp[12] >> 4) as usize) * 4;
    let mut opts = tcp.get(20..doff)?;
    while let Some(&kind) = opts.first() {
        match kind {
            0 => break,
            1 => opts = &opts[1..],
            _ => {
                let len = *opts.get(1)? as usize;
                if len < 2 || len > opts.len() {
                    break;
                }
                if kind == 2 && len == 4 {
                    return Some(u16::from_be_bytes([opts[2], opts[3]]));
                }
                opts = &opts[len..];
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst() -> Instance {
        Instance::new(Config { proc_sys: None, ..Config::default() })
    }

    #[test]
    fn gettimeofday_creeps_and_usleep_moves_the_clock() {
        let i = inst();
        let a = i.gettimeofday();
        let b = i.gettimeofday();
        assert_eq!(b.saturating_since(a), CREEP, "packetdrill spins on gettimeofday: it must move");
        i.usleep(250_000);
        assert_eq!(i.gettimeofday().saturating_since(b), CREEP + Duration::from_micros(250_000));
    }

    #[test]
    fn netdev_receive_fails_instead_of_hanging_when_nothing_can_be_sent() {
        let i = inst();
        let fd = i.call(|s| s.socket(2, 1, 0)).unwrap();
        i.call(|s| s.bind(fd, "192.168.0.1:8080".parse::<std::net::SocketAddrV4>().unwrap())).unwrap();
        i.call(|s| s.listen(fd, 1)).unwrap();
        let mut buf = [0u8; 2048];
        assert!(i.netdev_receive(&mut buf).is_none());
    }

    #[test]
    fn connect_sends_a_syn_and_its_retransmission_fires_in_virtual_time() {
        let i = inst();
        let fd = i.call(|s| s.socket(2, 1 | 0o4000, 0)).unwrap();
        let r = i.call(|s| s.connect(fd, "192.0.2.1:8080".parse::<std::net::SocketAddrV4>().unwrap()));
        assert_eq!(r, Err(Errno::EINPROGRESS));
        let mut buf = [0u8; 2048];
        let (n, t0) = i.netdev_receive(&mut buf).expect("SYN");
        assert_eq!(n, 60);
        assert_eq!(buf[33] & 0x12, 0x02, "SYN");
        // No answer: the SYN is retransmitted after the initial RTO (1 s), found by moving the
        // clock to the retransmission timer.
        let (_, t1) = i.netdev_receive(&mut buf).expect("retransmitted SYN");
        assert_eq!(t1.saturating_since(t0), Duration::from_secs(1));
    }

    #[test]
    fn so_rcvtimeo_fires_on_the_syscall_thread_while_the_main_thread_waits() {
        // packetdrill runs a blocking call on its syscall thread and, with no later event,
        // waits for it on a condition variable: nothing moves the clock but the library.
        let i = Arc::new(inst());
        let fd = i.call(|s| s.socket(2, 1, 0)).unwrap();
        i.call(|s| s.bind(fd, "192.168.0.1:8080".parse::<std::net::SocketAddrV4>().unwrap())).unwrap();
        i.call(|s| s.listen(fd, 1)).unwrap();
        let mut tv = [0u8; 16];
        tv[8..16].copy_from_slice(&250_000i64.to_ne_bytes()); // 0 s 250000 us
        i.call(|s| s.setsockopt(fd, 1, 20, &tv)).unwrap(); // SO_RCVTIMEO
        let start = i.now();
        let i2 = i.clone();
        let t = std::thread::spawn(move || {
            let r = i2.blocking(fd, |s, c| s.accept4_cancellable(fd, 0, Some(c)));
            (r.map(|_| ()), i2.gettimeofday())
        });
        let (r, end) = t.join().unwrap();
        assert_eq!(r, Err(Errno::EAGAIN), "the receive timeout fired");
        let took = end.saturating_since(start);
        assert!(took >= Duration::from_millis(250) && took < Duration::from_millis(260), "{took:?} of virtual time");
    }

    #[test]
    fn so_flags() {
        let c = Config::parse("local_ip=10.0.0.2, mtu=9000 proc_sys=off verbose");
        assert_eq!(c.local_ip, IpAddr::from(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(c.mtu, 9000);
        assert!(c.proc_sys.is_none());
        assert!(c.verbose);
    }
}
