//! IP-level socket options (net/ipv4/ip_sockglue.c): `do_ip_setsockopt` and
//! `do_ip_getsockopt` on a socket's [`InetOpts`] (the option part of `struct inet_sock`),
//! as they answer for a TCP socket.

use super::options::{ip_options_get, ip_options_undo, IpOptions, MAX_IPOPTLEN};
use crate::errno::{Errno, SysResult};
use crate::netns::Netns;
use crate::uapi::opt::*;
use std::net::Ipv4Addr;

/// `IP_PMTUDISC_DONT`: never set DF.
pub(crate) const IP_PMTUDISC_DONT: u8 = 0;
/// `IP_PMTUDISC_WANT`: the default (`net.ipv4.ip_no_pmtu_disc` = 0).
pub(crate) const IP_PMTUDISC_WANT: u8 = 1;
/// `IP_PMTUDISC_OMIT`: the largest mode.
pub(crate) const IP_PMTUDISC_OMIT: u8 = 5;

/// `inet->cmsg_flags` bits (IP_CMSG_*): which ancillary data a receiver asked for.
pub(crate) mod cmsg {
    pub(crate) const PKTINFO: u32 = 1 << 0;
    pub(crate) const TTL: u32 = 1 << 1;
    pub(crate) const TOS: u32 = 1 << 2;
    pub(crate) const RECVOPTS: u32 = 1 << 3;
    pub(crate) const RETOPTS: u32 = 1 << 4;
    pub(crate) const PASSSEC: u32 = 1 << 5;
    pub(crate) const ORIGDSTADDR: u32 = 1 << 6;
    pub(crate) const CHECKSUM: u32 = 1 << 7;
    pub(crate) const RECVFRAGSIZE: u32 = 1 << 8;
}

/// The IP options of one socket (`inet_sock`'s option fields).
#[derive(Clone, Debug)]
pub struct InetOpts {
    /// `inet->tos` (IP_TOS): the TOS byte of every packet this socket sends.
    pub(crate) tos: u8,
    /// `inet->uc_ttl` (IP_TTL): -1 = `net.ipv4.ip_default_ttl`.
    pub(crate) uc_ttl: i32,
    /// `inet->freebind` (IP_FREEBIND): bind to an address that is not (yet) local.
    pub(crate) freebind: bool,
    /// `inet->transparent` (IP_TRANSPARENT): like IP_FREEBIND for bind().
    pub(crate) transparent: bool,
    /// `inet->recverr` (IP_RECVERR).
    pub(crate) recverr: bool,
    /// IP_RECVERR_RFC4884.
    pub(crate) recverr_rfc4884: bool,
    /// `inet->pmtudisc` (IP_MTU_DISCOVER): DF on every mode but IP_PMTUDISC_DONT.
    pub(crate) pmtudisc: u8,
    /// `inet->cmsg_flags` (IP_PKTINFO, IP_RECVTTL, IP_RECVTOS, ...). TCP delivers no IP
    /// control messages; IP_PKTOPTIONS reports the PKTINFO/TTL/TOS ones.
    pub(crate) cmsg_flags: u32,
    /// `inet->mc_ttl` (IP_MULTICAST_TTL; 1).
    pub(crate) mc_ttl: u8,
    /// `inet->mc_loop` (IP_MULTICAST_LOOP; on).
    pub(crate) mc_loop: bool,
    /// `inet->mc_all` (IP_MULTICAST_ALL; on).
    pub(crate) mc_all: bool,
    /// `inet->rcv_tos`: the TOS of the last segment received (IP_PKTOPTIONS).
    pub(crate) rcv_tos: u8,
    /// `inet->min_ttl` (IP_MINTTL): segments arriving with a lower TTL are dropped
    /// (TCPMinTTLDrop).
    pub(crate) min_ttl: u8,
    /// `inet->bind_address_no_port` (IP_BIND_ADDRESS_NO_PORT): bind() with port 0 sets the
    /// address only; connect() picks the port (`__inet_hash_connect`).
    pub(crate) bind_address_no_port: bool,
    /// `inet->local_port_range` (IP_LOCAL_PORT_RANGE): `lo | hi << 16`, 0 halves meaning
    /// the sysctl's (`inet_sk_get_local_port_range`).
    pub(crate) local_port_range: u32,
    /// `inet->inet_opt` (IP_OPTIONS, or a child's options echoed from its SYN): the IPv4
    /// header options every packet of the socket carries, compiled for sending.
    pub(crate) opt: Option<Box<IpOptions>>,
}

