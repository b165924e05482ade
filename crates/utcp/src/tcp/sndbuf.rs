//! Send-buffer autotuning (net/ipv4/tcp_input.c `tcp_sndbuf_expand`, `tcp_new_space`).

use super::{TcpSock, SOCK_SNDBUF_LOCK};
use crate::netns::Netns;

/// `MAX_TCP_HEADER` on x86_64 6.x (L1_CACHE_ALIGN(128 + MAX_HEADER)).
const MAX_TCP_HEADER: u32 = 320;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))`.
const SHINFO: u32 = 320;
/// `SKB_DATA_ALIGN(sizeof(struct sk_buff))`.
const SKB_STRUCT: u32 = 256;

impl TcpSock {
    /// `tcp_sndbuf_expand()`: room for two windows of MSS-sized skbs (three with BBR,
    /// `ca_ops->sndbuf_expand`).
    pub(crate) fn tcp_sndbuf_expand(&mut self, net: &Netns) {
        let per_mss = (self.mss_clamp.max(self.mss_cache) + MAX_TCP_HEADER + SHINFO).next_power_of_two() + SKB_STRUCT;
        let nr_segs = super::TCP_INIT_CWND.max(self.snd_cwnd).max(self.reordering + 1);
        let sndmem = self.tcp_ca_sndbuf_expand() * nr_segs as u64 * per_mss as u64;
        if (self.sndbuf as u64) < sndmem {
            self.sndbuf = sndmem.min(net.sysctl.tcp_wmem.idx(2) as u64) as u32;
        }
    }

    /// `tcp_should_expand_sndbuf()`.
    pub(crate) fn tcp_should_expand_sndbuf(&self) -> bool {
        self.userlocks & SOCK_SNDBUF_LOCK == 0
            && !self.tcp_under_memory_pressure()
            && self.proto_mem.allocated() < self.proto_mem.limit(0)
            && self.packets_in_flight() < self.snd_cwnd
    }
}
