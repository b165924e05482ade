//! TSO/GSO on the send side (net/ipv4/tcp.c, tcp_output.c): how large `tcp_sendmsg` builds
//! write-queue skbs (`tcp_xmit_size_goal()`), how many packets one transmission takes
//! (`tcp_tso_segs()` / `tcp_tso_autosize()`, `tcp_mss_split_point()`), when a partial one
//! waits for more window (`tcp_tso_should_defer()`, `net.ipv4.tcp_tso_win_divisor`), how a short
//! head grows from the next skb (`tcp_grow_skb()`) and how an skb is cut (`tso_fragment()`).
//!
//! As in Linux every TCP socket builds super-segments (`sk_setup_caps()` adds
//! `NETIF_F_GSO_SOFTWARE`): up to the device's `gso_max_size`, or `GSO_LEGACY_MAX_SIZE` where
//! the device has no TSO and `dev_queue_xmit` segments in software
//! ([`crate::netdev::gso::skb_gso_segment`]). `__tcp_transmit_skb()` then sets PSH on every
//! transmission of more than one packet.

use super::output::{TCP_NAGLE_CORK, TCP_NAGLE_PUSH};
use super::{Ctx, TcpSock, TxSkb};
use crate::netns::Netns;
use crate::time::Duration;
use crate::wire::TcpFlags;

/// `GSO_LEGACY_MAX_SIZE`: `gso_max_size` of a device without its own (software GSO).
pub(crate) const GSO_LEGACY_MAX_SIZE: u32 = 65_536;

/// `MAX_TCP_HEADER` (x86_64): the headroom `sk_setup_caps()` takes off `sk_gso_max_size`.
const MAX_TCP_HEADER: u32 = 320;

impl TcpSock {
    /// `sk->sk_gso_max_size` as `sk_setup_caps()` sets it: the device's `gso_max_size` (its
    /// software GSO's `GSO_LEGACY_MAX_SIZE` without TSO) less `MAX_TCP_HEADER + 1`.
    pub(crate) fn sk_gso_max_size(&self, net: &Netns) -> u32 {
        let dev = net.dev_gso_max_size();
        let dev = if dev == 0 { GSO_LEGACY_MAX_SIZE } else { dev };
        dev.saturating_sub(1 + MAX_TCP_HEADER)
    }

    /// `tcp_xmit_size_goal()`: how large `tcp_sendmsg` builds write-queue entries: up to
    /// `sk_gso_max_size`, bounded to half the largest window the peer offered
    /// (`tcp_bound_to_half_wnd()`), in whole MSS, at least one; one MSS for urgent data.
    pub(crate) fn tcp_xmit_size_goal(&self, net: &Netns, mss_now: u32) -> u32 {
        if self.tcp_urg_mode() {
            return mss_now;
        }
        let mut goal = self.sk_gso_max_size(net);
        let cutoff = if self.max_window > super::TCP_MSS_DEFAULT { self.max_window >> 1 } else { self.max_window };
        if cutoff != 0 && goal > cutoff {
            goal = cutoff.max(68u32.saturating_sub(self.tcp_header_len));
        }
        (goal / mss_now).max(1) * mss_now
    }

    /// `tcp_tso_segs()` / `tcp_tso_autosize()`: packets per transmission, about 1 ms of data at
    /// `sk_pacing_rate` (`sk_pacing_shift` 10) plus, on a short path, `sk_gso_max_size >>
    /// (min_rtt >> tcp_tso_rtt_log)`, at most `sk_gso_max_size`, at least `tcp_min_tso_segs`.
    pub(crate) fn tcp_tso_segs(&self, net: &Netns, mss_now: u32) -> u32 {
        let gso_max = self.sk_gso_max_size(net);
        let mut bytes = self.pacing_rate >> 10;
        let rtt_log = net.sysctl.tcp_tso_rtt_log.get().clamp(0, 31) as u32;
        // tcp_min_rtt() is ~0U until the first sample.
        if self.min_rtt_us != 0 {
            let r = self.min_rtt_us >> rtt_log;
            if r < 32 {
                bytes = bytes.saturating_add((gso_max >> r) as u64);
            }
        }
        let bytes = bytes.min(gso_max as u64) as u32;
        let min_segs = self.tcp_ca_min_tso_segs(net);
        (bytes / mss_now.max(1)).max(min_segs)
    }