impl InetOpts {
    /// `icsk_ext_hdr_len`: the IP option bytes every segment carries, which the MSS leaves
    /// room for.
    pub(crate) fn ext_hdr_len(&self) -> u32 {
        self.opt.as_ref().map_or(0, |o| o.optlen as u32)
    }
}

impl Default for InetOpts {
    fn default() -> InetOpts {
        InetOpts {
            tos: 0,
            uc_ttl: -1,
            freebind: false,
            transparent: false,
            recverr: false,
            recverr_rfc4884: false,
            pmtudisc: IP_PMTUDISC_WANT,
            cmsg_flags: 0,
            mc_ttl: 1,
            mc_loop: true,
            mc_all: true,
            rcv_tos: 0,
            min_ttl: 0,
            bind_address_no_port: false,
            local_port_range: 0,
            opt: None,
        }
    }
}

/// What the IP options need to know about the socket they belong to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InetSockView {
    /// `sk_dst_get()` would find a route: the socket has a destination.
    pub(crate) has_dst: bool,
    /// The route's MTU (`dst_mtu`).
    pub(crate) mtu: u32,
    /// `inet->inet_rcv_saddr`.
    pub(crate) rcv_saddr: Ipv4Addr,
    /// `inet->inet_num`: the local port (0 while unbound).
    pub(crate) num: u16,
}

/// Options whose value `do_ip_setsockopt` reads as an int, or as one byte when shorter
/// (an empty value is 0).
fn int_or_byte_opt(name: i32) -> bool {
    matches!(
        name,
        IP_PKTINFO
            | IP_RECVTTL
            | IP_RECVOPTS
            | IP_RECVTOS
            | IP_RETOPTS
            | IP_TOS
            | IP_TTL
            | IP_HDRINCL
            | IP_MTU_DISCOVER
            | IP_RECVERR
            | IP_ROUTER_ALERT
            | IP_FREEBIND
            | IP_PASSSEC
            | IP_TRANSPARENT
            | IP_MINTTL
            | IP_NODEFRAG
            | IP_BIND_ADDRESS_NO_PORT
            | IP_UNICAST_IF
            | IP_MULTICAST_TTL
            | IP_MULTICAST_ALL
            | IP_MULTICAST_LOOP
            | IP_ORIGDSTADDR
            | IP_CHECKSUM
            | IP_RECVFRAGSIZE
            | IP_RECVERR_RFC4884
            | IP_LOCAL_PORT_RANGE
    )
}

fn cmsg_bit(name: i32) -> Option<u32> {
    Some(match name {
        IP_PKTINFO => cmsg::PKTINFO,
        IP_RECVTTL => cmsg::TTL,
        IP_RECVTOS => cmsg::TOS,
        IP_RECVOPTS => cmsg::RECVOPTS,
        IP_RETOPTS => cmsg::RETOPTS,
        IP_PASSSEC => cmsg::PASSSEC,
        IP_ORIGDSTADDR => cmsg::ORIGDSTADDR,
        IP_CHECKSUM => cmsg::CHECKSUM,
        IP_RECVFRAGSIZE => cmsg::RECVFRAGSIZE,
        _ => return None,
    })
}

