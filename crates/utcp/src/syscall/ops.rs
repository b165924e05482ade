//! The socket calls themselves (net/socket.c, net/ipv4/af_inet.c, net/ipv4/tcp.c,
//! net/core/sock.c): each returns what Linux returns, with Linux's errno.

use super::opt::*;
use super::*;
use crate::netns::Netns;
use crate::seq::SeqNum;
use crate::socket::proto_ops::INET_STREAM_OPS;
use crate::socket::sock::{Cancel, Sock, WaitResult};
use crate::socket::{sock_recvmsg, SocketState};
use crate::tcp::connect::{tcp_close_state, tcp_connect};
pub use crate::tcp::info::TcpInfo;
use crate::tcp::info::{tcp_get_info, tcp_info_bytes};
use crate::tcp::listen::ListenState;
use crate::tcp::output::send_error;
use crate::tcp::recvmsg::{IovIter, RecvInfo, MSG_CTRUNC, MSG_DONTWAIT};
use crate::tcp::{TcpSock, TcpState, TcpTimer, RCV_SHUTDOWN, SEND_SHUTDOWN, SOCK_RCVBUF_LOCK, SOCK_SNDBUF_LOCK};
use crate::time::{Duration, Instant};
use std::net::SocketAddrV4;

/// `MSG_NOSIGNAL`.
pub const MSG_NOSIGNAL: i32 = 0x4000;
/// `MSG_CMSG_CLOEXEC`.
pub const MSG_CMSG_CLOEXEC: i32 = 0x4000_0000;
/// `MSG_CMSG_COMPAT`.
const MSG_CMSG_COMPAT: i32 = i32::MIN;
/// Jiffy length at HZ=250 (socket timeouts are kept in jiffies).
const JIFFY_US: u64 = 4000;

fn to_timeval(d: Option<Duration>) -> [u8; 16] {
    let mut b = [0u8; 16];
    if let Some(d) = d {
        b[..8].copy_from_slice(&(d.as_secs() as i64).to_ne_bytes());
        b[8..].copy_from_slice(&(d.subsec_micros() as i64).to_ne_bytes());
    }
    b
}

/// `v` if it lies in `lo..=hi`, else EINVAL (the range checks of `do_tcp_setsockopt`).
fn in_range(v: i32, lo: i32, hi: i32) -> SysResult<i32> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(Errno::EINVAL)
    }
}

