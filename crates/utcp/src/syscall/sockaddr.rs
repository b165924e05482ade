//! The sockaddr-level entry points (net/socket.c `__sys_bind`, `__sys_connect`,
//! `__sys_getsockname`, `__sys_getpeername`): the address as the raw bytes and length C
//! passes, checked as `move_addr_to_kernel`, `inet_bind` and `__inet_stream_connect` check
//! them, then handed to the typed calls.

use super::ops::move_addr_to_user;
use super::*;
use crate::socket::SocketState;
use crate::tcp::TcpState;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// `sizeof(struct sockaddr_storage)`.
pub const SOCKADDR_STORAGE_LEN: usize = 128;
/// `sizeof(struct sockaddr_in)`.
pub const SOCKADDR_IN_LEN: usize = 16;

fn family(addr: &[u8]) -> u16 {
    u16::from_ne_bytes([addr[0], addr[1]])
}

/// The address and port of a sockaddr_in of at least 16 bytes.
fn inet(addr: &[u8]) -> SocketAddrV4 {
    let ip = Ipv4Addr::new(addr[4], addr[5], addr[6], addr[7]);
    SocketAddrV4::new(ip, u16::from_be_bytes([addr[2], addr[3]]))
}

/// The sockaddr_in6 of at least [`SIN6_LEN_RFC2133`] bytes (a shorter one has no
/// `sin6_scope_id`: 0).
fn inet6(addr: &[u8]) -> SocketAddrV6 {
    let port = u16::from_be_bytes([addr[2], addr[3]]);
    let flow = u32::from_be_bytes([addr[4], addr[5], addr[6], addr[7]]);
    let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&addr[8..24]).expect("24 bytes"));
    let scope = addr.get(24..28).map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
    SocketAddrV6::new(ip, port, flow, scope)
}

/// `sizeof(struct sockaddr_in6)`, and the length before `sin6_scope_id`.
pub use crate::uapi::{SIN6_LEN_RFC2133, SOCKADDR_IN6_LEN};

impl Stack {
    fn is_inet6(&self, fd: i32) -> bool {
        self.sockfd_lookup(fd).is_ok_and(|s| s.sk.peek_tp(|tp| tp.family == AF_INET6))
    }
}

impl Stack {
    /// `bind(fd, addr, addr.len())`.
    pub fn bind_raw(&self, fd: i32, addr: &[u8]) -> SysResult<()> {
        self.sockfd_lookup(fd)?;
        // move_addr_to_kernel()
        if addr.len() > SOCKADDR_STORAGE_LEN {
            return Err(Errno::EINVAL);
        }
        if self.is_inet6(fd) {
            // inet6_bind_sk(): addr_len < SIN6_LEN_RFC2133 → EINVAL; __inet6_bind(): a family
            // other than AF_INET6 → EAFNOSUPPORT.
            if addr.len() < SIN6_LEN_RFC2133 {
                return Err(Errno::EINVAL);
            }
            if family(addr) as i32 != AF_INET6 {
                return Err(Errno::EAFNOSUPPORT);
            }
            return self.bind(fd, SocketAddr::V6(inet6(addr)));
        }
        // inet_bind_sk()
        if addr.len() < SOCKADDR_IN_LEN {
            return Err(Errno::EINVAL);
        }
        let a = inet(addr);
        // __inet_bind(): AF_UNSPEC is accepted (as AF_INET) only with INADDR_ANY.
        let f = family(addr) as i32;
        if f != AF_INET && (f != AF_UNSPEC || !a.ip().is_unspecified()) {
            return Err(Errno::EAFNOSUPPORT);
        }
        self.bind(fd, a)
    }

    /// `connect(fd, addr, addr.len())` (`__inet_stream_connect`, `tcp_v4_connect`).
    pub fn connect_raw(&self, fd: i32, addr: &[u8]) -> SysResult<()> {
        self.connect_raw_cancellable(fd, addr, None)
    }

    /// [`Stack::connect_raw`] with an interruption token: a blocking connect that is
    /// cancelled returns EINTR (the handshake goes on, as after a signal).
    pub fn connect_raw_cancellable(&self, fd: i32, addr: &[u8], cancel: Option<&Cancel>) -> SysResult<()> {
        // __sys_connect(): the fd (EBADF), move_addr_to_kernel(), then sock_from_file()
        // (ENOTSOCK), unlike bind(), which looks the socket up first.
        self.fds().get(fd)?;
        if addr.len() > SOCKADDR_STORAGE_LEN {
            return Err(Errno::EINVAL);
        }
        let s = self.sockfd_lookup(fd)?;
        if addr.len() < 2 {
            return Err(Errno::EINVAL);
        }
        if family(addr) as i32 == AF_UNSPEC {
            // sk->sk_prot->disconnect(): tcp_disconnect() always succeeds.
            let mut g = s.sk.lock_sock();
            crate::tcp::close::tcp_disconnect(&s.sk, &mut g);
            s.set_state(SocketState::Unconnected);
            s.sk.release_sock(g);
            s.sk.wake_all();
            return Ok(());
        }
        // tcp_v4_connect() runs (and checks the address) only on an unconnected socket in
        // TCP_CLOSE; the other states answer first in connect().
        let fresh = s.state() == SocketState::Unconnected && s.sk.peek_tp(|tp| tp.state == TcpState::Close);
        if !fresh {
            return self.connect_cancellable(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), cancel);
        }
        if s.sk.peek_tp(|tp| tp.family == AF_INET6) {
            // tcp_v6_connect(): addr_len < SIN6_LEN_RFC2133 → EINVAL, then the family.
            if addr.len() < SIN6_LEN_RFC2133 {
                return Err(Errno::EINVAL);
            }
            if family(addr) as i32 != AF_INET6 {
                return Err(Errno::EAFNOSUPPORT);
            }
            return self.connect_cancellable(fd, SocketAddr::V6(inet6(addr)), cancel);
        }
        if addr.len() < SOCKADDR_IN_LEN {
            return Err(Errno::EINVAL);
        }
        if family(addr) as i32 != AF_INET {
            return Err(Errno::EAFNOSUPPORT);
        }
        let a = inet(addr);
        // ip_route_connect(): multicast and broadcast routes are refused.
        if a.ip().is_multicast() || a.ip().is_broadcast() {
            return Err(Errno::ENETUNREACH);
        }
        self.connect_cancellable(fd, a, cancel)
    }

    /// `getsockname(fd, out, &len)`: copies at most `len` bytes, sets `len` to 16 (28 for an
    /// AF_INET6 socket).
    pub fn getsockname_raw(&self, fd: i32, out: Option<&mut [u8]>, len: &mut u32) -> SysResult<()> {
        let (b, n) = crate::uapi::sockaddr_bytes(&self.getsockname_addr(fd)?);
        move_addr_to_user(&b[..n], out, Some(len))
    }

    /// `getpeername(fd, out, &len)`: copies at most `len` bytes, sets `len` to 16 (or 28).
    pub fn getpeername_raw(&self, fd: i32, out: Option<&mut [u8]>, len: &mut u32) -> SysResult<()> {
        let (b, n) = crate::uapi::sockaddr_bytes(&self.getpeername_addr(fd)?);
        move_addr_to_user(&b[..n], out, Some(len))
    }
}
