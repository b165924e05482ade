//! tokio sockets over a utcp [`Stack`] (the `tokio` feature): [`TcpListener`] and [`TcpStream`]
//! with `AsyncRead`/`AsyncWrite`, shaped like `tokio::net`'s.
//!
//! A task that would block is parked on the socket's own wait queue (see `tokio_wait.rs`) and
//! woken by the stack's wakeups, as epoll is: the runtime needs no I/O driver and no timer,
//! any runtime works, multi-threaded included, and nothing polls. The stack's threads (timers,
//! NAPI: [`crate::api::Host`]) or the calls of other tasks and threads move the connection on.
//!
//! Every call is the fd-level call of [`Stack`], non-blocking (`O_NONBLOCK` and `MSG_DONTWAIT`),
//! and an error is `std::io::Error::from_raw_os_error(errno)`: `raw_os_error()` gives Linux's
//! errno back.
//!
//! ```
//! use std::net::SocketAddr;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use utcp::api::{memlink_pair, ADDR_B};
//! use utcp::netdev::memlink::LinkConfig;
//!
//! # fn main() -> std::io::Result<()> {
//! let (a, b) = memlink_pair(LinkConfig::default()); // two stacks on an in-memory wire
//! // Any runtime: this one has no I/O driver and no timer, and needs neither.
//! let rt = tokio::runtime::Builder::new_multi_thread().build()?;
//! rt.block_on(async {
//!     let addr = SocketAddr::from((ADDR_B, 7)); // or an IPv6 one: api::ADDR6_B
//!     let listener = utcp::tokio::TcpListener::bind(&b.stack, addr).await?;
//!     let mut client = utcp::tokio::TcpStream::connect(&a.stack, addr).await?;
//!     let (mut server, _peer) = listener.accept().await?;
//!     client.write_all(b"ping").await?;
//!     client.shutdown().await?; // shutdown(SHUT_WR): the server reads EOF after the bytes
//!     let mut got = Vec::new();
//!     server.read_to_end(&mut got).await?;
//!     assert_eq!(got, b"ping");
//!     Ok(())
//! })
//! # }
//! ```

use crate::errno::Errno;
use crate::syscall::{Stack, AF_INET, AF_INET6, SHUT_WR, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET, SOL_TCP};
use crate::tcp::recvmsg::{MSG_DONTWAIT, MSG_PEEK};
use crate::tokio_wait::{io_err, Direction, Registration};
use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub use crate::tokio_split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};

/// `listen()` backlog of [`TcpListener::bind`] (the one `tokio::net::TcpListener::bind` uses).
pub const DEFAULT_BACKLOG: i32 = 1024;

/// A socket of `stack` (non-blocking) for `addr`'s family (AF_INET6 for an IPv6 address,
/// IPv4-mapped ones included, as `std`/tokio open them) and its wait queue entry.
fn new_socket(stack: &Arc<Stack>, addr: &SocketAddr) -> io::Result<(i32, Registration)> {
    let family = if addr.is_ipv6() { AF_INET6 } else { AF_INET };
    let fd = stack.socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0).map_err(io_err)?;
    match stack.sockfd_lookup(fd) {
        Ok(s) => Ok((fd, Registration::new(s))),
        Err(e) => {
            let _ = stack.close(fd);
            Err(io_err(e))
        }
    }
}

/// A listening socket (`socket` + `bind` + `listen`) whose [`accept`](TcpListener::accept)
/// waits for a connection without blocking the runtime.
pub struct TcpListener {
    stack: Arc<Stack>,
    fd: i32,
    reg: Registration,
}

