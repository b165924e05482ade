//! The socket calls themselves (net/socket.c, net/ipv4/af_inet.c, net/ipv4/tcp.c,
//! net/core/sock.c): each returns what Linux returns, with Linux's errno.

use super::opt::*;
use super::*;
use crate::ip::ipv6_sockglue::{do_ipv6_getsockopt, do_ipv6_setsockopt, Inet6SockView, IPV6_RECVERR};
use crate::ip::sockglue::{do_ip_getsockopt, do_ip_setsockopt, InetSockView};
use crate::netns::Netns;
use crate::socket::proto_ops::INET_STREAM_OPS;
use crate::socket::sock::{Cancel, Sock};
use crate::socket::sockopt::{sk_getsockopt, sock_error, sock_setsockopt, SockView};
use crate::socket::{sock_recvmsg, SocketState};
use crate::tcp::close::{tcp_close, tcp_disconnect};
use crate::tcp::connect::tcp_close_state;

pub use crate::tcp::info::TcpInfo;
use crate::tcp::ioctl::tcp_ioctl;
use crate::tcp::output::send_error;
use crate::tcp::recvmsg::{IovIter, RecvInfo, MSG_CTRUNC, MSG_DONTWAIT, MSG_ZEROCOPY};
use crate::tcp::sockopt::{do_tcp_getsockopt, do_tcp_setsockopt, tcp_getsockopt_saved_syn};
use crate::tcp::{TcpSock, TcpState, RCV_SHUTDOWN, SEND_SHUTDOWN};
use crate::time::{Duration, Instant};
pub use crate::uapi::MSG_NOSIGNAL;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// `MSG_CMSG_CLOEXEC`.
pub(super) const MSG_CMSG_CLOEXEC: i32 = 0x4000_0000;
/// `MSG_CMSG_COMPAT`.
const MSG_CMSG_COMPAT: i32 = i32::MIN;
/// What `do_ipv6_{set,get}sockopt` read of a socket: its route (as IP_MTU's: set by connect,
/// kept when the connection ends, dropped by `tcp_disconnect`), the route's MTU (the path
/// MTU) and whether it has a port.
fn inet6_view(tp: &TcpSock, net: &Netns) -> Inet6SockView {
    Inet6SockView {
        has_dst: tp.state != TcpState::Listen && (tp.state != TcpState::Close || tp.dport != 0),
        mtu: tp.path_mtu(net.mtu()),
        num: tp.sport,
    }
}

/// The families a socket of `family` bound to `saddr` covers (`ports::FAM_V4`/`FAM_V6`, the
/// same bits as `Sock::rcv_families`): AF_INET, or an IPv4-mapped address, IPv4; `::` both
/// unless IPV6_V6ONLY; an IPv6 address IPv6 (`ipv6_rcv_saddr_equal()`'s cases).
fn sk_families(family: i32, saddr: IpAddr, ipv6only: bool) -> u8 {
    use crate::ports::{FAM_V4, FAM_V6};
    match (family, saddr) {
        (AF_INET6, IpAddr::V4(_)) => FAM_V4,
        (AF_INET6, IpAddr::V6(a)) if a.is_unspecified() && !ipv6only => FAM_V4 | FAM_V6,
        (AF_INET6, _) => FAM_V6,
        _ => FAM_V4,
    }
}

/// An address as IPv4: an IPv4 one, or an IPv4-mapped IPv6 one.
pub(super) fn as_v4(a: SocketAddr) -> Option<SocketAddrV4> {
    match a {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(a) => crate::uapi::v4mapped_to_v4(a.ip()).map(|ip| SocketAddrV4::new(ip, a.port())),
    }
}

/// `sockaddr_in` bytes.
pub fn sockaddr_in(addr: SocketAddrV4) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..2].copy_from_slice(&(AF_INET as u16).to_ne_bytes());
    b[2..4].copy_from_slice(&addr.port().to_be_bytes());
    b[4..8].copy_from_slice(&addr.ip().octets());
    b
}

/// `move_addr_to_user()`: copies `klen` bytes of `kaddr` (truncated to the user's length) and
/// writes the real length back.
pub(super) fn move_addr_to_user(kaddr: &[u8], uaddr: Option<&mut [u8]>, ulen: Option<&mut u32>) -> SysResult<()> {
    let Some(ulen) = ulen else { return Err(Errno::EFAULT) };
    let klen = kaddr.len() as u32;
    let len = (*ulen).min(klen);
    if (*ulen as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    if len > 0 {
        let Some(u) = uaddr else { return Err(Errno::EFAULT) };
        if u.len() < len as usize {
            return Err(Errno::EFAULT);
        }
        u[..len as usize].copy_from_slice(&kaddr[..len as usize]);
    }
    *ulen = klen;
    Ok(())
}

/// `put_cmsg()`: appends one control message, truncating (MSG_CTRUNC) as Linux does.
fn put_cmsg(
    ctl: &mut Option<&mut [u8]>,
    used: &mut usize,
    room: &mut usize,
    flags: &mut i32,
    level: i32,
    ty: i32,
    data: &[u8],
) {
    const HDR: usize = 16;
    let cmlen_full = HDR + data.len();
    let Some(buf) = ctl.as_deref_mut() else {
        *flags |= MSG_CTRUNC;
        return;
    };
    if *room < HDR {
        *flags |= MSG_CTRUNC;
        return;
    }
    let mut cmlen = cmlen_full;
    if *room < cmlen {
        *flags |= MSG_CTRUNC;
        cmlen = *room;
    }
    let at = *used;
    if buf.len() < at + cmlen {
        *flags |= MSG_CTRUNC;
        return;
    }
    buf[at..at + 8].copy_from_slice(&(cmlen as u64).to_ne_bytes());
    buf[at + 8..at + 12].copy_from_slice(&level.to_ne_bytes());
    buf[at + 12..at + 16].copy_from_slice(&ty.to_ne_bytes());
    buf[at + HDR..at + cmlen].copy_from_slice(&data[..cmlen - HDR]);
    let space = (HDR + data.len()).div_ceil(8) * 8;
    let adv = space.min(*room);
    *used += adv;
    *room -= adv;
}

/// Parses control messages written into a buffer by `recvmsg`.
pub fn parse_cmsgs(buf: &[u8]) -> Vec<Cmsg> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u64::from_ne_bytes(buf[at..at + 8].try_into().expect("8")) as usize;
        let level = i32::from_ne_bytes(buf[at + 8..at + 12].try_into().expect("4"));
        let ty = i32::from_ne_bytes(buf[at + 12..at + 16].try_into().expect("4"));
        if len < 16 {
            break;
        }
        let end = (at + len).min(buf.len());
        out.push(Cmsg { level, ty, len, data: buf[at + 16..end].to_vec() });
        at += len.div_ceil(8) * 8;
    }
    out
}

impl Stack {
    fn now(&self) -> Instant {
        self.core.clock.now()
    }

    fn net(&self) -> &Netns {
        &self.core.net
    }

