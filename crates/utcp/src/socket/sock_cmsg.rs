//! `sock_cmsg_send()` / `__sock_cmsg_send()` (net/core/sock.c): the SOL_SOCKET control
//! messages of a `sendmsg`, gathered into a `struct sockcm_cookie`. TCP reads only its
//! timestamping flags (an SCM_TIMESTAMPING message replaces the socket's TX_RECORD bits for
//! this call); SO_MARK, SO_PRIORITY and SCM_TXTIME are checked and, as in Linux's TCP, not
//! used. Messages of other levels are skipped. Any error is EINVAL (`tcp_sendmsg_locked`).

use crate::errno::{Errno, SysResult};
use crate::socket::timestamping::SOF_TIMESTAMPING_TX_RECORD_MASK;
use crate::tcp::TcpSock;
use crate::uapi::opt::{SO_MARK, SO_PRIORITY, SO_TIMESTAMPING, SO_TIMESTAMPING_NEW};
use crate::uapi::SOL_SOCKET;

/// `SCM_RIGHTS`.
const SCM_RIGHTS: i32 = 1;
/// `SCM_CREDENTIALS`.
const SCM_CREDENTIALS: i32 = 2;
/// `SCM_TXTIME` (= SO_TXTIME).
const SCM_TXTIME: i32 = 61;
/// `sizeof(struct cmsghdr)` on x86_64.
const CMSG_HDR: usize = 16;

/// `struct sockcm_cookie`: what a `sendmsg`'s control messages set for this call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SockcmCookie {
    /// `sockc.tsflags`: the socket's SO_TIMESTAMPING flags, TX_RECORD bits per SCM_TIMESTAMPING.
    pub(crate) tsflags: u32,
}

/// `sock_cmsg_send()`: walks `control` as `for_each_cmsghdr` does (a header that does not fit
/// ends the walk; `CMSG_OK` rejects a length below the header or past the buffer).
pub(crate) fn sock_cmsg_send(tp: &TcpSock, control: &[u8]) -> SysResult<SockcmCookie> {
    let mut sockc = SockcmCookie { tsflags: tp.tsflags };
    let mut off = 0;
    while off + CMSG_HDR <= control.len() {
        let len = u64::from_ne_bytes(control[off..off + 8].try_into().expect("8")) as usize;
        let level = i32::from_ne_bytes(control[off + 8..off + 12].try_into().expect("4"));
        let ty = i32::from_ne_bytes(control[off + 12..off + 16].try_into().expect("4"));
        if len < CMSG_HDR || len > control.len() - off {
            return Err(Errno::EINVAL);
        }
        if level == SOL_SOCKET {
            __sock_cmsg_send(tp, ty, &control[off + CMSG_HDR..off + len], &mut sockc)?;
        }
        off += len.div_ceil(8) * 8;
    }
    Ok(sockc)
}

/// `__sock_cmsg_send()` for one SOL_SOCKET message with payload `data`.
fn __sock_cmsg_send(tp: &TcpSock, ty: i32, data: &[u8], sockc: &mut SockcmCookie) -> SysResult<()> {
    let u32_data = || -> SysResult<u32> {
        let b: [u8; 4] = data.try_into().map_err(|_| Errno::EINVAL)?;
        Ok(u32::from_ne_bytes(b))
    };
    match ty {
        // CAP_NET_ADMIN (the caller is root); TCP does not use `sockc.mark`/`priority`.
        SO_MARK | SO_PRIORITY => {
            u32_data()?;
        }
        SO_TIMESTAMPING | SO_TIMESTAMPING_NEW => {
            let f = u32_data()?;
            if f & !SOF_TIMESTAMPING_TX_RECORD_MASK != 0 {
                return Err(Errno::EINVAL);
            }
            sockc.tsflags = (sockc.tsflags & !SOF_TIMESTAMPING_TX_RECORD_MASK) | f;
        }
        // Only with SO_TXTIME on, a u64 (TCP paces by its own clock and ignores it).
        SCM_TXTIME => {
            if tp.ext().txtime.is_none() || data.len() != 8 {
                return Err(Errno::EINVAL);
            }
        }
        // Unix-domain messages: ignored on other sockets.
        SCM_RIGHTS | SCM_CREDENTIALS => {}
        // SCM_TS_OPT_ID is refused on TCP; SCM_DEVMEM_DMABUF finds no binding; the rest are
        // unknown.
        _ => return Err(Errno::EINVAL),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, ty: i32, data: &[u8]) -> Vec<u8> {
        let mut v = ((CMSG_HDR + data.len()) as u64).to_ne_bytes().to_vec();
        v.extend(level.to_ne_bytes());
        v.extend(ty.to_ne_bytes());
        v.extend(data);
        v.resize(v.len().div_ceil(8) * 8, 0);
        v
    }

    #[test]
    fn timestamping_flags_replace_the_record_bits() {
        let net = crate::netns::Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        let mut tp = TcpSock::new(&net, crate::time::Instant::ZERO);
        tp.tsflags = (1 << 4) | (1 << 9);
        let c = [cmsg(SOL_SOCKET, SO_TIMESTAMPING, &2u32.to_ne_bytes()), cmsg(0, 1, &[1, 0, 0, 0])].concat();
        assert_eq!(sock_cmsg_send(&tp, &c).map(|s| s.tsflags), Ok((1 << 4) | 2));
        assert_eq!(sock_cmsg_send(&tp, &cmsg(SOL_SOCKET, SO_TIMESTAMPING, &16u32.to_ne_bytes())), Err(Errno::EINVAL));
        assert_eq!(sock_cmsg_send(&tp, &cmsg(SOL_SOCKET, SO_TIMESTAMPING, &[2, 0])), Err(Errno::EINVAL));
        assert_eq!(sock_cmsg_send(&tp, &cmsg(SOL_SOCKET, SCM_TXTIME, &[0; 8])), Err(Errno::EINVAL));
        assert_eq!(sock_cmsg_send(&tp, &cmsg(SOL_SOCKET, SCM_RIGHTS, &[0; 4])).map(|s| s.tsflags), Ok(tp.tsflags));
        assert_eq!(sock_cmsg_send(&tp, &cmsg(SOL_SOCKET, 999, &[0; 4])), Err(Errno::EINVAL));
        let mut bad = cmsg(SOL_SOCKET, SO_MARK, &[0; 4]);
        bad[0] = 200;
        assert_eq!(sock_cmsg_send(&tp, &bad), Err(Errno::EINVAL), "past the buffer (CMSG_OK)");
    }
}
