//! Generic segmentation offload in software (net/core/gso.c `skb_gso_segment()`, with
//! net/ipv4/af_inet.c `inet_gso_segment()` and net/ipv4/tcp_offload.c `tcp_gso_segment()`):
//! `validate_xmit_skb()` cuts a TCP super-segment into `gso_size`-byte packets before a device
//! that cannot take it whole ([`netif_needs_gso`]). TCP always builds super-segments, as Linux
//! does for every TCP socket (`sk_setup_caps()` adds `NETIF_F_GSO_SOFTWARE`), so what a device
//! without TSO puts on its wire is the MSS-sized packets Linux's software GSO makes.

use crate::skb::Frame;

/// `netif_needs_gso()` for a device whose `gso_max_size` is `dev_gso_max_size` (0: no TSO):
/// true when `frame` is a super-segment the device cannot take whole — no TSO, longer than the
/// device takes, or IP options (utcp's TSO devices take a plain 20-byte IP header only).
pub fn netif_needs_gso(frame: &Frame, dev_gso_max_size: u32) -> bool {
    if frame.gso_size == 0 || frame.payload.len() as u32 <= frame.gso_size {
        return false;
    }
    // No utcp device takes TCPv6 super-packets (`NETIF_F_TSO6`): IPv6 is always cut here.
    if frame.head()[0] >> 4 == 6 {
        return true;
    }
    let ihl = (frame.head()[0] & 0x0f) as usize * 4;
    dev_gso_max_size == 0 || frame.len() as u32 > dev_gso_max_size || ihl != 20
}

/// The network header length of a frame TCP built: 40 for IPv6 (TCP's own frames carry no
/// extension headers), the IHL for IPv4.
pub(crate) fn net_hdr_len(head: &[u8]) -> usize {
    if head[0] >> 4 == 6 {
        40
    } else {
        (head[0] & 0x0f) as usize * 4
    }
}

/// `skb_gso_segment()` → `inet_gso_segment()` → `tcp_gso_segment()`: hands `emit` the packets
/// of super-segment `frame`, `gso_size` payload bytes each (the last may be shorter), each with
/// the whole IP header (options included) and TCP header of the original: IP total length,
/// consecutive IP IDs (`SKB_GSO_TCPV4` without FIXEDID) and header checksum per packet; the
/// sequence number advanced; CWR only on the first packet, FIN and PSH only on the last; the
/// TCP checksum completed (`skb_checksum_help()`, the device having no offload). Payloads are
/// slices of the original: nothing is copied but headers.
pub fn skb_gso_segment(frame: Frame, emit: impl FnMut(Frame)) {
    skb_gso_segment_csum(frame, |_, _| None, emit)
}

/// [`skb_gso_segment`] for a super-segment whose packets' payload sums may be known already
/// (`skb->csum` taken on the copy into the write queue): `payload_sum(off, len)` answers for
/// the payload bytes `off..off + len`, and only a packet it has no answer for is summed.
pub fn skb_gso_segment_csum(
    frame: Frame,
    mut payload_sum: impl FnMut(u32, usize) -> Option<u16>,
    mut emit: impl FnMut(Frame),
) {
    let gso = frame.gso_size as usize;
    if gso == 0 || frame.payload.len() <= gso {
        let mut f = frame;
        f.gso_size = 0;
        super::skb_checksum_help(&mut f);
        return emit(f);
    }
    let head = frame.head();
    let v6 = head[0] >> 4 == 6;
    let ihl = net_hdr_len(head);
    let hlen = head.len();
    let id = u16::from_be_bytes([head[4], head[5]]);
    let seq = u32::from_be_bytes([head[ihl + 4], head[ihl + 5], head[ihl + 6], head[ihl + 7]]);
    let flags = head[ihl + 13];
    // The partial checksum is the pseudo-header sum over the whole TCP length; each packet's
    // differs only in its length (tcp_gso_segment()'s `delta`).
    let old_len = (frame.len() - ihl) as u16;
    let pseudo = u16::from_be_bytes([head[ihl + 16], head[ihl + 17]]);
    let total = frame.payload.len();
    let mut off = 0;
    let mut i: u16 = 0;
    while off < total {
        let n = gso.min(total - off);
        let mut seg = frame.clone();
        seg.payload = frame.payload.slice(off..off + n);
        seg.gso_size = 0;
        let h = seg.head_mut();
        if v6 {
            // ipv6_gso_segment(): the payload length; IPv6 has no ID or header checksum.
            h[4..6].copy_from_slice(&((hlen - ihl + n) as u16).to_be_bytes());
        } else {
            h[2..4].copy_from_slice(&((hlen + n) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&id.wrapping_add(i).to_be_bytes());
            h[10] = 0;
            h[11] = 0;
            let ipsum = !crate::wire::checksum(&h[..ihl]);
            h[10..12].copy_from_slice(&ipsum.to_be_bytes());
        }
        h[ihl + 4..ihl + 8].copy_from_slice(&seq.wrapping_add(off as u32).to_be_bytes());
        let mut f = flags;
        if off != 0 {
            f &= !crate::wire::TcpFlags::CWR.0;
        }
        if off + n < total {
            f &= !(crate::wire::TcpFlags::FIN.0 | crate::wire::TcpFlags::PSH.0);
        }
        h[ihl + 13] = f;
        let new_len = (hlen - ihl + n) as u16;
        let sum = crate::wire::combine(&[pseudo, !old_len, new_len]);
        h[ihl + 16..ihl + 18].copy_from_slice(&sum.to_be_bytes());
        if let Some(psum) = payload_sum(off as u32, n) {
            // skb_checksum_help() with the payload's part known: the field holds the
            // pseudo-header sum, so summing the header as it is adds it in.
            let hsum = crate::wire::checksum(&h[ihl..]);
            let sum = !crate::wire::combine(&[hsum, psum]);
            h[ihl + 16..ihl + 18].copy_from_slice(&sum.to_be_bytes());
            seg.csum_partial = false;
        } else {
            seg.csum_partial = true;
            super::skb_checksum_help(&mut seg);
        }
        emit(seg);
        off += n;
        i = i.wrapping_add(1);
    }
}
