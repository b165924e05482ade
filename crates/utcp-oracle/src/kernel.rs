//! [`KernelBackend`]: runs scenarios against real Linux TCP sockets on
//! 127.0.0.1. This is the only module containing `unsafe` code.
//!
//! Roles: the **local** socket is the `connect()`ing client (pre-options are
//! set on it before `connect()`); the **peer** is the `accept()`ed socket of
//! a per-backend listener. The peer has `TCP_NODELAY`.
//!
//! Synchronisation (no sleeps on the fast path):
//! * after `PeerSend`/`PeerSendOob`: wait until the local socket's
//!   `tcpi_bytes_received` covers everything the peer sent (or the local
//!   socket is `TCP_CLOSE`, e.g. it reset the connection);
//! * after `PeerShutdownWr`/`PeerClose`: wait until the local socket has
//!   processed the FIN (state no longer `ESTABLISHED`/`FIN_WAIT1/2`);
//! * after `PeerReset`: wait until the local socket is `TCP_CLOSE`;
//! * after a successful local `shutdown(SHUT_WR)`: kick the peer with
//!   `TCP_QUICKACK` (its ACK of our FIN may otherwise be delayed by up to
//!   40 ms) and wait until local `SIOCOUTQ` is 0 (or the socket is closed).
//!
//! Every wait is bounded by [`WAIT_LIMIT`]; on timeout the step's outcome is
//! [`Outcome::Harness`] and all later steps are reported as poisoned.
//! Blocking receive calls are guarded by a watchdog thread which, after
//! [`crate::scenario::WATCHDOG`], calls `shutdown(SHUT_RD)` on the local
//! socket to unblock the call and then reports "would hang".
//!
//! Network timestamping is enabled process-wide (a socket with
//! `SO_TIMESTAMP` is kept open for the life of the process) so that every
//! received skb carries a timestamp; otherwise the presence of
//! `SCM_TIMESTAMP` cmsgs would depend on what other processes do.

use crate::scenario::{consts::*, Cmsg, Outcome, Scenario, Setup, Step, FILL, NAME_LEN, WATCHDOG};
use std::io;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Upper bound for every synchronisation wait.
pub const WAIT_LIMIT: Duration = Duration::from_millis(1000);

/// TCP states as reported in `tcpi_state`.
#[allow(missing_docs)]
pub mod tcp_state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const TIME_WAIT: u8 = 6;
    pub const CLOSE: u8 = 7;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Convert a libc return value into `Ok(ret)` / `Err(errno)`.
fn cvt(r: i64) -> Result<i64, i32> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

// ---------------------------------------------------------------------------
// Thin syscall wrappers. Every function takes raw fds; invalid fds simply
// produce EBADF from the kernel.
// ---------------------------------------------------------------------------

/// Thin syscall wrappers on raw fds (the crate's only `unsafe`, each block with its SAFETY
/// note), for the oracle's tests too.
#[allow(missing_docs)]
pub mod sys {
    use super::*;

    pub fn socket_stream() -> Result<i32, i32> {
        let dom = if crate::ipv6() { libc::AF_INET6 } else { libc::AF_INET };
        // SAFETY: plain syscall with constant arguments.
        let fd = unsafe { libc::socket(dom, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        cvt(fd as i64).map(|v| v as i32)
    }

    /// `[::1]:port`.
    pub fn loopback6(port: u16) -> libc::sockaddr_in6 {
        // SAFETY: all-zero is a valid sockaddr_in6.
        let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sa.sin6_port = port.to_be();
        sa.sin6_addr.s6_addr[15] = 1;
        sa
    }

    /// bind() or connect() to the loopback address of the family in use.
    fn loopback_call(fd: i32, port: u16, connect: bool) -> Result<i64, i32> {
        let (sa4, sa6) = (loopback(port), loopback6(port));
        let (p, len) = if crate::ipv6() {
            (&sa6 as *const libc::sockaddr_in6 as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_in6>())
        } else {
            (&sa4 as *const libc::sockaddr_in as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_in>())
        };
        // SAFETY: `p` points to a valid sockaddr of `len` bytes that outlives the call.
        let r = unsafe {
            if connect {
                libc::connect(fd, p, len as libc::socklen_t)
            } else {
                libc::bind(fd, p, len as libc::socklen_t)
            }
        };
        cvt(r as i64)
    }

    pub fn close(fd: i32) -> Result<i64, i32> {
        // SAFETY: closing an fd we own (or an invalid one, which yields EBADF).
        cvt(unsafe { libc::close(fd) } as i64)
    }

    pub fn loopback(port: u16) -> libc::sockaddr_in {
        libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be() },
            sin_zero: [0; 8],
        }
    }

