//! GRO's merge rules, one flush condition at a time, on hand-built IPv4 TCP frames.

use super::*;
use std::cell::RefCell;

const MSS: usize = 1000;
const SRC: [u8; 4] = [10, 0, 0, 1];
const DST: [u8; 4] = [10, 0, 0, 2];

/// A segment's knobs.
#[derive(Clone, Copy)]
struct S {
    seq: u32,
    len: usize,
    flags: u8,
    id: u16,
    ack: u32,
    window: u16,
    tsval: u32,
    ttl: u8,
    tos: u8,
    df: bool,
    sport: u16,
}

fn s(i: u32) -> S {
    S {
        seq: 1 + i * MSS as u32,
        len: MSS,
        flags: TcpFlags::ACK.0,
        id: 100 + i as u16,
        ack: 777,
        window: 500,
        tsval: 42,
        ttl: 64,
        tos: 0,
        df: true,
        sport: 1000,
    }
}

fn payload(seq: u32, len: usize) -> Bytes {
    (0..len).map(|k| (seq as usize + k).wrapping_mul(7) as u8).collect()
}

/// IPv4 (20 bytes) + TCP with the timestamp option (32 bytes), valid checksums.
fn frame(x: S) -> Frame {
    let mut f = Frame::with_header_len(52, payload(x.seq, x.len));
    let h = f.head_mut();
    h[0] = 0x45;
    h[1] = x.tos;
    h[2..4].copy_from_slice(&((52 + x.len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&x.id.to_be_bytes());
    h[6..8].copy_from_slice(&(if x.df { IP_DF } else { 0 }).to_be_bytes());
    h[8] = x.ttl;
    h[9] = IPPROTO_TCP;
    h[12..16].copy_from_slice(&SRC);
    h[16..20].copy_from_slice(&DST);
    let ipsum = !checksum(&h[..20]);
    h[10..12].copy_from_slice(&ipsum.to_be_bytes());
    h[20..22].copy_from_slice(&x.sport.to_be_bytes());
    h[22..24].copy_from_slice(&80u16.to_be_bytes());
    h[24..28].copy_from_slice(&x.seq.to_be_bytes());
    h[28..32].copy_from_slice(&x.ack.to_be_bytes());
    h[32] = 8 << 4;
    h[33] = x.flags;
    h[34..36].copy_from_slice(&x.window.to_be_bytes());
    h[40..44].copy_from_slice(&[1, 1, 8, 10]);
    h[44..48].copy_from_slice(&x.tsval.to_be_bytes());
    h[48..52].copy_from_slice(&9u32.to_be_bytes());
    let pseudo = pseudo_header_checksum(SRC.into(), DST.into(), IPPROTO_TCP, (32 + x.len) as u32);
    let sum = !combine(&[pseudo, checksum(&h[20..]), checksum(&payload(x.seq, x.len))]);
    h[36..38].copy_from_slice(&sum.to_be_bytes());
    f
}

/// Runs `segs` through one poll; returns what went up, and how many went up before the
/// poll's flush.
fn run(segs: &[Frame]) -> (Vec<Frame>, usize) {
    let out = RefCell::new(Vec::new());
    let hook = |f: Frame| out.borrow_mut().push(f);
    let before;
    {
        let mut g = Gro::new(&hook);
        for f in segs {
            g.receive(f.clone());
        }
        before = out.borrow().len();
        g.flush();
    }
    (out.into_inner(), before)
}

fn seq_of(f: &Frame) -> u32 {
    be32(f.head(), 24)
}

/// The segments each packet that went up stands for.
fn counts(out: &[Frame]) -> Vec<usize> {
    out.iter().map(|f| 1 + f.frags.len()).collect()
}

#[test]
fn a_run_merges_into_one_packet() {
    let segs: Vec<Frame> = (0..5).map(|i| frame(s(i))).collect();
    let (out, before) = run(&segs);
    assert_eq!((counts(&out), before), (vec![5], 0));
    let m = &out[0];
    assert_eq!(m.gso_size, MSS as u32);
    assert_eq!(m.gso_segs(), 5);
    assert!(m.csum_partial);
    assert_eq!(m.len(), 52 + 5 * MSS);
    // The payload is the segments' in order, not copied; the headers are the first's with
    // the IP length and checksum rewritten and the pseudo-header sum in the TCP checksum.
    let want: Vec<u8> = segs.iter().flat_map(|f| f.payload.to_vec()).collect();
    assert_eq!(m.to_vec()[52..], want[..]);
    for (p, f) in payload_parts(m).zip(&segs) {
        assert_eq!(p.as_ptr(), f.payload.as_ptr());
    }
    let h = m.head();
    assert_eq!(be16(h, 2) as usize, 52 + 5 * MSS);
    assert_eq!(checksum(&h[..20]), 0xffff);
    let pseudo = pseudo_header_checksum(SRC.into(), DST.into(), IPPROTO_TCP, (32 + 5 * MSS) as u32);
    assert_eq!(be16(h, 36), pseudo);
    assert_eq!(h[4..6], segs[0].head()[4..6]);
    assert_eq!(seq_of(m), 1);
}

#[test]
fn a_lone_segment_goes_up_as_it_came() {
    let f = frame(s(0));
    let (out, _) = run(std::slice::from_ref(&f));
    assert_eq!(counts(&out), vec![1]);
    assert_eq!(out[0].to_vec(), f.to_vec());
    assert!(out[0].csum_unnecessary && !out[0].csum_partial && out[0].gso_size == 0);
}

#[test]
fn a_short_segment_is_merged_last() {
    let mut segs: Vec<Frame> = (0..3).map(|i| frame(s(i))).collect();
    segs.push(frame(S { len: 10, ..s(3) }));
    segs.push(frame(s(4)));
    let (out, before) = run(&segs);
    // Up at once with the short one; the next starts a new packet, held until the flush.
    assert_eq!((counts(&out), before), (vec![4, 1], 1));
    assert_eq!(out[0].len(), 52 + 3 * MSS + 10);
}

#[test]
fn psh_and_fin_end_the_merge_and_are_ored_in() {
    for flag in [TcpFlags::PSH.0, TcpFlags::FIN.0] {
        let segs = [frame(s(0)), frame(s(1)), frame(S { flags: TcpFlags::ACK.0 | flag, ..s(2) }), frame(s(3))];
        let (out, before) = run(&segs);
        assert_eq!((counts(&out), before), (vec![3, 1], 1), "flag {flag:#x}");
        assert_eq!(out[0].head()[33], TcpFlags::ACK.0 | flag);
    }
}

#[test]
fn a_first_segment_with_psh_or_no_payload_goes_up_at_once() {
    let (out, before) = run(&[frame(S { flags: TcpFlags::ACK.0 | TcpFlags::PSH.0, ..s(0) })]);
    assert_eq!((counts(&out), before), (vec![1], 1));
    let (out, before) = run(&[frame(S { len: 0, ..s(0) })]);
    assert_eq!((counts(&out), before), (vec![1], 1));
}

#[test]
fn a_pure_ack_of_the_flow_sends_the_held_packet_up_first() {
    let segs = [frame(s(0)), frame(s(1)), frame(S { len: 0, ..s(2) })];
    let (out, before) = run(&segs);
    assert_eq!((counts(&out), before), (vec![2, 1], 2));
    assert_eq!(out[1].payload.len(), 0);
}

#[test]
fn a_segment_larger_than_the_first_is_not_merged() {
    let segs = [frame(S { len: 500, ..s(0) }), frame(S { seq: 501, ..s(1) })];
    let (out, before) = run(&segs);
    // The larger second sends the first up and is held itself.
    assert_eq!((counts(&out), before), (vec![1, 1], 1));
    assert_eq!(seq_of(&out[1]), 501);
}

#[test]
fn each_header_difference_flushes() {
    let cases: [(&str, S); 11] = [
        ("ack", S { ack: 778, ..s(1) }),
        ("window", S { window: 501, ..s(1) }),
        ("timestamp", S { tsval: 43, ..s(1) }),
        ("ttl", S { ttl: 63, ..s(1) }),
        ("tos", S { tos: 4, ..s(1) }),
        ("df", S { df: false, ..s(1) }),
        ("ip id gap", S { id: 102, ..s(1) }),
        ("seq gap", S { seq: s(1).seq + 1, ..s(1) }),
        ("cwr", S { flags: TcpFlags::ACK.0 | TcpFlags::CWR.0, ..s(1) }),
        ("urg", S { flags: TcpFlags::ACK.0 | TcpFlags::URG.0, ..s(1) }),
        ("other flow", S { sport: 1001, ..s(1) }),
    ];
    for (what, second) in cases {
        let (out, _) = run(&[frame(s(0)), frame(second)]);
        assert_eq!(counts(&out), vec![1, 1], "{what}");
        if what != "other flow" {
            assert_eq!(seq_of(&out[0]), 1, "{what}: the held packet went up first");
        }
    }
}

#[test]
fn a_fixed_id_df_flow_merges_and_then_needs_the_same_id() {
    let (out, _) = run(&[frame(s(0)), frame(S { id: 100, ..s(1) }), frame(S { id: 100, ..s(2) })]);
    assert_eq!(counts(&out), vec![3]);
    let (out, _) = run(&[frame(s(0)), frame(S { id: 100, ..s(1) }), frame(S { id: 102, ..s(2) })]);
    assert_eq!(counts(&out), vec![2, 1]);
    // Without DF the IDs must increment.
    let nodf = |x: S| frame(S { df: false, ..x });
    let (out, _) = run(&[nodf(s(0)), nodf(S { id: 100, ..s(1) })]);
    assert_eq!(counts(&out), vec![1, 1]);
}

#[test]
fn interleaved_flows_merge_apart() {
    let other = |x: S| frame(S { sport: 2000, ..x });
    let segs = [frame(s(0)), other(s(0)), frame(s(1)), other(s(1)), frame(s(2))];
    let (out, _) = run(&segs);
    assert_eq!(counts(&out), vec![3, 2]);
}

#[test]
fn at_most_max_skb_frags_segments_merge() {
    let segs: Vec<Frame> = (0..GRO_MAX_SEGS + 3).map(|i| frame(s(i))).collect();
    let (out, before) = run(&segs);
    assert_eq!((counts(&out), before), (vec![GRO_MAX_SEGS as usize, 3], 1));
    assert!(out[0].frags.capacity() == SKB_FRAGS_CAP, "the pooled vector did not grow");
}

#[test]
fn a_bad_checksum_goes_up_alone_and_the_run_goes_on() {
    let mut bad = frame(s(2));
    let mut p = bad.payload.to_vec();
    p[7] ^= 1;
    bad.payload = Bytes::from(p);
    let segs = [frame(s(0)), frame(s(1)), bad, frame(s(3)), frame(s(4))];
    let (out, _) = run(&segs);
    // Up at once, unverified (the stack drops and counts it); its neighbours merged.
    assert_eq!(counts(&out), vec![1, 2, 2]);
    assert_eq!(seq_of(&out[0]), s(2).seq);
    assert!(!out[0].csum_unnecessary && !out[0].csum_partial);
    assert_eq!([seq_of(&out[1]), seq_of(&out[2])], [s(0).seq, s(3).seq]);
    // A bad IP header checksum likewise.
    let mut badip = frame(s(1));
    badip.head_mut()[10] ^= 1;
    let (out, _) = run(&[frame(s(0)), badip]);
    assert_eq!(counts(&out), vec![1, 1]);
    assert_eq!(seq_of(&out[0]), s(1).seq);
}

#[test]
fn ip_options_and_fragments_are_not_merged_and_keep_the_flow_in_order() {
    let mut frag = frame(s(1));
    frag.head_mut()[6] |= 0x20; // MF
    let h = frag.head_mut();
    h[10..12].copy_from_slice(&[0, 0]);
    let ipsum = !checksum(&h[..20]);
    h[10..12].copy_from_slice(&ipsum.to_be_bytes());
    let (out, _) = run(&[frame(s(0)), frag]);
    assert_eq!(counts(&out), vec![1, 1]);
    assert_eq!(seq_of(&out[0]), 1);
    let mut padded = frame(s(1));
    padded.payload = Bytes::from([&padded.payload[..], &[0u8; 2]].concat());
    let (out, _) = run(&[frame(s(0)), padded]);
    assert_eq!(counts(&out), vec![1, 1], "IP length not the frame's");
}

#[test]
fn the_wire_packets_are_rebuilt_byte_for_byte() {
    let mut segs: Vec<Frame> = (0..6).map(|i| frame(s(i))).collect();
    segs.push(frame(S { len: 77, flags: TcpFlags::ACK.0 | TcpFlags::PSH.0, ..s(6) }));
    let (out, _) = run(&segs);
    assert_eq!(counts(&out), vec![7]);
    let mut wire = Vec::new();
    for_each_wire_packet(&out[0], |parts| wire.push(parts.concat()));
    let want: Vec<Vec<u8>> = segs.iter().map(Frame::to_vec).collect();
    assert_eq!(wire, want);
}

#[test]
fn not_ipv4_tcp_goes_up_untouched() {
    let f = Frame::from_wire(Bytes::from_static(&[0x60; 60]), 40);
    let (out, before) = run(&[frame(s(0)), f.clone()]);
    assert_eq!((counts(&out), before), (vec![1, 1], 1));
    assert_eq!(out[0].to_vec(), f.to_vec());
}