/// `do_ip_setsockopt()` for a TCP socket. `priority` is `sk->sk_priority`, which IP_TOS sets;
/// `local` is the host's address (IP_OPTIONS' prespecified timestamps ask whether an address
/// is ours). A caller changing IP_OPTIONS resyncs the MSS to the new header length.
pub(crate) fn do_ip_setsockopt(
    inet: &mut InetOpts,
    priority: &mut u32,
    local: Ipv4Addr,
    name: i32,
    val: &[u8],
) -> SysResult<()> {
    let v = if int_or_byte_opt(name) {
        match val.len() {
            0 => 0,
            1..=3 => val[0] as i32,
            _ => i32::from_ne_bytes([val[0], val[1], val[2], val[3]]),
        }
    } else {
        0
    };
    if let Some(bit) = cmsg_bit(name) {
        // IP_RECVFRAGSIZE is for raw and datagram sockets only.
        if name == IP_RECVFRAGSIZE {
            return Err(Errno::EINVAL);
        }
        if v != 0 {
            inet.cmsg_flags |= bit;
        } else {
            inet.cmsg_flags &= !bit;
        }
        return Ok(());
    }
    match name {
        IP_FREEBIND | IP_TRANSPARENT if val.is_empty() => return Err(Errno::EINVAL),
        IP_FREEBIND => inet.freebind = v != 0,
        // The caller holds CAP_NET_ADMIN (utcp runs no unprivileged callers).
        IP_TRANSPARENT => inet.transparent = v != 0,
        IP_TOS => {
            // The ECN bits stay TCP's; the priority follows the TOS.
            let tos = ((v & !0x3) as u8) | (inet.tos & 0x3);
            inet.tos = tos;
            *priority = super::rt_tos2priority(tos);
        }
        IP_TTL => {
            if val.is_empty() {
                return Err(Errno::EINVAL);
            }
            if v != -1 && !(1..=255).contains(&v) {
                return Err(Errno::EINVAL);
            }
            inet.uc_ttl = v;
        }
        IP_RECVERR => inet.recverr = v != 0,
        IP_OPTIONS => {
            // ip_options_get(): an empty value stores an empty set (no options on the wire);
            // a bad one leaves the old set in place.
            if val.len() > MAX_IPOPTLEN {
                return Err(Errno::EINVAL);
            }
            let opt = ip_options_get(val, local)?;
            inet.opt = Some(Box::new(opt));
        }
        IP_BIND_ADDRESS_NO_PORT => inet.bind_address_no_port = v != 0,
        IP_LOCAL_PORT_RANGE => {
            // A u32, nothing shorter or longer; a range whose halves are both set must not
            // be reversed.
            if val.len() != 4 {
                return Err(Errno::EINVAL);
            }
            let (lo, hi) = (v as u32 & 0xffff, v as u32 >> 16);
            if lo != 0 && hi != 0 && lo > hi {
                return Err(Errno::EINVAL);
            }
            inet.local_port_range = v as u32;
        }
        IP_RECVERR_RFC4884 => {
            if !(0..=1).contains(&v) {
                return Err(Errno::EINVAL);
            }
            inet.recverr_rfc4884 = v != 0;
        }
        IP_MTU_DISCOVER => {
            if !(0..=IP_PMTUDISC_OMIT as i32).contains(&v) {
                return Err(Errno::EINVAL);
            }
            inet.pmtudisc = v as u8;
        }
        IP_MINTTL => {
            if val.is_empty() || !(0..=255).contains(&v) {
                return Err(Errno::EINVAL);
            }
            inet.min_ttl = v as u8;
        }
        IP_UNICAST_IF => {
            // An int, nothing shorter or longer.
            if val.len() != 4 {
                return Err(Errno::EINVAL);
            }
            // The interface index, in network byte order. DEVIATION(linux): utcp's stack has
            // no interface indexes (one device, bound by no index); 0 (none) is accepted and
            // any other index names an absent device, as dev_get_by_index() failing answers.
            if u32::from_be(v as u32) != 0 {
                return Err(Errno::EADDRNOTAVAIL);
            }
        }
        // Raw sockets only.
        IP_HDRINCL | IP_NODEFRAG => return Err(Errno::ENOPROTOOPT),
        // ip_ra_control(): raw sockets only.
        IP_ROUTER_ALERT => return Err(Errno::EINVAL),
        IP_MULTICAST_TTL | IP_MULTICAST_IF => return Err(Errno::EINVAL),
        IP_MULTICAST_LOOP => {
            if val.is_empty() {
                return Err(Errno::EINVAL);
            }
            inet.mc_loop = v != 0;
        }
        IP_MULTICAST_ALL => {
            if val.is_empty() || !(0..=1).contains(&v) {
                return Err(Errno::EINVAL);
            }
            inet.mc_all = v != 0;
        }
        // A connection-oriented socket joins no groups.
        IP_ADD_MEMBERSHIP | IP_DROP_MEMBERSHIP => return Err(Errno::EPROTO),
        IP_UNBLOCK_SOURCE | IP_BLOCK_SOURCE | IP_ADD_SOURCE_MEMBERSHIP | IP_DROP_SOURCE_MEMBERSHIP => {
            // struct ip_mreq_source.
            return Err(if val.len() < 12 { Errno::EINVAL } else { Errno::EPROTO });
        }
        MCAST_JOIN_GROUP | MCAST_LEAVE_GROUP => {
            // struct group_req.
            return Err(if val.len() < 136 { Errno::EINVAL } else { Errno::EPROTO });
        }
        MCAST_BLOCK_SOURCE | MCAST_UNBLOCK_SOURCE | MCAST_JOIN_SOURCE_GROUP | MCAST_LEAVE_SOURCE_GROUP => {
            // struct group_source_req.
            return Err(if val.len() < 264 { Errno::EINVAL } else { Errno::EPROTO });
        }
        IP_MSFILTER | MCAST_MSFILTER => return Err(Errno::EINVAL),
        _ => return Err(Errno::ENOPROTOOPT),
    }
    Ok(())
}

