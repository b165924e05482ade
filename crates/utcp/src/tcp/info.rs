//! `TCP_INFO` (tcp.c `tcp_get_info`, include/uapi/linux/tcp.h `struct tcp_info`).

use super::TcpSock;
use crate::netns::Netns;
use crate::time::Instant;

/// `struct tcp_info` (the fields utcp fills; others are zero).
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct TcpInfo {
    pub tcpi_state: u8,
    pub tcpi_ca_state: u8,
    pub tcpi_retransmits: u8,
    pub tcpi_probes: u8,
    pub tcpi_backoff: u8,
    pub tcpi_options: u8,
    pub tcpi_snd_wscale: u8,
    pub tcpi_rcv_wscale: u8,
    pub tcpi_rto: u32,
    pub(crate) tcpi_ato: u32,
    pub tcpi_snd_mss: u32,
    pub(crate) tcpi_rcv_mss: u32,
    pub tcpi_unacked: u32,
    pub tcpi_sacked: u32,
    pub(crate) tcpi_lost: u32,
    pub(crate) tcpi_retrans: u32,
    pub(crate) tcpi_last_data_sent: u32,
    pub(crate) tcpi_last_data_recv: u32,
    pub(crate) tcpi_last_ack_recv: u32,
    pub tcpi_pmtu: u32,
    pub(crate) tcpi_rcv_ssthresh: u32,
    pub tcpi_rtt: u32,
    pub(crate) tcpi_rttvar: u32,
    pub tcpi_snd_ssthresh: u32,
    pub tcpi_snd_cwnd: u32,
    pub(crate) tcpi_advmss: u32,
    pub(crate) tcpi_reordering: u32,
    pub(crate) tcpi_rcv_rtt: u32,
    pub(crate) tcpi_rcv_space: u32,
    pub tcpi_total_retrans: u32,
    pub tcpi_bytes_acked: u64,
    pub tcpi_pacing_rate: u64,
    pub tcpi_max_pacing_rate: u64,
    pub tcpi_bytes_received: u64,
    pub tcpi_segs_out: u32,
    pub tcpi_segs_in: u32,
    pub tcpi_notsent_bytes: u32,
    pub tcpi_data_segs_in: u32,
    pub tcpi_data_segs_out: u32,
    pub tcpi_delivered: u32,
    pub(crate) tcpi_delivered_ce: u32,
    pub(crate) tcpi_delivery_rate: u64,
    pub(crate) tcpi_delivery_rate_app_limited: bool,
    pub tcpi_snd_wnd: u32,
    pub tcpi_rcv_wnd: u32,
    pub tcpi_min_rtt: u32,
    pub tcpi_bytes_sent: u64,
    pub tcpi_bytes_retrans: u64,
    pub tcpi_dsack_dups: u32,
    pub tcpi_reord_seen: u32,
    pub tcpi_rcv_ooopack: u32,
    pub(crate) tcpi_total_rto: u16,
    pub(crate) tcpi_total_rto_recoveries: u16,
}