    /// `tcp_cwnd_test()`: packets the congestion window lets go now — none when full, else at
    /// most half of cwnd ("ensure we have at least 2 GSO packets in flight"). Since 6.10 a
    /// final FIN gets no exception ("tcp: remove dubious FIN exception from tcp_cwnd_test()").
    pub(super) fn tcp_cwnd_test(&self) -> u32 {
        let in_flight = self.packets_in_flight();
        let cwnd = self.snd_cwnd;
        if in_flight >= cwnd {
            return 0;
        }
        (cwnd >> 1).max(1).min(cwnd - in_flight)
    }

    /// `tcp_mss_split_point()`: how much of the write queue's head one transmission takes:
    /// `max_segs` packets, or what the receive window leaves, less a trailing partial packet
    /// that Nagle would hold.
    pub(super) fn tcp_mss_split_point(&self, mss_now: u32, max_segs: u32, nonagle: u8) -> u32 {
        let skb = self.write_queue.front().expect("head");
        let window = (self.snd_una + self.snd_wnd).diff(skb.seq);
        let max_len = mss_now.saturating_mul(max_segs);
        if max_len <= window && self.write_queue.len() > 1 {
            return max_len;
        }
        let needed = skb.len().min(window);
        if max_len <= needed {
            return max_len;
        }
        let partial = needed % mss_now;
        // tcp_nagle_check()
        let hold = partial != 0
            && (nonagle & TCP_NAGLE_CORK != 0 || (nonagle == 0 && self.packets_out > 0 && self.tcp_minshall_check()));
        if hold {
            needed - partial
        } else {
            needed
        }
    }

    /// `tcp_tso_should_defer()`: true when the head (more than one packet's worth) should wait
    /// for the ACK that is due soon rather than leave as a small TSO packet now. Not in
    /// recovery, not after more than 1 ms without sending, not when a full `max_segs`
    /// packet, the whole skb (not the last), or a `tcp_tso_win_divisor`-th of the window fits
    /// (with the divisor 0: more than `tcp_max_tso_deferred_mss` packets), not when the next
    /// ACK is further off than min(1 ms, srtt/2); a FIN or EOR skb that the windows take
    /// whole leaves at once.
    pub(super) fn tcp_tso_should_defer(&self, ctx: &Ctx<'_>, max_segs: u32) -> bool {
        if matches!(self.ca_state, super::cong::CaState::Recovery | super::cong::CaState::Loss) {
            return false;
        }
        // "Avoid bursty behavior by allowing defer only if the last write was recent (1 ms)."
        // DEVIATION(linux): exactly 1 ms counts as not recent. Linux sends now only when
        // `now - tcp_wstamp_ns - 1 ms > 0`, but its clock always shows some slack past the
        // timer or packet that woke it; virtual time (utcp drill) has none, and the boundary
        // would defer where the kernel does not (docs/ARCHITECTURE.md).
        if ctx.now.saturating_since(self.wstamp) >= Duration::from_millis(1) {
            return false;
        }
        let skb = self.write_queue.front().expect("head");
        let in_flight = self.packets_in_flight();
        let send_win = (self.snd_una + self.snd_wnd).diff(skb.seq) as u64;
        let cong_win = self.snd_cwnd.saturating_sub(in_flight) as u64 * self.mss_cache as u64;
        let limit = send_win.min(cong_win);
        if limit >= max_segs as u64 * self.mss_cache as u64 {
            return false;
        }
        if self.write_queue.len() > 1 && limit >= skb.len() as u64 {
            return false;
        }
        let win_divisor = ctx.net.sysctl.tcp_tso_win_divisor.get();
        if win_divisor > 0 {
            let chunk = (self.snd_wnd as u64).min(self.snd_cwnd as u64 * self.mss_cache as u64);
            if limit >= chunk / win_divisor as u64 {
                return false;
            }
        } else if limit > self.tcp_max_tso_deferred_mss() as u64 * self.mss_cache as u64 {
            return false;
        }
        let Some(head) = self.rtx_queue.front() else { return false };
        let srtt_ns = self.srtt_us as u64 * 1000 / 8;
        // When the next ACK is expected, and how far from now.
        let expected_ack = head.tx_time.0 as i128 + srtt_ns as i128;
        let how_far = expected_ack - ctx.now.0 as i128;
        let threshold = (srtt_ns >> 1).min(1_000_000) as i128;
        if how_far - threshold > 0 {
            return false;
        }
        // Cwnd- or rwnd-limited: wait. Application-limited: wait unless no more data comes.
        let len = skb.len() as u64;
        if cong_win < send_win {
            if cong_win <= len {
                return true;
            }
        } else if send_win <= len {
            return true;
        }
        // "If this packet won't get more data, do not wait" (utcp has no MSG_EOR marks).
        !skb.flags.fin()
    }