/// `do_ip_getsockopt()`: the bytes to copy out and the length to report, given the
/// caller's `optlen` (`len`). Int values are written as one byte when `len` is below an
/// int and the value fits in one, as Linux does.
pub(crate) fn do_ip_getsockopt(
    inet: &InetOpts,
    sk: InetSockView,
    net: &Netns,
    name: i32,
    len: usize,
) -> SysResult<(Vec<u8>, usize)> {
    let val: i32 = match name {
        IP_TOS => inet.tos as i32,
        IP_TTL => {
            if inet.uc_ttl < 0 {
                net.sysctl.ip_default_ttl.get() as i32
            } else {
                inet.uc_ttl
            }
        }
        IP_FREEBIND => inet.freebind as i32,
        IP_TRANSPARENT => inet.transparent as i32,
        IP_RECVERR => inet.recverr as i32,
        IP_RECVERR_RFC4884 => inet.recverr_rfc4884 as i32,
        IP_MTU_DISCOVER => inet.pmtudisc as i32,
        IP_MTU => {
            if !sk.has_dst {
                return Err(Errno::ENOTCONN);
            }
            sk.mtu as i32
        }
        IP_MINTTL => inet.min_ttl as i32,
        IP_HDRINCL | IP_NODEFRAG | IP_ROUTER_ALERT | IP_UNICAST_IF => 0,
        IP_BIND_ADDRESS_NO_PORT => inet.bind_address_no_port as i32,
        IP_LOCAL_PORT_RANGE => inet.local_port_range as i32,
        IP_MULTICAST_TTL => inet.mc_ttl as i32,
        IP_MULTICAST_LOOP => inet.mc_loop as i32,
        IP_MULTICAST_ALL => inet.mc_all as i32,
        // `inet_sk(sk)->inet_num`, which on a TCP socket is the local port.
        IP_PROTOCOL => sk.num as i32,
        IP_MULTICAST_IF => {
            // inet->mc_addr as a struct in_addr, truncated to len.
            let n = len.min(4);
            return Ok((vec![0; n], n));
        }
        IP_OPTIONS => {
            // The options as set (ip_options_undo), truncated to len.
            let Some(opt) = inet.opt.as_ref().filter(|o| o.optlen != 0) else { return Ok((Vec::new(), 0)) };
            let mut d = ip_options_undo(opt);
            d.truncate(len);
            let n = d.len();
            return Ok((d, n));
        }
        IP_PKTOPTIONS => return Ok(ip_pktoptions(inet, sk, len)),
        IP_MSFILTER | MCAST_MSFILTER => return Err(Errno::EINVAL),
        n => match cmsg_bit(n) {
            Some(bit) => (inet.cmsg_flags & bit != 0) as i32,
            None => return Err(Errno::ENOPROTOOPT),
        },
    };
    if len < 4 && len > 0 && (0..=255).contains(&val) {
        return Ok((vec![val as u8], 1));
    }
    let n = len.min(4);
    Ok((val.to_ne_bytes()[..n].to_vec(), n))
}

