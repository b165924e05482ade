//! `struct proto_ops` (`inet_stream_ops`, net/ipv4/af_inet.c) and `struct proto` (`tcp_prot`,
//! net/ipv4/tcp_ipv4.c): the two dispatch tables the seed walks through.

use super::sock::{Cancel, Sock};
use super::Socket;
use crate::errno::Errno;
use crate::tcp::recvmsg::{IovIter, RecvInfo, MSG_ERRQUEUE};

/// `struct proto_ops`: the family's socket operations.
pub trait ProtoOps: Send + Sync {
    /// `.family`.
    fn family(&self) -> i32;
    /// `.recvmsg`.
    fn recvmsg(
        &self,
        sock: &Socket,
        iov: &mut IovIter<'_>,
        flags: i32,
        cancel: Option<&Cancel>,
        info: &mut RecvInfo,
    ) -> Result<usize, Errno>;
}

/// `struct proto`: the transport protocol's operations.
pub(crate) trait Proto: Send + Sync {
    /// `.recvmsg(sk, msg, len, flags, addr_len)`; returns bytes and the address length.
    fn recvmsg(
        &self,
        sk: &Sock,
        iov: &mut IovIter<'_>,
        flags: i32,
        cancel: Option<&Cancel>,
        info: &mut RecvInfo,
    ) -> Result<(usize, u32), Errno>;
}

/// `inet_stream_ops`.
pub(crate) struct InetStreamOps;

/// `tcp_prot`.
pub(crate) struct TcpProt;

/// The one `tcp_prot` instance.
pub(crate) static TCP_PROT: TcpProt = TcpProt;
/// The one `inet_stream_ops` instance.
pub(crate) static INET_STREAM_OPS: InetStreamOps = InetStreamOps;

impl ProtoOps for InetStreamOps {
    fn family(&self) -> i32 {
        crate::uapi::AF_INET
    }

    /// `inet_recvmsg()`.
    fn recvmsg(
        &self,
        sock: &Socket,
        iov: &mut IovIter<'_>,
        flags: i32,
        cancel: Option<&Cancel>,
        info: &mut RecvInfo,
    ) -> Result<usize, Errno> {
        if flags & MSG_ERRQUEUE == 0 {
            // sock_rps_record_flow(): nothing to steer in userspace.
        }
        let (n, _addr_len) = TCP_PROT.recvmsg(&sock.sk, iov, flags, cancel, info)?;
        Ok(n)
    }
}

impl Proto for TcpProt {
    fn recvmsg(
        &self,
        sk: &Sock,
        iov: &mut IovIter<'_>,
        flags: i32,
        cancel: Option<&Cancel>,
        info: &mut RecvInfo,
    ) -> Result<(usize, u32), Errno> {
        let n = crate::tcp::recvmsg::tcp_recvmsg(sk, iov, flags, cancel, info)?;
        // "According to UNIX98, msg_name/msg_namelen are ignored on connected socket."
        Ok((n, 0))
    }
}
