//! TCP transmit timestamps (net/ipv4/tcp.c `tcp_tx_timestamp`, net/core/skbuff.c
//! `__skb_tstamp_tx` / `__skb_complete_tx_timestamp`, net/ipv4/tcp_input.c `tcp_ack_tstamp`).
//!
//! With SOF_TIMESTAMPING_TX_{SCHED,SOFTWARE,ACK} among the socket's flags, every `sendmsg`
//! that queues bytes marks the last byte it wrote (`shinfo->tskey`) on the skb that holds it.
//! When that skb enters the device queue (SCM_TSTAMP_SCHED), when the device sends it
//! (SCM_TSTAMP_SND) and when the peer acknowledges it whole (SCM_TSTAMP_ACK), a report goes on
//! the socket's error queue: `ee_errno` ENOMSG, `ee_origin` SO_EE_ORIGIN_TIMESTAMPING,
//! `ee_info` the type, `ee_data` the key relative to `sk_tskey` under OPT_ID; the packet (or
//! nothing under OPT_TSONLY) as data; the time as SCM_TIMESTAMPING when read
//! (ip/recverr.rs, tcp/recvmsg.rs).
//!
//! Linux keeps the mark in the skb (`tx_flags`, `txstamp_ack`, `tskey`) and moves it with the
//! key when an skb is split (`tcp_fragment_tstamp`). utcp keeps the marks beside the queues,
//! keyed by sequence number, which follows the key through every split; a second `sendmsg`
//! into the same unsent skb merges into its mark (the flags OR, the key moves), as a second
//! `tcp_tx_timestamp` on the same skb does. DEVIATION(linux): two marked skbs that a
//! retransmission collapses into one keep both marks (Linux keeps the later key only).
//!
//! utcp's devices send a frame as it is queued, so SCHED and SND carry the same time; there
//! are no hardware timestamps (TX_HARDWARE and TX_COMPLETION never report, as on a Linux
//! device without them).

use super::recvmsg::RecvInfo;
use super::{Ctx, TcpSock, TxSkb};
use crate::errno::Errno;
use crate::ip::recverr::SockExterr;
use crate::seq::SeqNum;
use crate::skb::Frame;
use crate::socket::timestamping::*;
use crate::uapi::opt::{IP_PKTINFO, IP_TOS, IP_TTL, SCM_TIMESTAMPING_OPT_STATS};
pub(crate) use crate::uapi::{SCM_TSTAMP_ACK, SCM_TSTAMP_SCHED, SCM_TSTAMP_SND};
use crate::uapi::{SOL_IP, SOL_SOCKET};
use std::collections::VecDeque;

/// `SO_EE_ORIGIN_TIMESTAMPING`.
pub(crate) const SO_EE_ORIGIN_TIMESTAMPING: u8 = 4;

/// One skb's timestamp request (`shinfo->tx_flags`, `shinfo->tskey`, `txstamp_ack`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TsReq {
    /// `shinfo->tskey`: the last byte of the `sendmsg` that asked.
    pub(crate) key: SeqNum,
    /// The SOF_TIMESTAMPING_TX_* flags asked for (SCHED, SOFTWARE, HARDWARE, ACK).
    pub(crate) flags: u32,
}

impl TcpSock {
    /// `tcp_tx_timestamp()`: at the end of a `sendmsg` that queued bytes, mark the last skb
    /// (the write queue's tail; the retransmit queue's when everything was sent already).
    pub(crate) fn tcp_tx_timestamp(&mut self, tsflags: u32) {
        const ASKED: u32 = SOF_TIMESTAMPING_TX_SCHED
            | SOF_TIMESTAMPING_TX_SOFTWARE
            | SOF_TIMESTAMPING_TX_HARDWARE
            | SOF_TIMESTAMPING_TX_ACK
            | SOF_TIMESTAMPING_TX_COMPLETION;
        if tsflags & SOF_TIMESTAMPING_TX_RECORD_MASK == 0 {
            return;
        }
        let Some((seq, end)) = self.write_queue.back().or(self.rtx_queue.back()).map(|s: &TxSkb| (s.seq, s.end_seq))
        else {
            return;
        };
        if end == seq {
            return;
        }
        let mut req = TsReq { key: end - 1, flags: tsflags & ASKED };
        let ts_reqs = &mut self.ext_mut().ts_reqs;
        if let Some(i) = ts_reqs.iter().position(|r| !r.key.before(seq) && r.key.before(end)) {
            req.flags |= ts_reqs.remove(i).expect("found").flags;
        }
        ts_reqs.push_back(req);
    }