    pub fn bind_loopback(fd: i32, port: u16) -> Result<i64, i32> {
        loopback_call(fd, port, false)
    }

    pub fn connect_loopback(fd: i32, port: u16) -> Result<i64, i32> {
        loopback_call(fd, port, true)
    }

    pub fn listen(fd: i32, backlog: i32) -> Result<i64, i32> {
        // SAFETY: plain syscall.
        cvt(unsafe { libc::listen(fd, backlog) } as i64)
    }

    fn name_port(fd: i32, peer: bool) -> Result<u16, i32> {
        // sockaddr_in and sockaddr_in6 keep the port at the same offset; the storage holds
        // either.
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let p = &mut st as *mut libc::sockaddr_storage as *mut libc::sockaddr;
        // SAFETY: `p` points to a sockaddr_storage of `len` bytes; `len` is valid.
        let r = unsafe {
            if peer {
                libc::getpeername(fd, p, &mut len)
            } else {
                libc::getsockname(fd, p, &mut len)
            }
        };
        cvt(r as i64)?;
        // SAFETY: the storage is at least a sockaddr_in, whose port both families share.
        let sa = unsafe { &*(p as *const libc::sockaddr_in) };
        Ok(u16::from_be(sa.sin_port))
    }

    pub fn local_port(fd: i32) -> Result<u16, i32> {
        name_port(fd, false)
    }

    pub fn peer_port(fd: i32) -> Result<u16, i32> {
        name_port(fd, true)
    }

    pub fn accept(fd: i32) -> Result<i32, i32> {
        // SAFETY: NULL address pointers are allowed by accept4.
        let r = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
        cvt(r as i64).map(|v| v as i32)
    }

    pub fn setsockopt_bytes(fd: i32, level: i32, name: i32, val: &[u8]) -> Result<i64, i32> {
        // SAFETY: `val` is a valid buffer of `val.len()` bytes.
        let r = unsafe {
            libc::setsockopt(fd, level, name, val.as_ptr() as *const libc::c_void, val.len() as libc::socklen_t)
        };
        cvt(r as i64)
    }

    pub fn setsockopt_int(fd: i32, level: i32, name: i32, val: i32) -> Result<i64, i32> {
        setsockopt_bytes(fd, level, name, &val.to_ne_bytes())
    }

    pub fn set_linger0(fd: i32) -> Result<i64, i32> {
        let l = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: `l` is a valid struct linger; we pass its exact size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &l as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        cvt(r as i64)
    }

    pub fn set_rcvtimeo(fd: i32, usec: u64) -> Result<i64, i32> {
        let tv = libc::timeval {
            tv_sec: (usec / 1_000_000) as libc::time_t,
            tv_usec: (usec % 1_000_000) as libc::suseconds_t,
        };
        // SAFETY: `tv` is a valid struct timeval; we pass its exact size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        cvt(r as i64)
    }

    /// getsockopt into a buffer of `cap` bytes; returns the bytes written.
    pub fn getsockopt_buf(fd: i32, level: i32, name: i32, cap: usize) -> Result<Vec<u8>, i32> {
        let mut buf = vec![FILL; cap];
        let mut len = cap as libc::socklen_t;
        // SAFETY: `buf` has `len` writable bytes and `len` is a valid pointer.
        let r = unsafe { libc::getsockopt(fd, level, name, buf.as_mut_ptr() as *mut libc::c_void, &mut len) };
        cvt(r as i64)?;
        buf.truncate(len as usize);
        Ok(buf)
    }

    /// (tcpi_state, tcpi_bytes_received)
    pub fn tcp_info(fd: i32) -> Result<(u8, u64), i32> {
        let b = getsockopt_buf(fd, libc::SOL_TCP, libc::TCP_INFO, 256)?;
        if b.len() < 136 {
            return Err(libc::EINVAL);
        }
        let bytes_received = u64::from_ne_bytes(b[128..136].try_into().unwrap());
        Ok((b[0], bytes_received))
    }

