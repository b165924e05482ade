//! The socket layer (net/socket.c, net/ipv4/af_inet.c): `struct socket`, `sock_recvmsg` with
//! its security hook, and the `proto_ops` → `proto` dispatch (`inet_stream_ops` → `tcp_prot`).

pub(crate) mod proto_ops;
pub mod sock;
pub(crate) mod sock_cmsg;
pub(crate) mod sock_host;
#[cfg(test)]
mod sock_host_tests;
pub(crate) mod sockopt;
pub mod timestamping;

use crate::errno::Errno;
use crate::tcp::recvmsg::{IovIter, RecvInfo};
use proto_ops::ProtoOps;
use sock::{Cancel, Sock};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::Arc;

/// What a receive asks for, as the security hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct RecvRequest {
    /// The socket id.
    pub sock_id: u64,
    /// Bytes the caller can take (`msg_data_left`).
    pub size: usize,
    /// `flags` of the call.
    pub flags: i32,
}

/// `security_socket_recvmsg()`: a pluggable policy consulted on every receive. A denial
/// returns its errno and consumes nothing.
pub trait SecurityPolicy: Send + Sync {
    /// Returns `Err(errno)` to deny the receive.
    fn socket_recvmsg(&self, req: &RecvRequest) -> Result<(), Errno>;
}

/// `sock->state` (`socket_state`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum SocketState {
    /// `SS_UNCONNECTED`.
    Unconnected = 1,
    /// `SS_CONNECTING`.
    Connecting = 2,
    /// `SS_CONNECTED`.
    Connected = 3,
    /// `SS_DISCONNECTING`.
    Disconnecting = 4,
}

/// `struct socket`: the file-side object over a [`Sock`].
pub struct Socket {
    /// `sock->ops`.
    pub(crate) ops: &'static dyn ProtoOps,
    /// `sock->sk`.
    pub sk: Arc<Sock>,
    /// `file->f_flags` (O_NONBLOCK lives here).
    pub(crate) f_flags: AtomicI32,
    state: AtomicU8,
}

impl Socket {
    /// A socket over `sk`.
    pub fn new(ops: &'static dyn ProtoOps, sk: Arc<Sock>, state: SocketState) -> Socket {
        Socket { ops, sk, f_flags: AtomicI32::new(0o2), state: AtomicU8::new(state as u8) }
    }
    /// `sock->state`.
    pub(crate) fn state(&self) -> SocketState {
        match self.state.load(Ordering::Acquire) {
            2 => SocketState::Connecting,
            3 => SocketState::Connected,
            4 => SocketState::Disconnecting,
            _ => SocketState::Unconnected,
        }
    }
    /// Sets `sock->state`.
    pub(crate) fn set_state(&self, s: SocketState) {
        self.state.store(s as u8, Ordering::Release)
    }
    /// O_NONBLOCK set on the file.
    pub(crate) fn nonblocking(&self) -> bool {
        self.f_flags.load(Ordering::Relaxed) & crate::uapi::O_NONBLOCK != 0
    }
}

/// `sock_recvmsg()`: the security hook, then `sock->ops->recvmsg`.
pub(crate) fn sock_recvmsg(
    sock: &Socket,
    iov: &mut IovIter<'_>,
    flags: i32,
    cancel: Option<&Cancel>,
    info: &mut RecvInfo,
) -> Result<usize, Errno> {
    let policy = sock.sk.host.security();
    if let Some(p) = policy {
        p.socket_recvmsg(&RecvRequest { sock_id: sock.sk.id, size: iov.left(), flags })?;
    }
    sock_recvmsg_nosec(sock, iov, flags, cancel, info)
}

/// `sock_recvmsg_nosec()`.
pub(crate) fn sock_recvmsg_nosec(
    sock: &Socket,
    iov: &mut IovIter<'_>,
    flags: i32,
    cancel: Option<&Cancel>,
    info: &mut RecvInfo,
) -> Result<usize, Errno> {
    tracing::trace!(target: "sock_recvmsg", sock = sock.sk.id, size = iov.left(), flags);
    sock.ops.recvmsg(sock, iov, flags, cancel, info)
}