    /// `socket()`.
    pub fn socket(&self, domain: i32, ty: i32, protocol: i32) -> SysResult<i32> {
        // __sys_socket(): flag bits other than SOCK_NONBLOCK/SOCK_CLOEXEC, before the family.
        if ty & !0xf & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        if domain != AF_INET && domain != AF_INET6 {
            return Err(Errno::EAFNOSUPPORT);
        }
        let base = ty & !(SOCK_NONBLOCK | SOCK_CLOEXEC);
        // __sock_create(): type outside 0..SOCK_MAX; inet_create(): protocol outside
        // 0..IPPROTO_MAX.
        if !(0..11).contains(&base) || !(0..263).contains(&protocol) {
            return Err(Errno::EINVAL);
        }
        if base != SOCK_STREAM {
            // DEVIATION(linux): only TCP; Linux supports UDP/raw here.
            return Err(Errno::ESOCKTNOSUPPORT);
        }
        if protocol != 0 && protocol != IPPROTO_TCP {
            return Err(Errno::EPROTONOSUPPORT);
        }
        let mut tp = TcpSock::new(self.net(), self.now());
        if domain == AF_INET6 {
            // inet6_create(): an AF_INET6 socket, its addresses `::` until bound or connected.
            tp.family = AF_INET6;
            tp.saddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
            tp.daddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        }
        let sk = Sock::new(self.core.clone(), tp);
        let s = Arc::new(Socket::new(&INET_STREAM_OPS, sk, SocketState::Unconnected));
        if ty & SOCK_NONBLOCK != 0 {
            s.f_flags.fetch_or(O_NONBLOCK, std::sync::atomic::Ordering::Relaxed);
        }
        self.install_socket(s, ty & SOCK_CLOEXEC != 0)
    }

    /// `bind()`: an AF_INET socket takes an IPv4 address (an IPv6 one: EAFNOSUPPORT); an
    /// AF_INET6 socket an IPv6 one (`inet6_bind`), an IPv4 address standing for its
    /// IPv4-mapped form.
    pub fn bind(&self, fd: i32, addr: impl Into<SocketAddr>) -> SysResult<()> {
        let s = self.sockfd_lookup(fd)?;
        let mut g = s.sk.lock_sock();
        let tp = g.tp_mut();
        let addr = addr.into();
        let (ip, port): (IpAddr, u16) = match (tp.family, addr) {
            (AF_INET6, a) => {
                let a6 = match a {
                    SocketAddr::V6(a) => a,
                    SocketAddr::V4(a) => SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
                };
                match self.inet6_bind_addr(tp, &a6) {
                    Ok(ip) => (ip, a6.port()),
                    Err(e) => {
                        s.sk.release_sock(g);
                        return Err(e);
                    }
                }
            }
            (_, SocketAddr::V4(a)) => (IpAddr::V4(*a.ip()), a.port()),
            (_, SocketAddr::V6(_)) => {
                s.sk.release_sock(g);
                return Err(Errno::EAFNOSUPPORT);
            }
        };
        let addr = (ip, port);
        // __inet_bind(): the address first. inet_addr_valid_or_nonlocal(): a local, broadcast
        // or multicast address (RTN_LOCAL/BROADCAST/MULTICAST), INADDR_ANY, or IP_FREEBIND,
        // IP_TRANSPARENT or ip_nonlocal_bind.
        if let IpAddr::V4(ip) = ip {
            if !ip.is_unspecified()
                && ip != self.net().local_addr()
                && !ip.is_broadcast()
                && !ip.is_multicast()
                && !tp.inet.freebind
                && !tp.inet.transparent
                && self.net().sysctl.ip_nonlocal_bind.get() == 0
            {
                s.sk.release_sock(g);
                return Err(Errno::EADDRNOTAVAIL);
            }
        }
        // Then `sk_state != TCP_CLOSE || inet_num`: a socket whose port was given back when it
        // closed (a refused or reset connection) may bind again.
        if tp.state != TcpState::Close || (tp.bound && self.core.port_held(s.sk.id).is_some()) {
            s.sk.release_sock(g);
            return Err(Errno::EINVAL);
        }
        // IP_BIND_ADDRESS_NO_PORT: port 0 binds the address only; connect() or listen()
        // chooses the port later, and the socket may bind again until then (inet_num is 0).
        // __inet6_bind(): a bound IPv6 address (not `::`, not IPv4-mapped) makes the socket
        // IPV6_V6ONLY (restored when the port cannot be had).
        let v6only_by_addr = matches!(ip, IpAddr::V6(a) if !a.is_unspecified());
        if addr.1 == 0 && tp.inet.bind_address_no_port {
            tp.saddr = ip;
            tp.sport = 0;
            tp.inet6.ipv6only |= v6only_by_addr;
            s.sk.release_sock(g);
            return Ok(());
        }
        let fam = sk_families(tp.family, ip, tp.inet6.ipv6only);
        let port =
            match self.core.get_port_opts(s.sk.id, addr.1, tp.reuseaddr, tp.reuseport, tp.inet.local_port_range, fam) {
                Ok(p) => p,
                Err(e) => {
                    s.sk.release_sock(g);
                    return Err(e);
                }
            };
        tp.saddr = ip;
        tp.sport = port;
        tp.bound = true;
        tp.inet6.ipv6only |= v6only_by_addr;
        s.sk.release_sock(g);
        Ok(())
    }

    /// `__inet6_bind()`'s address checks for an AF_INET6 socket: the address it binds (an
    /// IPv4-mapped one as IPv4, whose checks `bind()` then makes).
    fn inet6_bind_addr(&self, tp: &TcpSock, a: &SocketAddrV6) -> SysResult<IpAddr> {
        let ip = *a.ip();
        if let Some(v4) = crate::uapi::v4mapped_to_v4(&ip) {
            // Binding to a v4-mapped address: the socket cannot be IPV6_V6ONLY.
            if tp.inet6.ipv6only {
                return Err(Errno::EINVAL);
            }
            return Ok(IpAddr::V4(v4));
        }
        if ip.is_unspecified() {
            return Ok(IpAddr::V6(ip));
        }
        if ip.is_multicast() {
            return Err(Errno::EINVAL);
        }
        if ip.is_unicast_link_local() {
            // A link-local address needs its interface: the scope id, or the bound device.
            let scope = a.scope_id() as i32;
            if scope == 0 && tp.bound_dev_if == 0 {
                return Err(Errno::EINVAL);
            }
            if scope != 0 && tp.bound_dev_if != 0 && scope != tp.bound_dev_if {
                return Err(Errno::EINVAL);
            }
            if scope != 0 && self.net().netdev_get_name(scope).is_none() {
                return Err(Errno::ENODEV);
            }
        }
        // ipv6_chk_addr(): one of ours, unless IP_FREEBIND / IP_TRANSPARENT (and
        // net.ipv6.ip_nonlocal_bind, which utcp does not have: 0).
        let ours = self.net().local_addr6() == Some(ip);
        if !ours && !tp.inet.freebind && !tp.inet.transparent {
            return Err(Errno::EADDRNOTAVAIL);
        }
        Ok(IpAddr::V6(ip))
    }

