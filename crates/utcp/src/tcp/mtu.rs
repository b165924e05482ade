//! Path MTU discovery for TCP (RFC 1191): `tcp_v4_mtu_reduced` (net/ipv4/tcp_ipv4.c) after an
//! ICMP fragmentation-needed, and `tcp_simple_retransmit` (net/ipv4/tcp_input.c), which resends
//! what no longer fits.

use super::{cong::CaState, Ctx, TcpSock, TcpState, TxSkb, TCPCB_LOST, TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS};
use crate::wire::TcpFlags;

/// `net.ipv4.route.min_pmtu`: a smaller reported MTU is raised to this.
pub(crate) const IP_RT_MIN_PMTU: u32 = 552;

impl TcpSock {
    /// The path MTU: the device MTU, lowered by frag-needed reports (the route's PMTU).
    pub(crate) fn path_mtu(&self, dev_mtu: u32) -> u32 {
        if self.pmtu == 0 {
            dev_mtu
        } else {
            self.pmtu.min(dev_mtu)
        }
    }

    /// `tcp_v4_mtu_reduced()` with `tp->mtu_info = info`: updates the route's PMTU
    /// (`__ip_rt_update_pmtu`: only downwards, never below `min_pmtu`), then, when it is below
    /// what the MSS was synced to (`icsk_pmtu_cookie`), lowers the MSS and retransmits what no
    /// longer fits.
    pub(crate) fn tcp_v4_mtu_reduced(&mut self, ctx: &mut Ctx<'_>, info: u32) {
        if matches!(self.state, TcpState::Listen | TcpState::Close) {
            return;
        }
        let cookie = self.path_mtu(ctx.net.mtu());
        let mtu = info.max(IP_RT_MIN_PMTU).min(cookie);
        if mtu < cookie {
            self.pmtu = mtu;
            self.tcp_sync_mss(mtu, ctx.net.sysctl.tcp_min_snd_mss.get() as u32);
            self.tcp_simple_retransmit(ctx);
        }
    }

    /// `tcp_simple_retransmit()`: every sent segment longer than the new MSS is marked lost
    /// (cut to MSS-sized pieces, as `tcp_fragment` does when it is resent) and the lost ones
    /// are retransmitted, without touching the congestion window beyond entering Loss.
    pub(crate) fn tcp_simple_retransmit(&mut self, ctx: &mut Ctx<'_>) {
        let mss = self.tcp_current_mss().max(1) as usize;
        let prior_lost = self.lost_out;
        let mut q = crate::skb_queue::SkbQueue::new();
        for mut skb in std::mem::take(&mut self.rtx_queue) {
            if skb.data.len() <= mss || skb.sacked & TCPCB_SACKED_ACKED != 0 {
                q.push_back(skb);
                continue;
            }
            // tcp_mark_skb_lost(): a retransmission in flight no longer counts.
            if skb.sacked & TCPCB_SACKED_RETRANS != 0 {
                skb.sacked &= !TCPCB_SACKED_RETRANS;
                self.retrans_out = self.retrans_out.saturating_sub(1);
            }
            let was_lost = skb.sacked & TCPCB_LOST != 0;
            let pieces = skb.data.len().div_ceil(mss);
            let last_flags = skb.flags;
            let mid_flags = TcpFlags(skb.flags.0 & !(TcpFlags::FIN.0 | TcpFlags::PSH.0));
            let mut seq = skb.seq;
            for i in 0..pieces {
                let data = skb.data.slice(i * mss..((i + 1) * mss).min(skb.data.len()));
                let last = i + 1 == pieces;
                let end = seq + data.len() as u32 + if last { last_flags.fin() as u32 } else { 0 };
                q.push_back(TxSkb {
                    seq,
                    end_seq: end,
                    flags: if last { last_flags } else { mid_flags },
                    building: None,
                    data,
                    frag: bytes::Bytes::new(),
                    sacked: skb.sacked | TCPCB_LOST,
                    tx_time: skb.tx_time,
                    retrans: skb.retrans,
                    urg: skb.urg,
                    tx: skb.tx,
                    tx_order: skb.tx_order,
                });
                seq = end;
            }
            self.packets_out += pieces as u32 - 1;
            self.lost_out += pieces as u32 - was_lost as u32;
            self.rate.lost += pieces as u32 - was_lost as u32;
        }
        self.rtx_queue = q;
        if self.lost_out == prior_lost {
            return;
        }
        if self.ca_state != CaState::Loss {
            self.high_seq = self.snd_nxt;
            self.snd_ssthresh = self.tcp_current_ssthresh();
            self.prior_ssthresh = 0;
            self.undo_marker = None;
            self.ca_state = CaState::Loss;
        }
        self.tcp_xmit_retransmit_queue(ctx);
    }
}
