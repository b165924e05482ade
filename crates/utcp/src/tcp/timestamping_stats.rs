//! SCM_TIMESTAMPING_OPT_STATS (net/ipv4/tcp.c `tcp_get_timestamping_opt_stats`): under
//! SOF_TIMESTAMPING_OPT_STATS (with OPT_TSONLY) a TX report carries the connection's state at
//! the moment of the report as netlink attributes (`TCP_NLA_*`), read back as its data and as
//! an SCM_TIMESTAMPING_OPT_STATS control message.
//!
//! x86_64 has efficient unaligned access, so the 64-bit attributes carry no TCP_NLA_PAD.
//! DEVIATION(linux): utcp keeps no chrono accounting (busy, rwnd-limited, sndbuf-limited
//! time), no delivery-rate samples, no CE-marked deliveries and no PLB rehashes: those
//! attributes are present and 0.

use super::{Ctx, TcpSock};

const TCP_NLA_BUSY: u16 = 1;
const TCP_NLA_RWND_LIMITED: u16 = 2;
const TCP_NLA_SNDBUF_LIMITED: u16 = 3;
const TCP_NLA_DATA_SEGS_OUT: u16 = 4;
const TCP_NLA_TOTAL_RETRANS: u16 = 5;
const TCP_NLA_PACING_RATE: u16 = 6;
const TCP_NLA_DELIVERY_RATE: u16 = 7;
const TCP_NLA_SND_CWND: u16 = 8;
const TCP_NLA_REORDERING: u16 = 9;
const TCP_NLA_MIN_RTT: u16 = 10;
const TCP_NLA_RECUR_RETRANS: u16 = 11;
const TCP_NLA_DELIVERY_RATE_APP_LMT: u16 = 12;
const TCP_NLA_SNDQ_SIZE: u16 = 13;
const TCP_NLA_CA_STATE: u16 = 14;
const TCP_NLA_SND_SSTHRESH: u16 = 15;
const TCP_NLA_DELIVERED: u16 = 16;
const TCP_NLA_DELIVERED_CE: u16 = 17;
const TCP_NLA_BYTES_SENT: u16 = 18;
const TCP_NLA_BYTES_RETRANS: u16 = 19;
const TCP_NLA_DSACK_DUPS: u16 = 20;
const TCP_NLA_REORD_SEEN: u16 = 21;
const TCP_NLA_SRTT: u16 = 22;
const TCP_NLA_TIMEOUT_REHASH: u16 = 23;
const TCP_NLA_BYTES_NOTSENT: u16 = 24;
const TCP_NLA_EDT: u16 = 25;
const TCP_NLA_TTL: u16 = 26;
const TCP_NLA_REHASH: u16 = 27;

/// `nla_put()`: length (header + payload), type, payload padded to 4 bytes.
fn nla_put(b: &mut Vec<u8>, ty: u16, v: &[u8]) {
    b.extend_from_slice(&(4 + v.len() as u16).to_ne_bytes());
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(v);
    b.resize(b.len().div_ceil(4) * 4, 0);
}

/// `tcp_get_timestamping_opt_stats()`; `ack` for an ACK report (TCP_NLA_TTL of the ACK).
pub(crate) fn tcp_get_timestamping_opt_stats(tp: &TcpSock, ctx: &Ctx<'_>, ack: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(256);
    let u64 = |b: &mut Vec<u8>, t, v: u64| nla_put(b, t, &v.to_ne_bytes());
    let u32 = |b: &mut Vec<u8>, t, v: u32| nla_put(b, t, &v.to_ne_bytes());
    u64(&mut b, TCP_NLA_BUSY, 0);
    u64(&mut b, TCP_NLA_RWND_LIMITED, 0);
    u64(&mut b, TCP_NLA_SNDBUF_LIMITED, 0);
    u64(&mut b, TCP_NLA_DATA_SEGS_OUT, tp.data_segs_out as u64);
    u64(&mut b, TCP_NLA_TOTAL_RETRANS, tp.total_retrans as u64);
    u64(&mut b, TCP_NLA_PACING_RATE, tp.pacing_rate);
    u64(&mut b, TCP_NLA_DELIVERY_RATE, tp.tcp_compute_delivery_rate());
    u32(&mut b, TCP_NLA_SND_CWND, tp.snd_cwnd);
    u32(&mut b, TCP_NLA_REORDERING, tp.reordering);
    u32(&mut b, TCP_NLA_MIN_RTT, if tp.min_rtt_us == 0 { u32::MAX } else { tp.min_rtt_us });
    nla_put(&mut b, TCP_NLA_RECUR_RETRANS, &[tp.retransmits]);
    nla_put(&mut b, TCP_NLA_DELIVERY_RATE_APP_LMT, &[tp.rate.rate_app_limited as u8]);
    u32(&mut b, TCP_NLA_SND_SSTHRESH, tp.snd_ssthresh);
    u32(&mut b, TCP_NLA_DELIVERED, tp.delivered);
    u32(&mut b, TCP_NLA_DELIVERED_CE, 0);
    u32(&mut b, TCP_NLA_SNDQ_SIZE, tp.write_seq.diff(tp.snd_una));
    nla_put(&mut b, TCP_NLA_CA_STATE, &[tp.ca_state as u8]);
    u64(&mut b, TCP_NLA_BYTES_SENT, tp.bytes_sent);
    u64(&mut b, TCP_NLA_BYTES_RETRANS, tp.bytes_retrans);
    u32(&mut b, TCP_NLA_DSACK_DUPS, tp.dsack_dups);
    u32(&mut b, TCP_NLA_REORD_SEEN, tp.reord_seen);
    u32(&mut b, TCP_NLA_SRTT, tp.srtt_us >> 3);
    nla_put(&mut b, TCP_NLA_TIMEOUT_REHASH, &tp.timeout_rehash.to_ne_bytes());
    u32(&mut b, TCP_NLA_BYTES_NOTSENT, (tp.write_seq.0.wrapping_sub(tp.snd_nxt.0) as i32).max(0) as u32);
    // The skb's departure time (`skb_mstamp_ns`): the report is made as it leaves.
    u64(&mut b, TCP_NLA_EDT, ctx.now.nanos());
    if ack {
        // tcp_skb_ttl_or_hop_limit() of the ACK: the peer's TTL, as utcp's devices deliver it.
        nla_put(&mut b, TCP_NLA_TTL, &[ctx.net.sysctl.ip_default_ttl.get() as u8]);
    }
    u32(&mut b, TCP_NLA_REHASH, tp.timeout_rehash as u32);
    b
}
