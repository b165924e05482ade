//! IPv6-level socket options (net/ipv6/ipv6_sockglue.c): `do_ipv6_setsockopt` and
//! `do_ipv6_getsockopt` on an AF_INET6 socket's `Ipv6Pinfo` (`struct ipv6_pinfo` and the
//! `sk_ipv6only` bit), as they answer for a TCP socket. The values and errno were checked
//! against Linux 6.18 (`tests/ipv6_tcp.rs` holds the kernel's answers).

use crate::errno::{Errno, SysResult};
use crate::netns::Netns;
pub use crate::uapi::opt::{IPV6_AUTOFLOWLABEL, IPV6_MTU, IPV6_RECVERR, IPV6_TCLASS, IPV6_UNICAST_HOPS, IPV6_V6ONLY};
pub(crate) use crate::uapi::opt::{IPV6_DONTFRAG, IPV6_MINHOPCOUNT, IPV6_MTU_DISCOVER};

/// `IPV6_PMTUDISC_DONT`.
pub(crate) const IPV6_PMTUDISC_DONT: u8 = 0;
/// `IPV6_PMTUDISC_WANT`: the default.
pub(crate) const IPV6_PMTUDISC_WANT: u8 = 1;
/// `IPV6_PMTUDISC_OMIT`: the largest mode.
pub(crate) const IPV6_PMTUDISC_OMIT: u8 = 5;
/// `INET_ECN_MASK`: the ECN bits a stream socket's IPV6_TCLASS keeps from before.
const INET_ECN_MASK: u8 = 3;
/// `IPV6_MIN_MTU`.
pub(crate) const IPV6_MIN_MTU: u32 = 1280;

/// The IPv6 options of one AF_INET6 socket (`struct ipv6_pinfo`, `sk->sk_ipv6only`).
#[derive(Clone, Debug)]
pub(crate) struct Ipv6Pinfo {
    /// `sk->sk_ipv6only` (IPV6_V6ONLY; default `net.ipv6.bindv6only`): no IPv4 peers.
    pub(crate) ipv6only: bool,
    /// `np->hop_limit` (IPV6_UNICAST_HOPS): -1 = the route's (`net.ipv6.conf.all.hop_limit`).
    pub(crate) hop_limit: i32,
    /// `np->tclass` (IPV6_TCLASS): the traffic class of every packet.
    pub(crate) tclass: u8,
    /// `np->pmtudisc` (IPV6_MTU_DISCOVER).
    pub(crate) pmtudisc: u8,
    /// `np->frag_size` (IPV6_MTU): 0 = the path's.
    pub(crate) frag_size: u32,
    /// RECVERR6 (IPV6_RECVERR).
    pub(crate) recverr: bool,
    /// `np->dontfrag` (IPV6_DONTFRAG).
    pub(crate) dontfrag: bool,
    /// `np->min_hopcount` (IPV6_MINHOPCOUNT): segments arriving with a lower hop limit are
    /// dropped, as IP_MINTTL's.
    pub(crate) min_hopcount: u8,
    /// AUTOFLOWLABEL / AUTOFLOWLABEL_SET (IPV6_AUTOFLOWLABEL): `None` until set, then
    /// `ip6_default_np_autolabel()` no longer decides.
    pub(crate) autoflowlabel: Option<bool>,
    /// `np->flow_label`: the label of the connection (`sin6_flowinfo` at connect with
    /// IPV6_FLOWINFO_SEND; 0 here, as a label is then made per flow).
    pub(crate) flow_label: u32,
}

impl Ipv6Pinfo {
    /// `inet6_create()`'s defaults.
    pub(crate) fn new(net: &Netns) -> Ipv6Pinfo {
        Ipv6Pinfo {
            ipv6only: net.sysctl.bindv6only.get() != 0,
            hop_limit: -1,
            tclass: 0,
            pmtudisc: IPV6_PMTUDISC_WANT,
            frag_size: 0,
            recverr: false,
            dontfrag: false,
            min_hopcount: 0,
            autoflowlabel: None,
            flow_label: 0,
        }
    }

    /// `ip6_autoflowlabel()`.
    pub(crate) fn autolabel(&self, net: &Netns) -> bool {
        self.autoflowlabel.unwrap_or_else(|| super::ipv6::ip6_default_np_autolabel(net))
    }

    /// The hop limit of the socket's packets (`ip6_sk_dst_hoplimit`).
    pub(crate) fn hoplimit(&self, net: &Netns) -> u8 {
        if self.hop_limit >= 0 {
            self.hop_limit as u8
        } else {
            super::ipv6::ip6_dst_hoplimit(net)
        }
    }
}

/// What `do_ipv6_getsockopt` reads of the socket beyond its options.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Inet6SockView {
    /// `__sk_dst_get(sk)`: the socket has a route (connected, or connecting).
    pub(crate) has_dst: bool,
    /// The route's MTU (`dst_mtu`).
    pub(crate) mtu: u32,
    /// `inet_sk(sk)->inet_num`: the socket has a local port.
    pub(crate) num: u16,
}

