//! The halves of a [`crate::tokio::TcpStream`]: borrowed ([`ReadHalf`], [`WriteHalf`]) and owned
//! ([`OwnedReadHalf`], [`OwnedWriteHalf`]), as `tokio::net::tcp`'s. Both halves use the one fd,
//! which the stack serialises as it does two threads on one socket (`lock_sock`), and park on
//! the one wait queue entry, in their own direction.

use crate::tokio::{StreamInner, TcpStream};
use crate::tokio_wait::Direction;
use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The reading half of a borrowed [`TcpStream::split`].
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a StreamInner);

/// The writing half of a borrowed [`TcpStream::split`]; `poll_shutdown` is `shutdown(SHUT_WR)`.
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a StreamInner);

/// The reading half of [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    inner: Arc<StreamInner>,
}

/// The writing half of [`TcpStream::into_split`]. Dropped, it shuts the write side down
/// (`shutdown(SHUT_WR)`) unless [`OwnedWriteHalf::forget`] was called.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    inner: Arc<StreamInner>,
    shutdown_on_drop: bool,
}

/// [`OwnedReadHalf::reunite`] was given halves of two different streams (they come back).
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl std::fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl std::error::Error for ReuniteError {}

pub(crate) fn split(inner: &Arc<StreamInner>) -> (ReadHalf<'_>, WriteHalf<'_>) {
    (ReadHalf(inner), WriteHalf(inner))
}

pub(crate) fn into_split(inner: Arc<StreamInner>) -> (OwnedReadHalf, OwnedWriteHalf) {
    (OwnedReadHalf { inner: inner.clone() }, OwnedWriteHalf { inner, shutdown_on_drop: true })
}

/// The read-side calls both read halves offer.
macro_rules! read_half_methods {
    () => {
        /// Waits until a read would not block ([`TcpStream::readable`]).
        pub async fn readable(&self) -> io::Result<()> {
            poll_fn(|cx| self.inner().poll_ready(cx, Direction::Read)).await
        }
        /// `recv(MSG_DONTWAIT)` ([`TcpStream::try_read`]).
        pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
            self.inner().try_read(buf)
        }
        /// `recv(MSG_PEEK)` ([`TcpStream::peek`]).
        pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
            let mut rb = ReadBuf::new(buf);
            poll_fn(|cx| self.inner().poll_peek(cx, &mut rb)).await
        }
        /// `getsockname()`.
        pub fn local_addr(&self) -> io::Result<SocketAddr> {
            self.inner().local_addr()
        }
        /// `getpeername()`.
        pub fn peer_addr(&self) -> io::Result<SocketAddr> {
            self.inner().peer_addr()
        }
    };
}

/// The write-side calls both write halves offer.
macro_rules! write_half_methods {
    () => {
        /// Waits until a write would not block ([`TcpStream::writable`]).
        pub async fn writable(&self) -> io::Result<()> {
            poll_fn(|cx| self.inner().poll_ready(cx, Direction::Write)).await
        }
        /// `send(MSG_DONTWAIT)` ([`TcpStream::try_write`]).
        pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
            self.inner().try_write(buf)
        }
        /// `getsockname()`.
        pub fn local_addr(&self) -> io::Result<SocketAddr> {
            self.inner().local_addr()
        }
        /// `getpeername()`.
        pub fn peer_addr(&self) -> io::Result<SocketAddr> {
            self.inner().peer_addr()
        }
    };
}

impl ReadHalf<'_> {
    fn inner(&self) -> &StreamInner {
        self.0
    }
    read_half_methods!();
}

impl WriteHalf<'_> {
    fn inner(&self) -> &StreamInner {
        self.0
    }
    write_half_methods!();
}

impl OwnedReadHalf {
    fn inner(&self) -> &StreamInner {
        &self.inner
    }
    read_half_methods!();

    /// Joins the halves of one stream again (the write half's shutdown-on-drop is dropped).
    pub fn reunite(self, mut other: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        if Arc::ptr_eq(&self.inner, &other.inner) {
            other.shutdown_on_drop = false;
            drop(other);
            Ok(TcpStream::from_inner(self.inner))
        } else {
            Err(ReuniteError(self, other))
        }
    }
}

impl OwnedWriteHalf {
    fn inner(&self) -> &StreamInner {
        &self.inner
    }
    write_half_methods!();

    /// Drops the half without shutting the write side down.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
    }

    /// Joins the halves again ([`OwnedReadHalf::reunite`]).
    pub fn reunite(self, other: OwnedReadHalf) -> Result<TcpStream, ReuniteError> {
        other.reunite(self)
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.inner.shutdown_write();
        }
    }
}

/// `AsyncRead` for a read half.
macro_rules! impl_async_read {
    ($t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                self.inner().poll_read(cx, buf)
            }
        }
    };
}

/// `AsyncWrite` for a write half.
macro_rules! impl_async_write {
    ($t:ty) => {
        impl AsyncWrite for $t {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.inner().poll_write(cx, buf)
            }
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.inner().poll_write_vectored(cx, bufs)
            }
            fn is_write_vectored(&self) -> bool {
                true
            }
            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.inner().shutdown_write())
            }
        }
    };
}

impl_async_read!(ReadHalf<'_>);
impl_async_read!(OwnedReadHalf);
impl_async_write!(WriteHalf<'_>);
impl_async_write!(OwnedWriteHalf);