    /// `listen()`.
    pub fn listen(&self, fd: i32, backlog: i32) -> SysResult<()> {
        let s = self.sockfd_lookup(fd)?;
        if s.state() != SocketState::Unconnected {
            return Err(Errno::EINVAL);
        }
        let mut g = s.sk.lock_sock();
        // __sys_listen_socket(): `(unsigned int)backlog > somaxconn` takes somaxconn, so a
        // negative backlog is somaxconn too.
        let somax = self.net().sysctl.somaxconn.get().clamp(0, u32::MAX as i64) as u32;
        let max_backlog = (backlog as u32).min(somax);
        let tp = g.tp_mut();
        match tp.state {
            TcpState::Listen => {
                tp.listen_backlog = max_backlog;
                s.sk.with_listener_queues(|q| {
                    if let Some(l) = q.and_then(|q| q.listen.as_mut()) {
                        l.max_backlog = max_backlog;
                    }
                });
                s.sk.release_sock(g);
                return Ok(());
            }
            TcpState::Close => {}
            _ => {
                s.sk.release_sock(g);
                return Err(Errno::EINVAL);
            }
        }
        if !tp.bound {
            let fam = sk_families(tp.family, tp.saddr, tp.inet6.ipv6only);
            match self.core.get_port_opts(s.sk.id, 0, false, false, tp.inet.local_port_range, fam) {
                Ok(p) => {
                    tp.sport = p;
                    tp.bound = true;
                }
                Err(e) => {
                    s.sk.release_sock(g);
                    return Err(e);
                }
            }
        }
        let port = tp.sport;
        let reuseport = tp.reuseport;
        // compute_score(): an AF_INET6 listener takes IPv6 segments, and IPv4 ones when bound
        // to `::` without IPV6_V6ONLY, or to an IPv4-mapped address (then IPv4 only).
        let fam = sk_families(tp.family, tp.saddr, tp.inet6.ipv6only);
        s.sk.rcv_families.store(fam, std::sync::atomic::Ordering::Relaxed);
        tp.state = TcpState::Listen;
        tp.listen_backlog = max_backlog;
        // The request and accept queues, with the listener's options as they are now (each
        // release of a listener it changed copies them again).
        s.sk.set_listener_queues(Some(Box::new(TcpSock::listener_queues(tp, self.net(), self.now(), max_backlog))));
        s.sk.release_sock(g);
        if !self.core.hash_listener_opts(port, s.sk.clone(), reuseport) {
            let mut g = s.sk.lock_sock();
            g.tp_mut().state = TcpState::Close;
            s.sk.set_listener_queues(None);
            s.sk.release_sock(g);
            return Err(Errno::EADDRINUSE);
        }
        Ok(())
    }

    /// `accept4()`. Returns the new fd and the peer's IPv4 address (see [`Stack::accept4_addr`]
    /// for an AF_INET6 listener).
    pub fn accept4(&self, fd: i32, flags: i32) -> SysResult<(i32, SocketAddrV4)> {
        self.accept4_cancellable(fd, flags, None)
    }