/// `do_ipv6_setsockopt()` for a TCP socket. The value is an int; a shorter one is EINVAL
/// for every option a TCP socket answers (IPV6_AUTOFLOWLABEL reads it as 0).
pub(crate) fn do_ipv6_setsockopt(np: &mut Ipv6Pinfo, sk: Inet6SockView, name: i32, val: &[u8]) -> SysResult<()> {
    let int = (val.len() >= 4).then(|| i32::from_ne_bytes([val[0], val[1], val[2], val[3]]));
    let v = int.unwrap_or(0);
    let need_int = || int.ok_or(Errno::EINVAL);
    match name {
        IPV6_V6ONLY => {
            need_int()?;
            if sk.num != 0 {
                return Err(Errno::EINVAL);
            }
            np.ipv6only = v != 0;
        }
        IPV6_UNICAST_HOPS => {
            need_int()?;
            if !(-1..=255).contains(&v) {
                return Err(Errno::EINVAL);
            }
            np.hop_limit = v;
        }
        IPV6_TCLASS => {
            need_int()?;
            if !(-1..=0xff).contains(&v) {
                return Err(Errno::EINVAL);
            }
            // RFC 3542 6.5: -1 is the default, 0; a stream socket keeps its ECN bits.
            let v = if v == -1 { 0 } else { v as u8 };
            np.tclass = (v & !INET_ECN_MASK) | (np.tclass & INET_ECN_MASK);
        }
        IPV6_MTU_DISCOVER => {
            need_int()?;
            if !(IPV6_PMTUDISC_DONT as i32..=IPV6_PMTUDISC_OMIT as i32).contains(&v) {
                return Err(Errno::EINVAL);
            }
            np.pmtudisc = v as u8;
        }
        IPV6_MTU => {
            need_int()?;
            if v != 0 && v < IPV6_MIN_MTU as i32 {
                return Err(Errno::EINVAL);
            }
            np.frag_size = v as u32;
        }
        IPV6_RECVERR => {
            need_int()?;
            np.recverr = v != 0;
        }
        IPV6_DONTFRAG => {
            need_int()?;
            np.dontfrag = v != 0;
        }
        IPV6_MINHOPCOUNT => {
            need_int()?;
            if !(0..=255).contains(&v) {
                return Err(Errno::EINVAL);
            }
            np.min_hopcount = v as u8;
        }
        IPV6_AUTOFLOWLABEL => np.autoflowlabel = Some(v != 0),
        _ => return Err(Errno::ENOPROTOOPT),
    }
    Ok(())
}