impl TcpInfo {
    /// A field by its `tcp_info` name, for scripts.
    pub fn field(&self, name: &str) -> Option<i64> {
        Some(match name {
            "tcpi_state" => self.tcpi_state as i64,
            "tcpi_ca_state" => self.tcpi_ca_state as i64,
            "tcpi_retransmits" => self.tcpi_retransmits as i64,
            "tcpi_probes" => self.tcpi_probes as i64,
            "tcpi_backoff" => self.tcpi_backoff as i64,
            "tcpi_options" => self.tcpi_options as i64,
            "tcpi_snd_wscale" => self.tcpi_snd_wscale as i64,
            "tcpi_rcv_wscale" => self.tcpi_rcv_wscale as i64,
            "tcpi_rto" => self.tcpi_rto as i64,
            "tcpi_ato" => self.tcpi_ato as i64,
            "tcpi_snd_mss" => self.tcpi_snd_mss as i64,
            "tcpi_rcv_mss" => self.tcpi_rcv_mss as i64,
            "tcpi_unacked" => self.tcpi_unacked as i64,
            "tcpi_sacked" => self.tcpi_sacked as i64,
            "tcpi_lost" => self.tcpi_lost as i64,
            "tcpi_retrans" => self.tcpi_retrans as i64,
            "tcpi_last_data_sent" => self.tcpi_last_data_sent as i64,
            "tcpi_last_data_recv" => self.tcpi_last_data_recv as i64,
            "tcpi_last_ack_recv" => self.tcpi_last_ack_recv as i64,
            "tcpi_pmtu" => self.tcpi_pmtu as i64,
            "tcpi_rcv_ssthresh" => self.tcpi_rcv_ssthresh as i64,
            "tcpi_rtt" => self.tcpi_rtt as i64,
            "tcpi_rttvar" => self.tcpi_rttvar as i64,
            "tcpi_snd_ssthresh" => self.tcpi_snd_ssthresh as i64,
            "tcpi_snd_cwnd" => self.tcpi_snd_cwnd as i64,
            "tcpi_advmss" => self.tcpi_advmss as i64,
            "tcpi_reordering" => self.tcpi_reordering as i64,
            "tcpi_rcv_rtt" => self.tcpi_rcv_rtt as i64,
            "tcpi_rcv_space" => self.tcpi_rcv_space as i64,
            "tcpi_total_retrans" => self.tcpi_total_retrans as i64,
            "tcpi_bytes_acked" => self.tcpi_bytes_acked as i64,
            "tcpi_bytes_received" => self.tcpi_bytes_received as i64,
            "tcpi_segs_out" => self.tcpi_segs_out as i64,
            "tcpi_segs_in" => self.tcpi_segs_in as i64,
            "tcpi_notsent_bytes" => self.tcpi_notsent_bytes as i64,
            "tcpi_data_segs_in" => self.tcpi_data_segs_in as i64,
            "tcpi_data_segs_out" => self.tcpi_data_segs_out as i64,
            "tcpi_delivered" => self.tcpi_delivered as i64,
            "tcpi_delivered_ce" => self.tcpi_delivered_ce as i64,
            "tcpi_delivery_rate" => self.tcpi_delivery_rate.min(i64::MAX as u64) as i64,
            "tcpi_delivery_rate_app_limited" => self.tcpi_delivery_rate_app_limited as i64,
            "tcpi_snd_wnd" => self.tcpi_snd_wnd as i64,
            "tcpi_rcv_wnd" => self.tcpi_rcv_wnd as i64,
            "tcpi_min_rtt" => self.tcpi_min_rtt as i64,
            "tcpi_pacing_rate" => self.tcpi_pacing_rate.min(i64::MAX as u64) as i64,
            "tcpi_max_pacing_rate" => self.tcpi_max_pacing_rate.min(i64::MAX as u64) as i64,
            "tcpi_bytes_sent" => self.tcpi_bytes_sent as i64,
            "tcpi_bytes_retrans" => self.tcpi_bytes_retrans as i64,
            "tcpi_dsack_dups" => self.tcpi_dsack_dups as i64,
            "tcpi_reord_seen" => self.tcpi_reord_seen as i64,
            "tcpi_rcv_ooopack" => self.tcpi_rcv_ooopack as i64,
            "tcpi_total_rto" => self.tcpi_total_rto as i64,
            "tcpi_total_rto_recoveries" => self.tcpi_total_rto_recoveries as i64,
            _ => return None,
        })
    }
}

/// `tcp_get_info()` of socket `sk` whose TCP state is `tp` (a listener's accept queue is
/// read under its own lock).
pub(crate) fn tcp_get_info_sk(sk: &crate::socket::sock::Sock, tp: &TcpSock, now: Instant, net: &Netns) -> TcpInfo {
    if tp.state == super::TcpState::Listen {
        return sk.with_listener_queues(|q| tcp_get_info_with(tp, now, net, q.and_then(|q| q.listen.as_deref())));
    }
    tcp_get_info(tp, now, net)
}

/// `tcp_get_info()`.
pub(crate) fn tcp_get_info(tp: &TcpSock, now: Instant, net: &Netns) -> TcpInfo {
    tcp_get_info_with(tp, now, net, tp.listen.as_deref())
}

