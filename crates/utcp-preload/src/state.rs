//! The process-wide stack and the table of kernel placeholder fds that stand for utcp sockets.
//!
//! The stack is created on the first `socket(AF_INET|AF_INET6, SOCK_STREAM, 0|IPPROTO_TCP)`
//! ([`Mode`]): without `UTCP_TUN`, addresses 127.0.0.1 and `::1` on an in-process [`Loopback`]
//! device (127.0.0.0/8 is local to it, as to Linux's `lo`; an AF_INET6 socket reaches the
//! IPv4 side through `::ffff:127.x.y.z`); with `UTCP_TUN=NAME UTCP_ADDR=A.B.C.D/N
//! [UTCP_ADDR6=X::Y/N] [UTCP_MTU=M]`, those addresses on the TUN device (utcp-tun, with its
//! offloads; without `UTCP_ADDR6` the device has no IPv6 and an AF_INET6 socket reaches only
//! IPv4-mapped peers, as on a Linux interface without an IPv6 address). The host layer's timer thread
//! (and the TUN device's thread) is the background progress thread: RTO, delayed ACKs,
//! keepalive and TIME-WAIT run while the program is not calling in. Everything before that
//! first socket, and every call on an fd that is not in the table, goes to the kernel; so does
//! all TCP when the TUN device cannot be opened (a message on stderr says why). `UTCP_GW` is
//! not supported (utcp has no gateway: every route is on-link) and is not read.
//!
//! Each utcp socket is backed by a kernel eventfd (non-blocking, close-on-exec when the caller
//! asked for it), so fd numbers, `dup*` and close-on-exec are the kernel's; [`Preload::ufd`]
//! maps the kernel fd to the utcp fd. A kernel fd `dup`ed from a placeholder gets its own
//! utcp fd (a utcp `dup`), so the utcp file lives until the last of them is closed, as the
//! kernel's file does.
//!
//! fork: the child gets none of this. A `pthread_atfork` child handler marks the process a
//! child; from then on [`get`] answers `None`, every call passes to the kernel, the inherited
//! placeholders are plain eventfds there (I/O on them fails or reads nothing; they close
//! normally), and new sockets are kernel sockets. The child can never touch the parent's
//! connections (its copy of the stack has no threads and is never entered). exec starts
//! afresh (the library initialises again on the first TCP socket).

use crate::loopback::Loopback;
use crate::wait::EpShadow;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use utcp::errno::{Errno, SysResult};
use utcp::host::{HostThreads, MonotonicClock};
use utcp::netdev::NetDevice;
use utcp::stack::StackCore;
use utcp::time::Clock;
use utcp::Stack;

/// The loopback address the in-process stack owns.
// DEVIATION(linux): utcp has one interface address, so bind() to another 127/8 address is
// EADDRNOTAVAIL (Linux's `lo` owns all of 127.0.0.0/8); connecting to one works. The port
// space is this process's own: other processes cannot reach its listeners (its clients reach
// kernel listeners: [`crate::handover`]).
pub const LOOPBACK_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// The IPv6 loopback address the in-process stack owns (`::1/128`, as on `lo`).
pub const LOOPBACK_ADDR6: Ipv6Addr = Ipv6Addr::LOCALHOST;

/// Where the stack's packets go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The in-process loopback (no `UTCP_TUN`): 127.0.0.1, a host with only `lo`.
    Loopback,
    /// `UTCP_TUN=NAME UTCP_ADDR=A.B.C.D/N [UTCP_MTU=M]`: a TUN device, utcp's address and
    /// prefix on it (every route on-link: utcp has no gateway).
    Tun {
        /// Interface name.
        name: String,
        /// utcp's address.
        addr: Ipv4Addr,
        /// Prefix length.
        prefix: u8,
        /// `UTCP_ADDR6`: utcp's IPv6 address and prefix on it, if any.
        addr6: Option<(Ipv6Addr, u8)>,
        /// Interface MTU.
        mtu: u32,
    },
}