    pub fn ioctl_int(fd: i32, req: u64) -> Result<i32, i32> {
        let mut v: libc::c_int = 0x5a5a_5a5a;
        // SAFETY: every request we issue takes an `int *` argument.
        let r = unsafe { libc::ioctl(fd, req as _, &mut v as *mut libc::c_int) };
        cvt(r as i64)?;
        Ok(v)
    }

    pub fn poll1(fd: i32, events: i16, timeout_ms: i32) -> Result<(i64, i16), i32> {
        let mut p = libc::pollfd { fd, events, revents: 0 };
        // SAFETY: `p` is one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        let r = cvt(r as i64)?;
        Ok((r, p.revents))
    }

    pub fn get_fl(fd: i32) -> Result<i32, i32> {
        // SAFETY: plain fcntl.
        let r = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        cvt(r as i64).map(|v| v as i32)
    }

    pub fn set_nonblocking(fd: i32, on: bool) -> Result<i64, i32> {
        let fl = get_fl(fd)?;
        let fl = if on { fl | libc::O_NONBLOCK } else { fl & !libc::O_NONBLOCK };
        // SAFETY: plain fcntl.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, fl) } as i64)
    }

    pub fn shutdown(fd: i32, how: i32) -> Result<i64, i32> {
        // SAFETY: plain syscall.
        cvt(unsafe { libc::shutdown(fd, how) } as i64)
    }

    pub fn send(fd: i32, data: &[u8], flags: i32) -> Result<i64, i32> {
        // SAFETY: `data` is a valid buffer of `data.len()` bytes.
        let r = unsafe { libc::send(fd, data.as_ptr() as *const libc::c_void, data.len(), flags) };
        cvt(r as i64)
    }

    /// sendmsg of one buffer with `control` as msg_control (empty: NULL, 0).
    pub fn sendmsg_control(fd: i32, data: &[u8], control: &[u8], flags: i32) -> Result<i64, i32> {
        let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
        let mut ctl = control.to_vec();
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !ctl.is_empty() {
            msg.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = ctl.len() as _;
        }
        // SAFETY: the iovec and the control buffer outlive the call; the kernel only reads them.
        let r = unsafe { libc::sendmsg(fd, &msg, flags) };
        cvt(r as i64)
    }

    pub fn recv(fd: i32, buf: &mut [u8], flags: i32) -> Result<i64, i32> {
        // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes.
        let r = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), flags) };
        cvt(r as i64)
    }

    /// Result of [`recvmsg`].
    pub struct RecvMsgOut {
        pub ret: i64,
        pub msg_flags: i32,
        pub controllen: usize,
        pub namelen: u32,
    }

    /// recvmsg with the given iov buffers, control buffer (`None` → NULL) and
    /// name buffer.
    pub fn recvmsg(
        fd: i32,
        bufs: &mut [Vec<u8>],
        control: Option<&mut [u8]>,
        name: &mut [u8],
        flags: i32,
    ) -> Result<RecvMsgOut, i32> {
        let mut iovs: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec { iov_base: b.as_mut_ptr() as *mut libc::c_void, iov_len: b.len() })
            .collect();
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = name.as_mut_ptr() as *mut libc::c_void;
        msg.msg_namelen = name.len() as libc::socklen_t;
        msg.msg_iov = iovs.as_mut_ptr();
        msg.msg_iovlen = iovs.len() as _;
        match control {
            Some(c) => {
                msg.msg_control = c.as_mut_ptr() as *mut libc::c_void;
                msg.msg_controllen = c.len() as _;
            }
            None => {
                msg.msg_control = std::ptr::null_mut();
                msg.msg_controllen = 0;
            }
        }
        // SAFETY: every pointer in `msg` refers to a live buffer of the stated
        // length (iovs, bufs, control, name all outlive the call).
        let r = unsafe { libc::recvmsg(fd, &mut msg, flags) };
        let ret = cvt(r as i64)?;
        Ok(RecvMsgOut {
            ret,
            msg_flags: msg.msg_flags,
            controllen: msg.msg_controllen as usize,
            namelen: msg.msg_namelen,
        })
    }
}