    /// `__dev_queue_xmit()` (SCHED) and the driver's `skb_tx_timestamp()` (SND) for a frame
    /// carrying `[seq, seq + len)`.
    pub(crate) fn tcp_tstamp_xmit(&mut self, ctx: &mut Ctx<'_>, seq: SeqNum, len: u32, frame: &Frame) {
        if self.ext().ts_reqs.is_empty() || len == 0 {
            return;
        }
        let end = seq + len;
        // One skb holds at most one mark; a frame of several (a collapsed retransmission)
        // reports each.
        let marks: Vec<TsReq> =
            self.ext().ts_reqs.iter().filter(|r| !r.key.before(seq) && r.key.before(end)).copied().collect();
        if marks.is_empty() {
            return;
        }
        let iif = if frame.oif != 0 {
            frame.oif
        } else if self.daddr == ctx.net.local_addr() || self.daddr.is_loopback() {
            crate::netns::LOOPBACK_IFINDEX
        } else {
            crate::netns::DEV_IFINDEX
        };
        for r in marks {
            for (asked, tstype) in
                [(SOF_TIMESTAMPING_TX_SCHED, SCM_TSTAMP_SCHED), (SOF_TIMESTAMPING_TX_SOFTWARE, SCM_TSTAMP_SND)]
            {
                if r.flags & asked != 0 {
                    self.skb_tstamp_tx(ctx, tstype, r.key, || frame.to_vec(), iif);
                }
            }
        }
    }

    /// `tcp_ack_tstamp()`: `skb` was acknowledged whole by an ACK that moved `snd_una` from
    /// `prior_snd_una`; its key, if this ACK covered it, gives an ACK report.
    pub(crate) fn tcp_ack_tstamp(&mut self, ctx: &mut Ctx<'_>, skb: &TxSkb, prior_snd_una: SeqNum) {
        if self.ext().ts_reqs.is_empty() {
            return;
        }
        let within = |r: &TsReq| !r.key.before(skb.seq) && r.key.before(skb.end_seq);
        if !self.ext().ts_reqs.iter().any(within) {
            return;
        }
        let mut data = None;
        let (marks, rest): (VecDeque<TsReq>, VecDeque<TsReq>) = self.ext_mut().ts_reqs.drain(..).partition(within);
        self.ext_mut().ts_reqs = rest;
        for r in marks {
            if r.flags & SOF_TIMESTAMPING_TX_ACK != 0 && !r.key.before(prior_snd_una) && r.key.before(self.snd_una) {
                let d = data
                    .get_or_insert_with(|| {
                        skb.building.as_ref().map(|b| b.to_vec()).unwrap_or_else(|| skb.data.to_vec())
                    })
                    .clone();
                self.skb_tstamp_tx(ctx, SCM_TSTAMP_ACK, r.key, || d, 0);
            }
        }
    }

    /// The write queue was purged: its skbs are freed unreported.
    pub(crate) fn tcp_tstamp_purge(&mut self) {
        if let Some(e) = self.ext_if_any() {
            e.ts_reqs.clear();
        }
    }

