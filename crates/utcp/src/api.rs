//! Typed wrappers: [`TcpListener`] and [`TcpStream`] (implementing `std::io::Read`/`Write`) over
//! the fd-level API, and [`Host`]: a stack with its device and host threads.

use crate::errno::Errno;
use crate::host::{HostThreads, MonotonicClock};
use crate::netdev::memlink::{self, LinkConfig, MemPort};
use crate::netdev::NetDevice;
use crate::stack::StackCore;
use crate::syscall::{Stack, AF_INET, AF_INET6, SHUT_RD, SHUT_RDWR, SHUT_WR, SOCK_STREAM, SOL_TCP};
use crate::time::Clock;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::sync::Arc;

/// A stack attached to a device, with its timer (and NAPI) threads.
pub struct Host {
    /// The stack.
    pub stack: Arc<Stack>,
    /// The device port.
    pub port: Option<Arc<MemPort>>,
    threads: Option<HostThreads>,
}

impl Host {
    /// The stack's address.
    pub fn addr(&self) -> Ipv4Addr {
        self.stack.core.net.local_addr()
    }

    /// The stack's IPv6 address, if it has one.
    pub fn addr6(&self) -> Option<Ipv6Addr> {
        self.stack.core.net.local_addr6()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(t) = self.threads.take() {
            t.stop();
        }
    }
}

/// Address of the first host on a memlink (TEST-NET-1, never routed).
pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Address of the second host on a memlink.
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// IPv6 address of the first host on a memlink (a unique local address, RFC 4193).
pub const ADDR6_A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xa);
/// IPv6 address of the second host on a memlink.
pub const ADDR6_B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xb);
/// The on-link prefix length of the memlink's IPv6 addresses (`fd00::/64`).
pub const PREFIX6_LEN: u8 = 64;

/// Two stacks joined by a memlink, running in real time.
pub fn memlink_pair(cfg: LinkConfig) -> (Host, Host) {
    let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::default());
    memlink_pair_with_clock(cfg, clock, true)
}

/// Two stacks joined by a memlink on `clock`; with `threads`, timer (and NAPI) threads run.
pub fn memlink_pair_with_clock(cfg: LinkConfig, clock: Arc<dyn Clock>, threads: bool) -> (Host, Host) {
    let mtu = cfg.mtu;
    let seed = cfg.seed;
    let (pa, pb) = memlink::pair(cfg, clock.clone());
    let mk = |addr: Ipv4Addr, addr6: Ipv6Addr, port: Arc<MemPort>, secret: u64| {
        let core = StackCore::new(addr, mtu, clock.clone(), secret);
        core.net.set_addr6(addr6, PREFIX6_LEN);
        core.attach_device(port.clone() as Arc<dyn NetDevice>);
        let th = threads.then(|| HostThreads::start(core.clone(), Some(port.clone())));
        Host { stack: Arc::new(Stack::from_core(core)), port: Some(port), threads: th }
    };
    let a = mk(ADDR_A, ADDR6_A, pa, seed ^ 0x5151_5151);
    let b = mk(ADDR_B, ADDR6_B, pb, seed ^ 0xa7a7_a7a7);
    (a, b)
}

/// The socket family for an address.
fn family_of(a: &SocketAddr) -> i32 {
    if a.is_ipv6() {
        AF_INET6
    } else {
        AF_INET
    }
}

fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// A listening socket.
pub struct TcpListener {
    stack: Arc<Stack>,
    fd: i32,
}