    /// `tcp_max_tso_deferred_mss()`: packets `tcp_tso_should_defer()` may hold back with
    /// `tcp_tso_win_divisor` 0.
    fn tcp_max_tso_deferred_mss(&self) -> u32 {
        3
    }

    /// `tcp_grow_skb()`: the head is shorter than the packets that may leave now; up to
    /// `amount` bytes move into it from the next skb (its flags with them once it is
    /// empty). The head keeps its bytes and takes the moved ones as its second part
    /// ([`TxSkb::frag`], Linux's `skb_shift()` of page frags: nothing copied) when `parts`
    /// allows (TCP cuts the packets itself, see `tcp_transmit_parts`) and the
    /// head ends on a packet boundary (`mss`), or holds less than a packet (that packet is
    /// then copied whole); otherwise an unsent head grows in its region (in place when it
    /// can) and a sent one is copied with the moved bytes into one region.
    pub(super) fn tcp_grow_skb(&mut self, amount: u32, mss: u32, parts: bool) {
        if self.write_queue.len() < 2 {
            return;
        }
        let (head, next) = {
            let (a, b) = self.write_queue.as_mut_slices();
            let (h, rest) = match a.split_first_mut() {
                Some(x) => x,
                None => return,
            };
            let n = if let Some(n) = rest.first_mut() { n } else { b.first_mut().expect("second") };
            (h, n)
        };
        if head.flags.fin() {
            return;
        }
        let nlen = amount.min(next.len());
        if nlen == 0 {
            return;
        }
        let moved = next.freeze().slice(..nlen as usize);
        let (dl, m) = (head.len() as usize, mss.max(1) as usize);
        // A head that takes all of the next skb becomes the tail, which later writes append
        // to only while it is still growable: that case keeps its region.
        let absorbs = nlen == next.len();
        if head.frag.is_empty() && parts && !absorbs && (dl.is_multiple_of(m) || dl < m) {
            // An unsent head is frozen too: copying the moved bytes into its region would
            // be their second copy (nothing appends to a head that has a next skb).
            if let Some(b) = head.building.take() {
                head.data = b.freeze();
            }
            if dl.is_multiple_of(m) {
                head.frag = moved;
            } else {
                // Less than a packet left of the head: it and the moved bytes up to the
                // packet's end are copied into one packet's region (at most one MSS), the
                // rest is the second part, so the head ends on a packet boundary again.
                let pad = (m - dl).min(moved.len());
                let mut b = crate::page_frag::alloc(dl + pad);
                b.extend_from_slice(&head.data);
                b.extend_from_slice(&moved[..pad]);
                head.data = b.freeze();
                head.frag = moved.slice(pad..);
            }
        } else {
            let buf = match head.building.as_mut() {
                Some(b) => {
                    if b.capacity() - b.len() < nlen as usize && !crate::page_frag::try_extend(b, nlen as usize) {
                        // No room and none in place: a region for both (extending a shared
                        // region would allocate a buffer of its own).
                        let mut grown = crate::page_frag::alloc(b.len() + nlen as usize);
                        grown.extend_from_slice(b);
                        *b = grown;
                    }
                    b
                }
                None => {
                    // The region comes from the task's page fragment, as the write's did.
                    head.freeze();
                    let mut b = crate::page_frag::alloc(head.data.len() + nlen as usize);
                    b.extend_from_slice(&head.data);
                    head.data = bytes::Bytes::new();
                    head.building.insert(b)
                }
            };
            buf.extend_from_slice(&moved);
        }
        head.end_seq += nlen;
        next.data = next.data.slice(nlen as usize..);
        next.seq += nlen;
        if next.is_empty() {
            head.end_seq = next.end_seq;
            head.flags |= next.flags;
            self.write_queue.remove(1);
            // tcp_wmem_free_skb()
            self.wmem_queued = self.wmem_queued.saturating_sub(super::TX_SKB_OVERHEAD);
        }
    }

