//! `struct virtio_net_hdr` (include/uapi/linux/virtio_net.h) and the two offload halves the
//! device does itself: completing a partial checksum on receive (`skb_checksum_help`) and
//! joining a run of segments into one GSO super-packet on transmit (the inverse of
//! `tcp_gso_segment`, which the kernel then runs on it).

use utcp::skb::Frame;
use utcp::wire::{checksum, combine, pseudo_header_checksum};

/// Size of `struct virtio_net_hdr` (no `num_buffers`).
pub const HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_ECN` (a flag on `gso_type`).
pub const GSO_ECN: u8 = 0x80;
/// Largest IPv4 datagram.
const IP_MAX: usize = 65_535;

/// A parsed `virtio_net_hdr` (fields in the host's byte order, as a legacy tun uses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtioNetHdr {
    /// `flags`.
    pub flags: u8,
    /// `gso_type`.
    pub gso_type: u8,
    /// `hdr_len`: bytes of headers.
    pub hdr_len: u16,
    /// `gso_size`: payload bytes per segment.
    pub gso_size: u16,
    /// `csum_start`: where checksumming starts.
    pub csum_start: u16,
    /// `csum_offset`: where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
}

impl VirtioNetHdr {
    /// Parses the header at the front of `b`.
    pub fn parse(b: &[u8]) -> Option<VirtioNetHdr> {
        if b.len() < HDR_LEN {
            return None;
        }
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VirtioNetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }
    /// The header's bytes.
    pub fn emit(&self) -> [u8; HDR_LEN] {
        let mut b = [0u8; HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

/// Completes a partial checksum (`VIRTIO_NET_HDR_F_NEEDS_CSUM`): the field at
/// `start + offset` holds the pseudo-header sum; the result is the checksum over
/// `pkt[start..]` (`skb_checksum_help`). False when the offsets lie outside the packet.
pub fn complete_csum(pkt: &mut [u8], start: u16, offset: u16) -> bool {
    let (s, o) = (start as usize, start as usize + offset as usize);
    if s >= pkt.len() || o + 2 > pkt.len() {
        return false;
    }
    let sum = !checksum(&pkt[s..]);
    pkt[o..o + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// How many frames from the front of `frames` can go out as one GSO super-packet: IPv4
/// without options carrying TCP, identical headers but for the IP length, id and checksum and
/// the TCP sequence number, flags and checksum; contiguous sequence numbers; every segment
/// but the last exactly `gso_size` (the first's length) long; ACK only, PSH allowed on the last
/// (`tcp_gso_segment` gives PSH and FIN to the last segment and CWR to the first only); at most
/// 64 KiB in all. 1 when no run starts here.
pub fn gso_run(frames: &[Frame]) -> usize {
    let Some(first) = frames.first() else { return 0 };
    let h0 = first.head();
    let mss = first.payload.len();
    if h0.len() < 40 || h0[0] != 0x45 || h0[9] != 6 || mss == 0 || h0[33] != 0x10 {
        return 1;
    }
    let mut total = first.len();
    let mut next_seq = seq(h0).wrapping_add(mss as u32);
    let mut n = 1;
    for f in &frames[1..] {
        let h = f.head();
        let len = f.payload.len();
        if h.len() != h0.len()
            || len == 0
            || len > mss
            || total + len > IP_MAX
            || seq(h) != next_seq
            || !(h[33] == 0x10 || h[33] == 0x18)
            || !same_except_variable(h0, h)
        {
            break;
        }
        total += len;
        next_seq = next_seq.wrapping_add(len as u32);
        n += 1;
        if len < mss || h[33] != 0x10 {
            break; // a short or PSH segment ends the run
        }
    }
    n
}

fn seq(h: &[u8]) -> u32 {
    u32::from_be_bytes([h[24], h[25], h[26], h[27]])
}

/// Header bytes equal except IP tot_len (2..4), id (4..6), checksum (10..12) and TCP seq
/// (24..28), flags (33) and checksum (36..38).
fn same_except_variable(a: &[u8], b: &[u8]) -> bool {
    let ranges = [(0, 2), (6, 10), (12, 24), (28, 33), (34, 36), (38, a.len())];
    ranges.iter().all(|&(s, e)| a[s..e] == b[s..e])
}

/// The virtio header and the IP + TCP header of the super-packet made of `run` (see
/// [`gso_run`]): total length of the whole run, the last segment's flags, a partial TCP
/// checksum (the pseudo-header sum, `VIRTIO_NET_HDR_F_NEEDS_CSUM`).
pub fn gso_head(run: &[Frame]) -> ([u8; HDR_LEN], Vec<u8>) {
    let mut head = run[0].head().to_vec();
    let payload: usize = run.iter().map(|f| f.payload.len()).sum();
    let tot = head.len() + payload;
    head[2..4].copy_from_slice(&(tot as u16).to_be_bytes());
    head[33] = run[run.len() - 1].head()[33];
    head[10] = 0;
    head[11] = 0;
    let ipsum = !checksum(&head[..20]);
    head[10..12].copy_from_slice(&ipsum.to_be_bytes());
    let saddr = std::net::Ipv4Addr::new(head[12], head[13], head[14], head[15]);
    let daddr = std::net::Ipv4Addr::new(head[16], head[17], head[18], head[19]);
    let pseudo = pseudo_header_checksum(saddr, daddr, 6, (tot - 20) as u32);
    head[36..38].copy_from_slice(&combine(&[pseudo]).to_be_bytes());
    let hdr = VirtioNetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: head.len() as u16,
        gso_size: run[0].payload.len() as u16,
        csum_start: 20,
        csum_offset: 16,
    };
    (hdr.emit(), head)
}

/// `head` (from [`gso_head`]) with its partial TCP checksum completed over the payloads of
/// `run`: the checksum the super-packet would carry if sent whole.
pub fn full_csum_head(head: &[u8], run: &[Frame]) -> Vec<u8> {
    let mut h = head.to_vec();
    // The partial field holds the pseudo-header sum: summing the header as it is adds it in.
    let mut sums = Vec::with_capacity(run.len() + 1);
    sums.push(checksum(&h[20..]));
    let mut odd = (h.len() - 20) % 2 == 1;
    for f in run {
        let c = checksum(&f.payload);
        sums.push(if odd { c.rotate_left(8) } else { c });
        odd ^= f.payload.len() % 2 == 1;
    }
    let sum = !combine(&sums);
    h[36..38].copy_from_slice(&sum.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::net::Ipv4Addr;
    use utcp::netns::Netns;
    use utcp::seq::SeqNum;
    use utcp::wire::{SackBlocks, TcpFlags, TcpRepr};

    fn seg(net: &Netns, seq: u32, len: usize, flags: TcpFlags) -> Frame {
        let tcp = TcpRepr {
            src_port: 80,
            dst_port: 4000,
            flags,
            seq_number: SeqNum(seq),
            ack_number: SeqNum(7),
            window_len: 1000,
            urgent_pointer: 0,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: SackBlocks::new(),
            timestamp: Some((5, 6)),
            payload: &[],
        };
        let payload: Vec<u8> = (0..len).map(|i| (seq as usize + i) as u8).collect();
        utcp::ip::build_tcp_frame(net, Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1), &tcp, payload.into())
    }

    #[test]
    fn runs_stop_at_short_psh_gaps_and_64k() {
        let net = Netns::new(Ipv4Addr::new(10, 0, 0, 2), 1500, 1);
        let ack = TcpFlags::ACK;
        let psh = TcpFlags(TcpFlags::ACK.0 | TcpFlags::PSH.0);
        let fs =
            vec![seg(&net, 0, 100, ack), seg(&net, 100, 100, ack), seg(&net, 200, 50, psh), seg(&net, 250, 100, ack)];
        assert_eq!(gso_run(&fs), 3);
        assert_eq!(gso_run(&fs[3..]), 1);
        let gap = vec![seg(&net, 0, 100, ack), seg(&net, 101, 100, ack)];
        assert_eq!(gso_run(&gap), 1);
        let big: Vec<Frame> = (0..60).map(|i| seg(&net, i * 1448, 1448, ack)).collect();
        let n = gso_run(&big);
        assert_eq!(n, (65_535 - 52) / 1448);
        assert!(gso_run(&[seg(&net, 0, 100, psh), seg(&net, 100, 100, ack)]) == 1);
    }

    #[test]
    fn super_packet_checksum_completes_to_the_real_one() {
        // The partial checksum, completed as the kernel would, equals the full checksum of the
        // joined packet, so the segments the kernel cuts from it carry correct checksums too.
        let net = Netns::new(Ipv4Addr::new(10, 0, 0, 2), 1500, 1);
        let psh = TcpFlags(TcpFlags::ACK.0 | TcpFlags::PSH.0);
        let run =
            vec![seg(&net, 0, 1000, TcpFlags::ACK), seg(&net, 1000, 1000, TcpFlags::ACK), seg(&net, 2000, 10, psh)];
        let (hdr, head) = gso_head(&run);
        let h = VirtioNetHdr::parse(&hdr).unwrap();
        assert_eq!((h.gso_type, h.gso_size, h.hdr_len), (GSO_TCPV4, 1000, head.len() as u16));
        let mut pkt = head.clone();
        for f in &run {
            pkt.extend_from_slice(&f.payload);
        }
        assert_eq!(checksum(&pkt[..20]), 0xffff);
        let full = full_csum_head(&head, &run);
        assert!(complete_csum(&mut pkt, h.csum_start, h.csum_offset));
        assert_eq!(full[..], pkt[..head.len()], "the capture's checksum is the completed one");
        // An odd-length segment in the middle shifts the byte lanes of the ones that follow.
        let odd = vec![seg(&net, 0, 999, TcpFlags::ACK), seg(&net, 999, 1000, TcpFlags::ACK)];
        let (_, ohead) = gso_head(&odd);
        let mut whole = full_csum_head(&ohead, &odd);
        for f in &odd {
            whole.extend_from_slice(&f.payload);
        }
        assert!(utcp::ip::ip_rcv_tcp(
            &Netns::new(Ipv4Addr::new(10, 0, 0, 1), 1500, 2),
            &utcp::ip::frame_from_wire(Bytes::from(whole)),
            true
        )
        .is_ok());
        let fr = utcp::ip::frame_from_wire(Bytes::from(pkt));
        let tin = utcp::ip::ip_rcv_tcp(&Netns::new(Ipv4Addr::new(10, 0, 0, 1), 1500, 2), &fr, true)
            .unwrap_or_else(|_| panic!("checksum"));
        assert_eq!(tin.payload.len(), 2010);
        assert!(tin.tcp.flags.psh());
        assert!(!complete_csum(&mut [0u8; 10], 8, 16));
    }
}