impl TcpListener {
    /// `socket` + `bind` + `listen(backlog)`: an AF_INET socket for an IPv4 address, an
    /// AF_INET6 one (dual-stack unless `net.ipv6.bindv6only`) for an IPv6 address.
    pub fn bind(stack: &Arc<Stack>, addr: impl Into<SocketAddr>, backlog: i32) -> io::Result<TcpListener> {
        let addr = addr.into();
        let fd = stack.socket(family_of(&addr), SOCK_STREAM, 0).map_err(io_err)?;
        let l = TcpListener { stack: stack.clone(), fd };
        stack.setsockopt_int(fd, crate::syscall::SOL_SOCKET, crate::syscall::opt::SO_REUSEADDR, 1).map_err(io_err)?;
        stack.bind(fd, addr).map_err(io_err)?;
        stack.listen(fd, backlog).map_err(io_err)?;
        Ok(l)
    }
    /// `accept()`: the peer as the listener's family shows it (`::ffff:a.b.c.d` for an IPv4
    /// peer of an AF_INET6 listener).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, peer) = self.stack.accept4_addr(self.fd, 0).map_err(io_err)?;
        Ok((TcpStream { stack: self.stack.clone(), fd }, peer))
    }
    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stack.getsockname_addr(self.fd).map_err(io_err)
    }
    /// The fd.
    pub fn fd(&self) -> i32 {
        self.fd
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let _ = self.stack.close(self.fd);
    }
}

/// A connected socket.
pub struct TcpStream {
    stack: Arc<Stack>,
    fd: i32,
}

impl TcpStream {
    /// `socket` + `connect`: AF_INET for an IPv4 address, AF_INET6 for an IPv6 one (an
    /// IPv4-mapped one connects over IPv4).
    pub fn connect(stack: &Arc<Stack>, addr: impl Into<SocketAddr>) -> io::Result<TcpStream> {
        let addr = addr.into();
        let fd = stack.socket(family_of(&addr), SOCK_STREAM, 0).map_err(io_err)?;
        let s = TcpStream { stack: stack.clone(), fd };
        stack.connect(fd, addr).map_err(io_err)?;
        Ok(s)
    }
    /// The fd.
    pub fn fd(&self) -> i32 {
        self.fd
    }
    /// Takes ownership of connected socket `fd` of `stack` (closed on drop).
    pub fn from_fd(stack: &Arc<Stack>, fd: i32) -> TcpStream {
        TcpStream { stack: stack.clone(), fd }
    }
    /// The stack.
    pub fn stack(&self) -> &Arc<Stack> {
        &self.stack
    }
    /// `shutdown()`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let h = match how {
            Shutdown::Read => SHUT_RD,
            Shutdown::Write => SHUT_WR,
            Shutdown::Both => SHUT_RDWR,
        };
        self.stack.shutdown(self.fd, h).map_err(io_err)
    }
    /// O_NONBLOCK on or off.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        let fl = self.stack.fcntl(self.fd, crate::syscall::F_GETFL, 0).map_err(io_err)?;
        let fl = if on { fl | crate::syscall::O_NONBLOCK } else { fl & !crate::syscall::O_NONBLOCK };
        self.stack.fcntl(self.fd, crate::syscall::F_SETFL, fl).map_err(io_err)?;
        Ok(())
    }
    /// TCP_NODELAY.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.stack.setsockopt_int(self.fd, SOL_TCP, crate::syscall::opt::TCP_NODELAY, on as i32).map_err(io_err)
    }
    /// The local address (`getsockname`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stack.getsockname_addr(self.fd).map_err(io_err)
    }
    /// The peer's address (`getpeername`).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stack.getpeername_addr(self.fd).map_err(io_err)
    }
    /// SO_BUSY_POLL in µs.
    pub fn set_busy_poll(&self, usecs: u32) -> io::Result<()> {
        self.stack
            .setsockopt_int(self.fd, crate::syscall::SOL_SOCKET, crate::syscall::opt::SO_BUSY_POLL, usecs as i32)
            .map_err(io_err)
    }
}

impl io::Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.stack.recv(self.fd, Some(buf), len, 0).map_err(io_err)
    }
}

impl io::Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stack.send(self.fd, Some(buf), buf.len(), crate::uapi::MSG_NOSIGNAL).map_err(io_err)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let _ = self.stack.close(self.fd);
    }
}