    /// `tso_fragment()`: cuts the head of the write queue after `len` bytes; FIN and PSH
    /// belong to the second piece.
    pub(super) fn tso_fragment(&mut self, len: u32) {
        let head = self.write_queue.front_mut().expect("head");
        // Both pieces keep sharing the head's parts (a cut inside the first part leaves the
        // second part to the second piece).
        let [data, frag] = head.freeze_parts();
        let (first, rest, first_frag, rest_frag) = if len as usize <= data.len() {
            (data.slice(..len as usize), data.slice(len as usize..), bytes::Bytes::new(), frag)
        } else {
            let at = len as usize - data.len();
            (data, frag.slice(at..), frag.slice(..at), bytes::Bytes::new())
        };
        let (rest, rest_frag) = if rest.is_empty() { (rest_frag, bytes::Bytes::new()) } else { (rest, rest_frag) };
        head.frag = first_frag;
        let second = TxSkb {
            seq: head.seq + len,
            end_seq: head.end_seq,
            flags: head.flags,
            building: None,
            data: rest,
            frag: rest_frag,
            sacked: 0,
            tx_time: head.tx_time,
            tx_order: 0,
            retrans: 0,
            urg: head.urg,
            tx: head.tx,
        };
        head.data = first;
        head.end_seq = head.seq + len;
        head.flags = TcpFlags(head.flags.0 & !(TcpFlags::FIN.0 | TcpFlags::PSH.0));
        self.write_queue.insert(1, second);
        self.sk_wmem_queued_add(super::TX_SKB_OVERHEAD);
    }

    /// Puts a sent skb on the retransmit queue, cut into `mss`-byte pieces when it went out
    /// as several packets (they share its payload; FIN and PSH stay on the last); returns the
    /// packets it counts for (`tcp_skb_pcount()`).
    pub(super) fn tcp_queue_sent(&mut self, mut skb: TxSkb, mss: u32) -> u32 {
        let mut pcount = 1;
        skb.freeze_parts();
        while skb.len() > mss {
            let first = TxSkb {
                seq: skb.seq,
                end_seq: skb.seq + mss,
                flags: TcpFlags(skb.flags.0 & !(TcpFlags::FIN.0 | TcpFlags::PSH.0)),
                building: None,
                // A piece across the parts' boundary is copied (the head is grown with a
                // second part only when it ends on a packet boundary, so none does).
                data: skb.take_front(mss as usize),
                frag: bytes::Bytes::new(),
                sacked: 0,
                tx_time: skb.tx_time,
                retrans: 0,
                urg: skb.urg,
                tx: skb.tx,
                tx_order: skb.tx_order,
            };
            skb.seq += mss;
            // The pieces left the device in sequence order: each later one was sent after.
            skb.tx_order = self.tcp_next_tx_order();
            self.wmem_queued += super::TX_SKB_OVERHEAD;
            self.rtx_queue.push_back(first);
            pcount += 1;
        }
        // The retransmit queue holds single-part skbs.
        skb.freeze();
        self.rtx_queue.push_back(skb);
        pcount
    }