/// Parse control messages from `buf[..controllen]` (x86_64 layout: 16-byte
/// `cmsghdr`, 8-byte alignment). Timestamps are normalised.
pub fn parse_cmsgs(buf: &[u8], controllen: usize) -> Vec<Cmsg> {
    const HDR: usize = 16;
    let end = controllen.min(buf.len());
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + HDR <= end {
        let len = u64::from_ne_bytes(buf[off..off + 8].try_into().unwrap()) as usize;
        let level = i32::from_ne_bytes(buf[off + 8..off + 12].try_into().unwrap());
        let ty = i32::from_ne_bytes(buf[off + 12..off + 16].try_into().unwrap());
        if len < HDR {
            break;
        }
        let data_end = (off + len).min(end);
        let mut c = Cmsg { level, ty, cmsg_len: len as u64, data: buf[off + HDR..data_end].to_vec() };
        c.normalize();
        out.push(c);
        off += (len + 7) & !7;
    }
    out
}

/// Spin (then briefly sleep) until `cond` holds or [`WAIT_LIMIT`] passes.
fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    if cond() {
        return true;
    }
    let start = Instant::now();
    let mut i = 0u32;
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > WAIT_LIMIT {
            return false;
        }
        i += 1;
        if i < 200 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

// ---------------------------------------------------------------------------
// Watchdog
// ---------------------------------------------------------------------------

#[derive(Default)]
struct WdState {
    /// (generation, fd, deadline) of the currently armed call.
    armed: Option<(u64, i32, Instant)>,
    /// Generation whose deadline expired.
    fired: Option<u64>,
    quit: bool,
}

struct Watchdog {
    shared: Arc<(Mutex<WdState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    gen: u64,
}

impl Watchdog {
    fn new() -> Self {
        let shared: Arc<(Mutex<WdState>, Condvar)> = Arc::default();
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("oracle-watchdog".into())
            .spawn(move || {
                let (m, cv) = &*s2;
                let mut st = m.lock().unwrap();
                loop {
                    if st.quit {
                        return;
                    }
                    match st.armed {
                        None => st = cv.wait(st).unwrap(),
                        Some((gen, fd, deadline)) => {
                            let now = Instant::now();
                            if now >= deadline {
                                // Unblock the stuck call; the scenario is
                                // reported as a harness error.
                                let _ = sys::shutdown(fd, libc::SHUT_RD);
                                st.fired = Some(gen);
                                st.armed = None;
                            } else {
                                st = cv.wait_timeout(st, deadline - now).unwrap().0;
                            }
                        }
                    }
                }
            })
            .expect("spawn watchdog");
        Watchdog { shared, thread: Some(thread), gen: 0 }
    }

    fn arm(&mut self, fd: i32) -> u64 {
        self.gen += 1;
        let (m, cv) = &*self.shared;
        m.lock().unwrap().armed = Some((self.gen, fd, Instant::now() + WATCHDOG));
        cv.notify_one();
        self.gen
    }

