//! Software GSO (`netdev/gso.rs`, Linux `skb_gso_segment()`): a super-segment cut into MSS
//! packets as a device without TSO needs them. (Outside the crate: the test builds the frame
//! with the IP layer, which `netdev/` must not name.)

use bytes::Bytes;
use std::net::Ipv4Addr;
use utcp::netdev::gso::{netif_needs_gso, skb_gso_segment, skb_gso_segment_csum};
use utcp::netns::Netns;
use utcp::seq::SeqNum;
use utcp::wire::{Ipv4Packet, TcpFlags, TcpPacket, TcpRepr};

fn repr(flags: TcpFlags) -> TcpRepr<'static> {
    TcpRepr {
        src_port: 8080,
        dst_port: 40000,
        flags,
        seq_number: SeqNum(1000),
        ack_number: SeqNum(77),
        window_len: 512,
        urgent_pointer: 0,
        max_seg_size: None,
        window_scale: None,
        sack_permitted: false,
        sack_ranges: Default::default(),
        timestamp: Some((5, 6)),
        payload: &[],
    }
}

/// A 2,500-byte super-segment at gso_size 1,000 becomes three packets with valid IP and
/// TCP checksums, consecutive IDs and sequence numbers, PSH/FIN only on the last and CWR
/// only on the first: the same packets as building them one by one.
#[test]
fn segments_carry_linux_flags_and_valid_checksums() {
    let net = Netns::new(Ipv4Addr::new(10, 0, 0, 1), 1500, 1);
    let (s, d) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let payload: Vec<u8> = (0..2500u32).map(|i| (i * 7) as u8).collect();
    let flags = TcpFlags(TcpFlags::ACK.0 | TcpFlags::PSH.0 | TcpFlags::FIN.0 | TcpFlags::CWR.0);
    let inet = utcp::ip::sockglue::InetOpts::default();
    let f = utcp::ip::build_tcp_frame_gso(&net, s, d, &repr(flags), Bytes::from(payload.clone()), &inet, 1000);
    assert!(netif_needs_gso(&f, 0));
    assert!(!netif_needs_gso(&f, 65536));
    let mut segs = Vec::new();
    skb_gso_segment(f, |x| segs.push(x));
    assert_eq!(segs.len(), 3);
    let mut ids = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        let bytes = seg.to_vec();
        let ip = Ipv4Packet::new_checked(&bytes[..]).expect("ip");
        assert!(ip.verify_checksum(), "IP checksum of packet {i}");
        ids.push(ip.ident());
        assert_eq!(ip.total_len() as usize, bytes.len());
        let tcp = TcpPacket::new_checked(&bytes[20..]).expect("tcp");
        assert!(tcp.verify_checksum(s, d), "TCP checksum of packet {i}");
        assert_eq!(tcp.seq_number(), SeqNum(1000 + 1000 * i as u32));
        assert_eq!(tcp.payload(), &payload[i * 1000..(i * 1000 + 1000).min(2500)]);
        let fl = tcp.flags();
        assert_eq!(fl.psh(), i == 2, "PSH of packet {i}");
        assert_eq!(fl.fin(), i == 2, "FIN of packet {i}");
        assert_eq!(fl.0 & TcpFlags::CWR.0 != 0, i == 0, "CWR of packet {i}");
        assert!(!seg.csum_partial && seg.gso_size == 0);
    }
    assert_eq!(ids[1], ids[0].wrapping_add(1));
    assert_eq!(ids[2], ids[0].wrapping_add(2));
}

/// Payload sums taken on the copy (`skb_gso_segment_csum`, tcp/tx_csum.rs) give the same
/// packets byte for byte, whether a packet's sum is known or not (an odd last length
/// too); a wrong sum would show as a different checksum field.
#[test]
fn known_payload_sums_give_the_same_packets() {
    let net = Netns::new(Ipv4Addr::new(10, 0, 0, 1), 1500, 1);
    let (s, d) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let inet = utcp::ip::sockglue::InetOpts::default();
    let payload: Vec<u8> = (0..4001u32).map(|i| (i * 13 + 5) as u8).collect();
    let flags = TcpFlags(TcpFlags::ACK.0 | TcpFlags::PSH.0);
    let f = utcp::ip::build_tcp_frame_gso(&net, s, d, &repr(flags), Bytes::from(payload.clone()), &inet, 999);
    let mut plain = Vec::new();
    skb_gso_segment(f.clone(), |x| plain.push(x.to_vec()));
    let mut asked = Vec::new();
    let mut summed = Vec::new();
    skb_gso_segment_csum(
        f,
        |off, len| {
            asked.push((off, len));
            // The third packet's sum is unknown: it is summed as before.
            (off != 1998).then(|| utcp::wire::checksum(&payload[off as usize..off as usize + len]))
        },
        |x| {
            assert!(!x.csum_partial && x.gso_size == 0);
            summed.push(x.to_vec())
        },
    );
    assert_eq!(asked, vec![(0, 999), (999, 999), (1998, 999), (2997, 999), (3996, 5)]);
    assert_eq!(plain.len(), 5);
    assert!(summed == plain, "the packets differ");
    for (i, p) in plain.iter().enumerate() {
        let tcp = TcpPacket::new_checked(&p[20..]).expect("tcp");
        assert!(tcp.verify_checksum(s, d), "TCP checksum of packet {i}");
    }
}