    /// `tcp_nagle_test()` for the head when it is one packet (the caller checks the length).
    pub(super) fn tcp_nagle_test(&self, skb: &TxSkb, cur_mss: u32, nonagle: u8) -> bool {
        if nonagle & TCP_NAGLE_PUSH != 0 {
            return true;
        }
        if self.tcp_urg_mode() || skb.flags.fin() {
            return true;
        }
        let partial = skb.len() < cur_mss;
        let hold = partial
            && (nonagle & TCP_NAGLE_CORK != 0 || (nonagle == 0 && self.packets_out > 0 && self.tcp_minshall_check()));
        !hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::Netns;
    use crate::seq::SeqNum;
    use crate::time::Instant;
    use bytes::{Bytes, BytesMut};

    fn skb(seq: u32, len: u32, building: Option<BytesMut>, data: Bytes) -> TxSkb {
        TxSkb {
            seq: SeqNum(seq),
            end_seq: SeqNum(seq + len),
            flags: TcpFlags::ACK,
            building,
            data,
            frag: Bytes::new(),
            sacked: 0,
            tx_time: Instant::ZERO,
            tx_order: 0,
            retrans: 0,
            urg: false,
            tx: Default::default(),
        }
    }

    /// The packets of `frames` (super-segments cut as a device without TSO would), each
    /// without its IP ID and header checksum (a counter shared by every transmission).
    fn packets(frames: Vec<crate::skb::Frame>) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for f in frames {
            crate::netdev::gso::skb_gso_segment(f, |p| {
                let mut b = p.to_vec();
                b[4..6].fill(0);
                b[10..12].fill(0);
                v.push(b)
            });
        }
        v
    }