fn int_arg(v: &[u8]) -> SysResult<i32> {
    if v.len() < 4 {
        return Err(Errno::EINVAL);
    }
    Ok(i32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
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
        if domain != AF_INET {
            // DEVIATION(linux): IPv6 is not implemented yet; Linux would create the socket.
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
        let tp = TcpSock::new(self.net(), self.now());
        let sk = Sock::new(self.core.clone(), tp);
        let s = Arc::new(Socket::new(&INET_STREAM_OPS, sk, SocketState::Unconnected));
        if ty & SOCK_NONBLOCK != 0 {
            s.f_flags.fetch_or(O_NONBLOCK, std::sync::atomic::Ordering::Relaxed);
        }
        self.install_socket(s, ty & SOCK_CLOEXEC != 0)
    }

    /// `bind()`.
    pub fn bind(&self, fd: i32, addr: SocketAddrV4) -> SysResult<()> {
        let s = self.sockfd_lookup(fd)?;
        let mut g = s.sk.lock_sock();
        let tp = g.tp_mut();
        if tp.state != TcpState::Close || tp.bound {
            s.sk.release_sock(g);
            return Err(Errno::EINVAL);
        }
        let ip = *addr.ip();
        // inet_addr_valid_or_nonlocal(): IP_FREEBIND, IP_TRANSPARENT or ip_nonlocal_bind.
        if !ip.is_unspecified()
            && ip != self.net().local_addr()
            && !tp.freebind
            && self.net().sysctl.ip_nonlocal_bind.get() == 0
        {
            s.sk.release_sock(g);
            return Err(Errno::EADDRNOTAVAIL);
        }
        let port = match self.core.get_port_opts(s.sk.id, addr.port(), tp.reuseaddr, tp.reuseport) {
            Ok(p) => p,
            Err(e) => {
                s.sk.release_sock(g);
                return Err(e);
            }
        };
        tp.saddr = ip;
        tp.sport = port;
        tp.bound = true;
        s.sk.release_sock(g);
        Ok(())
    }

    /// `listen()`.
    pub fn listen(&self, fd: i32, backlog: i32) -> SysResult<()> {
        let s = self.sockfd_lookup(fd)?;
        if s.state() != SocketState::Unconnected {
            return Err(Errno::EINVAL);
        }
        let mut g = s.sk.lock_sock();
        let somax = self.net().sysctl.somaxconn.get();
        let max_backlog = (backlog as i64).clamp(0, somax.max(0)) as u32;
        let tp = g.tp_mut();
        match tp.state {
            TcpState::Listen => {
                if let Some(l) = tp.listen.as_mut() {
                    l.max_backlog = max_backlog;
                }
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
            match self.core.get_port(s.sk.id, 0, false) {
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
        tp.listen = Some(Box::new(ListenState { max_backlog, ..Default::default() }));
        tp.state = TcpState::Listen;
        tp.listen_backlog = max_backlog;
        s.sk.release_sock(g);
        if !self.core.hash_listener_opts(port, s.sk.clone(), reuseport) {
            let mut g = s.sk.lock_sock();
            g.tp_mut().state = TcpState::Close;
            g.tp_mut().listen = None;
            s.sk.release_sock(g);
            return Err(Errno::EADDRINUSE);
        }
        Ok(())
    }

    /// `accept4()`. Returns the new fd and the peer address.
    pub fn accept4(&self, fd: i32, flags: i32) -> SysResult<(i32, SocketAddrV4)> {
        self.accept4_cancellable(fd, flags, None)
    }

    /// `accept4()` with an interruption token.
    pub fn accept4_cancellable(&self, fd: i32, flags: i32, cancel: Option<&Cancel>) -> SysResult<(i32, SocketAddrV4)> {
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
    fn inet_accept(&self, s: &Socket, flags: i32, cancel: Option<&Cancel>) -> SysResult<(Arc<Socket>, SocketAddrV4)> {
        let mut g = s.sk.lock_sock();
        let timeo = if s.nonblocking() { Some(Duration::ZERO) } else { g.tp().rcvtimeo };
        let deadline = timeo.map(|t| self.now() + t);
        let child = loop {
            let tp = g.tp_mut();
            if tp.state != TcpState::Listen {
                s.sk.release_sock(g);
                return Err(Errno::EINVAL);
            }
            if let Some(c) = tp.listen.as_mut().and_then(|l| l.accept_queue.pop_front()) {
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
            s.sk.sk_wait_data(&mut g, deadline, cancel, None);
        };
        s.sk.release_sock(g);
        let peer = child.peek_tp(|tp| SocketAddrV4::new(tp.daddr, tp.dport));
        let ns = Arc::new(Socket::new(&INET_STREAM_OPS, child, SocketState::Connected));
        if flags & SOCK_NONBLOCK != 0 {
            ns.f_flags.fetch_or(O_NONBLOCK, std::sync::atomic::Ordering::Relaxed);
        }
        Ok((ns, peer))
    }

    /// `connect()`.
    pub fn connect(&self, fd: i32, addr: SocketAddrV4) -> SysResult<()> {
        self.connect_cancellable(fd, addr, None)
    }

    /// `connect()` with an interruption token (`__inet_stream_connect`).
    pub fn connect_cancellable(&self, fd: i32, addr: SocketAddrV4, cancel: Option<&Cancel>) -> SysResult<()> {
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
                if let Err(e) = self.tcp_v4_connect(&s.sk, &mut g, addr) {
                    s.sk.release_sock(g);
                    return Err(e);
                }
                s.set_state(SocketState::Connecting);
                Errno::EINPROGRESS
            }
        };
        let timeo = if s.nonblocking() { Some(Duration::ZERO) } else { g.tp().sndtimeo };
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
            let e = g.tp_mut().err.take().unwrap_or(Errno::ECONNABORTED);
            s.set_state(SocketState::Unconnected);
            Err(e)
        } else {
            s.set_state(SocketState::Connected);
            Ok(())
        };
        s.sk.release_sock(g);
        r
    }

    /// `tcp_v4_connect()` + `tcp_connect()`.
    fn tcp_v4_connect(
        &self,
        sk: &Arc<Sock>,
        g: &mut crate::socket::sock::OwnedSock<'_>,
        addr: SocketAddrV4,
    ) -> SysResult<()> {
        if addr.ip().is_unspecified() && addr.port() == 0 {
            return Err(Errno::EINVAL);
        }
        let saddr = self.net().local_addr();
        let held = self.core.port_held(sk.id).is_some();
        let tp = g.tp_mut();
        tp.saddr = saddr;
        tp.daddr = *addr.ip();
        tp.dport = addr.port();
        if tp.bound && held {
            // bind() chose the port: the 4-tuple through it must be unused.
            let key = (tp.saddr, tp.sport, tp.daddr, tp.dport);
            if !self.core.hash(key, sk.clone()) {
                return Err(Errno::EADDRNOTAVAIL);
            }
        } else {
            // __inet_hash_connect(): a port whose 4-tuple to this destination is free.
            tp.sport = self.core.hash_connect(sk, saddr, tp.daddr, tp.dport)?;
            tp.bound = true;
        }
        let now = self.now();
        let net = self.net();
        tp.iss = SeqNum(net.secure_seq(tp.saddr, tp.daddr, tp.sport, tp.dport, now.nanos()));
        tp.tsoffset = net.ts_offset(tp.saddr, tp.daddr);
        g.with_ctx_inner(tcp_connect);
        Ok(())
    }

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
            move_addr_to_user(&[], msg.name.as_deref_mut(), Some(&mut nl))?;
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
            if info.tstamp_kind == 2 {
                d[8..].copy_from_slice(&sub.to_ne_bytes());
                put_cmsg(&mut msg.control, &mut used, &mut room, &mut mflags, SOL_SOCKET, SO_TIMESTAMPNS, &d);
            } else {
                d[8..].copy_from_slice(&(sub / 1000).to_ne_bytes());
                put_cmsg(&mut msg.control, &mut used, &mut room, &mut mflags, SOL_SOCKET, SO_TIMESTAMP, &d);
            }
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
        self.sendmsg_impl(fd, &[(buf, len)], flags, None)
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
        self.sendmsg_impl(fd, &[(buf, len)], flags, None)
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
        self.sendmsg_impl(fd, iov, flags, None)
    }

    /// `send()` with an interruption token.
    pub fn send_cancellable(&self, fd: i32, buf: &[u8], flags: i32, cancel: &Cancel) -> SysResult<usize> {
        self.sendmsg_impl(fd, &[(Some(buf), buf.len())], flags, Some(cancel))
    }

    /// `tcp_sendmsg()`.
    fn sendmsg_impl(
        &self,
        fd: i32,
        iov: &[(Option<&[u8]>, usize)],
        mut flags: i32,
        cancel: Option<&Cancel>,
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
        let timeo = if flags & MSG_DONTWAIT != 0 { Some(Duration::ZERO) } else { g.tp().sndtimeo };
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
                let n = g.with_ctx_inner(|tp, ctx| tp.tcp_sendmsg_append(ctx, &data[off..], flags));
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
                    s.sk.sk_wait_data(&mut g, deadline, cancel, None);
                }
            }
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
                self.tcp_disconnect(&s.sk, &mut g);
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

    /// `tcp_disconnect()`: abort to CLOSE, RST if the peer must hear of it.
    pub(super) fn tcp_disconnect(&self, sk: &Arc<Sock>, g: &mut crate::socket::sock::OwnedSock<'_>) {
        let old = g.tp().state;
        let listener_port = (old == TcpState::Listen).then(|| g.tp().sport);
        let children: Vec<Arc<Sock>> =
            g.tp_mut().listen.take().map(|l| l.accept_queue.into_iter().collect()).unwrap_or_default();
        g.with_ctx_inner(|tp, ctx| {
            tp.set_state(ctx, TcpState::Close);
            if matches!(
                old,
                TcpState::Established
                    | TcpState::CloseWait
                    | TcpState::FinWait1
                    | TcpState::FinWait2
                    | TcpState::SynRecv
            ) {
                tp.tcp_send_active_reset(ctx);
            }
            for t in TcpTimer::ALL {
                tp.clear_timer(t);
            }
            tp.write_queue.clear();
            tp.rtx_queue.clear();
            tp.receive_queue.clear();
            tp.ofo_queue.clear();
            tp.rmem_alloc = 0;
            tp.packets_out = 0;
            tp.shutdown = 0;
            tp.done = false;
            // tcp_need_reset() states and SYN_SENT report ECONNRESET.
            if matches!(
                old,
                TcpState::Established
                    | TcpState::CloseWait
                    | TcpState::FinWait1
                    | TcpState::FinWait2
                    | TcpState::SynRecv
                    | TcpState::SynSent
            ) {
                tp.err = Some(Errno::ECONNRESET);
            }
            tp.copied_seq = tp.rcv_nxt;
            tp.urg_data = 0;
            tp.peek_off = -1;
            let seq = tp.write_seq + tp.max_window + 2;
            tp.write_seq = if seq.0 == 0 { SeqNum(1) } else { seq };
            tp.ack.rcv_mss = crate::tcp::TCP_MIN_MSS;
            tp.window_clamp = 0;
            tp.bytes_received = 0;
            tp.bytes_acked = 0;
            tp.segs_in = 0;
            tp.segs_out = 0;
            tp.data_segs_in = 0;
            tp.data_segs_out = 0;
            tp.total_retrans = 0;
            ctx.ev.state_change = true;
        });
        if let Some(p) = listener_port {
            self.core.unhash_listener(p, sk.id);
        } else {
            let tp = g.tp();
            self.core.unhash_key((tp.saddr, tp.sport, tp.daddr, tp.dport), sk.id);
        }
        for c in children {
            self.abort_child(&c);
        }
    }

    fn abort_child(&self, c: &Arc<Sock>) {
        let mut g = c.lock_sock();
        g.with_ctx_inner(|tp, ctx| {
            if matches!(tp.state, TcpState::Established | TcpState::CloseWait | TcpState::SynRecv) {
                tp.tcp_send_active_reset(ctx);
            }
            tp.orphan = true;
            tp.tcp_done(ctx);
        });
        c.release_sock(g);
    }

    /// `tcp_close()`: the last reference to the socket is gone.
    pub(crate) fn sock_close(&self, s: &Socket) {
        let sk = &s.sk;
        let mut g = sk.lock_sock();
        if g.tp().state == TcpState::Listen {
            self.tcp_disconnect(sk, &mut g);
            g.tp_mut().orphan = true;
            sk.release_sock(g);
            self.core.put_port(sk.id);
            return;
        }
        let linger = g.tp().linger;
        let closed_now = g.with_ctx_inner(|tp, ctx| {
            tp.shutdown = RCV_SHUTDOWN | SEND_SHUTDOWN;
            let mut data_was_unread = 0u32;
            while let Some(skb) = tp.receive_queue.pop_front() {
                let mut len = skb.end_seq.diff(skb.seq);
                if skb.tcp_flags.fin() {
                    len -= 1;
                }
                data_was_unread += len;
            }
            tp.recount_rmem();
            if tp.state == TcpState::Close {
                return true;
            }
            if data_was_unread > 0 {
                ctx.inc(crate::mib::LinuxMib::TCPAbortOnClose);
                tp.set_state(ctx, TcpState::Close);
                tp.tcp_send_active_reset(ctx);
            } else if linger == Some(0) {
                let old = tp.state;
                tp.set_state(ctx, TcpState::Close);
                if matches!(
                    old,
                    TcpState::Established
                        | TcpState::CloseWait
                        | TcpState::FinWait1
                        | TcpState::FinWait2
                        | TcpState::SynRecv
                ) {
                    tp.tcp_send_active_reset(ctx);
                }
                ctx.inc(crate::mib::LinuxMib::TCPAbortOnData);
            } else if tcp_close_state(tp, ctx) {
                tp.tcp_send_fin(ctx);
            }
            false
        });
        if closed_now {
            sk.release_sock(g);
            self.core.put_port(sk.id);
            return;
        }
        // sk_stream_wait_close(): with SO_LINGER on and a time set, close() waits (socket
        // released) until the FIN is acknowledged (no longer FIN_WAIT1, CLOSING or LAST_ACK)
        // or the linger time runs out; it returns 0 either way.
        if let Some(secs) = linger.filter(|s| *s > 0) {
            let deadline = self.now() + Duration::from_secs(secs as u64);
            while matches!(g.tp().state, TcpState::FinWait1 | TcpState::Closing | TcpState::LastAck) {
                if sk.sk_wait_data(&mut g, Some(deadline), None, None).result == WaitResult::TimedOut {
                    break;
                }
            }
        }
        let closed_now = g.with_ctx_inner(|tp, ctx| {
            tp.orphan = true;
            if tp.state == TcpState::FinWait2 {
                if tp.linger2.is_some_and(|l| l < 0) {
                    tp.set_state(ctx, TcpState::Close);
                    tp.tcp_send_active_reset(ctx);
                    ctx.inc(crate::mib::LinuxMib::TCPAbortOnLinger);
                } else {
                    let tmo = tp.tcp_fin_time(ctx);
                    if tmo > crate::tcp::TCP_TIMEWAIT_LEN {
                        tp.reset_timer(TcpTimer::Keepalive, ctx.now + (tmo - crate::tcp::TCP_TIMEWAIT_LEN));
                    } else {
                        tp.tcp_time_wait(ctx, TcpState::FinWait2, tmo);
                    }
                }
            }
            if tp.state == TcpState::Close {
                for t in TcpTimer::ALL {
                    tp.clear_timer(t);
                }
                tp.write_queue.clear();
                tp.rtx_queue.clear();
                ctx.ev.destroy = true;
            }
            tp.state == TcpState::Close
        });
        sk.release_sock(g);
        if closed_now {
            // A socket closed in CLOSE (bound but never listening or connected, or already
            // dead) gives its port back here (`inet_csk_destroy_sock` → `inet_put_port`).
            self.core.put_port(sk.id);
        }
    }

    /// `setsockopt()` with the option value as raw bytes, as C passes it.
    pub fn setsockopt(&self, fd: i32, level: i32, name: i32, val: &[u8]) -> SysResult<()> {
        let s = self.sockfd_lookup(fd)?;
        let mut g = s.sk.lock_sock();
        let r = self.setsockopt_locked(&s, &mut g, level, name, val);
        let ll = g.tp().ll_usec;
        s.sk.ll_usec.store(ll, std::sync::atomic::Ordering::Relaxed);
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

    fn setsockopt_locked(
        &self,
        _s: &Socket,
        g: &mut crate::socket::sock::OwnedSock<'_>,
        level: i32,
        name: i32,
        val: &[u8],
    ) -> SysResult<()> {
        let net = self.net();
        let tp = g.tp_mut();
        match (level, name) {
            (SOL_SOCKET, SO_LINGER) => {
                if val.len() < 8 {
                    return Err(Errno::EINVAL);
                }
                let on = int_arg(&val[..4])?;
                let secs = int_arg(&val[4..8])?;
                tp.linger = (on != 0).then_some(secs.max(0) as u32);
                return Ok(());
            }
            (SOL_SOCKET, SO_RCVTIMEO) | (SOL_SOCKET, SO_SNDTIMEO) => {
                if val.len() < 16 {
                    return Err(Errno::EINVAL);
                }
                let sec = i64::from_ne_bytes(val[..8].try_into().expect("8"));
                let usec = i64::from_ne_bytes(val[8..16].try_into().expect("8"));
                if !(0..1_000_000).contains(&usec) {
                    return Err(Errno::EDOM);
                }
                // sock_set_timeout(): a timeout too large for jiffies is MAX_SCHEDULE_TIMEOUT.
                const HZ: i64 = (1_000_000 / JIFFY_US) as i64;
                let t = if sec < 0 {
                    Some(Duration::ZERO)
                } else if (sec == 0 && usec == 0) || sec >= i64::MAX / HZ - 1 {
                    None
                } else {
                    let jiffies = sec as u64 * HZ as u64 + (usec as u64).div_ceil(JIFFY_US);
                    Some(Duration::from_micros(jiffies).saturating_mul(JIFFY_US as u32))
                };
                if name == SO_RCVTIMEO {
                    tp.rcvtimeo = t;
                } else {
                    tp.sndtimeo = t;
                }
                return Ok(());
            }
            (SOL_TCP, TCP_CONGESTION) => {
                // tcp_set_congestion_control(): the name up to the first NUL.
                let end = val.iter().position(|&b| b == 0).unwrap_or(val.len());
                if end == 0 {
                    return Err(Errno::EINVAL);
                }
                let name = String::from_utf8_lossy(&val[..end]);
                // DEVIATION(linux): only the built-in cubic and reno exist (no modules: bbr,
                // htcp... answer ENOENT as an unloadable module does).
                let algo = crate::tcp::cong::CongAlgo::from_name(&name).ok_or(Errno::ENOENT)?;
                if algo != tp.ca_algo {
                    tp.ca_algo = algo;
                    tp.cubic_reset();
                }
                return Ok(());
            }
            _ => {}
        }
        let v = int_arg(val)?;
        match (level, name) {
            (SOL_SOCKET, SO_REUSEADDR) => tp.reuseaddr = v != 0,
            (SOL_SOCKET, SO_KEEPALIVE) => {
                // tcp_set_keepalive(): not in CLOSE or LISTEN; turning it on again keeps the
                // running timer.
                let was = tp.keepalive;
                tp.keepalive = v != 0;
                if !matches!(tp.state, TcpState::Close | TcpState::Listen) {
                    if v != 0 && !was {
                        let t = tp.keepalive_time_when(net);
                        tp.reset_timer(TcpTimer::Keepalive, self.now() + t);
                    } else if v == 0 {
                        tp.clear_timer(TcpTimer::Keepalive);
                    }
                }
            }
            (SOL_SOCKET, SO_OOBINLINE) => tp.urginline = v != 0,
            (SOL_SOCKET, SO_RCVBUF) | (SOL_SOCKET, SO_RCVBUFFORCE) => {
                let max = net.sysctl.rmem_max.get();
                let val = if name == SO_RCVBUF { (v as i64).min(max) } else { v as i64 };
                let val = val.max(0);
                tp.userlocks |= SOCK_RCVBUF_LOCK;
                tp.rcvbuf = (val * 2).clamp(crate::tcp::SOCK_MIN_RCVBUF as i64, i32::MAX as i64) as u32;
            }
            (SOL_SOCKET, SO_SNDBUF) | (SOL_SOCKET, SO_SNDBUFFORCE) => {
                let max = net.sysctl.wmem_max.get();
                let val = if name == SO_SNDBUF { (v as i64).min(max) } else { v as i64 };
                let val = val.max(0);
                tp.userlocks |= SOCK_SNDBUF_LOCK;
                tp.sndbuf = (val * 2).clamp(crate::tcp::SOCK_MIN_SNDBUF as i64, i32::MAX as i64) as u32;
            }
            (SOL_SOCKET, SO_RCVLOWAT) => {
                // tcp_set_rcvlowat()
                let mut val = if v < 0 { i32::MAX } else { v };
                let cap = if tp.userlocks & SOCK_RCVBUF_LOCK != 0 {
                    (tp.rcvbuf >> 1) as i32
                } else {
                    (net.sysctl.tcp_rmem.idx(2) >> 1) as i32
                };
                val = val.min(cap);
                tp.rcvlowat = if val == 0 { 1 } else { val };
                if tp.userlocks & SOCK_RCVBUF_LOCK == 0 {
                    let space = tp.space_from_win(val as i64);
                    if space > tp.rcvbuf as i64 {
                        tp.rcvbuf = space as u32;
                        if tp.window_clamp != 0 && (tp.window_clamp as i64) < val as i64 {
                            tp.window_clamp = val as u32;
                        }
                    }
                }
            }
            (SOL_SOCKET, SO_PEEK_OFF) => tp.peek_off = v,
            (SOL_SOCKET, SO_TIMESTAMP) => tp.rx_tstamp_opt = if v != 0 { 1 } else { 0 },
            (SOL_SOCKET, SO_TIMESTAMPNS) => tp.rx_tstamp_opt = if v != 0 { 2 } else { 0 },
            (SOL_SOCKET, SO_BUSY_POLL) => {
                if v < 0 {
                    return Err(Errno::EINVAL);
                }
                tp.ll_usec = v as u32;
            }
            (SOL_SOCKET, SO_PREFER_BUSY_POLL) => tp.prefer_busy_poll = v != 0,
            (SOL_SOCKET, SO_BUSY_POLL_BUDGET) => {
                if v < 0 || v > u16::MAX as i32 {
                    return Err(Errno::EINVAL);
                }
                tp.busy_poll_budget = v as u16;
            }
            // SO_SNDLOWAT is not changeable on Linux.
            (SOL_SOCKET, SO_SNDLOWAT) => return Err(Errno::ENOPROTOOPT),
            // The sender's skb->priority (any value: the caller is CAP_NET_ADMIN here).
            // DEVIATION(linux): it rides on every frame (`Frame::priority`), but utcp's devices
            // have one FIFO queue (no pfifo_fast bands), so it reorders nothing between sockets.
            (SOL_SOCKET, SO_PRIORITY) => tp.priority = v as u32,
            // DEVIATION(linux): every destination is on-link on utcp's devices (memlink, a
            // point-to-point TUN), so SOCK_LOCALROUTE changes no route; it is kept for
            // getsockopt and inherited by accepted sockets.
            (SOL_SOCKET, SO_DONTROUTE) => tp.dontroute = v != 0,
            (SOL_SOCKET, SO_REUSEPORT) => tp.reuseport = v != 0,
            // DEVIATION(linux): SO_DEBUG, SO_BROADCAST and SO_NO_CHECK have no effect on a TCP
            // socket in Linux either; stored for getsockopt.
            (SOL_SOCKET, SO_DEBUG) | (SOL_SOCKET, SO_BROADCAST) | (SOL_SOCKET, SO_NO_CHECK) => {
                tp.sockopt_misc.insert((level, name), (v != 0) as i32);
            }
            (SOL_IP, IP_FREEBIND) => tp.freebind = v != 0,
            (SOL_IP, IP_TOS) => {
                // do_ip_setsockopt(): the ECN bits stay TCP's; the priority follows the TOS.
                let tos = ((v & !0x3) as u8) | (tp.tos & 0x3);
                tp.tos = tos;
                tp.priority = crate::ip::rt_tos2priority(tos);
            }
            (SOL_IP, IP_TTL) => {
                if v != -1 && !(1..=255).contains(&v) {
                    return Err(Errno::EINVAL);
                }
                tp.uc_ttl = v;
            }
            (SOL_IP, IP_RECVERR) => {
                tp.sockopt_misc.insert((level, name), (v != 0) as i32);
            }
            (SOL_TCP, TCP_NODELAY) => {
                tp.nodelay = v != 0;
                if v != 0 {
                    g.with_ctx_inner(|tp, ctx| tp.tcp_push_pending_frames(ctx));
                }
            }
            (SOL_TCP, TCP_CORK) => {
                tp.cork = v != 0;
                if v == 0 {
                    g.with_ctx_inner(|tp, ctx| {
                        let mss = tp.tcp_current_mss();
                        tp.__tcp_push_pending_frames(ctx, mss, crate::tcp::output::TCP_NAGLE_PUSH | tp.nonagle());
                    });
                }
            }
            (SOL_TCP, TCP_MAXSEG) => {
                if v != 0 && !(88..=32767).contains(&v) {
                    return Err(Errno::EINVAL);
                }
                tp.user_mss = v as u32;
            }
            (SOL_TCP, TCP_KEEPIDLE) => {
                tp.keepalive_time = in_range(v, 1, 32767)? as u32;
                // tcp_sock_set_keepidle_locked(): a running keepalive timer follows.
                let now = self.now();
                tp.tcp_keepalive_rearm(now, net);
            }
            (SOL_TCP, TCP_KEEPINTVL) => tp.keepalive_intvl = in_range(v, 1, 32767)? as u32,
            (SOL_TCP, TCP_KEEPCNT) => tp.keepalive_probes = in_range(v, 1, 127)? as u8,
            (SOL_TCP, TCP_SYNCNT) => tp.syn_retries = in_range(v, 1, 127)? as u8,
            (SOL_TCP, TCP_LINGER2) => tp.linger2 = Some(v),
            (SOL_TCP, TCP_QUICKACK) => {
                tp.quickack_opt = v != 0;
                if v != 0 {
                    tp.ack.pingpong = 0;
                    let rm = tp.ack.rcv_mss.max(1);
                    tp.ack.quick = (tp.rcv_wnd / (2 * rm)).clamp(2, 16) as u8;
                    g.with_ctx_inner(|tp, ctx| {
                        if tp.ack.pending & crate::tcp::ack_flags::ICSK_ACK_SCHED != 0 {
                            tp.tcp_cleanup_rbuf(ctx, 1);
                            if tp.ack.pending & crate::tcp::ack_flags::ICSK_ACK_SCHED != 0 {
                                tp.tcp_send_ack(ctx);
                            }
                        }
                    });
                } else {
                    tp.ack.pingpong = tp.ack.pingpong.max(1);
                }
            }
            (SOL_TCP, TCP_WINDOW_CLAMP) => {
                if v == 0 {
                    if tp.state != TcpState::Close {
                        return Err(Errno::EINVAL);
                    }
                    tp.window_clamp = 0;
                } else {
                    let min = crate::tcp::SOCK_MIN_RCVBUF / 2;
                    tp.window_clamp = (v as u32).max(min);
                    tp.rcv_ssthresh = tp.rcv_ssthresh.min(tp.window_clamp);
                }
            }
            (SOL_TCP, TCP_INQ) => {
                if !(0..=1).contains(&v) {
                    return Err(Errno::EINVAL);
                }
                tp.recvmsg_inq = v != 0;
            }
            (SOL_TCP, TCP_USER_TIMEOUT) => {
                if v < 0 {
                    return Err(Errno::EINVAL);
                }
                tp.user_timeout_ms = v as u32;
            }
            (SOL_TCP, TCP_NOTSENT_LOWAT) => {
                tp.notsent_lowat = v as u32;
                // A raised limit may let writers go on: sk->sk_write_space() at once.
                g.with_ctx_inner(|tp, ctx| tp.sk_stream_write_space(ctx));
            }
            (SOL_TCP, TCP_DEFER_ACCEPT) => {
                // Seconds, kept as SYN-ACK retransmissions (secs_to_retrans()).
                tp.defer_accept = crate::tcp::listen::secs_to_retrans(v, 1, 120);
            }
            (SOL_SOCKET, _) | (SOL_IP, _) | (SOL_TCP, _) => return Err(Errno::ENOPROTOOPT),
            _ => return Err(Errno::ENOPROTOOPT),
        }
        Ok(())
    }

    /// `getsockopt()`: writes the value into `out` and returns its length (as `optlen`).
    pub fn getsockopt(&self, fd: i32, level: i32, name: i32, out: &mut [u8]) -> SysResult<usize> {
        let s = self.sockfd_lookup(fd)?;
        // ip_getsockopt(): a level that is neither SOL_SOCKET, SOL_TCP nor SOL_IP (setsockopt
        // answers ENOPROTOOPT there).
        if !matches!(level, SOL_SOCKET | SOL_IP | SOL_TCP) {
            return Err(Errno::EOPNOTSUPP);
        }
        if level == SOL_TCP && name == TCP_INFO {
            let info = self.tcp_info(fd)?;
            let b = tcp_info_bytes(&info);
            let n = out.len().min(b.len());
            out[..n].copy_from_slice(&b[..n]);
            return Ok(n);
        }
        let bytes: Vec<u8> = s.sk.peek_tp(|tp| -> SysResult<Vec<u8>> {
            let i = |v: i32| v.to_ne_bytes().to_vec();
            Ok(match (level, name) {
                (SOL_SOCKET, SO_TYPE) => i(SOCK_STREAM),
                (SOL_SOCKET, SO_DOMAIN) => i(AF_INET),
                (SOL_SOCKET, SO_PROTOCOL) => i(IPPROTO_TCP),
                (SOL_SOCKET, SO_ACCEPTCONN) => i((tp.state == TcpState::Listen) as i32),
                (SOL_SOCKET, SO_ERROR) => Vec::new(),
                (SOL_SOCKET, SO_REUSEADDR) => i(tp.reuseaddr as i32),
                (SOL_SOCKET, SO_KEEPALIVE) => i(tp.keepalive as i32),
                (SOL_SOCKET, SO_OOBINLINE) => i(tp.urginline as i32),
                (SOL_SOCKET, SO_RCVBUF) => i(tp.rcvbuf as i32),
                (SOL_SOCKET, SO_SNDBUF) => i(tp.sndbuf as i32),
                (SOL_SOCKET, SO_RCVLOWAT) => i(tp.rcvlowat),
                (SOL_SOCKET, SO_SNDLOWAT) => i(1),
                (SOL_SOCKET, SO_PRIORITY) => i(tp.priority as i32),
                (SOL_SOCKET, SO_DONTROUTE) => i(tp.dontroute as i32),
                (SOL_SOCKET, SO_REUSEPORT) => i(tp.reuseport as i32),
                (SOL_IP, IP_TOS) => i(tp.tos as i32),
                (SOL_IP, IP_TTL) => {
                    i(if tp.uc_ttl < 0 { self.net().sysctl.ip_default_ttl.get() as i32 } else { tp.uc_ttl })
                }
                (SOL_IP, IP_FREEBIND) => i(tp.freebind as i32),
                (SOL_TCP, TCP_USER_TIMEOUT) => i(tp.user_timeout_ms as i32),
                (SOL_TCP, TCP_NOTSENT_LOWAT) => i(tp.notsent_lowat as i32),
                (SOL_TCP, TCP_DEFER_ACCEPT) => i(crate::tcp::listen::retrans_to_secs(tp.defer_accept, 1, 120)),
                (SOL_SOCKET, SO_PEEK_OFF) => i(tp.peek_off),
                (SOL_SOCKET, SO_TIMESTAMP) => i((tp.rx_tstamp_opt == 1) as i32),
                (SOL_SOCKET, SO_TIMESTAMPNS) => i((tp.rx_tstamp_opt == 2) as i32),
                (SOL_SOCKET, SO_BUSY_POLL) => i(tp.ll_usec as i32),
                (SOL_SOCKET, SO_PREFER_BUSY_POLL) => i(tp.prefer_busy_poll as i32),
                (SOL_SOCKET, SO_BUSY_POLL_BUDGET) => i(tp.busy_poll_budget as i32),
                (SOL_SOCKET, SO_INCOMING_NAPI_ID) => i(s.sk.napi_id.load(std::sync::atomic::Ordering::Relaxed) as i32),
                (SOL_SOCKET, SO_LINGER) => {
                    let mut v = i(tp.linger.is_some() as i32);
                    v.extend_from_slice(&(tp.linger.unwrap_or(0) as i32).to_ne_bytes());
                    v
                }
                (SOL_SOCKET, SO_RCVTIMEO) => to_timeval(tp.rcvtimeo).to_vec(),
                (SOL_SOCKET, SO_SNDTIMEO) => to_timeval(tp.sndtimeo).to_vec(),
                (SOL_TCP, TCP_NODELAY) => i(tp.nodelay as i32),
                (SOL_TCP, TCP_CORK) => i(tp.cork as i32),
                (SOL_TCP, TCP_MAXSEG) => i(if tp.state == TcpState::Established {
                    tp.mss_cache
                } else if tp.user_mss != 0 {
                    tp.user_mss
                } else {
                    crate::tcp::TCP_MSS_DEFAULT
                } as i32),
                (SOL_TCP, TCP_KEEPIDLE) => i(if tp.keepalive_time != 0 {
                    tp.keepalive_time as i32
                } else {
                    self.net().sysctl.tcp_keepalive_time.get() as i32
                }),
                (SOL_TCP, TCP_KEEPINTVL) => i(if tp.keepalive_intvl != 0 {
                    tp.keepalive_intvl as i32
                } else {
                    self.net().sysctl.tcp_keepalive_intvl.get() as i32
                }),
                (SOL_TCP, TCP_KEEPCNT) => i(if tp.keepalive_probes != 0 {
                    tp.keepalive_probes as i32
                } else {
                    self.net().sysctl.tcp_keepalive_probes.get() as i32
                }),
                (SOL_TCP, TCP_SYNCNT) => i(if tp.syn_retries != 0 {
                    tp.syn_retries as i32
                } else {
                    self.net().sysctl.tcp_syn_retries.get() as i32
                }),
                (SOL_TCP, TCP_LINGER2) => i(tp.linger2.unwrap_or(self.net().sysctl.tcp_fin_timeout.get() as i32)),
                (SOL_TCP, TCP_QUICKACK) => i((tp.ack.quick > 0 && tp.ack.pingpong == 0) as i32),
                (SOL_TCP, TCP_WINDOW_CLAMP) => i(tp.window_clamp as i32),
                (SOL_TCP, TCP_INQ) => i(tp.recvmsg_inq as i32),
                (SOL_TCP, TCP_CONGESTION) => {
                    let mut v = tp.ca_algo.name().as_bytes().to_vec();
                    v.resize(16, 0); // TCP_CA_NAME_MAX
                    v
                }
                (l, n) => match tp.sockopt_misc.get(&(l, n)) {
                    Some(v) => i(*v),
                    None if matches!(
                        (l, n),
                        (SOL_IP, IP_RECVERR)
                            | (SOL_SOCKET, SO_DEBUG)
                            | (SOL_SOCKET, SO_BROADCAST)
                            | (SOL_SOCKET, SO_NO_CHECK)
                    ) =>
                    {
                        i(0)
                    }
                    None => return Err(Errno::ENOPROTOOPT),
                },
            })
        })?;
        let bytes = if level == SOL_SOCKET && name == SO_ERROR {
            let mut g = s.sk.lock_sock();
            let e = g.tp_mut().err.take().map(|e| e as i32).unwrap_or(0);
            s.sk.release_sock(g);
            e.to_ne_bytes().to_vec()
        } else {
            bytes
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

    /// `ioctl()`: FIONREAD/SIOCINQ, SIOCATMARK, SIOCOUTQ, SIOCOUTQNSD (`tcp_ioctl`).
    pub fn ioctl(&self, fd: i32, req: u64) -> SysResult<i32> {
        let s = self.sockfd_lookup(fd)?;
        let mut g = s.sk.lock_sock();
        let tp = g.tp();
        let r = match req {
            FIONREAD => {
                if tp.state == TcpState::Listen {
                    Err(Errno::EINVAL)
                } else {
                    Ok(tp.inq() as i32)
                }
            }
            SIOCATMARK => Ok(tp.at_mark() as i32),
            SIOCOUTQ => {
                if tp.state == TcpState::Listen {
                    Err(Errno::EINVAL)
                } else if matches!(tp.state, TcpState::SynSent | TcpState::SynRecv) {
                    Ok(0)
                } else {
                    Ok(tp.write_seq.diff(tp.snd_una) as i32)
                }
            }
            SIOCOUTQNSD => {
                if tp.state == TcpState::Listen {
                    Err(Errno::EINVAL)
                } else if matches!(tp.state, TcpState::SynSent | TcpState::SynRecv) {
                    Ok(0)
                } else {
                    Ok(tp.write_seq.diff(tp.snd_nxt) as i32)
                }
            }
            _ => Err(Errno::ENOTTY),
        };
        let _ = g.tp_mut();
        s.sk.release_sock(g);
        r
    }

    /// `getsockname()`.
    pub fn getsockname(&self, fd: i32) -> SysResult<SocketAddrV4> {
        let s = self.sockfd_lookup(fd)?;
        Ok(s.sk.peek_tp(|tp| SocketAddrV4::new(tp.saddr, tp.sport)))
    }

    /// `getpeername()`.
    pub fn getpeername(&self, fd: i32) -> SysResult<SocketAddrV4> {
        let s = self.sockfd_lookup(fd)?;
        s.sk.peek_tp(|tp| {
            if matches!(tp.sk_state(), TcpState::Close | TcpState::Listen | TcpState::SynSent) {
                Err(Errno::ENOTCONN)
            } else {
                Ok(SocketAddrV4::new(tp.daddr, tp.dport))
            }
        })
    }

    /// `getsockopt(TCP_INFO)` as a struct (`tcp_get_info`).
    pub fn tcp_info(&self, fd: i32) -> SysResult<TcpInfo> {
        let s = self.sockfd_lookup(fd)?;
        let now = self.now();
        Ok(s.sk.peek_tp(|tp| tcp_get_info(tp, now, self.net())))
    }
}

/// `import_single_range()`: the user buffer as an iov, clamped to MAX_RW_COUNT; a NULL (or
/// short) buffer faults on first copy.
fn import_single_range<'a>(buf: Option<&'a mut [u8]>, len: usize) -> IovIter<'a> {
    let len = len.min(MAX_RW_COUNT);
    match buf {
        Some(b) if b.len() >= len => IovIter::new(vec![&mut b[..len]], MAX_RW_COUNT),
        Some(b) => {
            let n = b.len();
            let mut it = IovIter::new(vec![&mut b[..n]], MAX_RW_COUNT);
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

/// `tcp_poll()`.
pub(super) fn tcp_poll(sock: &Socket) -> u32 {
    const IN: u32 = 0x1 | 0x40;
    const PRI: u32 = 0x2;
    const OUT: u32 = 0x4 | 0x100;
    const ERR: u32 = 0x8;
    const HUP: u32 = 0x10;
    const RDHUP: u32 = 0x2000;
    let self_net = sock.sk.net();
    sock.sk.peek_tp(|tp| {
        if tp.state == TcpState::Listen {
            return if tp.listen.as_ref().is_some_and(|l| !l.accept_queue.is_empty()) { IN } else { 0 };
        }
        let mut mask = 0;
        if tp.shutdown == RCV_SHUTDOWN | SEND_SHUTDOWN || tp.sk_state() == TcpState::Close {
            mask |= HUP;
        }
        if tp.shutdown & RCV_SHUTDOWN != 0 {
            mask |= IN | RDHUP;
        }
        if tp.state != TcpState::SynSent && tp.state != TcpState::SynRecv {
            let mut target = tp.rcvlowat.max(1) as i64;
            if tp.urg_data != 0 && tp.urg_seq == tp.copied_seq && !tp.urginline {
                target += 1;
            }
            let avail = tp.rcv_nxt.diff(tp.copied_seq) as i64;
            // tcp_stream_is_readable() → tcp_epollin_ready(), with tcp_rmem_pressure().
            let rmem_pressure = tp.rmem_alloc as i64 > tp.rcvbuf as i64 - (tp.rcvbuf >> 3) as i64;
            if avail > 0 && (avail >= target || rmem_pressure || tp.receive_window() <= tp.ack.rcv_mss) {
                mask |= IN;
            }
            if tp.shutdown & SEND_SHUTDOWN == 0 {
                if tp.sk_stream_is_writeable(self_net) {
                    mask |= OUT;
                } else {
                    // Ask for a write_space wakeup when ACKs free space.
                    tp.nospace.store(true, core::sync::atomic::Ordering::SeqCst);
                }
            } else {
                mask |= OUT;
            }
            if tp.urg_data & crate::tcp::TCP_URG_VALID != 0 {
                mask |= PRI;
            }
        }
        if tp.err.is_some() {
            mask |= ERR;
        }
        mask
    })
}