/// `do_ipv6_getsockopt()`: the int's bytes and the length to report (`min(len, 4)`).
pub(crate) fn do_ipv6_getsockopt(
    np: &Ipv6Pinfo,
    sk: Inet6SockView,
    net: &Netns,
    name: i32,
    len: usize,
) -> SysResult<(Vec<u8>, usize)> {
    let val: i32 = match name {
        IPV6_V6ONLY => np.ipv6only as i32,
        IPV6_UNICAST_HOPS => np.hoplimit(net) as i32,
        IPV6_TCLASS => np.tclass as i32,
        IPV6_MTU_DISCOVER => np.pmtudisc as i32,
        IPV6_MTU => {
            if !sk.has_dst || sk.mtu == 0 {
                return Err(Errno::ENOTCONN);
            }
            sk.mtu as i32
        }
        IPV6_RECVERR => np.recverr as i32,
        IPV6_DONTFRAG => np.dontfrag as i32,
        IPV6_MINHOPCOUNT => np.min_hopcount as i32,
        IPV6_AUTOFLOWLABEL => np.autolabel(net) as i32,
        _ => return Err(Errno::ENOPROTOOPT),
    };
    let n = len.min(4);
    Ok((val.to_ne_bytes()[..n].to_vec(), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn np() -> (Netns, Ipv6Pinfo) {
        let net = Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        let np = Ipv6Pinfo::new(&net);
        (net, np)
    }
    const FRESH: Inet6SockView = Inet6SockView { has_dst: false, mtu: 0, num: 0 };

    fn set(np: &mut Ipv6Pinfo, name: i32, v: i32) -> SysResult<()> {
        do_ipv6_setsockopt(np, FRESH, name, &v.to_ne_bytes())
    }
    fn get(net: &Netns, np: &Ipv6Pinfo, name: i32) -> SysResult<i32> {
        let (b, n) = do_ipv6_getsockopt(np, FRESH, net, name, 4)?;
        assert_eq!(n, 4);
        Ok(i32::from_ne_bytes(b[..4].try_into().unwrap()))
    }

    // The kernel's answers (Linux 6.18, a fresh AF_INET6 TCP socket in a new namespace).
    #[test]
    fn defaults_and_ranges_are_the_kernels() {
        let (net, mut p) = np();
        for (name, v) in [
            (IPV6_V6ONLY, 0),
            (IPV6_UNICAST_HOPS, 64),
            (IPV6_TCLASS, 0),
            (IPV6_MTU_DISCOVER, 1),
            (IPV6_RECVERR, 0),
            (IPV6_AUTOFLOWLABEL, 1),
            (IPV6_DONTFRAG, 0),
            (IPV6_MINHOPCOUNT, 0),
        ] {
            assert_eq!(get(&net, &p, name), Ok(v), "option {name}");
        }
        assert_eq!(get(&net, &p, IPV6_MTU), Err(Errno::ENOTCONN));
        assert_eq!(get(&net, &p, 99), Err(Errno::ENOPROTOOPT));
        assert_eq!(set(&mut p, 99, 1), Err(Errno::ENOPROTOOPT));
        // UNICAST_HOPS: -1..=255, -1 reading back the route's.
        assert_eq!(set(&mut p, IPV6_UNICAST_HOPS, -2), Err(Errno::EINVAL));
        assert_eq!(set(&mut p, IPV6_UNICAST_HOPS, 256), Err(Errno::EINVAL));
        assert_eq!(set(&mut p, IPV6_UNICAST_HOPS, 0), Ok(()));
        assert_eq!(get(&net, &p, IPV6_UNICAST_HOPS), Ok(0));
        assert_eq!(set(&mut p, IPV6_UNICAST_HOPS, -1), Ok(()));
        assert_eq!(get(&net, &p, IPV6_UNICAST_HOPS), Ok(64));
        // TCLASS: -1..=255 without the ECN bits (33 → 32, 255 → 252, 3 → 0).
        for (v, r) in
            [(-1, Ok(0)), (3, Ok(0)), (33, Ok(32)), (255, Ok(252)), (-2, Err(Errno::EINVAL)), (256, Err(Errno::EINVAL))]
        {
            let (_, mut p) = np();
            let s = set(&mut p, IPV6_TCLASS, v);
            assert_eq!(s.map(|_| p.tclass as i32), r, "tclass {v}");
        }
        // MTU_DISCOVER 0..=5; MTU 0 or ≥ 1280.
        assert_eq!(set(&mut p, IPV6_MTU_DISCOVER, 6), Err(Errno::EINVAL));
        assert_eq!(set(&mut p, IPV6_MTU_DISCOVER, -1), Err(Errno::EINVAL));
        assert_eq!(set(&mut p, IPV6_MTU_DISCOVER, 5), Ok(()));
        assert_eq!(set(&mut p, IPV6_MTU, 1279), Err(Errno::EINVAL));
        assert_eq!(set(&mut p, IPV6_MTU, -1), Err(Errno::EINVAL));
        assert_eq!(set(&mut p, IPV6_MTU, 1280), Ok(()));
        assert_eq!(set(&mut p, IPV6_MTU, 0), Ok(()));
        // RECVERR and V6ONLY read any non-zero value as 1.
        assert_eq!(set(&mut p, IPV6_RECVERR, 7), Ok(()));
        assert_eq!(get(&net, &p, IPV6_RECVERR), Ok(1));
        assert_eq!(set(&mut p, IPV6_V6ONLY, 2), Ok(()));
        assert_eq!(get(&net, &p, IPV6_V6ONLY), Ok(1));
        // A value shorter than an int is EINVAL; V6ONLY once the socket has a port is EINVAL.
        for name in [IPV6_V6ONLY, IPV6_UNICAST_HOPS, IPV6_TCLASS, IPV6_MTU_DISCOVER, IPV6_MTU, IPV6_RECVERR] {
            assert_eq!(do_ipv6_setsockopt(&mut p, FRESH, name, &[1, 0]), Err(Errno::EINVAL));
            assert_eq!(do_ipv6_setsockopt(&mut p, FRESH, name, &[]), Err(Errno::EINVAL));
        }
        let bound = Inet6SockView { num: 80, ..FRESH };
        assert_eq!(do_ipv6_setsockopt(&mut p, bound, IPV6_V6ONLY, &1i32.to_ne_bytes()), Err(Errno::EINVAL));
        // getsockopt copies min(len, 4) bytes.
        let (b, n) = do_ipv6_getsockopt(&p, FRESH, &net, IPV6_UNICAST_HOPS, 2).unwrap();
        assert_eq!((b.len(), n), (2, 2));
        assert_eq!(do_ipv6_getsockopt(&p, FRESH, &net, IPV6_UNICAST_HOPS, 0).unwrap().1, 0);
        let conn = Inet6SockView { has_dst: true, mtu: 1500, num: 1 };
        assert_eq!(do_ipv6_getsockopt(&p, conn, &net, IPV6_MTU, 4).unwrap().0, 1500i32.to_ne_bytes().to_vec());
    }

    #[test]
    fn bindv6only_is_the_default() {
        let net = Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        net.sysctl.set_by_name("net.ipv6.bindv6only", "1").unwrap();
        assert!(Ipv6Pinfo::new(&net).ipv6only);
    }
}
