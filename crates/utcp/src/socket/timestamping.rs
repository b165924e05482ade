//! SO_TIMESTAMPING (net/core/sock.c `sock_set_timestamping`, `sock_timestamping_bind_phc`,
//! `sk_getsockopt`; include/uapi/linux/net_tstamp.h): the `SOF_TIMESTAMPING_*` flags a
//! socket reports with, the OPT_ID key base (`sk_tskey`) and the PHC index it is bound to.
//! The reports themselves are tcp/timestamping.rs.

use crate::errno::{Errno, SysResult};
use crate::tcp::{TcpSock, TcpState};
use crate::uapi::opt::{SO_TIMESTAMPING, SO_TIMESTAMPING_NEW};
pub use crate::uapi::{
    SOF_TIMESTAMPING_BIND_PHC, SOF_TIMESTAMPING_OPT_CMSG, SOF_TIMESTAMPING_OPT_ID, SOF_TIMESTAMPING_OPT_ID_TCP,
    SOF_TIMESTAMPING_OPT_PKTINFO, SOF_TIMESTAMPING_OPT_RX_FILTER, SOF_TIMESTAMPING_OPT_STATS,
    SOF_TIMESTAMPING_OPT_TSONLY, SOF_TIMESTAMPING_OPT_TX_SWHW, SOF_TIMESTAMPING_RAW_HARDWARE,
    SOF_TIMESTAMPING_RX_HARDWARE, SOF_TIMESTAMPING_RX_SOFTWARE, SOF_TIMESTAMPING_SOFTWARE,
    SOF_TIMESTAMPING_SYS_HARDWARE, SOF_TIMESTAMPING_TX_ACK, SOF_TIMESTAMPING_TX_COMPLETION,
    SOF_TIMESTAMPING_TX_HARDWARE, SOF_TIMESTAMPING_TX_SCHED, SOF_TIMESTAMPING_TX_SOFTWARE,
};

/// `SOF_TIMESTAMPING_MASK`: every flag Linux 6.18 knows.
pub const SOF_TIMESTAMPING_MASK: u32 = (SOF_TIMESTAMPING_TX_COMPLETION << 1) - 1;
/// `SOF_TIMESTAMPING_TX_RECORD_MASK`: the flags that ask for a TX report.
pub const SOF_TIMESTAMPING_TX_RECORD_MASK: u32 = SOF_TIMESTAMPING_TX_HARDWARE
    | SOF_TIMESTAMPING_TX_SOFTWARE
    | SOF_TIMESTAMPING_TX_SCHED
    | SOF_TIMESTAMPING_TX_ACK
    | SOF_TIMESTAMPING_TX_COMPLETION;

/// `struct so_timestamping` (`flags`, `bind_phc`).
pub(crate) const SO_TIMESTAMPING_LEN: usize = 8;

/// `sk_setsockopt()` SO_TIMESTAMPING(_OLD/_NEW): a whole `struct so_timestamping`, or else an
/// int of flags (the caller checked for at least an int).
pub(crate) fn so_timestamping_set(tp: &mut TcpSock, bound_dev_exists: bool, name: i32, val: &[u8]) -> SysResult<()> {
    let flags = u32::from_ne_bytes(val[..4].try_into().map_err(|_| Errno::EINVAL)?);
    let bind_phc =
        if val.len() == SO_TIMESTAMPING_LEN { i32::from_ne_bytes(val[4..8].try_into().expect("4")) } else { 0 };
    sock_set_timestamping(tp, bound_dev_exists, name, flags, bind_phc)
}

/// `sock_set_timestamping()`.
pub(crate) fn sock_set_timestamping(
    tp: &mut TcpSock,
    bound_dev_exists: bool,
    name: i32,
    flags: u32,
    bind_phc: i32,
) -> SysResult<()> {
    if flags & !SOF_TIMESTAMPING_MASK != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & SOF_TIMESTAMPING_OPT_ID_TCP != 0 && flags & SOF_TIMESTAMPING_OPT_ID == 0 {
        return Err(Errno::EINVAL);
    }
    // The key base is taken when OPT_ID goes on (not when it stays on), and stays taken even
    // when a later check fails, as in Linux.
    if flags & SOF_TIMESTAMPING_OPT_ID != 0 && tp.tsflags & SOF_TIMESTAMPING_OPT_ID == 0 {
        if matches!(tp.state, TcpState::Close | TcpState::Listen) {
            return Err(Errno::EINVAL);
        }
        tp.tskey = if flags & SOF_TIMESTAMPING_OPT_ID_TCP != 0 { tp.write_seq.0 } else { tp.snd_una.0 };
    }
    if flags & SOF_TIMESTAMPING_OPT_STATS != 0 && flags & SOF_TIMESTAMPING_OPT_TSONLY == 0 {
        return Err(Errno::EINVAL);
    }
    if flags & SOF_TIMESTAMPING_BIND_PHC != 0 {
        sock_timestamping_bind_phc(tp, bound_dev_exists, bind_phc)?;
    }
    tp.tsflags = flags;
    tp.tstamp_new = name == SO_TIMESTAMPING_NEW;
    Ok(())
}