    /// `__skb_tstamp_tx()` + `__skb_complete_tx_timestamp()` + `sock_queue_err_skb()`.
    fn skb_tstamp_tx(
        &mut self,
        ctx: &mut Ctx<'_>,
        tstype: u32,
        key: SeqNum,
        packet: impl FnOnce() -> Vec<u8>,
        iif: i32,
    ) {
        let tsflags = self.tsflags;
        let tsonly = tsflags & SOF_TIMESTAMPING_OPT_TSONLY != 0;
        let stats = tsonly && tsflags & SOF_TIMESTAMPING_OPT_STATS != 0;
        // skb_may_tx_timestamp(): a copy of the packet needs net.core.tstamp_allow_data or
        // CAP_NET_RAW; the caller is root.
        let payload = if stats {
            super::timestamping_stats::tcp_get_timestamping_opt_stats(self, ctx, tstype == SCM_TSTAMP_ACK)
        } else if tsonly {
            Vec::new()
        } else {
            packet()
        };
        let data = if tsflags & SOF_TIMESTAMPING_OPT_ID != 0 { key.0.wrapping_sub(self.tskey) } else { 0 };
        let x = SockExterr {
            errno: Some(Errno::ENOMSG),
            origin: SO_EE_ORIGIN_TIMESTAMPING,
            icmp_type: 0,
            code: 0,
            info: tstype,
            data,
            offender: None,
            addr: std::net::Ipv4Addr::UNSPECIFIED.into(),
            port: 0,
            // An skb with no payload has no device (alloc_skb(0)): no IP_PKTINFO.
            iif: if tsonly { 0 } else { iif },
            tstamp: Some(ctx.now),
            opt_stats: stats,
            payload,
        };
        // sock_queue_err_skb(): the receive memory the error queue shares.
        let used: u32 = self.ext().error_queue.iter().map(SockExterr::truesize).sum::<u32>() + self.rmem_alloc;
        if used + x.truesize() >= self.rcvbuf {
            return;
        }
        self.ext_mut().error_queue.push_back(x);
        // sk_error_report(): poll() sees EPOLLERR.
        ctx.ev.state_change = true;
    }
}

/// `tcp_recv_timestamp()`'s software half: with a stamped skb, SCM_TIMESTAMPING carries it
/// under SOF_TIMESTAMPING_SOFTWARE, when RX_SOFTWARE asked for it or OPT_RX_FILTER does not
/// filter it out. An skb is stamped (`skb->tstamp`) when this socket asked for receive
/// timestamps (SO_TIMESTAMP(NS), SOF_TIMESTAMPING_RX_SOFTWARE).
/// DEVIATION(linux): Linux stamps every received skb once any socket of the system asked
/// (the `netstamp_needed_key` static key), so a socket with SOFTWARE alone may see stamps there.
pub(crate) fn rx_software_report(tsflags: u32, rx_tstamp_opt: u8) -> bool {
    let stamped = rx_tstamp_opt != 0 || tsflags & SOF_TIMESTAMPING_RX_SOFTWARE != 0;
    stamped
        && tsflags & SOF_TIMESTAMPING_SOFTWARE != 0
        && (tsflags & SOF_TIMESTAMPING_RX_SOFTWARE != 0 || tsflags & SOF_TIMESTAMPING_OPT_RX_FILTER == 0)
}

/// What `ip_recv_error()` reads from the socket besides the report.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ErrqueueView {
    tsflags: u32,
    rx_tstamp_opt: u8,
    tstamp_new: bool,
    ip_cmsg_flags: u32,
}

impl ErrqueueView {
    /// The socket's state as the read sees it.
    pub(crate) fn of(tp: &TcpSock) -> ErrqueueView {
        ErrqueueView {
            tsflags: tp.tsflags,
            rx_tstamp_opt: tp.rx_tstamp_opt,
            tstamp_new: tp.tstamp_new,
            ip_cmsg_flags: tp.inet.cmsg_flags,
        }
    }