/// IP_PKTOPTIONS on a stream socket: the control messages a receiver asked for, built
/// from the socket (`put_cmsg` each, truncated as it truncates).
fn ip_pktoptions(inet: &InetOpts, sk: InetSockView, len: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut room = len;
    let mut put = |ty: i32, data: &[u8]| {
        const HDR: usize = 16;
        if room < HDR {
            return;
        }
        let cmlen = (HDR + data.len()).min(room);
        let mut c = Vec::with_capacity(cmlen);
        c.extend_from_slice(&(cmlen as u64).to_ne_bytes());
        c.extend_from_slice(&0i32.to_ne_bytes());
        c.extend_from_slice(&ty.to_ne_bytes());
        c.extend_from_slice(&data[..cmlen - HDR]);
        let space = (HDR + data.len()).div_ceil(8) * 8;
        let adv = space.min(room);
        c.resize(adv, 0);
        out.extend_from_slice(&c[..cmlen]);
        out.resize(out.len() + adv - cmlen, 0);
        room -= adv;
    };
    if inet.cmsg_flags & cmsg::PKTINFO != 0 {
        // struct in_pktinfo: ifindex (mc_index 0), spec_dst, addr.
        let mut d = 0i32.to_ne_bytes().to_vec();
        d.extend_from_slice(&sk.rcv_saddr.octets());
        d.extend_from_slice(&sk.rcv_saddr.octets());
        put(IP_PKTINFO, &d);
    }
    if inet.cmsg_flags & cmsg::TTL != 0 {
        put(IP_TTL, &(inet.mc_ttl as i32).to_ne_bytes());
    }
    if inet.cmsg_flags & cmsg::TOS != 0 {
        put(IP_TOS, &(inet.rcv_tos as i32).to_ne_bytes());
    }
    let n = out.len();
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> InetSockView {
        InetSockView { has_dst: false, mtu: 1500, rcv_saddr: Ipv4Addr::UNSPECIFIED, num: 0 }
    }

    #[test]
    fn tos_keeps_ecn_bits_and_sets_priority() {
        let mut o = InetOpts { tos: 0x2, ..Default::default() };
        let mut prio = 0;
        do_ip_setsockopt(&mut o, &mut prio, Ipv4Addr::LOCALHOST, IP_TOS, &0x13i32.to_ne_bytes()).unwrap();
        assert_eq!(o.tos, 0x12);
        assert_eq!(prio, crate::ip::rt_tos2priority(0x12));
        // One byte is read as the value.
        do_ip_setsockopt(&mut o, &mut prio, Ipv4Addr::LOCALHOST, IP_TOS, &[0x20]).unwrap();
        assert_eq!(o.tos, 0x22);
    }

    #[test]
    fn ttl_range_and_one_byte_readback() {
        let mut o = InetOpts::default();
        let mut prio = 0;
        assert_eq!(
            do_ip_setsockopt(&mut o, &mut prio, Ipv4Addr::LOCALHOST, IP_TTL, &0i32.to_ne_bytes()),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            do_ip_setsockopt(&mut o, &mut prio, Ipv4Addr::LOCALHOST, IP_TTL, &256i32.to_ne_bytes()),
            Err(Errno::EINVAL)
        );
        do_ip_setsockopt(&mut o, &mut prio, Ipv4Addr::LOCALHOST, IP_TTL, &7i32.to_ne_bytes()).unwrap();
        let net = Netns::new(Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        assert_eq!(do_ip_getsockopt(&o, view(), &net, IP_TTL, 16).unwrap(), (7i32.to_ne_bytes().to_vec(), 4));
        assert_eq!(do_ip_getsockopt(&o, view(), &net, IP_TTL, 2).unwrap(), (vec![7], 1));
        assert_eq!(do_ip_getsockopt(&o, view(), &net, 9999, 4), Err(Errno::ENOPROTOOPT));
        assert_eq!(do_ip_getsockopt(&o, view(), &net, IP_MTU, 4), Err(Errno::ENOTCONN));
    }

    #[test]
    fn mtu_discover_range_and_pktoptions() {
        let mut o = InetOpts::default();
        let mut prio = 0;
        assert_eq!(
            do_ip_setsockopt(&mut o, &mut prio, Ipv4Addr::LOCALHOST, IP_MTU_DISCOVER, &6i32.to_ne_bytes()),
            Err(Errno::EINVAL)
        );
        do_ip_setsockopt(&mut o, &mut prio, Ipv4Addr::LOCALHOST, IP_MTU_DISCOVER, &0i32.to_ne_bytes()).unwrap();
        assert_eq!(o.pmtudisc, IP_PMTUDISC_DONT);
        let net = Netns::new(Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        assert_eq!(do_ip_getsockopt(&o, view(), &net, IP_PKTOPTIONS, 64).unwrap().1, 0);
        do_ip_setsockopt(&mut o, &mut prio, Ipv4Addr::LOCALHOST, IP_RECVTTL, &1i32.to_ne_bytes()).unwrap();
        let (b, n) = do_ip_getsockopt(&o, view(), &net, IP_PKTOPTIONS, 64).unwrap();
        assert_eq!(n, 24);
        assert_eq!(&b[16..20], &1i32.to_ne_bytes());
    }
}