    /// Disarm; returns true if the watchdog fired for this generation.
    fn disarm(&mut self, gen: u64) -> bool {
        let (m, _) = &*self.shared;
        let mut st = m.lock().unwrap();
        st.armed = None;
        st.fired == Some(gen)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        {
            let (m, cv) = &*self.shared;
            m.lock().unwrap().quit = true;
            cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Process-wide timestamp enablement
// ---------------------------------------------------------------------------

static TSTAMP: OnceLock<Result<(), String>> = OnceLock::new();

/// Ensure network RX timestamping is globally on (see module docs).
fn ensure_timestamping() -> Result<(), String> {
    TSTAMP
        .get_or_init(|| {
            let keeper = sys::socket_stream().map_err(|e| format!("socket: {e}"))?;
            sys::setsockopt_int(keeper, SOL_SOCKET, SO_TIMESTAMP, 1).map_err(|e| format!("SO_TIMESTAMP: {e}"))?;
            // `keeper` is deliberately leaked: it keeps the static key on.
            // The first enable is deferred to a workqueue; probe until TCP
            // data arrives timestamped.
            let start = Instant::now();
            loop {
                if probe_tcp_timestamp()? {
                    return Ok(());
                }
                if start.elapsed() > Duration::from_secs(2) {
                    return Err("RX timestamping did not become active".into());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .clone()
}

fn probe_tcp_timestamp() -> Result<bool, String> {
    let l = sys::socket_stream().map_err(|e| format!("socket {e}"))?;
    let guard = FdGuard(vec![l]);
    sys::bind_loopback(l, 0).map_err(|e| format!("bind {e}"))?;
    sys::listen(l, 4).map_err(|e| format!("listen {e}"))?;
    let port = sys::local_port(l).map_err(|e| format!("getsockname {e}"))?;
    let c = sys::socket_stream().map_err(|e| format!("socket {e}"))?;
    let mut guard = guard;
    guard.0.push(c);
    sys::setsockopt_int(c, SOL_SOCKET, SO_TIMESTAMP, 1).map_err(|e| format!("ts {e}"))?;
    sys::connect_loopback(c, port).map_err(|e| format!("connect {e}"))?;
    let a = sys::accept(l).map_err(|e| format!("accept {e}"))?;
    guard.0.push(a);
    sys::send(a, b"x", libc::MSG_NOSIGNAL).map_err(|e| format!("send {e}"))?;
    let _ = sys::poll1(c, POLLIN, 1000);
    let mut bufs = vec![vec![0u8; 4]];
    let mut ctl = vec![0u8; 64];
    let mut name = [0u8; NAME_LEN];
    let r = sys::recvmsg(c, &mut bufs, Some(&mut ctl), &mut name, libc::MSG_DONTWAIT)
        .map_err(|e| format!("recvmsg {e}"))?;
    Ok(parse_cmsgs(&ctl, r.controllen).iter().any(|m| m.is_timestamp()))
}

/// Closes its fds (abortively) on drop.
struct FdGuard(Vec<i32>);

impl Drop for FdGuard {
    fn drop(&mut self) {
        for &fd in &self.0 {
            let _ = sys::set_linger0(fd);
            let _ = sys::close(fd);
        }
    }
}

// ---------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------

/// Executes scenarios on real kernel sockets over loopback.
pub struct KernelBackend {
    listener: Option<(i32, u16)>,
    watchdog: Watchdog,
    name: String,
}

impl Default for KernelBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl KernelBackend {
    /// Create a backend (spawns its watchdog thread; the listener is created
    /// lazily).
    pub fn new() -> Self {
        KernelBackend { listener: None, watchdog: Watchdog::new(), name: "kernel".into() }
    }

    fn listener(&mut self) -> Result<(i32, u16), String> {
        if let Some(l) = self.listener {
            return Ok(l);
        }
        let fd = sys::socket_stream().map_err(|e| format!("listener socket: {e}"))?;
        let setup = || -> Result<u16, i32> {
            sys::bind_loopback(fd, 0)?;
            sys::listen(fd, 64)?;
            sys::local_port(fd)
        };
        match setup() {
            Ok(port) => {
                self.listener = Some((fd, port));
                Ok((fd, port))
            }
            Err(e) => {
                let _ = sys::close(fd);
                Err(format!("listener setup: errno {e}"))
            }
        }
    }

    /// Create the local socket (and the peer for `Setup::Connected`).
    fn setup(&mut self, sc: &Scenario) -> Result<(i32, Option<i32>), String> {
        ensure_timestamping()?;
        let local = sys::socket_stream().map_err(|e| format!("socket: {e}"))?;
        let mut guard = FdGuard(vec![local]);
        for o in &sc.pre_opts {
            sys::setsockopt_int(local, o.level, o.name, o.val).map_err(|e| format!("pre-option {o:?}: errno {e}"))?;
        }
        let peer = match sc.setup {
            Setup::Fresh => None,
            Setup::Listening => {
                sys::bind_loopback(local, 0).map_err(|e| format!("bind: {e}"))?;
                sys::listen(local, 16).map_err(|e| format!("listen: {e}"))?;
                None
            }
            Setup::Connected => {
                let (lfd, port) = self.listener()?;
                sys::connect_loopback(local, port).map_err(|e| format!("connect: {e}"))?;
                let my_port = sys::local_port(local).map_err(|e| format!("getsockname: {e}"))?;
                // Accept until we get *our* connection (defensive against
                // leftovers from an aborted earlier scenario).
                let peer = loop {
                    let (n, _) = sys::poll1(lfd, POLLIN, WAIT_LIMIT.as_millis() as i32)
                        .map_err(|e| format!("poll listener: {e}"))?;
                    if n == 0 {
                        return Err("accept timed out".into());
                    }
                    let a = sys::accept(lfd).map_err(|e| format!("accept: {e}"))?;
                    if sys::peer_port(a) == Ok(my_port) {
                        break a;
                    }
                    let _ = sys::set_linger0(a);
                    let _ = sys::close(a);
                };
                guard.0.push(peer);
                sys::setsockopt_int(peer, SOL_TCP, TCP_NODELAY, 1).map_err(|e| format!("peer TCP_NODELAY: {e}"))?;
                Some(peer)
            }
        };
        guard.0.clear();
        Ok((local, peer))
    }
}

impl Drop for KernelBackend {
    fn drop(&mut self) {
        if let Some((fd, _)) = self.listener.take() {
            let _ = sys::close(fd);
        }
    }
}

/// Per-run mutable state.
struct Run<'a> {
    local: i32,
    peer: Option<i32>,
    /// Total payload bytes written by the peer.
    peer_sent: u64,
    watchdog: &'a mut Watchdog,
}

fn res(r: Result<i64, i32>) -> Outcome {
    match r {
        Ok(v) => Outcome::ret(v, Vec::new()),
        Err(e) => Outcome::Err(e),
    }
}

impl Run<'_> {
    fn local_state(&self) -> Option<u8> {
        sys::tcp_info(self.local).ok().map(|(s, _)| s)
    }

    fn is_blocking(&self, flags: i32) -> bool {
        flags & MSG_DONTWAIT == 0 && sys::get_fl(self.local).is_ok_and(|fl| fl & libc::O_NONBLOCK == 0)
    }

    fn peer_send(&mut self, data: &[u8], flags: i32) -> Outcome {
        let Some(p) = self.peer else {
            return Outcome::Harness("peer send without an open peer".into());
        };
        match sys::send(p, data, flags | libc::MSG_NOSIGNAL) {
            Ok(n) if n as usize == data.len() => {}
            Ok(n) => return Outcome::Harness(format!("peer short send {n}/{}", data.len())),
            Err(e) => return Outcome::Harness(format!("peer send failed: errno {e}")),
        }
        self.peer_sent += data.len() as u64;
        let want = self.peer_sent;
        let local = self.local;
        let ok = wait_until(|| match sys::tcp_info(local) {
            Ok((st, got)) => got >= want || st == tcp_state::CLOSE,
            Err(_) => true,
        });
        if ok {
            Outcome::Unit
        } else {
            Outcome::Harness("peer data did not reach the local socket".into())
        }
    }

    fn wait_fin_processed(&self) -> bool {
        wait_until(|| {
            !matches!(self.local_state(), Some(tcp_state::ESTABLISHED | tcp_state::FIN_WAIT1 | tcp_state::FIN_WAIT2))
        })
    }

    fn step(&mut self, step: &Step) -> Outcome {
        match step {
            Step::PeerSend(d) => self.peer_send(d, 0),
            Step::PeerSendOob(d) => self.peer_send(d, libc::MSG_OOB),
            Step::PeerShutdownWr => {
                let Some(p) = self.peer else {
                    return Outcome::Harness("no peer".into());
                };
                if let Err(e) = sys::shutdown(p, libc::SHUT_WR) {
                    return Outcome::Harness(format!("peer shutdown: errno {e}"));
                }
                if self.wait_fin_processed() {
                    Outcome::Unit
                } else {
                    Outcome::Harness("peer FIN not processed".into())
                }
            }
            Step::PeerClose | Step::PeerReset => {
                let Some(p) = self.peer.take() else {
                    return Outcome::Harness("no peer".into());
                };
                let reset = matches!(step, Step::PeerReset);
                if reset {
                    if let Err(e) = sys::set_linger0(p) {
                        return Outcome::Harness(format!("peer SO_LINGER: errno {e}"));
                    }
                }
                if let Err(e) = sys::close(p) {
                    return Outcome::Harness(format!("peer close: errno {e}"));
                }
                let ok = if reset {
                    wait_until(|| self.local_state() == Some(tcp_state::CLOSE))
                } else {
                    self.wait_fin_processed()
                };
                if ok {
                    Outcome::Unit
                } else {
                    Outcome::Harness("peer close/reset not processed".into())
                }
            }
            Step::Recv { len, flags } => {
                let mut buf = vec![FILL; *len];
                let blocking = self.is_blocking(*flags);
                let gen = blocking.then(|| self.watchdog.arm(self.local));
                let r = sys::recv(self.local, &mut buf, *flags);
                if let Some(g) = gen {
                    if self.watchdog.disarm(g) {
                        return Outcome::Harness("blocking recv would hang".into());
                    }
                }
                match r {
                    Ok(n) => Outcome::ret(n, buf),
                    Err(e) => Outcome::Err(e),
                }
            }
            Step::RecvMsg { iov, control_len, flags } => {
                let mut bufs: Vec<Vec<u8>> = iov.iter().map(|&n| vec![FILL; n]).collect();
                let mut ctl = vec![FILL; *control_len];
                let mut name = [FILL; NAME_LEN];
                let blocking = self.is_blocking(*flags);
                let gen = blocking.then(|| self.watchdog.arm(self.local));
                let control = if *control_len == 0 { None } else { Some(&mut ctl[..]) };
                let r = sys::recvmsg(self.local, &mut bufs, control, &mut name, *flags);
                if let Some(g) = gen {
                    if self.watchdog.disarm(g) {
                        return Outcome::Harness("blocking recvmsg would hang".into());
                    }
                }
                match r {
                    Ok(o) => Outcome::Ret {
                        ret: o.ret,
                        data: bufs.concat(),
                        msg_flags: Some(o.msg_flags),
                        cmsgs: parse_cmsgs(&ctl, o.controllen),
                        controllen: Some(o.controllen),
                        namelen: Some(o.namelen),
                        name: Some(name.to_vec()),
                    },
                    Err(e) => Outcome::Err(e),
                }
            }
            Step::SetOpt { level, name, val } => res(sys::setsockopt_int(self.local, *level, *name, *val)),
            Step::SetRcvTimeo { usec } => res(sys::set_rcvtimeo(self.local, *usec)),
            Step::SetNonblocking(on) => res(sys::set_nonblocking(self.local, *on).map(|_| 0)),
            Step::Ioctl { req } => match sys::ioctl_int(self.local, req.request()) {
                Ok(v) => Outcome::ret(0, v.to_ne_bytes().to_vec()),
                Err(e) => Outcome::Err(e),
            },
            Step::GetOpt { level, name } => match sys::getsockopt_buf(self.local, *level, *name, 64) {
                Ok(b) => Outcome::ret(0, b),
                Err(e) => Outcome::Err(e),
            },
            Step::Poll { events } => match sys::poll1(self.local, *events, 0) {
                Ok((n, rev)) => Outcome::ret(n, rev.to_ne_bytes().to_vec()),
                Err(e) => Outcome::Err(e),
            },
            Step::ShutdownRd => res(sys::shutdown(self.local, libc::SHUT_RD)),
            Step::ShutdownWr => {
                let r = sys::shutdown(self.local, libc::SHUT_WR);
                if r.is_ok() {
                    if let Some(p) = self.peer {
                        // Make the peer ACK our FIN now rather than after the
                        // delayed-ACK timer.
                        let _ = sys::setsockopt_int(p, SOL_TCP, TCP_QUICKACK, 1);
                    }
                    // Our FIN is unacknowledged exactly in these states.
                    let ok = wait_until(|| {
                        !matches!(
                            self.local_state(),
                            Some(tcp_state::FIN_WAIT1 | tcp_state::CLOSING | tcp_state::LAST_ACK)
                        )
                    });
                    if !ok {
                        return Outcome::Harness("local FIN was not acknowledged".into());
                    }
                }
                res(r)
            }
            Step::LocalClose => {
                let r = sys::close(self.local);
                self.local = -1;
                res(r)
            }
        }
    }
}

impl crate::scenario::Backend for KernelBackend {
    fn run(&mut self, scenario: &Scenario) -> Vec<Outcome> {
        let n = scenario.steps.len();
        let (local, peer) = match self.setup(scenario) {
            Ok(x) => x,
            Err(e) => return vec![Outcome::Harness(format!("setup: {e}")); n],
        };
        let mut run = Run { local, peer, peer_sent: 0, watchdog: &mut self.watchdog };
        let mut out = Vec::with_capacity(n);
        let mut poisoned = false;
        for step in &scenario.steps {
            if poisoned {
                out.push(Outcome::Harness("poisoned by an earlier harness error".into()));
                continue;
            }
            let o = if step.is_peer() && scenario.setup != Setup::Connected {
                Outcome::Harness("peer step in a scenario without a peer".into())
            } else {
                run.step(step)
            };
            poisoned = o.is_harness();
            out.push(o);
        }
        // Abortive teardown: no TIME_WAIT, no lingering orphans.
        let mut fds = Vec::new();
        if run.local >= 0 {
            fds.push(run.local);
        }
        if let Some(p) = run.peer {
            fds.push(p);
        }
        drop(FdGuard(fds));
        out
    }

    fn name(&self) -> &str {
        &self.name
    }
}