impl TcpListener {
    /// `socket`, `SO_REUSEADDR` (as tokio sets it), `bind(addr)`, `listen(DEFAULT_BACKLOG)`.
    /// An IPv6 address gives an AF_INET6 listener, dual-stack unless `net.ipv6.bindv6only`
    /// (IPv4 peers then show as `::ffff:a.b.c.d`).
    pub async fn bind(stack: &Arc<Stack>, addr: impl Into<SocketAddr>) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(stack, addr, DEFAULT_BACKLOG)
    }

    /// [`TcpListener::bind`] with the `listen()` backlog given (none of it blocks).
    pub fn bind_with_backlog(stack: &Arc<Stack>, addr: impl Into<SocketAddr>, backlog: i32) -> io::Result<TcpListener> {
        let addr = addr.into();
        let (fd, reg) = new_socket(stack, &addr)?;
        let l = TcpListener { stack: stack.clone(), fd, reg };
        stack.setsockopt_int(fd, SOL_SOCKET, crate::syscall::opt::SO_REUSEADDR, 1).map_err(io_err)?;
        stack.bind(fd, addr).map_err(io_err)?;
        stack.listen(fd, backlog).map_err(io_err)?;
        Ok(l)
    }

    /// `accept4(SOCK_NONBLOCK)`: the next connection and its peer's address.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection to accept; `Pending` parks the task until the listener's next
    /// wakeup.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (fd, peer) = std::task::ready!(self
            .reg
            .poll_io(cx, Direction::Read, || { self.stack.accept4_addr(self.fd, SOCK_NONBLOCK) }))?;
        Poll::Ready(TcpStream::from_accepted(&self.stack, fd).map(|s| (s, peer)))
    }

    /// `getsockname()`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stack.getsockname_addr(self.fd).map_err(io_err)
    }

    /// The fd (in `stack`'s fd table).
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// The stack.
    pub fn stack(&self) -> &Arc<Stack> {
        &self.stack
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let _ = self.stack.close(self.fd);
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener").field("fd", &self.fd).finish()
    }
}

/// What a stream and its halves share: the fd, closed when the last of them goes.
pub(crate) struct StreamInner {
    stack: Arc<Stack>,
    fd: i32,
    reg: Registration,
}

impl StreamInner {
    pub(crate) fn poll_read(&self, cx: &Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let b = buf.initialize_unfilled();
        let len = b.len();
        let n = std::task::ready!(self
            .reg
            .poll_io(cx, Direction::Read, || { self.stack.recv(self.fd, Some(&mut *b), len, MSG_DONTWAIT) }))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }

    pub(crate) fn poll_peek(&self, cx: &Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<usize>> {
        let b = buf.initialize_unfilled();
        let len = b.len();
        let n = std::task::ready!(self.reg.poll_io(cx, Direction::Read, || {
            self.stack.recv(self.fd, Some(&mut *b), len, MSG_DONTWAIT | MSG_PEEK)
        }))?;
        buf.advance(n);
        Poll::Ready(Ok(n))
    }

    pub(crate) fn poll_write(&self, cx: &Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let flags = MSG_DONTWAIT | crate::syscall::MSG_NOSIGNAL;
        self.reg.poll_io(cx, Direction::Write, || self.stack.send(self.fd, Some(buf), buf.len(), flags))
    }

    pub(crate) fn poll_write_vectored(&self, cx: &Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let flags = MSG_DONTWAIT | crate::syscall::MSG_NOSIGNAL;
        let iov: Vec<(Option<&[u8]>, usize)> =
            bufs.iter().take(crate::syscall::UIO_MAXIOV).map(|b| (Some(&**b), b.len())).collect();
        self.reg.poll_io(cx, Direction::Write, || self.stack.sendmsg(self.fd, &iov, flags))
    }

    /// `shutdown(SHUT_WR)`: the FIN goes after what is queued.
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        self.stack.shutdown(self.fd, SHUT_WR).map_err(io_err)
    }

    pub(crate) fn poll_ready(&self, cx: &Context<'_>, dir: Direction) -> Poll<io::Result<()>> {
        self.reg.poll_ready(cx, dir).map(|_| Ok(()))
    }

    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.stack.recv(self.fd, Some(buf), len, MSG_DONTWAIT).map_err(io_err)
    }

    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let flags = MSG_DONTWAIT | crate::syscall::MSG_NOSIGNAL;
        self.stack.send(self.fd, Some(buf), buf.len(), flags).map_err(io_err)
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stack.getsockname_addr(self.fd).map_err(io_err)
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stack.getpeername_addr(self.fd).map_err(io_err)
    }
}

impl std::fmt::Debug for StreamInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream").field("fd", &self.fd).finish()
    }
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        let _ = self.stack.close(self.fd);
    }
}

/// A connected socket: `AsyncRead` is `recv(MSG_DONTWAIT)`, `AsyncWrite` is
/// `send(MSG_DONTWAIT | MSG_NOSIGNAL)` (`sendmsg` for vectored writes), `poll_flush` has nothing
/// to do (TCP queues what `send` took), `poll_shutdown` is `shutdown(SHUT_WR)`.
pub struct TcpStream {
    inner: Arc<StreamInner>,
}