    /// `ip_recv_error()`'s control messages for report `x` read at `now`:
    /// `sock_recv_timestamp()` (SO_TIMESTAMP(NS), SCM_TIMESTAMPING, SCM_TIMESTAMPING_OPT_STATS),
    /// then for a timestamping report with a device under SOF_TIMESTAMPING_OPT_CMSG
    /// (`ipv4_datagram_support_cmsg`) the sender's address as offender and `ip_cmsg_recv()`.
    pub(crate) fn sock_recv_errqueue(&self, x: &mut SockExterr, now: crate::time::Instant, info: &mut RecvInfo) {
        let f = self.tsflags;
        let need_sw = self.rx_tstamp_opt != 0;
        if need_sw
            || f & SOF_TIMESTAMPING_RX_SOFTWARE != 0
            || (x.tstamp.is_some() && f & SOF_TIMESTAMPING_SOFTWARE != 0)
        {
            // __sock_recv_timestamp(): an unstamped skb is stamped now for SO_TIMESTAMP(NS).
            let kt = if need_sw { Some(x.tstamp.unwrap_or(now)) } else { x.tstamp };
            if let (true, Some(t)) = (need_sw, kt) {
                info.tstamp = Some(t);
                info.tstamp_kind = self.rx_tstamp_opt;
            }
            if let (true, Some(t)) = (f & SOF_TIMESTAMPING_SOFTWARE != 0, kt) {
                info.timestamping = Some(t);
                if x.opt_stats && !x.payload.is_empty() {
                    info.errqueue_cmsgs.push((SOL_SOCKET, SCM_TIMESTAMPING_OPT_STATS, x.payload.clone()));
                }
            }
            info.tstamp_new = self.tstamp_new;
        }
        if x.origin == SO_EE_ORIGIN_TIMESTAMPING
            && f & SOF_TIMESTAMPING_OPT_CMSG != 0
            && x.iif != 0
            && x.payload.len() >= 20
        {
            let p = &x.payload;
            let saddr = std::net::Ipv4Addr::new(p[12], p[13], p[14], p[15]);
            x.offender = Some(saddr.into());
            use crate::ip::sockglue::cmsg;
            if self.ip_cmsg_flags & cmsg::PKTINFO != 0 {
                // struct in_pktinfo: the device, the sender's address, the destination.
                let mut d = x.iif.to_ne_bytes().to_vec();
                d.extend_from_slice(&p[12..16]);
                d.extend_from_slice(&p[16..20]);
                info.errqueue_cmsgs.push((SOL_IP, IP_PKTINFO, d));
            }
            if self.ip_cmsg_flags & cmsg::TTL != 0 {
                info.errqueue_cmsgs.push((SOL_IP, IP_TTL, (p[8] as i32).to_ne_bytes().to_vec()));
            }
            if self.ip_cmsg_flags & cmsg::TOS != 0 {
                info.errqueue_cmsgs.push((SOL_IP, IP_TOS, vec![p[1]]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::Netns;
    use crate::time::Instant;

    fn skb(seq: u32, end: u32) -> TxSkb {
        TxSkb {
            seq: SeqNum(seq),
            end_seq: SeqNum(end),
            flags: crate::wire::TcpFlags::ACK,
            building: None,
            data: bytes::Bytes::from(vec![7u8; (end - seq) as usize]),
            frag: bytes::Bytes::new(),
            sacked: 0,
            tx_time: Instant::ZERO,
            tx_order: 0,
            retrans: 0,
            urg: false,
            tx: Default::default(),
        }
    }

    #[test]
    fn marks_merge_on_one_skb_and_ack_reports_once() {
        let net = Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        let mut out = Vec::new();
        let mut ctx = Ctx::new(Instant::ZERO, &net, &mut out);
        let mut tp = TcpSock::new(&net, Instant::ZERO);
        tp.rcvbuf = 1 << 20;
        tp.tsflags = SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY;
        tp.tskey = 100;
        tp.write_queue.push_back(skb(100, 110));
        tp.tcp_tx_timestamp(SOF_TIMESTAMPING_TX_SCHED);
        tp.write_queue.back_mut().unwrap().end_seq = SeqNum(120);
        tp.tcp_tx_timestamp(SOF_TIMESTAMPING_TX_ACK);
        assert_eq!(
            tp.ext().ts_reqs.iter().copied().collect::<Vec<_>>(),
            vec![TsReq { key: SeqNum(119), flags: SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_TX_ACK }]
        );
        let s = tp.write_queue.pop_front().unwrap();
        tp.snd_una = SeqNum(120);
        tp.tcp_ack_tstamp(&mut ctx, &s, SeqNum(100));
        let r = tp.ext_mut().error_queue.pop_front().expect("an ACK report");
        assert_eq!((r.errno, r.origin, r.info, r.data), (Some(Errno::ENOMSG), 4, SCM_TSTAMP_ACK, 19));
        assert!(r.payload.is_empty(), "OPT_TSONLY");
        assert!(tp.ext().ts_reqs.is_empty());
    }
}