/// `tcp_get_info()` with the listener's queues `listen`.
fn tcp_get_info_with(tp: &TcpSock, now: Instant, net: &Netns, listen: Option<&super::listen::ListenState>) -> TcpInfo {
    if let Some(l) = listen {
        // A listener reports the fields meaningful for every state, then its accept queue:
        // tcpi_unacked = children waiting (sk_ack_backlog), tcpi_sacked = the backlog.
        return TcpInfo {
            tcpi_state: tp.sk_state() as u8,
            tcpi_pacing_rate: tp.pacing_rate,
            tcpi_max_pacing_rate: tp.ext().max_pacing_rate,
            tcpi_reordering: tp.reordering,
            tcpi_snd_cwnd: tp.snd_cwnd,
            tcpi_unacked: l.accept_queue.len() as u32,
            tcpi_sacked: l.max_backlog,
            ..TcpInfo::default()
        };
    }
    let ms = |t: Instant| now.saturating_since(t).as_millis() as u32;
    let mut o = 0u8;
    if tp.tstamp_ok {
        o |= 1;
    }
    if tp.sack_ok {
        o |= 2;
    }
    if tp.wscale_ok {
        o |= 4;
    }
    TcpInfo {
        tcpi_state: tp.sk_state() as u8,
        tcpi_ca_state: tp.ca_state as u8,
        tcpi_retransmits: tp.retransmits,
        tcpi_probes: tp.probes_out,
        tcpi_backoff: tp.backoff,
        tcpi_options: o,
        tcpi_snd_wscale: tp.snd_wscale,
        tcpi_rcv_wscale: tp.rcv_wscale,
        tcpi_rto: tp.rto.as_micros() as u32,
        tcpi_ato: tp.ack.ato.as_micros() as u32,
        tcpi_snd_mss: tp.mss_cache,
        tcpi_rcv_mss: tp.ack.rcv_mss,
        tcpi_unacked: tp.packets_out,
        tcpi_sacked: tp.sacked_out,
        tcpi_lost: tp.lost_out,
        tcpi_retrans: tp.retrans_out,
        tcpi_last_data_sent: ms(tp.lsndtime),
        tcpi_last_data_recv: ms(tp.ack.lrcvtime),
        tcpi_last_ack_recv: ms(tp.rcv_tstamp),
        tcpi_pmtu: tp.path_mtu(net.mtu()),
        tcpi_rcv_ssthresh: tp.rcv_ssthresh,
        tcpi_rtt: tp.srtt_us >> 3,
        tcpi_rttvar: tp.mdev_us >> 2,
        tcpi_snd_ssthresh: tp.snd_ssthresh,
        tcpi_snd_cwnd: tp.snd_cwnd,
        tcpi_advmss: tp.advmss,
        tcpi_reordering: tp.reordering,
        tcpi_rcv_rtt: tp.rcv_rtt_est.rtt_us >> 3,
        tcpi_rcv_space: tp.rcvq_space.space,
        tcpi_total_retrans: tp.total_retrans,
        tcpi_bytes_acked: tp.bytes_acked,
        tcpi_pacing_rate: tp.pacing_rate,
        tcpi_max_pacing_rate: tp.ext().max_pacing_rate,
        tcpi_bytes_received: tp.bytes_received,
        tcpi_segs_out: tp.segs_out,
        tcpi_segs_in: tp.segs_in,
        tcpi_notsent_bytes: tp.write_seq.diff(tp.snd_nxt),
        tcpi_data_segs_in: tp.data_segs_in,
        tcpi_data_segs_out: tp.data_segs_out,
        tcpi_delivered: tp.delivered,
        // No CE mark is ever delivered: utcp negotiates no ECN.
        tcpi_delivered_ce: 0,
        tcpi_delivery_rate: tp.tcp_compute_delivery_rate(),
        tcpi_delivery_rate_app_limited: tp.rate.rate_app_limited,
        tcpi_snd_wnd: tp.snd_wnd,
        tcpi_rcv_wnd: tp.rcv_wnd,
        // tcp_min_rtt(), ~0U before the first sample.
        tcpi_min_rtt: if tp.min_rtt_us == 0 { u32::MAX } else { tp.min_rtt_us },
        tcpi_bytes_sent: tp.bytes_sent,
        tcpi_bytes_retrans: tp.bytes_retrans,
        tcpi_dsack_dups: tp.dsack_dups,
        tcpi_reord_seen: tp.reord_seen,
        tcpi_rcv_ooopack: tp.rcv_ooopack,
        tcpi_total_rto: tp.total_rto,
        tcpi_total_rto_recoveries: tp.total_rto_recoveries,
    }
}

