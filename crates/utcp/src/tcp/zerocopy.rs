//! MSG_ZEROCOPY completions (net/core/skbuff.c `msg_zerocopy_*`, net/ipv4/ip_sockglue.c
//! `ip_recv_error`): with SO_ZEROCOPY on, each `send(MSG_ZEROCOPY)` that queues bytes takes
//! the next id (`sk_zckey`); once every byte it queued is acknowledged (Linux: once the last
//! skb holding its pages is freed) a notification `[lo, hi]` goes on the socket's error queue,
//! merged with a contiguous one still queued. `recvmsg(MSG_ERRQUEUE)` reads it as an
//! `IP_RECVERR` control message: `struct sock_extended_err` (origin SO_EE_ORIGIN_ZEROCOPY,
//! `ee_info` = lo, `ee_data` = hi) and a zeroed offender address.
//!
//! utcp copies the payload into its own buffers on send, so every completion carries
//! SO_EE_CODE_ZEROCOPY_COPIED, as Linux's do when the data had to be copied (on loopback,
//! for one). The queue stays short: completions arrive in id order and merge.

use super::{Ctx, TcpSock};
use crate::ip::recverr::SockExterr;

/// `SO_EE_ORIGIN_ZEROCOPY`.
pub(crate) const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
/// `SO_EE_CODE_ZEROCOPY_COPIED`: the kernel copied the data after all.
pub(crate) const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

/// A zerocopy completion for ids `lo..=hi` as the error queue holds it: `ee_info` = lo,
/// `ee_data` = hi, no errno, no offender, no data.
pub(crate) fn zc_notification(lo: u32, hi: u32, code: u8) -> SockExterr {
    SockExterr {
        errno: None,
        origin: SO_EE_ORIGIN_ZEROCOPY,
        icmp_type: 0,
        code,
        info: lo,
        data: hi,
        offender: None,
        addr: std::net::Ipv4Addr::UNSPECIFIED.into(),
        port: 0,
        iif: 0,
        tstamp: None,
        opt_stats: false,
        payload: Vec::new(),
    }
}

impl TcpSock {
    /// After a `send(MSG_ZEROCOPY)` on a SO_ZEROCOPY socket queued bytes up to `write_seq`:
    /// the call's id (`msg_zerocopy_realloc`; a send that queued nothing gives it back).
    pub(crate) fn tcp_zerocopy_sent(&mut self) {
        let id = self.zckey;
        self.zckey = self.zckey.wrapping_add(1);
        let end = self.write_seq;
        self.ext_mut().zc_pending.push_back((id, end));
    }

    /// Completes the sends whose bytes are all acknowledged (`msg_zerocopy_complete`).
    pub(crate) fn tcp_zerocopy_acked(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(&(id, end)) = self.ext().zc_pending.front() {
            if end.after(self.snd_una) {
                break;
            }
            self.ext_mut().zc_pending.pop_front();
            self.zc_notify(ctx, id);
        }
    }

    /// The write queue is purged (reset, close, abort): its skbs are freed, so every pending
    /// send completes.
    pub(crate) fn tcp_zerocopy_purge(&mut self, ctx: &mut Ctx<'_>) {
        // The same purge frees the skbs that carried TX timestamp requests.
        self.tcp_tstamp_purge();
        while let Some((id, _)) = self.ext_if_any().and_then(|e| e.zc_pending.pop_front()) {
            self.zc_notify(ctx, id);
        }
    }

    /// `__msg_zerocopy_callback()`: queue `[id, id]`, or extend a contiguous tail
    /// (`skb_zerocopy_notify_extend`: the tail keeps its code, the range stays below 2^32).
    fn zc_notify(&mut self, ctx: &mut Ctx<'_>, id: u32) {
        if let Some(tail) = self.ext_mut().error_queue.back_mut().filter(|t| t.origin == SO_EE_ORIGIN_ZEROCOPY) {
            let len = tail.data.wrapping_sub(tail.info) as u64 + 2;
            if tail.data.wrapping_add(1) == id && len < 1 << 32 {
                tail.data = id;
                ctx.ev.state_change = true;
                return;
            }
        }
        self.ext_mut().error_queue.push_back(zc_notification(id, id, SO_EE_CODE_ZEROCOPY_COPIED));
        // sk_error_report(): poll() sees EPOLLERR.
        ctx.ev.state_change = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::Netns;
    use crate::seq::SeqNum;
    use crate::time::Instant;

    #[test]
    fn completions_merge_in_order_and_encode_as_sock_extended_err() {
        let net = Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        let mut out = Vec::new();
        let mut ctx = Ctx::new(Instant::ZERO, &net, &mut out);
        let mut tp = TcpSock::new(&net, Instant::ZERO);
        tp.snd_una = SeqNum(100);
        for end in [110, 120, 130] {
            tp.write_seq = SeqNum(end);
            tp.tcp_zerocopy_sent();
        }
        assert_eq!(tp.ext().zc_pending.back(), Some(&(2, SeqNum(130))));
        tp.snd_una = SeqNum(125);
        tp.tcp_zerocopy_acked(&mut ctx);
        assert_eq!(tp.ext().error_queue.len(), 1);
        assert_eq!(tp.ext().error_queue.front(), Some(&zc_notification(0, 1, 1)));
        tp.snd_una = SeqNum(130);
        tp.tcp_zerocopy_acked(&mut ctx);
        let n = tp.ext_mut().error_queue.pop_front().unwrap();
        assert_eq!((n.info, n.data), (0, 2), "a contiguous completion extends the queued one");
        assert_eq!(n.cmsg_data()[..16], [0, 0, 0, 0, 5, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(tp.ext_mut().error_queue.pop_front(), None);
        tp.write_seq = SeqNum(140);
        tp.tcp_zerocopy_sent();
        tp.tcp_zerocopy_purge(&mut ctx);
        assert_eq!(tp.ext_mut().error_queue.pop_front().map(|n| (n.info, n.data)), Some((3, 3)));
    }
}