    /// A head already sent in part (its bytes shared) grows by the next skb's bytes as a
    /// second part, nothing copied (skb_shift()'s frags); its packets are those of the joined
    /// payload, FIN and PSH on the last only; the retransmit queue's pieces share both
    /// buffers. A head that does not end on a packet boundary, or that takes all of the next
    /// skb, is joined instead.
    #[test]
    fn a_shared_head_grows_by_a_second_part_and_sends_the_joined_packets() {
        let net = Netns::new(std::net::Ipv4Addr::new(10, 0, 0, 1), 1500, 1);
        let mut tp = TcpSock::new(&net, Instant::ZERO);
        let data: Vec<u8> = (0..7001u32).map(|i| (i * 7 + 1) as u8).collect();
        let sent = Bytes::from(data[..2000].to_vec());
        let unsent = BytesMut::from(&data[2000..]);
        let unsent_at = unsent.as_ptr();
        tp.write_queue.push_back(skb(1000, 2000, None, sent.clone()));
        let mut next = skb(3000, 5001, Some(unsent), Bytes::new());
        next.flags = TcpFlags(TcpFlags::ACK.0 | TcpFlags::PSH.0 | TcpFlags::FIN.0);
        next.end_seq += 1;
        tp.write_queue.push_back(next);
        tp.tcp_grow_skb(4000, 1000, true);
        assert_eq!(tp.write_queue.len(), 2);
        let head = tp.write_queue.front().unwrap();
        assert_eq!((head.len(), head.end_seq), (6000, SeqNum(7000)));
        assert!(!head.flags.fin());
        assert_eq!(head.data.as_ptr(), sent.as_ptr());
        assert_eq!(head.frag.as_ptr(), unsent_at);

        let mut out = Vec::new();
        let mut joined = Vec::new();
        {
            let mut ctx = Ctx::new(Instant::ZERO, &net, &mut out);
            // As if it carried the FIN: FIN and PSH on the last packet only.
            let flags = TcpFlags(TcpFlags::ACK.0 | TcpFlags::PSH.0 | TcpFlags::FIN.0);
            let parts = [head.data.clone(), head.frag.clone()];
            tp.tcp_transmit_parts(&mut ctx, SeqNum(1000), flags, parts, 1000);
            let mut ctx = Ctx::new(Instant::ZERO, &net, &mut joined);
            tp.tcp_transmit_gso(&mut ctx, SeqNum(1000), flags, Bytes::from(data[..6000].to_vec()), 1000);
        }
        let (two, one) = (packets(out), packets(joined));
        assert_eq!(two.len(), 6);
        assert!(two == one, "the two-part packets differ from the joined ones");

        let mut head = tp.write_queue.pop_front().unwrap();
        head.freeze_parts();
        assert_eq!(tp.tcp_queue_sent(head, 1000), 6);
        let rtx: Vec<_> = tp.rtx_queue.iter().map(|s| (s.data.as_ptr(), s.data.len(), s.frag.is_empty())).collect();
        assert_eq!(rtx[0].0, sent.as_ptr());
        assert_eq!(rtx[2].0, unsent_at);
        assert_eq!(rtx[5].0, unsent_at.wrapping_add(3000));
        assert!(rtx.iter().all(|r| r.2 && r.1 == 1000));
        tp.write_queue.clear();

        // 300 bytes shared, less than a packet: the first packet is copied whole, the rest
        // of the moved bytes is the second part; the packets are the joined payload's.
        tp.rtx_queue.clear();
        let sent = Bytes::from(data[..300].to_vec());
        let unsent = BytesMut::from(&data[300..2800]);
        let unsent_at = unsent.as_ptr();
        tp.write_queue.push_back(skb(1000, 300, None, sent));
        tp.write_queue.push_back(skb(1300, 2500, Some(unsent), Bytes::new()));
        tp.tcp_grow_skb(2000, 1000, true);
        let head = tp.write_queue.front().unwrap();
        assert_eq!((head.data.len(), head.frag.len()), (1000, 1300));
        assert_eq!(&head.data[..], &data[..1000]);
        assert_eq!(head.frag.as_ptr(), unsent_at.wrapping_add(700));
        let (mut out, mut joined) = (Vec::new(), Vec::new());
        {
            let parts = [head.data.clone(), head.frag.clone()];
            let mut ctx = Ctx::new(Instant::ZERO, &net, &mut out);
            tp.tcp_transmit_parts(&mut ctx, SeqNum(1000), TcpFlags::ACK, parts, 1000);
            let mut ctx = Ctx::new(Instant::ZERO, &net, &mut joined);
            tp.tcp_transmit_gso(&mut ctx, SeqNum(1000), TcpFlags::ACK, Bytes::from(data[..2300].to_vec()), 1000);
        }
        let (two, one) = (packets(out), packets(joined));
        assert_eq!(two.len(), 3);
        assert!(two == one, "the two-part packets differ from the joined ones");
        tp.write_queue.clear();

        // An unsent head of two packets keeps its buffer too.
        let own = BytesMut::from(&data[..2000]);
        let own_at = own.as_ptr();
        let unsent = BytesMut::from(&data[2000..4000]);
        let unsent_at = unsent.as_ptr();
        tp.write_queue.push_back(skb(1000, 2000, Some(own), Bytes::new()));
        tp.write_queue.push_back(skb(3000, 2000, Some(unsent), Bytes::new()));
        tp.tcp_grow_skb(1000, 1000, true);
        let head = tp.write_queue.front().unwrap();
        assert!(head.building.is_none() && head.len() == 3000);
        assert_eq!((head.data.as_ptr(), head.frag.as_ptr()), (own_at, unsent_at));
        tp.write_queue.clear();

        // 1,500 bytes already shared: not a packet boundary, the head is joined (copied); so
        // is a head that takes all of the next skb (it becomes the growable tail).
        tp.rtx_queue.clear();
        tp.write_queue.push_back(skb(1000, 1500, None, Bytes::from(data[..1500].to_vec())));
        tp.write_queue.push_back(skb(2500, 1000, Some(BytesMut::from(&data[1500..2500])), Bytes::new()));
        tp.tcp_grow_skb(1000, 1000, true);
        let head = tp.write_queue.front().unwrap();
        assert!(head.frag.is_empty() && head.len() == 2500);
        assert_eq!(&head.building.as_ref().unwrap()[..], &data[..2500]);
        tp.write_queue.clear();
        tp.write_queue.push_back(skb(1000, 2000, None, Bytes::from(data[..2000].to_vec())));
        tp.write_queue.push_back(skb(3000, 1000, Some(BytesMut::from(&data[2000..3000])), Bytes::new()));
        tp.tcp_grow_skb(1000, 1000, true);
        assert_eq!(tp.write_queue.len(), 1);
        let head = tp.write_queue.front().unwrap();
        assert!(head.frag.is_empty());
        assert_eq!(&head.building.as_ref().unwrap()[..], &data[..3000]);
    }
}
