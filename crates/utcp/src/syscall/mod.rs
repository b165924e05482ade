//! The syscall layer (net/socket.c): fd-level, Linux-shaped calls with Linux errno, as the
//! seed's entry points do it — `import_single_range` (MAX_RW_COUNT clamp, faulting buffers),
//! `sockfd_lookup_light` (EBADF, ENOTSOCK), O_NONBLOCK → MSG_DONTWAIT, `move_addr_to_user`,
//! control messages and `msg_flags`.
//!
//! Buffers are `Option<&mut [u8]>` plus a length, as C passes them: `None` is a NULL pointer,
//! which faults (EFAULT) only when bytes would actually be copied through it, exactly as
//! the kernel's `copy_to_user` does.

#[doc(hidden)]
pub mod epoll;
#[doc(hidden)]
pub mod fdtable;
mod files;
mod ops;
#[doc(hidden)]
pub mod pipe;
pub mod sockaddr;
mod splice;

#[doc(hidden)]
pub use files::file_poll;
pub use files::EPOLL_CLOEXEC;
pub use ops::{parse_cmsgs, sockaddr_in, TcpInfo, MSG_NOSIGNAL};

use crate::errno::{Errno, SysResult};
/// A per-call interruption token for the `*_cancellable` calls: cancelling it makes the call
/// return EINTR, as a signal does to a blocked Linux call.
pub use crate::socket::sock::Cancel;
use crate::socket::Socket;
use crate::stack::StackCore;
use fdtable::{FdTable, File};
use std::sync::Arc;

pub use crate::uapi::{AF_INET, AF_INET6, O_NONBLOCK, SOL_IPV6};
/// `AF_UNSPEC`.
pub const AF_UNSPEC: i32 = 0;
/// `SOCK_STREAM`.
pub const SOCK_STREAM: i32 = 1;
/// `SOCK_DGRAM`.
pub const SOCK_DGRAM: i32 = 2;
/// `SOCK_NONBLOCK`.
pub const SOCK_NONBLOCK: i32 = 0o4000;
/// `SOCK_CLOEXEC`.
pub const SOCK_CLOEXEC: i32 = 0o2000000;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: i32 = 6;
/// `O_RDWR`.
pub const O_RDWR: i32 = 2;
/// `F_GETFL`.
pub const F_GETFL: i32 = 3;
/// `F_SETFL`.
pub const F_SETFL: i32 = 4;
/// `F_GETFD`.
pub const F_GETFD: i32 = 1;
/// `F_SETFD`.
pub const F_SETFD: i32 = 2;
/// `F_DUPFD`.
pub const F_DUPFD: i32 = 0;
/// `F_DUPFD_CLOEXEC`.
pub const F_DUPFD_CLOEXEC: i32 = 1030;
/// `FD_CLOEXEC`.
pub const FD_CLOEXEC: i32 = 1;
/// `O_CLOEXEC`.
pub const O_CLOEXEC: i32 = 0o2000000;
/// `MAX_RW_COUNT` (INT_MAX & PAGE_MASK).
pub const MAX_RW_COUNT: usize = (i32::MAX as usize) & !4095;
/// `UIO_MAXIOV`.
pub const UIO_MAXIOV: usize = 1024;
pub use crate::uapi::{SOL_IP, SOL_SOCKET, SOL_TCP};
/// `SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`.
pub const SHUT_RD: i32 = 0;
/// `SHUT_WR`.
pub const SHUT_WR: i32 = 1;
/// `SHUT_RDWR`.
pub const SHUT_RDWR: i32 = 2;
pub use crate::uapi::{
    FIOCLEX, FIONBIO, FIONCLEX, FIONREAD, SIOCATMARK, SIOCGSTAMP, SIOCGSTAMPNS, SIOCOUTQ, SIOCOUTQNSD,
};
/// `TCP_CM_INQ` (= TCP_INQ).
pub const TCP_CM_INQ: i32 = 36;

pub use crate::uapi::opt;

/// One iovec: a buffer (None = NULL) and its claimed length.
pub struct IoVec<'a> {
    /// The memory, or NULL.
    pub base: Option<&'a mut [u8]>,
    /// `iov_len`.
    pub len: usize,
}