impl Mode {
    /// From the environment variables' values.
    pub fn parse(
        tun: Option<&str>,
        addr: Option<&str>,
        addr6: Option<&str>,
        mtu: Option<&str>,
    ) -> Result<Mode, String> {
        let Some(name) = tun else { return Ok(Mode::Loopback) };
        let addr = addr.ok_or("UTCP_TUN needs UTCP_ADDR=A.B.C.D/N")?;
        let (a, n) = addr.split_once('/').ok_or_else(|| format!("UTCP_ADDR={addr:?}: expected A.B.C.D/N"))?;
        let a: Ipv4Addr = a.parse().map_err(|e| format!("UTCP_ADDR={addr:?}: {e}"))?;
        let n: u8 = n.parse().ok().filter(|&n| n <= 32).ok_or_else(|| format!("UTCP_ADDR={addr:?}: bad prefix"))?;
        let addr6 = match addr6 {
            None => None,
            Some(v) => {
                let (a, n) = v.split_once('/').ok_or_else(|| format!("UTCP_ADDR6={v:?}: expected X::Y/N"))?;
                let a: Ipv6Addr = a.parse().map_err(|e| format!("UTCP_ADDR6={v:?}: {e}"))?;
                let n: u8 =
                    n.parse().ok().filter(|&n| n <= 128).ok_or_else(|| format!("UTCP_ADDR6={v:?}: bad prefix"))?;
                if a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.to_ipv4_mapped().is_some() {
                    return Err(format!("UTCP_ADDR6={v:?}: not a unicast interface address"));
                }
                Some((a, n))
            }
        };
        let mtu = match mtu {
            None => 1500,
            Some(m) => m
                .parse()
                .ok()
                .filter(|m| (576..=65535).contains(m))
                .ok_or_else(|| format!("UTCP_MTU={m:?}: 576..=65535"))?,
        };
        Ok(Mode::Tun { name: name.to_string(), addr: a, prefix: n, addr6, mtu })
    }

    /// Whether a `connect()` address has a route: on the TUN subnet (of its family); on
    /// loopback, 127.0.0.0/8, `::1` and the unspecified addresses (which Linux connects to the
    /// local host). An IPv4-mapped address is routed as its IPv4 address. Malformed addresses
    /// (and multicast, link-local: utcp's own errors) are left to utcp's own checks (they
    /// count as routable here).
    pub fn routable(&self, addr: &[u8]) -> bool {
        let Some(ip) = connect_ip(addr) else { return true };
        match (self, ip) {
            (Mode::Loopback, std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_unspecified(),
            (Mode::Loopback, std::net::IpAddr::V6(ip)) => ip.is_loopback() || ip.is_unspecified(),
            (Mode::Tun { addr, prefix, .. }, std::net::IpAddr::V4(ip)) => {
                let mask = if *prefix == 0 { 0 } else { u32::MAX << (32 - *prefix as u32) };
                u32::from(*addr) & mask == u32::from(ip) & mask
            }
            (Mode::Tun { addr6, .. }, std::net::IpAddr::V6(ip)) => {
                if ip.is_multicast() || ip.is_unicast_link_local() {
                    return true;
                }
                let Some((a6, n)) = addr6 else { return false };
                let mask = if *n == 0 { 0 } else { u128::MAX << (128 - *n as u32) };
                u128::from(*a6) & mask == u128::from(ip) & mask
            }
        }
    }
}

/// The destination of a `connect()` sockaddr: an AF_INET one's address, an AF_INET6 one's
/// (IPv4-mapped: its IPv4 address); `None` when short or of another family.
pub fn connect_ip(addr: &[u8]) -> Option<std::net::IpAddr> {
    let family = u16::from_ne_bytes([*addr.first()?, *addr.get(1)?]) as i32;
    if family == libc::AF_INET && addr.len() >= 16 {
        return Some(Ipv4Addr::new(addr[4], addr[5], addr[6], addr[7]).into());
    }
    if family == libc::AF_INET6 && addr.len() >= 24 {
        let b: [u8; 16] = addr[8..24].try_into().ok()?;
        let ip = Ipv6Addr::from(b);
        return Some(ip.to_ipv4_mapped().map_or(ip.into(), Into::into));
    }
    None
}

/// The library's state in this process.
pub struct Preload {
    /// The stack every utcp socket lives in.
    pub stack: Arc<Stack>,
    /// The device (the in-process loopback, or a TUN device).
    pub dev: Arc<dyn NetDevice>,
    /// Where packets go.
    pub mode: Mode,
    threads: Mutex<Option<HostThreads>>,
    /// Kernel placeholder fd → utcp fd.
    socks: RwLock<HashMap<i32, i32>>,
    /// Kernel epoll fd → its utcp half (created when a utcp socket is first added).
    epolls: Mutex<HashMap<i32, Arc<EpShadow>>>,
    /// `UTCP_STAT_FILE`, with `%p` already replaced by the pid.
    stat_file: Option<String>,
    /// The ports utcp sockets listen on (a loopback connect to another port may be the
    /// kernel's: [`crate::handover`]).
    pub listeners: crate::handover::Listeners,
}

static STATE: OnceLock<Option<Preload>> = OnceLock::new();
static CHILD: AtomicBool = AtomicBool::new(false);

/// The state, if the stack exists in this process (not in a forked child).
#[inline]
pub fn get() -> Option<&'static Preload> {
    if CHILD.load(Ordering::Relaxed) {
        return None;
    }
    STATE.get()?.as_ref()
}