/// `sock_timestamping_bind_phc()`: the socket must be bound to a device
/// (EOPNOTSUPP otherwise), and `phc_index` must be one of that device's PHC virtual clocks.
/// utcp's devices (memlink, TUN) have no PTP hardware clock, so `ethtool_get_phc_vclocks`
/// finds none and every index is EINVAL, as on a Linux device without one.
fn sock_timestamping_bind_phc(tp: &mut TcpSock, bound_dev_exists: bool, _phc_index: i32) -> SysResult<()> {
    if tp.bound_dev_if == 0 || !bound_dev_exists {
        return Err(Errno::EOPNOTSUPP);
    }
    Err(Errno::EINVAL)
}

/// `sk_getsockopt()` SO_TIMESTAMPING(_OLD/_NEW): `struct so_timestamping`; _NEW reads the
/// flags only when they were set through _NEW (SOCK_TSTAMP_NEW), else zeros.
pub(crate) fn so_timestamping_get(tp: &TcpSock, name: i32) -> Vec<u8> {
    let mut v = vec![0u8; SO_TIMESTAMPING_LEN];
    if name == SO_TIMESTAMPING || tp.tstamp_new {
        v[..4].copy_from_slice(&tp.tsflags.to_ne_bytes());
        v[4..].copy_from_slice(&tp.ext().bind_phc.to_ne_bytes());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq::SeqNum;

    fn sock() -> TcpSock {
        let net = crate::netns::Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        TcpSock::new(&net, crate::time::Instant::ZERO)
    }

    #[test]
    fn flags_are_checked_as_sock_set_timestamping() {
        let mut tp = sock();
        let set = |tp: &mut TcpSock, f: u32| sock_set_timestamping(tp, false, SO_TIMESTAMPING, f, 0);
        assert_eq!(set(&mut tp, SOF_TIMESTAMPING_MASK + 1), Err(Errno::EINVAL));
        assert_eq!(set(&mut tp, SOF_TIMESTAMPING_OPT_ID_TCP), Err(Errno::EINVAL));
        // OPT_ID needs a connection (TCPF_CLOSE | TCPF_LISTEN refuse it).
        assert_eq!(set(&mut tp, SOF_TIMESTAMPING_OPT_ID), Err(Errno::EINVAL));
        assert_eq!(set(&mut tp, SOF_TIMESTAMPING_OPT_STATS), Err(Errno::EINVAL));
        assert_eq!(set(&mut tp, SOF_TIMESTAMPING_BIND_PHC), Err(Errno::EOPNOTSUPP));
        assert_eq!(tp.tsflags, 0, "a refused call changes no flags");
        let f = SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_TX_ACK;
        assert_eq!(set(&mut tp, f), Ok(()));
        assert_eq!(so_timestamping_get(&tp, SO_TIMESTAMPING)[..4], f.to_ne_bytes());
        assert_eq!(so_timestamping_get(&tp, SO_TIMESTAMPING_NEW), vec![0; 8], "set through _OLD");
        tp.bound_dev_if = 1;
        assert_eq!(
            sock_set_timestamping(&mut tp, true, SO_TIMESTAMPING_NEW, SOF_TIMESTAMPING_BIND_PHC, 0),
            Err(Errno::EINVAL),
            "no PHC virtual clocks"
        );
    }

    #[test]
    fn opt_id_takes_the_key_base_once() {
        let mut tp = sock();
        tp.state = TcpState::Established;
        tp.snd_una = SeqNum(1000);
        tp.write_seq = SeqNum(1500);
        let id = SOF_TIMESTAMPING_OPT_ID;
        assert_eq!(sock_set_timestamping(&mut tp, false, SO_TIMESTAMPING_NEW, id, 0), Ok(()));
        assert_eq!(tp.tskey, 1000);
        tp.snd_una = SeqNum(1200);
        assert_eq!(
            sock_set_timestamping(&mut tp, false, SO_TIMESTAMPING_NEW, id | SOF_TIMESTAMPING_OPT_ID_TCP, 0),
            Ok(())
        );
        assert_eq!(tp.tskey, 1000, "OPT_ID stayed on: the base is kept");
        assert_eq!(sock_set_timestamping(&mut tp, false, SO_TIMESTAMPING_NEW, 0, 0), Ok(()));
        assert_eq!(
            sock_set_timestamping(&mut tp, false, SO_TIMESTAMPING_NEW, id | SOF_TIMESTAMPING_OPT_ID_TCP, 0),
            Ok(())
        );
        assert_eq!(tp.tskey, 1500, "OPT_ID_TCP counts from write_seq");
        assert_eq!(
            so_timestamping_get(&tp, SO_TIMESTAMPING_NEW)[..4],
            (id | SOF_TIMESTAMPING_OPT_ID_TCP).to_ne_bytes()
        );
    }
}