/// `struct msghdr` for `recvmsg`.
#[derive(Default)]
pub struct MsgHdr<'a> {
    /// `msg_name` buffer (None = NULL).
    pub name: Option<&'a mut [u8]>,
    /// `msg_namelen` (in: buffer size; out: address length).
    pub namelen: u32,
    /// `msg_iov`.
    pub iov: Vec<IoVec<'a>>,
    /// `msg_control` buffer (None = NULL).
    pub control: Option<&'a mut [u8]>,
    /// `msg_controllen` (in: size; out: bytes used).
    pub controllen: usize,
    /// `msg_flags` (out).
    pub flags: i32,
}

/// A parsed control message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmsg {
    /// `cmsg_level`.
    pub level: i32,
    /// `cmsg_type`.
    pub ty: i32,
    /// `cmsg_len` as written.
    pub len: usize,
    /// Payload (possibly truncated).
    pub data: Vec<u8>,
}

/// `struct pollfd`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PollFd {
    /// fd.
    pub fd: i32,
    /// Requested events.
    pub events: i16,
    /// Returned events.
    pub revents: i16,
}

/// A userspace TCP/IP stack with a Linux socket API. See the crate docs.
pub struct Stack {
    /// Shared state (sockets, tables, device, timers): utcp's internals, for its own crates
    /// and tests (not covered by semantic versioning).
    #[doc(hidden)]
    pub core: Arc<StackCore>,
    fds: FdTable,
    /// Every epoll instance, so the last close of a file can leave their interest lists.
    epolls: crate::sync::Mutex<Vec<std::sync::Weak<epoll::Epoll>>>,
    /// Offset from the clock to CLOCK_REALTIME, for SO_TIMESTAMP.
    pub realtime_offset_ns: i64,
}

impl Stack {
    /// A stack on `core`.
    #[doc(hidden)]
    pub fn from_core(core: Arc<StackCore>) -> Stack {
        let realtime_offset_ns = if core.clock.is_virtual() {
            0
        } else {
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
            wall - core.clock.now().nanos() as i64
        };
        Stack { core, fds: FdTable::default(), epolls: Default::default(), realtime_offset_ns }
    }

    /// This stack's counters (Linux's SNMP and netstat MIBs, nstat names): what `nstat`
    /// reads of a network namespace. The stable way in for a program (the same as
    /// `stack.core.net.mib`).
    pub fn mib(&self) -> &crate::mib::Mib {
        &self.core.net.mib
    }

    /// This stack's sysctls (`net.core.*`, `net.ipv4.*`, `net.ipv6.*`), as a network
    /// namespace's `/proc/sys/net`: read and set them here (the same as `stack.core.net.sysctl`).
    pub fn sysctl(&self) -> &crate::sysctl::Sysctls {
        &self.core.net.sysctl
    }

    /// The fd table.
    #[doc(hidden)]
    pub fn fds(&self) -> &FdTable {
        &self.fds
    }

    /// `sockfd_lookup_light()`.
    #[doc(hidden)]
    pub fn sockfd_lookup(&self, fd: i32) -> SysResult<Arc<Socket>> {
        self.fds.sockfd_lookup(fd)
    }

    /// Installs a socket as a new fd.
    pub(crate) fn install_socket(&self, s: Arc<Socket>, cloexec: bool) -> SysResult<i32> {
        self.fds.install_flags(File::Socket(s), cloexec)
    }

    /// `recv()` = `__sys_recvfrom(fd, buf, len, flags, NULL, NULL)`.
    pub fn recv(&self, fd: i32, buf: Option<&mut [u8]>, len: usize, flags: i32) -> SysResult<usize> {
        self.recvfrom(fd, buf, len, flags, None, None)
    }

    /// `recv()` with a per-call interruption token (EINTR when cancelled).
    pub fn recv_cancellable(&self, fd: i32, buf: &mut [u8], flags: i32, cancel: &Cancel) -> SysResult<usize> {
        let len = buf.len();
        self.__sys_recvfrom(fd, Some(buf), len, flags, None, None, Some(cancel), &mut Default::default())
    }

    /// `recvfrom()`. `addr`/`addrlen` are the user's sockaddr buffer and its length (None =
    /// NULL pointers).
    pub fn recvfrom(
        &self,
        fd: i32,
        buf: Option<&mut [u8]>,
        len: usize,
        flags: i32,
        addr: Option<&mut [u8]>,
        addrlen: Option<&mut u32>,
    ) -> SysResult<usize> {
        self.__sys_recvfrom(fd, buf, len, flags, addr, addrlen, None, &mut Default::default())
    }
}

/// `tcp_poll()`: the readiness mask of a socket.
#[doc(hidden)]
pub fn tcp_poll(sock: &Socket) -> u32 {
    crate::tcp::poll::tcp_poll(&sock.sk)
}
