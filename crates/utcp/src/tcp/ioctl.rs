//! `tcp_ioctl()` (net/ipv4/tcp.c): SIOCINQ/FIONREAD, SIOCATMARK, SIOCOUTQ, SIOCOUTQNSD.

use super::{TcpSock, TcpState};
use crate::errno::{Errno, SysResult};
use crate::uapi::{FIONREAD, SIOCATMARK, SIOCOUTQ, SIOCOUTQNSD};

/// `tcp_ioctl()`: the answer for `req` (ENOTTY for a request TCP does not know).
pub(crate) fn tcp_ioctl(tp: &TcpSock, req: u64) -> SysResult<i32> {
    match req {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::Netns;
    use crate::time::Instant;

    #[test]
    fn listener_and_unknown_requests() {
        let net = Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        let mut tp = TcpSock::new(&net, Instant::ZERO);
        assert_eq!(tcp_ioctl(&tp, FIONREAD), Ok(0));
        assert_eq!(tcp_ioctl(&tp, 0x1234_5678), Err(Errno::ENOTTY));
        tp.state = TcpState::Listen;
        assert_eq!(tcp_ioctl(&tp, FIONREAD), Err(Errno::EINVAL));
        assert_eq!(tcp_ioctl(&tp, SIOCOUTQ), Err(Errno::EINVAL));
        assert_eq!(tcp_ioctl(&tp, SIOCOUTQNSD), Err(Errno::EINVAL));
        assert_eq!(tcp_ioctl(&tp, SIOCATMARK), Ok(0));
    }
}