impl TcpStream {
    /// `socket`, `connect(addr)` (non-blocking: `EINPROGRESS`), then waits until the socket is
    /// writable or failed and reads `SO_ERROR`, as tokio does: a refused connection is
    /// `ECONNREFUSED`, one that timed out `ETIMEDOUT`.
    pub async fn connect(stack: &Arc<Stack>, addr: impl Into<SocketAddr>) -> io::Result<TcpStream> {
        let addr = addr.into();
        let (fd, reg) = new_socket(stack, &addr)?;
        let s = TcpStream { inner: Arc::new(StreamInner { stack: stack.clone(), fd, reg }) };
        match stack.connect(fd, addr) {
            Ok(()) => return Ok(s),
            Err(Errno::EINPROGRESS) => {}
            Err(e) => return Err(io_err(e)),
        }
        poll_fn(|cx| s.inner.poll_ready(cx, Direction::Write)).await?;
        if let Some(e) = s.take_error()? {
            return Err(e);
        }
        // Writable without an error: connected (getpeername fails with ENOTCONN otherwise).
        s.peer_addr()?;
        Ok(s)
    }

    fn from_accepted(stack: &Arc<Stack>, fd: i32) -> io::Result<TcpStream> {
        match stack.sockfd_lookup(fd) {
            Ok(sock) => {
                let reg = Registration::new(sock);
                Ok(TcpStream { inner: Arc::new(StreamInner { stack: stack.clone(), fd, reg }) })
            }
            Err(e) => {
                let _ = stack.close(fd);
                Err(io_err(e))
            }
        }
    }

    pub(crate) fn from_inner(inner: Arc<StreamInner>) -> TcpStream {
        TcpStream { inner }
    }

    /// Waits until a read would not block: data, EOF, an error or a hangup (`POLLIN`,
    /// `POLLRDHUP`, `POLLERR`, `POLLHUP`). The read itself may still find nothing (another
    /// task took the bytes): [`TcpStream::try_read`] then returns `WouldBlock`.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_read_ready(cx)).await
    }

    /// Waits until a write would not block (`POLLOUT`, `POLLERR`, `POLLHUP`).
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_write_ready(cx)).await
    }

    /// Polls for read readiness ([`TcpStream::readable`]).
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_ready(cx, Direction::Read)
    }

    /// Polls for write readiness ([`TcpStream::writable`]).
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_ready(cx, Direction::Write)
    }

    /// `recv(MSG_DONTWAIT)`: `WouldBlock` (EAGAIN) when there is nothing to read.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.try_read(buf)
    }

    /// `send(MSG_DONTWAIT)`: `WouldBlock` (EAGAIN) when the send buffer is full.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.try_write(buf)
    }

    /// `recv(MSG_PEEK)`: waits for data (or EOF: 0), copies it without consuming it.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rb = ReadBuf::new(buf);
        poll_fn(|cx| self.inner.poll_peek(cx, &mut rb)).await
    }

    /// Polls a `recv(MSG_PEEK)` into `buf` (advanced by what was copied).
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<usize>> {
        self.inner.poll_peek(cx, buf)
    }

    /// `getsockname()`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// `getpeername()`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// `getsockopt(SO_ERROR)`: the pending error, cleared by the read.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let e = self.inner.stack.getsockopt_int(self.inner.fd, SOL_SOCKET, crate::syscall::opt::SO_ERROR);
        match e.map_err(io_err)? {
            0 => Ok(None),
            e => Ok(Some(io::Error::from_raw_os_error(e))),
        }
    }

    /// `TCP_NODELAY` on or off.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        let (stack, fd) = (&self.inner.stack, self.inner.fd);
        stack.setsockopt_int(fd, SOL_TCP, crate::syscall::opt::TCP_NODELAY, on as i32).map_err(io_err)
    }

    /// `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        let (stack, fd) = (&self.inner.stack, self.inner.fd);
        Ok(stack.getsockopt_int(fd, SOL_TCP, crate::syscall::opt::TCP_NODELAY).map_err(io_err)? != 0)
    }

    /// Borrowed halves: one task may read while another writes.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        crate::tokio_split::split(&self.inner)
    }

    /// Owned halves, for two tasks; [`OwnedReadHalf::reunite`] joins them again. Dropping the
    /// write half shuts the write side down, as tokio's does.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        crate::tokio_split::into_split(self.inner)
    }

    /// The fd (in [`TcpStream::stack`]'s fd table), for the fd-level calls.
    pub fn fd(&self) -> i32 {
        self.inner.fd
    }

    /// The stack.
    pub fn stack(&self) -> &Arc<Stack> {
        &self.inner.stack
    }

    /// How many task wakeups this socket's wait queue entry has made (a diagnostic: a parked
    /// task costs one wakeup per socket event, not one per poll).
    pub fn wakeups(&self) -> u64 {
        self.inner.reg.woken()
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_read(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.shutdown_write())
    }
}