/// The state, created on first use; `None` in a forked child.
pub fn get_or_init() -> Option<&'static Preload> {
    if CHILD.load(Ordering::Relaxed) {
        return None;
    }
    let mut fresh = false;
    let st = STATE.get_or_init(|| {
        fresh = true;
        crate::log::init_from_env();
        // Every thread the stack and its device start blocks every signal (see
        // `with_signals_blocked`).
        match crate::ffi::sys::with_signals_blocked(Preload::new) {
            Ok(p) => {
                tracing::info!(target: "utcp_preload", mode = ?p.mode, "stack created");
                Some(p)
            }
            Err(e) => {
                // The program goes on with the kernel's TCP.
                eprintln!("utcp-preload: {e}; TCP stays the kernel's");
                None
            }
        }
    });
    if fresh && st.is_some() {
        crate::ffi::register_process_hooks();
    }
    st.as_ref()
}

/// The `pthread_atfork` child handler: this process is a fork child from now on.
// DEVIATION(linux): a vfork() child runs no atfork handler and shares this memory; a close()
// it makes on an inherited utcp socket before exec closes the parent's socket.
pub fn forked_child() {
    CHILD.store(true, Ordering::Relaxed);
}

/// `%p` in `UTCP_STAT_FILE` becomes the pid.
pub fn stat_path(template: &str, pid: u32) -> String {
    template.replace("%p", &pid.to_string())
}

