//! The socket error queue for IP_RECVERR: `ip_icmp_error` (net/ipv4/ip_sockglue.c) queues an
//! ICMP error as `sock_queue_err_skb` (net/core/skbuff.c) does, and `ip_recv_error` reads it
//! back for `recvmsg(MSG_ERRQUEUE)`: the quoted bytes, the original destination as msg_name,
//! and an `IP_RECVERR` control message holding `struct sock_extended_err` followed by the
//! offender's `sockaddr_in` (`SO_EE_OFFENDER`).

use crate::errno::Errno;
use crate::ip::icmp::IcmpErr;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

/// `SO_EE_ORIGIN_ICMP`.
pub(crate) const SO_EE_ORIGIN_ICMP: u8 = 2;
/// `SO_EE_ORIGIN_ICMP6`.
pub(crate) const SO_EE_ORIGIN_ICMP6: u8 = 3;

/// One queued report (`SKB_EXT_ERR(skb)`: `struct sock_exterr_skb`): an ICMP error
/// (SO_EE_ORIGIN_ICMP) or a MSG_ZEROCOPY completion (SO_EE_ORIGIN_ZEROCOPY, tcp/zerocopy.rs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SockExterr {
    /// `ee_errno` (`None`: 0, as a zerocopy completion carries).
    pub(crate) errno: Option<Errno>,
    /// `ee_origin`.
    pub(crate) origin: u8,
    /// `ee_type`.
    pub(crate) icmp_type: u8,
    /// `ee_code`.
    pub(crate) code: u8,
    /// `ee_info`.
    pub(crate) info: u32,
    /// `ee_data`.
    pub(crate) data: u32,
    /// Who sent the error (`SO_EE_OFFENDER`; `None`: a local report, all zero).
    pub(crate) offender: Option<IpAddr>,
    /// The quoted datagram's destination and port (`serr->addr_offset`, `serr->port`).
    pub(crate) addr: IpAddr,
    /// See `addr`.
    pub(crate) port: u16,
    /// `serr->header.h4.iif`: the device a timestamped packet left by (0: none, as for a
    /// report without payload); with SOF_TIMESTAMPING_OPT_CMSG it gives IP_PKTINFO.
    pub(crate) iif: i32,
    /// `skb->tstamp`: when a timestamping report was made (None: not stamped).
    pub(crate) tstamp: Option<crate::time::Instant>,
    /// `serr->opt_stats`: the data is SCM_TIMESTAMPING_OPT_STATS attributes.
    pub(crate) opt_stats: bool,
    /// The quoted transport header onwards (what `recvmsg` returns as data); for a
    /// timestamping report the packet, or nothing.
    pub(crate) payload: Vec<u8>,
}

impl SockExterr {
    /// `skb->truesize` charged against `sk_rcvbuf` (an ICMP skb: payload + overhead).
    pub(crate) fn truesize(&self) -> u32 {
        crate::skb::skb_truesize(self.payload.len() as u32 + 28)
    }

    /// The `IP_RECVERR` cmsg payload: `struct sock_extended_err` (16 bytes) then the
    /// offender's `struct sockaddr_in` (16 bytes).
    pub(crate) fn cmsg_data(&self) -> [u8; 32] {
        let mut d = [0u8; 32];
        d[0..4].copy_from_slice(&self.errno.map_or(0, |e| e as u32).to_ne_bytes());
        d[4] = self.origin;
        d[5] = self.icmp_type;
        d[6] = self.code;
        d[8..12].copy_from_slice(&self.info.to_ne_bytes());
        d[12..16].copy_from_slice(&self.data.to_ne_bytes());
        if let Some(IpAddr::V4(o)) = self.offender {
            d[16..18].copy_from_slice(&2u16.to_ne_bytes()); // AF_INET
            d[20..24].copy_from_slice(&o.octets());
        }
        d
    }

    /// The error's control message for a socket of `family`: (level, type, data).
    /// `ip_recv_error()` gives `IP_RECVERR` with a `sockaddr_in` offender; `ipv6_recv_error()`
    /// gives `IPV6_RECVERR` (SOL_IPV6) with a `sockaddr_in6` one, an IPv4 offender
    /// IPv4-mapped.
    pub(crate) fn cmsg(&self, family: i32) -> (i32, i32, Vec<u8>) {
        if family != crate::uapi::AF_INET6 {
            return (crate::uapi::SOL_IP, crate::uapi::opt::IP_RECVERR, self.cmsg_data().to_vec());
        }
        let mut d = self.cmsg_data()[..16].to_vec();
        match self.offender {
            Some(o) => {
                let (b, _) = crate::uapi::sockaddr_bytes(&crate::uapi::sock_addr(family, o, 0));
                d.extend_from_slice(&b);
            }
            None => d.extend_from_slice(&[0; crate::uapi::SOCKADDR_IN6_LEN]),
        }
        (crate::uapi::SOL_IPV6, crate::ip::ipv6_sockglue::IPV6_RECVERR, d)
    }

    /// `msg_name`: the quoted datagram's destination, as a socket of `family` shows it, for
    /// the origins `ip(v6)_datagram_support_addr()` names (ICMP, ICMP6); none for a zerocopy
    /// completion.
    pub(crate) fn name(&self, family: i32) -> Option<SocketAddr> {
        matches!(self.origin, SO_EE_ORIGIN_ICMP | SO_EE_ORIGIN_ICMP6)
            .then(|| crate::uapi::sock_addr(family, self.addr, self.port))
    }
}

/// `ip_icmp_error()` + `sock_queue_err_skb()`: queues `e` (already known to concern this
/// socket, with IP_RECVERR on) unless the queue's memory would pass `rcvbuf` (then it is
/// dropped, as `sock_queue_err_skb` answers -ENOMEM).
pub(crate) fn ip_icmp_error(q: &mut VecDeque<SockExterr>, rcvbuf: u32, e: &IcmpErr, err: Errno) {
    let x = SockExterr {
        errno: Some(err),
        // ipv6_icmp_error() for an ICMPv6 error.
        origin: if e.from.is_ipv6() { SO_EE_ORIGIN_ICMP6 } else { SO_EE_ORIGIN_ICMP },
        icmp_type: e.icmp_type,
        code: e.code,
        info: e.info,
        data: 0,
        offender: Some(e.from),
        addr: e.daddr,
        port: u16::from_be_bytes([e.payload[2], e.payload[3]]),
        iif: 0,
        tstamp: None,
        opt_stats: false,
        payload: e.payload.clone(),
    };
    let used: u32 = q.iter().map(SockExterr::truesize).sum();
    if used + x.truesize() >= rcvbuf {
        return;
    }
    q.push_back(x);
}

/// `ip_recv_error()`: dequeues the oldest error; `Err(EAGAIN)` when there is none.
pub(crate) fn ip_recv_error(q: &mut VecDeque<SockExterr>) -> Result<SockExterr, Errno> {
    q.pop_front().ok_or(Errno::EAGAIN)
}