/// `struct tcp_info` as Linux 6.18 lays it out (280 bytes, x86_64).
pub(crate) fn tcp_info_bytes(i: &TcpInfo) -> Vec<u8> {
    let mut b = vec![
        i.tcpi_state,
        i.tcpi_ca_state,
        i.tcpi_retransmits,
        i.tcpi_probes,
        i.tcpi_backoff,
        i.tcpi_options,
        (i.tcpi_snd_wscale & 0xf) | (i.tcpi_rcv_wscale << 4),
        // tcpi_delivery_rate_app_limited:1, tcpi_fastopen_client_fail:2.
        i.tcpi_delivery_rate_app_limited as u8,
    ];
    let u32s = |b: &mut Vec<u8>, v: &[u32]| v.iter().for_each(|x| b.extend_from_slice(&x.to_ne_bytes()));
    let u64s = |b: &mut Vec<u8>, v: &[u64]| v.iter().for_each(|x| b.extend_from_slice(&x.to_ne_bytes()));
    u32s(
        &mut b,
        &[
            i.tcpi_rto,
            i.tcpi_ato,
            i.tcpi_snd_mss,
            i.tcpi_rcv_mss,
            i.tcpi_unacked,
            i.tcpi_sacked,
            i.tcpi_lost,
            i.tcpi_retrans,
            0, // tcpi_fackets
            i.tcpi_last_data_sent,
            0, // tcpi_last_ack_sent
            i.tcpi_last_data_recv,
            i.tcpi_last_ack_recv,
            i.tcpi_pmtu,
            i.tcpi_rcv_ssthresh,
            i.tcpi_rtt,
            i.tcpi_rttvar,
            i.tcpi_snd_ssthresh,
            i.tcpi_snd_cwnd,
            i.tcpi_advmss,
            i.tcpi_reordering,
            i.tcpi_rcv_rtt,
            i.tcpi_rcv_space,
            i.tcpi_total_retrans,
        ],
    );
    u64s(&mut b, &[i.tcpi_pacing_rate, i.tcpi_max_pacing_rate, i.tcpi_bytes_acked, i.tcpi_bytes_received]);
    u32s(
        &mut b,
        &[
            i.tcpi_segs_out,
            i.tcpi_segs_in,
            i.tcpi_notsent_bytes,
            i.tcpi_min_rtt,
            i.tcpi_data_segs_in,
            i.tcpi_data_segs_out,
        ],
    );
    u64s(&mut b, &[i.tcpi_delivery_rate, 0, 0, 0]); // delivery_rate, busy_time, rwnd_limited, sndbuf_limited
    u32s(&mut b, &[i.tcpi_delivered, i.tcpi_delivered_ce]);
    u64s(&mut b, &[i.tcpi_bytes_sent, i.tcpi_bytes_retrans]);
    u32s(&mut b, &[i.tcpi_dsack_dups, i.tcpi_reord_seen, i.tcpi_rcv_ooopack, i.tcpi_snd_wnd, i.tcpi_rcv_wnd, 0]);
    b.extend_from_slice(&i.tcpi_total_rto.to_ne_bytes());
    b.extend_from_slice(&i.tcpi_total_rto_recoveries.to_ne_bytes());
    u32s(&mut b, &[0, 0, 0, 0, 0, 0, 0, 0]); // total_rto_time, received_ce, AccECN byte counters
    b.extend_from_slice(&[0u8; 4]); // accecn_fail_mode, accecn_opt_seen
    debug_assert_eq!(b.len(), 280);
    b
}