    /// `accept4()` with an interruption token; the peer's address as IPv4 (an IPv4-mapped
    /// one's IPv4 address; an IPv6 peer's address does not fit: `0.0.0.0` with its port —
    /// [`Stack::accept4_addr`] gives it whole).
    pub fn accept4_cancellable(&self, fd: i32, flags: i32, cancel: Option<&Cancel>) -> SysResult<(i32, SocketAddrV4)> {
        let (nfd, peer) = self.accept4_addr_cancellable(fd, flags, cancel)?;
        Ok((nfd, as_v4(peer).unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, peer.port()))))
    }

    /// `accept4()`: the new fd and the peer's address as the listener's family shows it (an
    /// AF_INET6 listener's IPv4 peer is `::ffff:a.b.c.d`).
    pub fn accept4_addr(&self, fd: i32, flags: i32) -> SysResult<(i32, SocketAddr)> {
        self.accept4_addr_cancellable(fd, flags, None)
    }

    /// [`Stack::accept4_addr`] with an interruption token.
    pub fn accept4_addr_cancellable(
        &self,
        fd: i32,
        flags: i32,
        cancel: Option<&Cancel>,
    ) -> SysResult<(i32, SocketAddr)> {
        // __sys_accept4_file(): EBADF, EINVAL, then the new fd is allocated (EMFILE) before
        // anything is dequeued, so a full table leaves the connection on the accept queue.
        let f = self.fds().get(fd)?;
        if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        let nfd = self.fds().reserve()?;
        let r = match &*f {
            fdtable::File::Socket(s) => self.inet_accept(s, flags, cancel),
            _ => Err(Errno::ENOTSOCK),
        };
        match r {
            Ok((ns, peer)) => {
                self.fds().fill(nfd, fdtable::File::Socket(ns), flags & SOCK_CLOEXEC != 0);
                Ok((nfd, peer))
            }
            Err(e) => {
                self.fds().unreserve(nfd);
                Err(e)
            }
        }
    }

    /// `inet_accept()` → `inet_csk_accept()`: dequeues a child.
    fn inet_accept(&self, s: &Socket, flags: i32, cancel: Option<&Cancel>) -> SysResult<(Arc<Socket>, SocketAddr)> {
        let mut g = s.sk.lock_sock();
        let timeo = if s.nonblocking() { Some(Duration::ZERO) } else { g.tp().ext().rcvtimeo };
        let deadline = timeo.map(|t| self.now() + t);
        let child = loop {
            // Children are queued without the socket lock: the wakeup generation is read
            // before the queue, so one queued after the look wakes the wait below.
            let ev0 = s.sk.ev_gen.load(std::sync::atomic::Ordering::SeqCst);
            if g.tp().state != TcpState::Listen {
                s.sk.release_sock(g);
                return Err(Errno::EINVAL);
            }
            // reqsk_queue_remove() under the accept queue's lock.
            if let Some(c) = s
                .sk
                .with_listener_queues(|q| q.and_then(|q| q.listen.as_mut()).and_then(|l| l.accept_queue.pop_front()))
            {
                break c;
            }
            if timeo == Some(Duration::ZERO) || deadline.is_some_and(|d| self.now() >= d) {
                s.sk.release_sock(g);
                return Err(Errno::EAGAIN);
            }
            if cancel.is_some_and(|c| c.is_cancelled()) {
                s.sk.release_sock(g);
                return Err(Errno::EINTR);
            }
            s.sk.sk_wait_event(&mut g, deadline, cancel, ev0);
        };
        s.sk.release_sock(g);
        // sock_graft(): the child has its socket now; the flag the accept queue set (true)
        // is dropped, a `None` standing for it (one allocation less per accepted socket).
        let mut cg = child.lock_sock();
        cg.tp_mut().sk_socket = None;
        let peer = crate::uapi::sock_addr(cg.tp().family, cg.tp().daddr, cg.tp().dport);
        child.release_sock(cg);
        let ns = Arc::new(Socket::new(&INET_STREAM_OPS, child, SocketState::Connected));
        if flags & SOCK_NONBLOCK != 0 {
            ns.f_flags.fetch_or(O_NONBLOCK, std::sync::atomic::Ordering::Relaxed);
        }
        Ok((ns, peer))
    }

    /// `connect()`: an AF_INET socket to an IPv4 address (`tcp_v4_connect`; an IPv6 one:
    /// EAFNOSUPPORT), an AF_INET6 socket to an IPv6 one (`tcp_v6_connect`), an IPv4 address
    /// standing for its IPv4-mapped form.
    pub fn connect(&self, fd: i32, addr: impl Into<SocketAddr>) -> SysResult<()> {
        self.connect_cancellable(fd, addr, None)
    }

    /// `connect()` with an interruption token (`__inet_stream_connect`).
    pub fn connect_cancellable(&self, fd: i32, addr: impl Into<SocketAddr>, cancel: Option<&Cancel>) -> SysResult<()> {
        let addr = addr.into();
        let s = self.sockfd_lookup(fd)?;
        let mut g = s.sk.lock_sock();
        let mut err = match s.state() {
            SocketState::Connected => {
                s.sk.release_sock(g);
                return Err(Errno::EISCONN);
            }
            SocketState::Connecting => Errno::EALREADY,
            SocketState::Disconnecting => {
                s.sk.release_sock(g);
                return Err(Errno::EINVAL);
            }
            SocketState::Unconnected => {
                if g.tp().state != TcpState::Close {
                    s.sk.release_sock(g);
                    return Err(Errno::EISCONN);
                }
                let family = g.tp().family;
                let r = match (family, addr) {
                    (AF_INET6, SocketAddr::V6(a)) => crate::tcp::ipv6::tcp_v6_connect(&s.sk, &mut g, a),
                    (AF_INET6, SocketAddr::V4(a)) => {
                        let a = SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0);
                        crate::tcp::ipv6::tcp_v6_connect(&s.sk, &mut g, a)
                    }
                    (_, SocketAddr::V4(a)) => crate::tcp::ipv4::tcp_v4_connect(&s.sk, &mut g, a),
                    (_, SocketAddr::V6(_)) => Err(Errno::EAFNOSUPPORT),
                };
                if let Err(e) = r {
                    s.sk.release_sock(g);
                    return Err(e);
                }
                s.set_state(SocketState::Connecting);
                Errno::EINPROGRESS
            }
        };
        let timeo = if s.nonblocking() { Some(Duration::ZERO) } else { g.tp().ext().sndtimeo };
        let deadline = timeo.map(|t| self.now() + t);
        while matches!(g.tp().state, TcpState::SynSent | TcpState::SynRecv) {
            if timeo == Some(Duration::ZERO) || deadline.is_some_and(|d| self.now() >= d) {
                s.sk.release_sock(g);
                return Err(err);
            }
            if cancel.is_some_and(|c| c.is_cancelled()) {
                s.sk.release_sock(g);
                return Err(Errno::EINTR);
            }
            s.sk.sk_wait_data(&mut g, deadline, cancel, None);
            err = Errno::EINPROGRESS;
        }
        let r = if g.tp().state == TcpState::Close {
            // sock_error: the error, then `sk->sk_prot->disconnect()`: the socket is
            // unconnected again (recv answers ENOTCONN, poll shows no POLLIN) and may connect
            // anew; its error queue is kept.
            let e = g.tp_mut().err.take().unwrap_or(Errno::ECONNABORTED);
            s.set_state(SocketState::Unconnected);
            tcp_disconnect(&s.sk, &mut g);
            Err(e)
        } else {
            s.set_state(SocketState::Connected);
            Ok(())
        };
        s.sk.release_sock(g);
        r
    }

    /// `tcp_v4_connect()` + `tcp_connect()`.
    fn __sys_recvfrom_inner(
        &self,
        s: &Socket,
        iov: &mut IovIter<'_>,
        mut flags: i32,
        cancel: Option<&Cancel>,
        info: &mut RecvInfo,
    ) -> SysResult<usize> {
        if s.nonblocking() {
            flags |= MSG_DONTWAIT;
        }
        sock_recvmsg(s, iov, flags, cancel, info)
    }

    /// `__sys_recvfrom()`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn __sys_recvfrom(
        &self,
        fd: i32,
        buf: Option<&mut [u8]>,
        len: usize,
        flags: i32,
        addr: Option<&mut [u8]>,
        addrlen: Option<&mut u32>,
        cancel: Option<&Cancel>,
        info: &mut RecvInfo,
    ) -> SysResult<usize> {
        let mut iov = import_single_range(buf, len);
        let s = self.sockfd_lookup(fd)?;
        let n = self.__sys_recvfrom_inner(&s, &mut iov, flags, cancel, info)?;
        if let Some(a) = addr {
            // TCP returns no address: msg_namelen = 0.
            move_addr_to_user(&[], Some(a), addrlen)?;
        }
        Ok(n)
    }

    /// `recvmsg()` (`___sys_recvmsg`).
    pub fn recvmsg(&self, fd: i32, msg: &mut MsgHdr<'_>, flags: i32) -> SysResult<usize> {
        self.recvmsg_cancellable(fd, msg, flags, None)
    }

    /// `recvmsg()` with an interruption token.
    pub fn recvmsg_cancellable(
        &self,
        fd: i32,
        msg: &mut MsgHdr<'_>,
        flags: i32,
        cancel: Option<&Cancel>,
    ) -> SysResult<usize> {
        // __sys_recvmsg(): MSG_CMSG_COMPAT is for the compat syscall only.
        if flags & MSG_CMSG_COMPAT != 0 {
            return Err(Errno::EINVAL);
        }
        let s = self.sockfd_lookup(fd)?;
        if msg.iov.len() > UIO_MAXIOV {
            return Err(Errno::EMSGSIZE);
        }
        let mut fault = false;
        let mut bufs: Vec<&mut [u8]> = Vec::new();
        let mut total = 0usize;
        for v in msg.iov.iter_mut() {
            if (v.len as isize) < 0 {
                return Err(Errno::EINVAL);
            }
            match v.base.as_deref_mut() {
                Some(b) => {
                    let n = v.len.min(b.len());
                    if n < v.len {
                        fault = true;
                    }
                    bufs.push(&mut b[..n]);
                }
                None if v.len > 0 => fault = true,
                None => {}
            }
            total = total.saturating_add(v.len);
        }
        let mut iov = IovIter::new(bufs, MAX_RW_COUNT);
        if fault {
            iov.set_fault(total.min(MAX_RW_COUNT));
        }
        let mut info = RecvInfo::default();
        msg.flags = 0;
        let n = self.__sys_recvfrom_inner(&s, &mut iov, flags, cancel, &mut info)?;
        if msg.name.is_some() {
            let mut nl = msg.namelen;
            // ip_recv_error() names the quoted datagram's destination; otherwise none.
            let name = info.errqueue.as_ref().and_then(|(a, _)| *a).map(|a| crate::uapi::sockaddr_bytes(&a));
            move_addr_to_user(
                name.as_ref().map_or(&[][..], |(n, l)| &n[..*l]),
                msg.name.as_deref_mut(),
                Some(&mut nl),
            )?;
            msg.namelen = nl;
        }
        // ____sys_recvmsg(): msg_flags starts as `flags & MSG_CMSG_CLOEXEC`.
        let mut mflags = info.msg_flags | (flags & MSG_CMSG_CLOEXEC);
        let mut used = 0;
        let mut room = msg.controllen;
        if let Some(ts) = info.tstamp {
            let real = ts.nanos() as i64 + self.realtime_offset_ns;
            let (sec, sub) = (real.div_euclid(1_000_000_000), real.rem_euclid(1_000_000_000));
            let mut d = [0u8; 16];
            d[..8].copy_from_slice(&sec.to_ne_bytes());
            // tcp_recv_timestamp(): SO_TIMESTAMP(NS)_NEW's types carry a __kernel_sock_timeval /
            // __kernel_timespec, the same 16 bytes as the old ones on a 64-bit machine.
            if info.tstamp_kind == 2 {
                d[8..].copy_from_slice(&sub.to_ne_bytes());
                let ty = if info.tstamp_new { SO_TIMESTAMPNS_NEW } else { SO_TIMESTAMPNS };
                put_cmsg(&mut msg.control, &mut used, &mut room, &mut mflags, SOL_SOCKET, ty, &d);
            } else {
                d[8..].copy_from_slice(&(sub / 1000).to_ne_bytes());
                let ty = if info.tstamp_new { SO_TIMESTAMP_NEW } else { SO_TIMESTAMP };
                put_cmsg(&mut msg.control, &mut used, &mut room, &mut mflags, SOL_SOCKET, ty, &d);
            }
        }
        if let Some(ts) = info.timestamping {
            // put_cmsg_scm_timestamping(64)(): three timespecs, software first; the old and the
            // 64-bit layouts are the same 48 bytes on a 64-bit machine.
            let real = ts.nanos() as i64 + self.realtime_offset_ns;
            let mut d = [0u8; 48];
            d[..8].copy_from_slice(&real.div_euclid(1_000_000_000).to_ne_bytes());
            d[8..16].copy_from_slice(&real.rem_euclid(1_000_000_000).to_ne_bytes());
            let ty = if info.tstamp_new { SO_TIMESTAMPING_NEW } else { SO_TIMESTAMPING };
            put_cmsg(&mut msg.control, &mut used, &mut room, &mut mflags, SOL_SOCKET, ty, &d);
        }
        for (level, ty, d) in &info.errqueue_cmsgs {
            put_cmsg(&mut msg.control, &mut used, &mut room, &mut mflags, *level, *ty, d);
        }
        if let Some((_, (level, ty, ee))) = &info.errqueue {
            put_cmsg(&mut msg.control, &mut used, &mut room, &mut mflags, *level, *ty, ee);
        }
        if let Some(inq) = info.inq {
            put_cmsg(
                &mut msg.control,
                &mut used,
                &mut room,
                &mut mflags,
                SOL_TCP,
                TCP_CM_INQ,
                &(inq as i32).to_ne_bytes(),
            );
        }
        msg.controllen = used;
        msg.flags = mflags;
        Ok(n)
    }

    /// `send()`.
    pub fn send(&self, fd: i32, buf: Option<&[u8]>, len: usize, flags: i32) -> SysResult<usize> {
        self.sendmsg_impl(fd, &[(buf, len)], flags, None, &[])
    }

    /// `sendto()` (the address is ignored on a connected TCP socket, as Linux does).
    pub fn sendto(
        &self,
        fd: i32,
        buf: Option<&[u8]>,
        len: usize,
        flags: i32,
        _addr: Option<SocketAddrV4>,
    ) -> SysResult<usize> {
        self.sendmsg_impl(fd, &[(buf, len)], flags, None, &[])
    }

    /// `sendmsg()` with iovecs.
    pub fn sendmsg(&self, fd: i32, iov: &[(Option<&[u8]>, usize)], flags: i32) -> SysResult<usize> {
        // __sys_sendmsg(): MSG_CMSG_COMPAT is for the compat syscall only (before the fd).
        if flags & MSG_CMSG_COMPAT != 0 {
            return Err(Errno::EINVAL);
        }
        if iov.len() > UIO_MAXIOV {
            return Err(Errno::EMSGSIZE);
        }
        self.sendmsg_impl(fd, iov, flags, None, &[])
    }

    /// `sendmsg()` with iovecs and control messages (`msg_control`, x86_64 `cmsghdr`s): TCP
    /// takes SCM_TIMESTAMPING's flags for this call (socket/sock_cmsg.rs).
    pub fn sendmsg_control(
        &self,
        fd: i32,
        iov: &[(Option<&[u8]>, usize)],
        control: &[u8],
        flags: i32,
    ) -> SysResult<usize> {
        if flags & MSG_CMSG_COMPAT != 0 {
            return Err(Errno::EINVAL);
        }
        if iov.len() > UIO_MAXIOV {
            return Err(Errno::EMSGSIZE);
        }
        self.sendmsg_impl(fd, iov, flags, None, control)
    }

    /// `sendmsg()` with iovecs, control messages and an interruption token (EINTR, or the
    /// count sent so far, when cancelled while blocked).
    pub fn sendmsg_cancellable(
        &self,
        fd: i32,
        iov: &[(Option<&[u8]>, usize)],
        control: &[u8],
        flags: i32,
        cancel: Option<&Cancel>,
    ) -> SysResult<usize> {
        if flags & MSG_CMSG_COMPAT != 0 {
            return Err(Errno::EINVAL);
        }
        if iov.len() > UIO_MAXIOV {
            return Err(Errno::EMSGSIZE);
        }
        self.sendmsg_impl(fd, iov, flags, cancel, control)
    }

    /// `send()` with an interruption token.
    pub fn send_cancellable(&self, fd: i32, buf: &[u8], flags: i32, cancel: &Cancel) -> SysResult<usize> {
        self.sendmsg_impl(fd, &[(Some(buf), buf.len())], flags, Some(cancel), &[])
    }

    /// `tcp_sendmsg()`.
    fn sendmsg_impl(
        &self,
        fd: i32,
        iov: &[(Option<&[u8]>, usize)],
        mut flags: i32,
        cancel: Option<&Cancel>,
        control: &[u8],
    ) -> SysResult<usize> {
        let s = self.sockfd_lookup(fd)?;
        if s.nonblocking() {
            flags |= MSG_DONTWAIT;
        }
        // tcp_sendmsg() copies every iovec into the write queue before it pushes, so the
        // segments are built across iovec boundaries: gather several into one buffer (a
        // fault ends the gathered bytes, as copy_from_iter does).
        let gathered: Vec<u8>;
        let one: [(Option<&[u8]>, usize); 2];
        let iov = if iov.iter().filter(|(_, l)| *l > 0).count() > 1 {
            let mut m = Vec::new();
            let mut fault = 0;
            for (b, l) in iov {
                let l = (*l).min(MAX_RW_COUNT - m.len());
                match b {
                    Some(b) if b.len() >= l => m.extend_from_slice(&b[..l]),
                    _ if l == 0 => {}
                    _ => {
                        fault = 1;
                        break;
                    }
                }
            }
            gathered = m;
            one = [(Some(&gathered[..]), gathered.len()), (None, fault)];
            &one[..]
        } else {
            iov
        };
        let mut g = s.sk.lock_sock();
        let timeo = if flags & MSG_DONTWAIT != 0 { Some(Duration::ZERO) } else { g.tp().ext().sndtimeo };
        let deadline = timeo.map(|t| self.now() + t);
        // sk_stream_wait_connect()
        while !matches!(g.tp().state, TcpState::Established | TcpState::CloseWait) {
            let tp = g.tp_mut();
            if let Some(e) = tp.err.take() {
                s.sk.release_sock(g);
                return Err(e);
            }
            if !matches!(tp.state, TcpState::SynSent | TcpState::SynRecv) {
                s.sk.release_sock(g);
                return Err(Errno::EPIPE);
            }
            if timeo == Some(Duration::ZERO) || deadline.is_some_and(|d| self.now() >= d) {
                s.sk.release_sock(g);
                return Err(Errno::EAGAIN);
            }
            if cancel.is_some_and(|c| c.is_cancelled()) {
                s.sk.release_sock(g);
                return Err(Errno::EINTR);
            }
            s.sk.sk_wait_data(&mut g, deadline, cancel, None);
        }
        // sock_cmsg_send() once connected; any error is EINVAL.
        let tsflags = match crate::socket::sock_cmsg::sock_cmsg_send(g.tp(), control) {
            Ok(sockc) => sockc.tsflags,
            Err(_) => {
                s.sk.release_sock(g);
                return Err(Errno::EINVAL);
            }
        };
        let mut copied = 0usize;
        let mut result: SysResult<usize> = Ok(0);
        'outer: for (buf, len) in iov {
            let len = (*len).min(MAX_RW_COUNT - copied);
            let data: &[u8] = match buf {
                Some(b) if b.len() >= len => &b[..len],
                _ if len == 0 => &[],
                _ => {
                    result = Err(Errno::EFAULT);
                    break;
                }
            };
            let mut off = 0;
            while off < data.len() {
                if let Some(e) = send_error(g.tp()) {
                    result = Err(if g.tp().err.is_some() { g.tp_mut().err.take().unwrap_or(e) } else { e });
                    break 'outer;
                }
                let (n, no_memory) =
                    g.with_ctx_inner(|tp, ctx| tp.tcp_sendmsg_append(ctx, &data[off..], flags, tsflags));
                off += n;
                copied += n;
                if off < data.len() {
                    // wait_for_space: set_bit(SOCK_NOSPACE), then sk_stream_wait_memory().
                    g.tp().nospace.store(true, core::sync::atomic::Ordering::SeqCst);
                    if timeo == Some(Duration::ZERO) || deadline.is_some_and(|d| self.now() >= d) {
                        result = Err(Errno::EAGAIN);
                        break 'outer;
                    }
                    if cancel.is_some_and(|c| c.is_cancelled()) {
                        result = Err(Errno::EINTR);
                        break 'outer;
                    }
                    // TCP memory refused with room in the send buffer: no ACK will announce
                    // memory, so the writer sleeps `vm_wait` (2 + a random 0..HZ/5 jiffies,
                    // HZ = 250) or until the socket is woken, then tries again.
                    let mut until = deadline;
                    if no_memory && g.tp().sk_stream_memory_free(self.net(), 0) {
                        use crate::socket::sockopt::JIFFY_US;
                        const HZ: u32 = (1_000_000 / JIFFY_US) as u32;
                        let jiffies = 2 + self.net().get_random_u32_below(HZ / 5) as u64;
                        let vm_wait = self.now() + Duration::from_micros(jiffies * JIFFY_US);
                        until = Some(deadline.map_or(vm_wait, |d| d.min(vm_wait)));
                    }
                    s.sk.sk_wait_data(&mut g, until, cancel, None);
                }
            }
        }
        // tcp_sendmsg_locked(): a send cut short after queueing bytes still marks its last skb
        // (a complete one was marked by tcp_sendmsg_append before its push).
        if copied > 0 && result.is_err() {
            g.tp_mut().tcp_tx_timestamp(tsflags);
        }
        // msg_zerocopy_realloc(): a MSG_ZEROCOPY send on a SO_ZEROCOPY socket that queued
        // bytes takes an id for its completion (one that queued none gives it back).
        if copied > 0 && flags & MSG_ZEROCOPY != 0 && g.tp().zerocopy {
            g.tp_mut().tcp_zerocopy_sent();
        }
        s.sk.release_sock(g);
        if copied > 0 {
            return Ok(copied);
        }
        match result {
            Ok(_) if iov.iter().all(|(_, l)| *l == 0) => {
                // A zero-length send still checks for errors.
                Ok(0)
            }
            other => other,
        }
    }

    /// `shutdown()` (`inet_shutdown` + `tcp_shutdown`).
    pub fn shutdown(&self, fd: i32, how: i32) -> SysResult<()> {
        let s = self.sockfd_lookup(fd)?;
        if !(SHUT_RD..=SHUT_RDWR).contains(&how) {
            return Err(Errno::EINVAL);
        }
        let how = (how + 1) as u8;
        let mut g = s.sk.lock_sock();
        if s.state() == SocketState::Connecting {
            if matches!(g.tp().state, TcpState::SynSent | TcpState::SynRecv | TcpState::Close) {
                s.set_state(SocketState::Disconnecting);
            } else {
                s.set_state(SocketState::Connected);
            }
        }
        let mut r = Ok(());
        match g.tp().sk_state() {
            TcpState::Listen if how & RCV_SHUTDOWN == 0 => {}
            TcpState::Listen | TcpState::SynSent => {
                tcp_disconnect(&s.sk, &mut g);
                s.set_state(SocketState::Unconnected);
            }
            st => {
                if st == TcpState::Close {
                    r = Err(Errno::ENOTCONN);
                }
                g.with_ctx_inner(|tp, ctx| {
                    tp.shutdown |= how;
                    if how & SEND_SHUTDOWN != 0
                        && matches!(
                            tp.state,
                            TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::CloseWait
                        )
                        && tcp_close_state(tp, ctx)
                    {
                        tp.tcp_send_fin(ctx);
                    }
                    ctx.ev.state_change = true;
                });
            }
        }
        s.sk.release_sock(g);
        s.sk.wake_all();
        r
    }

    /// `sock_close()` → `inet_release()` → `tcp_close()`: the last reference to the socket is gone.
    pub(crate) fn sock_close(&self, s: &Socket) {
        tcp_close(&s.sk);
    }

    /// `setsockopt()` with the option value as raw bytes, as C passes it.
    pub fn setsockopt(&self, fd: i32, level: i32, name: i32, val: &[u8]) -> SysResult<()> {
        let s = self.sockfd_lookup(fd)?;
        // SO_ATTACH_BPF / SO_ATTACH_REUSEPORT_EBPF name a BPF program by fd (bpf_prog_get()):
        // EBADF when nothing is open there (fds 0-2 stand for the process's stdio).
        if level == SOL_SOCKET && matches!(name, SO_ATTACH_BPF | SO_ATTACH_REUSEPORT_EBPF) && val.len() == 4 {
            let ufd = i32::from_ne_bytes(val.try_into().expect("4"));
            if !(0..=2).contains(&ufd) && self.fds.get(ufd).is_err() {
                return Err(Errno::EBADF);
            }
        }
        let mut g = s.sk.lock_sock();
        let r = g.with_ctx_inner(|tp, ctx| match level {
            SOL_SOCKET => sock_setsockopt(tp, ctx, name, val),
            SOL_IP => {
                let r = do_ip_setsockopt(&mut tp.inet, &mut tp.priority, ctx.net.local_addr(), name, val);
                if r.is_ok() && name == IP_RECVERR && !tp.inet.recverr {
                    if let Some(e) = tp.ext_if_any() {
                        e.error_queue.clear();
                    } // skb_queue_purge(&sk->sk_error_queue)
                }
                if r.is_ok() && name == IP_OPTIONS {
                    // icsk_ext_hdr_len changed: icsk_sync_mss(sk, icsk_pmtu_cookie).
                    tp.tcp_sync_ext_hdr(ctx);
                }
                r
            }
            SOL_TCP => do_tcp_setsockopt(tp, ctx, name, val),
            // ipv6_setsockopt(): an AF_INET6 socket's; an AF_INET one's ip_setsockopt() knows
            // no other level than SOL_IP.
            SOL_IPV6 if tp.family == AF_INET6 => {
                let view = inet6_view(tp, ctx.net);
                let r = do_ipv6_setsockopt(&mut tp.inet6, view, name, val);
                if r.is_ok() && name == IPV6_RECVERR && !tp.inet6.recverr {
                    if let Some(e) = tp.ext_if_any() {
                        e.error_queue.clear();
                    } // skb_errqueue_purge(&sk->sk_error_queue)
                }
                r
            }
            _ => Err(Errno::ENOPROTOOPT),
        });
        let ll = g.tp().ll_usec;
        s.sk.ll_usec.store(ll, std::sync::atomic::Ordering::Relaxed);
        s.sk.bound_dev_if.store(g.tp().bound_dev_if, std::sync::atomic::Ordering::Relaxed);
        s.sk.release_sock(g);
        if r.is_ok() && level == SOL_SOCKET && name == SO_RCVLOWAT {
            s.sk.wake_all();
        }
        r
    }

    /// Sets an integer option.
    pub fn setsockopt_int(&self, fd: i32, level: i32, name: i32, v: i32) -> SysResult<()> {
        self.setsockopt(fd, level, name, &v.to_ne_bytes())
    }

    /// `getsockopt()`: writes the value into `out` and returns its length (as `optlen`).
    pub fn getsockopt(&self, fd: i32, level: i32, name: i32, out: &mut [u8]) -> SysResult<usize> {
        let s = self.sockfd_lookup(fd)?;
        // ip_getsockopt(): a level that is neither SOL_SOCKET, SOL_TCP nor SOL_IP (setsockopt
        // answers ENOPROTOOPT there).
        let v6 = s.sk.peek_tp(|tp| tp.family == AF_INET6);
        if !(matches!(level, SOL_SOCKET | SOL_IP | SOL_TCP) || (level == SOL_IPV6 && v6)) {
            return Err(Errno::EOPNOTSUPP);
        }
        let bytes = if level == SOL_TCP && name == TCP_SAVED_SYN {
            // Reading the saved SYN frees it: under the socket lock.
            let mut g = s.sk.lock_sock();
            let r = tcp_getsockopt_saved_syn(g.tp_mut(), out.len());
            s.sk.release_sock(g);
            match r {
                Ok(b) => b,
                Err((e, _need)) => return Err(e),
            }
        } else if level == SOL_SOCKET && name == SO_ERROR {
            let mut g = s.sk.lock_sock();
            let e = sock_error(g.tp_mut());
            s.sk.release_sock(g);
            e.to_ne_bytes().to_vec()
        } else {
            let now = self.now();
            let napi_id = s.sk.napi_id.load(std::sync::atomic::Ordering::Relaxed);
            if level == SOL_IPV6 {
                let (b, n) = s.sk.peek_tp(|tp| {
                    do_ipv6_getsockopt(&tp.inet6, inet6_view(tp, self.net()), self.net(), name, out.len())
                })?;
                out[..b.len()].copy_from_slice(&b);
                return Ok(n);
            }
            if level == SOL_IP {
                let (b, n) = s.sk.peek_tp(|tp| {
                    let view = InetSockView {
                        // sk_dst_cache: set by connect(), kept when the connection ends
                        // (refused or reset), dropped by tcp_disconnect().
                        has_dst: tp.state != TcpState::Listen && (tp.state != TcpState::Close || tp.dport != 0),
                        num: tp.sport,
                        mtu: self.net().mtu(),
                        rcv_saddr: match tp.saddr {
                            IpAddr::V4(a) => a,
                            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                        },
                    };
                    do_ip_getsockopt(&tp.inet, view, self.net(), name, out.len())
                })?;
                out[..b.len()].copy_from_slice(&b);
                return Ok(n);
            }
            s.sk.peek_tp(|tp| match level {
                SOL_SOCKET => {
                    let netdev_name = self.net().netdev_get_name(tp.bound_dev_if);
                    let view = SockView { napi_id, netns_cookie: self.net().cookie, netdev_name };
                    sk_getsockopt(tp, view, name, out.len())
                }
                _ if name == crate::uapi::opt::TCP_INFO && tp.state == TcpState::Listen => {
                    Ok(crate::tcp::info::tcp_info_bytes(&crate::tcp::info::tcp_get_info_sk(&s.sk, tp, now, self.net()))
                        .to_vec())
                }
                _ => do_tcp_getsockopt(tp, self.net(), now, name, out.len()),
            })?
        };
        let n = out.len().min(bytes.len());
        out[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }

    /// An integer socket option.
    pub fn getsockopt_int(&self, fd: i32, level: i32, name: i32) -> SysResult<i32> {
        let mut b = [0u8; 4];
        self.getsockopt(fd, level, name, &mut b)?;
        Ok(i32::from_ne_bytes(b))
    }

    /// `ioctl(fd, req, &int)` with the int 0: the int the call leaves (see [`Stack::ioctl_arg`]).
    pub fn ioctl(&self, fd: i32, req: u64) -> SysResult<i32> {
        let mut v = 0;
        self.ioctl_arg(fd, req, &mut v)?;
        Ok(v)
    }

    /// `ioctl(fd, req, &arg)` (`do_vfs_ioctl`): FIONBIO, FIOCLEX and FIONCLEX for any file,
    /// then the file's own: `sock_ioctl()` → `inet_ioctl()` → `tcp_ioctl()` for a socket,
    /// `pipe_ioctl()` (FIONREAD) for a pipe. Answers go into `arg`.
    pub fn ioctl_arg(&self, fd: i32, req: u64, arg: &mut i32) -> SysResult<()> {
        let f = self.fds.get(fd)?;
        match req {
            FIONBIO => {
                let flags = match &*f {
                    File::Socket(s) => &s.f_flags,
                    File::Pipe(p) => &p.f_flags,
                    File::Epoll(_) => return Ok(()),
                };
                let keep = flags.load(std::sync::atomic::Ordering::Relaxed) & !O_NONBLOCK;
                let nb = if *arg != 0 { O_NONBLOCK } else { 0 };
                flags.store(keep | nb, std::sync::atomic::Ordering::Relaxed);
                return Ok(());
            }
            FIOCLEX | FIONCLEX => return self.fds.set_cloexec(fd, req == FIOCLEX),
            _ => {}
        }
        match &*f {
            File::Socket(s) => {
                // sock_gettstamp(): TCP never stamps sk_stamp, so there is no last packet time.
                if matches!(req, SIOCGSTAMP | SIOCGSTAMPNS) {
                    return Err(Errno::ENOENT);
                }
                let mut g = s.sk.lock_sock();
                let r = tcp_ioctl(g.tp(), req);
                let _ = g.tp_mut();
                s.sk.release_sock(g);
                *arg = r?;
                Ok(())
            }
            File::Pipe(p) if req == FIONREAD => {
                *arg = p.buf.state.lock().data.len() as i32;
                Ok(())
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    /// `getsockname()` of an AF_INET socket (an AF_INET6 one's address: see
    /// [`Stack::getsockname_addr`]; this answers with its IPv4 form, or EAFNOSUPPORT).
    pub fn getsockname(&self, fd: i32) -> SysResult<SocketAddrV4> {
        as_v4(self.getsockname_addr(fd)?).ok_or(Errno::EAFNOSUPPORT)
    }

    /// `getpeername()` of an AF_INET socket (see [`Stack::getsockname`]).
    pub fn getpeername(&self, fd: i32) -> SysResult<SocketAddrV4> {
        as_v4(self.getpeername_addr(fd)?).ok_or(Errno::EAFNOSUPPORT)
    }

    /// `getsockname()` (`inet_getname` / `inet6_getname`): the local address as the socket's
    /// family shows it.
    pub fn getsockname_addr(&self, fd: i32) -> SysResult<SocketAddr> {
        let s = self.sockfd_lookup(fd)?;
        Ok(s.sk.peek_tp(|tp| crate::uapi::sock_addr(tp.family, tp.saddr, tp.sport)))
    }

    /// `getpeername()`: ENOTCONN unless connected.
    pub fn getpeername_addr(&self, fd: i32) -> SysResult<SocketAddr> {
        let s = self.sockfd_lookup(fd)?;
        s.sk.peek_tp(|tp| {
            if matches!(tp.sk_state(), TcpState::Close | TcpState::Listen | TcpState::SynSent) {
                Err(Errno::ENOTCONN)
            } else {
                Ok(crate::uapi::sock_addr(tp.family, tp.daddr, tp.dport))
            }
        })
    }

    /// `getsockopt(TCP_INFO)` as a struct (`tcp_get_info`).
    pub fn tcp_info(&self, fd: i32) -> SysResult<TcpInfo> {
        let s = self.sockfd_lookup(fd)?;
        let now = self.now();
        Ok(s.sk.peek_tp(|tp| crate::tcp::info::tcp_get_info_sk(&s.sk, tp, now, self.net())))
    }
}

/// `import_single_range()`: the user buffer as an iov, clamped to MAX_RW_COUNT; a NULL (or
/// short) buffer faults on first copy.
fn import_single_range<'a>(buf: Option<&'a mut [u8]>, len: usize) -> IovIter<'a> {
    let len = len.min(MAX_RW_COUNT);
    match buf {
        Some(b) if b.len() >= len => IovIter::ubuf(&mut b[..len], MAX_RW_COUNT),
        Some(b) => {
            let mut it = IovIter::ubuf(b, MAX_RW_COUNT);
            it.set_fault(len);
            it
        }
        None => {
            let mut it = IovIter::new(Vec::new(), MAX_RW_COUNT);
            it.set_fault(len);
            it
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netdev::memlink::LinkConfig;
    use crate::sim::SimNet;

    #[test]
    fn sockopt_levels_dispatch_and_unknown_levels() {
        let net = SimNet::new(LinkConfig::default());
        let st = &net.a.stack;
        let fd = st.socket(AF_INET, SOCK_STREAM, 0).unwrap();
        st.setsockopt_int(fd, SOL_IP, IP_TTL, 9).unwrap();
        assert_eq!(st.getsockopt_int(fd, SOL_IP, IP_TTL), Ok(9));
        st.setsockopt_int(fd, SOL_TCP, TCP_NODELAY, 1).unwrap();
        assert_eq!(st.getsockopt_int(fd, SOL_TCP, TCP_NODELAY), Ok(1));
        st.setsockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1).unwrap();
        assert_eq!(st.getsockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE), Ok(1));
        // setsockopt answers ENOPROTOOPT at an unknown level, getsockopt EOPNOTSUPP.
        assert_eq!(st.setsockopt_int(fd, 99, 1, 1), Err(Errno::ENOPROTOOPT));
        assert_eq!(st.getsockopt_int(fd, 99, 1), Err(Errno::EOPNOTSUPP));
        // getsockopt truncates to the caller's length.
        let mut one = [0xAAu8; 1];
        assert_eq!(st.getsockopt(fd, SOL_SOCKET, SO_TYPE, &mut one), Ok(1));
        assert_eq!(one, [1]);
        assert_eq!(st.getsockopt_int(fd + 100, SOL_SOCKET, SO_TYPE), Err(Errno::EBADF));
    }

    #[test]
    fn ioctl_goes_through_tcp_ioctl() {
        let net = SimNet::new(LinkConfig::default());
        let st = &net.a.stack;
        let fd = st.socket(AF_INET, SOCK_STREAM, 0).unwrap();
        assert_eq!(st.ioctl(fd, FIONREAD), Ok(0));
        assert_eq!(st.ioctl(fd, 0x5401), Err(Errno::ENOTTY));
        st.bind(fd, SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        st.listen(fd, 4).unwrap();
        assert_eq!(st.ioctl(fd, FIONREAD), Err(Errno::EINVAL));
    }
}