impl Preload {
    fn new() -> Result<Preload, String> {
        let env = |k: &str| std::env::var(k).ok();
        let mode = Mode::parse(
            env("UTCP_TUN").as_deref(),
            env("UTCP_ADDR").as_deref(),
            env("UTCP_ADDR6").as_deref(),
            env("UTCP_MTU").as_deref(),
        )?;
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::default());
        let secret = {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            t ^ ((std::process::id() as u64) << 32) ^ 0x9e37_79b9_7f4a_7c15
        };
        let (dev, addr, mtu): (Arc<dyn NetDevice>, Ipv4Addr, u32) = match &mode {
            Mode::Loopback => (Arc::new(Loopback::default()), LOOPBACK_ADDR, crate::loopback::LOOPBACK_MTU),
            Mode::Tun { name, addr, mtu, .. } => {
                let cfg = utcp_tun::TunConfig {
                    name: name.clone(),
                    offload: true,
                    mtu: *mtu,
                    txqueuelen: utcp_tun::DEFAULT_TXQUEUELEN,
                };
                let tun = utcp_tun::TunDevice::open(&cfg).map_err(|e| format!("UTCP_TUN={name:?}: {e}"))?;
                (Arc::new(tun), *addr, *mtu)
            }
        };
        let core = StackCore::new(addr, mtu, clock, secret);
        match &mode {
            Mode::Loopback => {
                core.net.set_addr6(LOOPBACK_ADDR6, 128);
                core.net.iff_loopback.store(true, Ordering::Relaxed);
                // Loopback frames never meet a wire (`NETIF_F_LOOPBACK`: CHECKSUM_UNNECESSARY).
                core.verify_csum.store(false, Ordering::Relaxed);
            }
            Mode::Tun { addr6: Some((a6, n)), .. } => core.net.set_addr6(*a6, *n),
            Mode::Tun { .. } => {}
        }
        core.attach_device(dev.clone());
        let stack = Arc::new(Stack::from_core(core.clone()));
        crate::signals::start_watcher(stack.clone());
        let threads = HostThreads::start(core, Some(dev.clone()));
        // The kernel placeholder enforces RLIMIT_NOFILE; utcp's own table must not run out first.
        let _ = stack.set_rlimit_nofile(1 << 20);
        let stat_file = std::env::var("UTCP_STAT_FILE").ok().map(|t| stat_path(&t, std::process::id()));
        Ok(Preload {
            stack,
            dev,
            mode,
            threads: Mutex::new(Some(threads)),
            socks: RwLock::new(HashMap::new()),
            epolls: Mutex::new(HashMap::new()),
            stat_file,
            listeners: Default::default(),
        })
    }

    /// The utcp fd behind kernel fd `k`, if `k` is a placeholder.
    #[inline]
    pub fn ufd(&self, k: i32) -> Option<i32> {
        if k < 0 {
            return None;
        }
        self.socks.read().get(&k).copied()
    }

    /// Records kernel fd `k` as standing for utcp fd `u`.
    pub fn insert(&self, k: i32, u: i32) {
        tracing::debug!(target: "utcp_preload", fd = k, utcp_fd = u, "placeholder");
        self.socks.write().insert(k, u);
    }

    /// Forgets kernel fd `k`; returns the utcp fd it stood for.
    pub fn remove(&self, k: i32) -> Option<i32> {
        self.socks.write().remove(&k)
    }

    /// Forgets kernel fd `k` (about to be closed or replaced by the kernel): closes its utcp
    /// fd, or drops its utcp epoll half.
    pub fn forget(&self, k: i32) {
        self.listeners.remove(k);
        if let Some(u) = self.remove(k) {
            tracing::debug!(target: "utcp_preload", fd = k, utcp_fd = u, "close");
            let _ = self.stack.close(u);
        }
        let ep = self.epolls.lock().remove(&k);
        if let Some(ep) = ep {
            let _ = self.stack.close(ep.uep);
        }
    }

    /// The utcp half of kernel epoll fd `epfd`; with `create`, made if missing.
    pub fn epoll_shadow(&self, epfd: i32, create: bool) -> SysResult<Option<Arc<EpShadow>>> {
        if let Some(e) = self.epolls.lock().get(&epfd) {
            return Ok(Some(e.clone()));
        }
        if !create {
            return Ok(None);
        }
        let uep = self.stack.epoll_create1(utcp::syscall::EPOLL_CLOEXEC)?;
        let shadow = Arc::new(EpShadow::new(uep));
        let mut eps = self.epolls.lock();
        if let Some(e) = eps.get(&epfd) {
            // Another thread made it meanwhile.
            let e = e.clone();
            drop(eps);
            let _ = self.stack.close(uep);
            return Ok(Some(e));
        }
        eps.insert(epfd, shadow.clone());
        Ok(Some(shadow))
    }

    /// A utcp `dup` of the socket behind `k` for the new kernel fd `k2`.
    pub fn dup_into(&self, k: i32, k2: i32) -> SysResult<()> {
        let u = self.ufd(k).ok_or(Errno::EBADF)?;
        let u2 = self.stack.dup(u)?;
        self.insert(k2, u2);
        self.note_listener(k2, u2);
        Ok(())
    }

    /// Records kernel fd `k` in [`Preload::listeners`] when its utcp socket `u` listens (a dup
    /// of a listener).
    pub fn note_listener(&self, k: i32, u: i32) {
        let mut b = [0u8; 4];
        let listening = self.stack.getsockopt(u, libc::SOL_SOCKET, libc::SO_ACCEPTCONN, &mut b).is_ok()
            && i32::from_ne_bytes(b) != 0;
        if let (true, Ok(a)) = (listening, self.stack.getsockname_addr(u)) {
            self.listeners.add(k, a.port());
        }
    }

    /// At exit: the counters to `UTCP_STAT_FILE` in nstat format.
    pub fn write_stats(&self) {
        if let Some(p) = &self.stat_file {
            let _ = std::fs::write(p, self.stack.core.net.mib.nstat(false));
        }
    }

    /// Stops the progress thread (tests; the process normally just exits).
    pub fn stop_threads(&self) {
        if let Some(t) = self.threads.lock().take() {
            t.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sin(ip: [u8; 4]) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&80u16.to_be_bytes());
        b[4..8].copy_from_slice(&ip);
        b
    }

    #[test]
    fn routes_loopback_and_tun() {
        let lo = Mode::Loopback;
        assert!(lo.routable(&sin([127, 0, 0, 1])));
        assert!(lo.routable(&sin([127, 9, 9, 9])));
        assert!(lo.routable(&sin([0, 0, 0, 0])));
        assert!(!lo.routable(&sin([10, 255, 255, 1])));
        assert!(!lo.routable(&sin([192, 0, 2, 1])));
        // Short or non-AF_INET addresses: utcp's own checks answer (EINVAL, EAFNOSUPPORT, …).
        assert!(lo.routable(&sin([10, 0, 0, 1])[..8]));
        let mut unspec = sin([10, 0, 0, 1]);
        unspec[..2].copy_from_slice(&0u16.to_ne_bytes());
        assert!(lo.routable(&unspec));
        let tun = Mode::parse(Some("tun0"), Some("10.77.0.2/24"), None, None).unwrap();
        assert_eq!(
            tun,
            Mode::Tun { name: "tun0".into(), addr: Ipv4Addr::new(10, 77, 0, 2), prefix: 24, addr6: None, mtu: 1500 }
        );
        assert!(tun.routable(&sin([10, 77, 0, 1])));
        assert!(!tun.routable(&sin([10, 78, 0, 1])));
        assert!(!tun.routable(&sin([127, 0, 0, 1])));
        assert!(!tun.routable(&sin6("fd77::1")), "no UTCP_ADDR6: no IPv6 route");
        assert!(tun.routable(&sin6("::ffff:10.77.0.1")), "mapped: the IPv4 subnet");
        let tun6 = Mode::parse(Some("tun0"), Some("10.77.0.2/24"), Some("fd77::2/64"), None).unwrap();
        assert!(tun6.routable(&sin6("fd77::1")));
        assert!(!tun6.routable(&sin6("fd78::1")));
        assert!(!tun6.routable(&sin6("::1")));
        assert!(tun6.routable(&sin6("fe80::1")), "link-local: utcp's EINVAL/ENODEV");
        assert!(lo.routable(&sin6("::1")));
        assert!(lo.routable(&sin6("::")));
        assert!(lo.routable(&sin6("::ffff:127.0.0.1")));
        assert!(!lo.routable(&sin6("::ffff:10.0.0.1")));
        assert!(!lo.routable(&sin6("2001:db8::1")));
        assert!(lo.routable(&sin6("::1")[..20]), "short: utcp's EINVAL");
    }

    fn sin6(ip: &str) -> Vec<u8> {
        let mut b = vec![0u8; 28];
        b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&80u16.to_be_bytes());
        b[8..24].copy_from_slice(&ip.parse::<Ipv6Addr>().unwrap().octets());
        b
    }

    #[test]
    fn mode_from_env_values() {
        assert_eq!(Mode::parse(None, Some("1.2.3.4/8"), Some("fd00::1/64"), None), Ok(Mode::Loopback));
        assert!(Mode::parse(Some("t"), None, None, None).is_err());
        assert!(Mode::parse(Some("t"), Some("10.0.0.1"), None, None).is_err());
        assert!(Mode::parse(Some("t"), Some("10.0.0.1/33"), None, None).is_err());
        assert!(Mode::parse(Some("t"), Some("10.0.0.1/24"), None, Some("100")).is_err());
        assert!(matches!(
            Mode::parse(Some("t"), Some("10.0.0.1/24"), None, Some("9000")),
            Ok(Mode::Tun { mtu: 9000, .. })
        ));
        assert!(Mode::parse(Some("t"), Some("10.0.0.1/24"), Some("fd00::1"), None).is_err());
        assert!(Mode::parse(Some("t"), Some("10.0.0.1/24"), Some("fd00::1/129"), None).is_err());
        assert!(Mode::parse(Some("t"), Some("10.0.0.1/24"), Some("::1/128"), None).is_err());
        assert!(Mode::parse(Some("t"), Some("10.0.0.1/24"), Some("ff02::1/64"), None).is_err());
        let six: Ipv6Addr = "fd00::2".parse().unwrap();
        assert!(matches!(
            Mode::parse(Some("t"), Some("10.0.0.1/24"), Some("fd00::2/64"), None),
            Ok(Mode::Tun { addr6: Some((a, 64)), .. }) if a == six
        ));
    }

    #[test]
    fn stat_path_replaces_pid() {
        assert_eq!(stat_path("/tmp/s.%p.nstat", 42), "/tmp/s.42.nstat");
        assert_eq!(stat_path("/tmp/plain", 42), "/tmp/plain");
    }
}
