//! Cross-module tests of the wire formats: real Linux 6.18 packets (captured from a tun
//! device, so their checksums are complete), byte-exact emission, round trips, and
//! never-panic properties on arbitrary input.

use super::*;
use crate::seq::SeqNum;
use proptest::prelude::*;
use std::net::Ipv4Addr;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

const A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

/// Linux 6.18 active open: `connect()` SYN, 10.9.0.1:42918 -> 10.9.0.2:80.
const LINUX_SYN: &str = "4500003ce718400040063f8f0a0900010a090002a7a60050cbc5fcad00000000\
                         a002faf098370000020405b40402080a8aeea567000000000103030a";
/// Linux 6.18 SYN-ACK, 10.9.0.1:5000 -> 10.9.0.2:40000 (peer offered SACK, TS, ws 7).
const LINUX_SYNACK: &str = "4500003c00004000400626a80a0900010a09000213889c409e986c3c00000065\
                            a012fe88210e0000020405b40402080af1436413000003e80103030a";
/// Linux 6.18 duplicate ACK carrying one SACK block, after an out-of-order segment.
const LINUX_SACK_ACK: &str = "4500004056ff40004006cfa40a0900010a09000213889c409e986c3d00000065\
                              b01000400f0f00000101080af1436413000003e90101050a0000044d000004b2";
/// Linux 6.18 data segment "hello!!" (odd length) with TS and SACK options.
const LINUX_DATA: &str = "45000047570040004006cf9c0a0900010a09000213889c409e986c3d00000065\
                          b0180040aa0c00000101080af1436413000003e90101050a0000044d000004b2\
                          68656c6c6f2121";

/// Parses a captured packet, checks both checksums, and checks that re-emitting the
/// parsed representations reproduces the capture byte for byte.
fn check_capture(s: &str) -> (Ipv4Repr, Vec<u8>) {
    let bytes = hex(s);
    let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
    assert!(ip.verify_checksum());
    let ip_repr = Ipv4Repr::parse(&ip, true).unwrap();
    assert_eq!(ip_repr.protocol, IPPROTO_TCP);
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(tcp.verify_checksum(ip_repr.src_addr, ip_repr.dst_addr));
    let tcp_repr = TcpRepr::parse(&tcp, ip_repr.src_addr, ip_repr.dst_addr, true).unwrap();

    let mut out = vec![0u8; ip_repr.buffer_len() + tcp_repr.buffer_len()];
    assert_eq!(out.len(), bytes.len());
    ip_repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]), true);
    tcp_repr.emit(&mut TcpPacket::new_unchecked(&mut out[20..]), ip_repr.src_addr, ip_repr.dst_addr, true);
    assert_eq!(out, bytes, "re-emission differs from the Linux capture");
    (ip_repr, bytes)
}

#[test]
fn linux_syn() {
    let (ip, bytes) = check_capture(LINUX_SYN);
    assert_eq!(ip.src_addr, A);
    assert_eq!(ip.dst_addr, B);
    assert_eq!(ip.ttl, 64);
    assert!(ip.dont_frag);
    assert_eq!(ip.ident, 0xe718);
    assert_eq!(ip.payload_len, 40);
    let tcp = TcpPacket::new_checked(&bytes[20..]).unwrap();
    let r = TcpRepr::parse(&tcp, A, B, true).unwrap();
    assert_eq!(r.flags, TcpFlags::SYN);
    assert_eq!((r.src_port, r.dst_port), (42918, 80));
    assert_eq!(r.seq_number, SeqNum(0xcbc5_fcad));
    assert_eq!(r.window_len, 64240);
    assert_eq!(r.max_seg_size, Some(1460));
    assert!(r.sack_permitted);
    assert_eq!(r.timestamp, Some((0x8aee_a567, 0)));
    assert_eq!(r.window_scale, Some(10));
    assert!(r.sack_ranges.is_empty());
    assert_eq!(r.segment_len(), 1);
    assert_eq!(tcp.segment_len(), 1);
    assert_eq!(
        r.to_string(),
        "S 3418750125:3418750125(0) win 64240 <mss 1460,sackOK,TS val 2330895719 ecr 0,nop,wscale 10>"
    );
    // Corrupting any byte breaks the TCP checksum.
    let mut bad = bytes[20..].to_vec();
    bad[30] ^= 0x40;
    let tcp = TcpPacket::new_checked(&bad[..]).unwrap();
    assert!(!tcp.verify_checksum(A, B));
    assert_eq!(TcpRepr::parse(&tcp, A, B, true), Err(Error));
    assert!(TcpRepr::parse(&tcp, A, B, false).is_ok());
    // ... and so does a wrong pseudo header.
    let tcp = TcpPacket::new_checked(&bytes[20..]).unwrap();
    assert!(!tcp.verify_checksum(B, B));
}

#[test]
fn linux_synack() {
    let (_, bytes) = check_capture(LINUX_SYNACK);
    let tcp = TcpPacket::new_checked(&bytes[20..]).unwrap();
    let r = TcpRepr::parse(&tcp, A, B, true).unwrap();
    assert_eq!(r.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(r.ack_number, SeqNum(101));
    assert_eq!(r.timestamp, Some((0xf143_6413, 1000)));
    assert_eq!(format!("{:?}", r.flags), "S.");
}

#[test]
fn linux_sack_and_data() {
    let (_, bytes) = check_capture(LINUX_SACK_ACK);
    let tcp = TcpPacket::new_checked(&bytes[20..]).unwrap();
    let r = TcpRepr::parse(&tcp, A, B, true).unwrap();
    assert_eq!(r.flags, TcpFlags::ACK);
    assert_eq!(r.sack_ranges.as_slice(), &[(SeqNum(1101), SeqNum(1202))]);
    assert!(!r.sack_permitted);
    assert_eq!(r.max_seg_size, None);
    assert_eq!(
        r.to_string(),
        ". 2660789309:2660789309(0) ack 101 win 64 <nop,nop,TS val 4047725587 ecr 1001,nop,nop,sack 1101:1202>"
    );

    let (ip, bytes) = check_capture(LINUX_DATA);
    assert_eq!(ip.payload_len, 32 + 12 + 7);
    let tcp = TcpPacket::new_checked(&bytes[20..]).unwrap();
    let r = TcpRepr::parse(&tcp, A, B, true).unwrap();
    assert_eq!(r.payload, b"hello!!");
    assert_eq!(r.flags, TcpFlags::PSH | TcpFlags::ACK);
    assert_eq!(r.segment_len(), 7);
}

#[test]
fn syn_options_layout_matches_linux() {
    let mut r = TcpRepr {
        src_port: 1,
        dst_port: 2,
        flags: TcpFlags::SYN,
        seq_number: SeqNum(0),
        ack_number: SeqNum(0),
        window_len: 65535,
        urgent_pointer: 0,
        max_seg_size: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        sack_ranges: SackBlocks::new(),
        timestamp: Some((100, 0)),
        payload: &[],
    };
    assert_eq!(r.header_len(), 40);
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), A, B, true);
    assert_eq!(&buf[20..], &hex("020405b40402080a00000064000000000103030700")[..20]);
    assert_eq!(r.to_string(), "S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>");
    // Without timestamps: MSS, NOP NOP SACKOK, NOP WS (Linux's SYN with tcp_timestamps=0).
    r.timestamp = None;
    assert_eq!(r.header_len(), 32);
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), A, B, true);
    assert_eq!(&buf[20..], &hex("020405b40101040201030307")[..]);
    // TS without SACK-permitted: NOP NOP TS.
    r.sack_permitted = false;
    r.max_seg_size = None;
    r.window_scale = None;
    r.timestamp = Some((1, 2));
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), A, B, false);
    assert_eq!(&buf[20..], &hex("0101080a0000000100000002")[..]);
    assert_eq!(TcpPacket::new_unchecked(&buf[..]).checksum(), 0);
}

#[test]
fn sack_blocks_limited_to_option_space() {
    let mut sacks = SackBlocks::new();
    for i in 0..4 {
        assert!(sacks.push(SeqNum(i * 10), SeqNum(i * 10 + 5)));
    }
    assert!(!sacks.push(SeqNum(1), SeqNum(2)));
    assert_eq!(sacks.len(), 4);
    let mut r = TcpRepr {
        src_port: 1,
        dst_port: 2,
        flags: TcpFlags::ACK,
        seq_number: SeqNum(0),
        ack_number: SeqNum(0),
        window_len: 0,
        urgent_pointer: 0,
        max_seg_size: None,
        window_scale: None,
        sack_permitted: false,
        sack_ranges: sacks,
        timestamp: None,
        payload: &[],
    };
    assert_eq!(r.header_len(), 20 + 4 + 32);
    // With timestamps only three blocks fit (tcp_established_options()).
    r.timestamp = Some((5, 6));
    assert_eq!(r.header_len(), 20 + 12 + 4 + 24);
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), A, B, true);
    let p = TcpPacket::new_checked(&buf[..]).unwrap();
    let back = TcpRepr::parse(&p, A, B, true).unwrap();
    assert_eq!(back.sack_ranges.as_slice(), &sacks.as_slice()[..3]);
    // Pathological: every option plus blocks that can never fit -> no SACK option.
    r.max_seg_size = Some(1);
    r.window_scale = Some(1);
    assert_eq!(r.header_len(), 20 + 4 + 12 + 4 + 4 + 16);
    r.sack_permitted = true;
    r.timestamp = None;
    assert_eq!(r.header_len(), 20 + 4 + 4 + 4 + 4 + 24);
}

fn base_syn_with_options(options: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() & 3, 0);
    let mut buf = vec![0u8; 20 + options.len()];
    let mut p = TcpPacket::new_unchecked(&mut buf[..]);
    p.set_src_port(1);
    p.set_dst_port(2);
    p.set_header_len((20 + options.len()) as u8);
    p.set_flags(TcpFlags::SYN);
    p.options_mut().copy_from_slice(options);
    p.fill_checksum(A, B);
    buf
}

fn parse_options(options: &[u8]) -> TcpRepr<'static> {
    let buf = base_syn_with_options(options).leak();
    let p = TcpPacket::new_checked(&buf[..]).unwrap();
    TcpRepr::parse(&p, A, B, true).unwrap()
}

#[test]
fn option_parsing_follows_tcp_parse_options() {
    // EOL stops: the MSS after it is ignored.
    let r = parse_options(&[1, 0, 2, 4, 5, 0xb4, 0, 0]);
    assert_eq!(r.max_seg_size, None);
    // Wrong-length MSS skipped, later options still parsed.
    let r = parse_options(&[2, 3, 9, 3, 3, 20, 4, 2]);
    assert_eq!(r.max_seg_size, None);
    assert_eq!(r.window_scale, Some(14)); // clamped
    assert!(r.sack_permitted);
    // Length < 2 stops the walk (rest ignored, segment accepted).
    let r = parse_options(&[1, 1, 3, 1, 4, 2, 0, 0]);
    assert!(!r.sack_permitted);
    // Option running past the end stops the walk.
    let r = parse_options(&[4, 2, 8, 10, 0, 0, 0, 1]);
    assert!(r.sack_permitted);
    assert_eq!(r.timestamp, None);
    // A single trailing non-NOP byte: nothing more parsed.
    let r = parse_options(&[1, 1, 1, 3]);
    assert_eq!(r.window_scale, None);
    // MSS 0 is ignored (Linux keeps the default).
    let r = parse_options(&[2, 4, 0, 0]);
    assert_eq!(r.max_seg_size, None);
    // Duplicates: the later one wins; unknown kinds are skipped.
    let r = parse_options(&[2, 4, 0, 1, 2, 4, 0, 2, 99, 3, 7, 1, 30, 2, 1, 1]);
    assert_eq!(r.max_seg_size, Some(2));
    // SACK with a bad length is ignored; 0 blocks is bad.
    let r = parse_options(&[1, 1, 5, 2, 1, 1, 5, 6, 0, 0, 0, 0]);
    assert!(r.sack_ranges.is_empty());
    // Fast Open cookie is listed by the iterator but not part of TcpRepr.
    let buf = base_syn_with_options(&[34, 6, 1, 2, 3, 4, 1, 0]);
    let p = TcpPacket::new_checked(&buf[..]).unwrap();
    let opts: Vec<_> = p.options_iter().collect();
    assert_eq!(
        opts,
        vec![Ok(TcpOption::FastOpen(&[1, 2, 3, 4])), Ok(TcpOption::NoOperation), Ok(TcpOption::EndOfList)]
    );
}

#[test]
fn aligned_timestamp_fast_path_matches_the_option_walk() {
    // NOP NOP TS takes tcp_fast_parse_options()'s shortcut; the same option elsewhere in the
    // area, or the same area one option longer, takes the walk: both read the same values.
    let fast = parse_options(&[1, 1, 8, 10, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0]);
    let walked = parse_options(&[8, 10, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 1]);
    assert_eq!(fast.timestamp, Some((0x1234_5678, 0x9abc_def0)));
    assert_eq!(fast, walked);
    let longer = parse_options(&[1, 1, 8, 10, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 1, 4, 2]);
    assert_eq!(longer.timestamp, fast.timestamp);
    assert!(longer.sack_permitted);
    // A wrong length after NOP NOP is no timestamp on either path.
    let bad = parse_options(&[1, 1, 8, 11, 0, 0, 0, 1, 0, 0, 0, 2]);
    assert_eq!(bad.timestamp, None);
}

#[test]
fn option_iter_and_parse_errors() {
    assert_eq!(TcpOption::parse(&[]), Err(Error));
    assert_eq!(TcpOption::parse(&[2]), Err(Error));
    assert_eq!(TcpOption::parse(&[2, 1, 0]), Err(Error));
    assert_eq!(TcpOption::parse(&[2, 5, 0, 0]), Err(Error));
    assert_eq!(TcpOption::parse(&[2, 3, 0, 0]), Err(Error));
    assert_eq!(TcpOption::parse(&[3, 2]), Err(Error));
    assert_eq!(TcpOption::parse(&[4, 3, 0]), Err(Error));
    assert_eq!(TcpOption::parse(&[8, 9, 0, 0, 0, 0, 0, 0, 0]), Err(Error));
    assert_eq!(TcpOption::parse(&[5, 2]), Err(Error));
    let mut five = vec![5u8, 42];
    five.extend([0u8; 40]);
    assert_eq!(TcpOption::parse(&five), Err(Error));
    assert_eq!(TcpOption::parse(&[0, 9]), Ok((&[9u8][..], TcpOption::EndOfList)));
    assert_eq!(TcpOption::parse(&[3, 3, 200, 7]), Ok((&[7u8][..], TcpOption::WindowScale(200))));
    assert_eq!(TcpOption::parse(&[253, 4, 1, 2]), Ok((&[][..], TcpOption::Unknown { kind: 253, data: &[1, 2] })));
    // Iterator: wrong-length known option yields Err and continues; broken framing ends.
    let items: Vec<_> = TcpOptionIter::new(&[2, 3, 0, 1, 4, 2, 9, 0]).collect();
    assert_eq!(items, vec![Err(Error), Ok(TcpOption::NoOperation), Ok(TcpOption::SackPermitted), Err(Error)]);
    assert_eq!(TcpOptionIter::new(&[]).count(), 0);
}

#[test]
fn flags_display() {
    let all = TcpFlags(0xff);
    assert_eq!(all.to_string(), "FSRP.UEW");
    assert_eq!((TcpFlags::FIN | TcpFlags::ACK).to_string(), "F.");
    assert_eq!(TcpFlags::RST.to_string(), "R");
    assert_eq!(format!("{:?}", TcpFlags::default()), "none");
    let mut f = TcpFlags::SYN;
    f |= TcpFlags::ECE;
    assert!(f.syn() && f.ece() && !f.ack());
    assert_eq!(f & TcpFlags::ECE, TcpFlags::ECE);
    f.remove(TcpFlags::SYN);
    assert_eq!(f, TcpFlags::ECE);
}

#[test]
fn reserved_bits_and_header_len_setters() {
    let mut buf = [0u8; 24];
    let mut p = TcpPacket::new_unchecked(&mut buf[..]);
    p.set_header_len(24);
    p.set_reserved_bits(0x1);
    assert_eq!(p.header_len(), 24);
    assert_eq!(p.reserved_bits(), 1);
    p.set_header_len(20);
    assert_eq!(p.reserved_bits(), 1);
    assert_eq!(p.payload().len(), 4);
    // Unchecked short buffers still fail cleanly in parse.
    assert_eq!(TcpRepr::parse(&TcpPacket::new_unchecked(&buf[..10]), A, B, false), Err(Error));
    assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&buf[..10]), false), Err(Error));
    assert_eq!(TcpPacket::new_checked(&buf[..19]), Err(Error));
    buf[12] = 0x40; // data offset 4
    assert_eq!(TcpPacket::new_checked(&buf[..]), Err(Error));
    buf[12] = 0x70; // 28 > 24
    assert_eq!(TcpPacket::new_checked(&buf[..]), Err(Error));
    assert_eq!(Error.to_string(), "malformed packet");
}

// ---------------------------------------------------------------------------------------
// Property tests.

fn arb_ipv4_repr() -> impl Strategy<Value = Ipv4Repr> {
    (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<u8>(),
        0usize..=(65535 - 20),
        any::<u8>(),
        any::<u16>(),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(s, d, protocol, payload_len, ttl, ident, dont_frag, tos)| Ipv4Repr {
            src_addr: s.into(),
            dst_addr: d.into(),
            protocol,
            payload_len,
            ttl,
            ident,
            dont_frag,
            tos,
        })
}

fn arb_sacks() -> impl Strategy<Value = SackBlocks> {
    proptest::collection::vec(any::<(u32, u32)>(), 0..=4).prop_map(|v| {
        let mut s = SackBlocks::new();
        for (a, b) in v {
            s.push(SeqNum(a), SeqNum(b));
        }
        s
    })
}

#[allow(clippy::type_complexity)]
fn arb_tcp_fields() -> impl Strategy<
    Value = (
        (u16, u16, u8, u32, u32, u16, u16),
        (Option<u16>, Option<u8>, bool, SackBlocks, Option<(u32, u32)>),
        Vec<u8>,
    ),
> {
    (
        any::<(u16, u16, u8, u32, u32, u16, u16)>(),
        (
            proptest::option::of(1u16..),
            proptest::option::of(0u8..=14),
            any::<bool>(),
            arb_sacks(),
            proptest::option::of(any::<(u32, u32)>()),
        ),
        proptest::collection::vec(any::<u8>(), 0..120),
    )
}

/// Sequence space used by the options before SACK, per tcp_options_write().
fn fixed_opts(r: &TcpRepr<'_>) -> usize {
    4 * usize::from(r.max_seg_size.is_some())
        + if r.timestamp.is_some() { 12 } else { 4 * usize::from(r.sack_permitted) }
        + 4 * usize::from(r.window_scale.is_some())
}

fn emit_tcp(r: &TcpRepr<'_>, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst, true);
    buf
}

/// Calls every accessor of a checked packet (they must not panic).
fn touch_tcp(p: &TcpPacket<&[u8]>) {
    let _ = (
        p.src_port(),
        p.dst_port(),
        p.seq_number(),
        p.ack_number(),
        p.header_len(),
        p.reserved_bits(),
        p.flags(),
        p.window_len(),
        p.checksum(),
        p.urgent_at(),
        p.options(),
        p.payload(),
        p.segment_len(),
        p.verify_checksum(A, B),
    );
    for o in p.options_iter().flatten() {
        let mut b = vec![0u8; o.buffer_len()];
        o.emit(&mut b);
    }
}

fn touch_ipv4(p: &Ipv4Packet<&[u8]>) {
    let _ = (
        p.version(),
        p.header_len(),
        p.dscp_ecn(),
        p.total_len(),
        p.ident(),
        p.dont_frag(),
        p.more_frags(),
        p.frag_offset(),
        p.ttl(),
        p.protocol(),
        p.checksum(),
        p.src_addr(),
        p.dst_addr(),
        p.verify_checksum(),
        p.payload(),
        p.options(),
    );
}

/// Arbitrary bytes, or bytes shaped like a plausible header with random contents.
fn arb_tcp_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (5u8..=15, proptest::collection::vec(any::<u8>(), 20..200)).prop_map(|(doff, mut v)| {
            v[12] = (doff << 4) | (v[12] & 0x0f);
            v
        }),
    ]
}

fn arb_ipv4_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (0u8..16, proptest::collection::vec(any::<u8>(), 20..200), any::<u16>()).prop_map(|(ihl, mut v, tot)| {
            v[0] = 0x40 | ihl;
            let tot = tot % (v.len() as u16 + 8);
            v[2..4].copy_from_slice(&tot.to_be_bytes());
            v[6] &= 0x40;
            v[7] = 0;
            v
        }),
    ]
}

proptest! {
    #[test]
    fn ipv4_round_trip(repr in arb_ipv4_repr(), fill in any::<bool>()) {
        let mut buf = vec![0u8; repr.buffer_len() + repr.payload_len];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), fill);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        // Without filling, a zero field can still verify if the header sums to 0xffff.
        prop_assert!(!fill || p.verify_checksum());
        let parsed = Ipv4Repr::parse(&p, fill).unwrap();
        prop_assert_eq!(parsed, repr);
        let mut buf2 = vec![0u8; parsed.buffer_len() + parsed.payload_len];
        parsed.emit(&mut Ipv4Packet::new_unchecked(&mut buf2[..]), fill);
        prop_assert_eq!(&buf2[..20], &buf[..20]);
        prop_assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_checked(&buf2[..]).unwrap(), fill).unwrap(), parsed);
    }

    #[test]
    fn tcp_round_trip(
        ((src_port, dst_port, flags, seq, ack, win, urg), (mss, ws, sackok, sacks, ts), payload)
            in arb_tcp_fields(),
        s in any::<[u8; 4]>(),
        d in any::<[u8; 4]>(),
    ) {
        let (src, dst) = (Ipv4Addr::from(s), Ipv4Addr::from(d));
        let repr = TcpRepr {
            src_port, dst_port, flags: TcpFlags(flags), seq_number: SeqNum(seq),
            ack_number: SeqNum(ack), window_len: win, urgent_pointer: urg,
            max_seg_size: mss, window_scale: ws, sack_permitted: sackok,
            sack_ranges: sacks, timestamp: ts, payload: &payload,
        };
        let buf = emit_tcp(&repr, src, dst);
        prop_assert!(repr.header_len() <= 60 && repr.header_len() & 3 == 0);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        prop_assert!(p.verify_checksum(src, dst));
        prop_assert_eq!(usize::from(p.header_len()), repr.header_len());
        let parsed = TcpRepr::parse(&p, src, dst, true).unwrap();
        // Everything survives except SACK blocks that do not fit in 40 bytes.
        let room = (40 - fixed_opts(&repr)).saturating_sub(4) / 8;
        let mut expect = repr;
        expect.sack_ranges = SackBlocks::new();
        for &(a, b) in &repr.sack_ranges.as_slice()[..repr.sack_ranges.len().min(room)] {
            expect.sack_ranges.push(a, b);
        }
        prop_assert_eq!(parsed, expect);
        // parse -> emit -> parse is the identity, byte for byte.
        let buf2 = emit_tcp(&parsed, src, dst);
        prop_assert_eq!(&buf2, &buf);
        let p2 = TcpPacket::new_checked(&buf2[..]).unwrap();
        prop_assert_eq!(TcpRepr::parse(&p2, src, dst, true).unwrap(), parsed);
        let _ = parsed.to_string();
    }

    #[test]
    fn option_round_trip(kind in 0u8..=40, data in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut buf = vec![kind, (data.len() + 2) as u8];
        buf.extend(&data);
        if let Ok((rest, opt)) = TcpOption::parse(&buf) {
            let used = buf.len() - rest.len();
            prop_assert_eq!(opt.buffer_len(), used);
            let mut out = vec![0u8; used];
            opt.emit(&mut out);
            prop_assert_eq!(&out[..], &buf[..used]);
        }
    }

    #[test]
    fn tcp_wire_parse_emit_parse(bytes in arb_tcp_bytes()) {
        if let Ok(p) = TcpPacket::new_checked(&bytes[..]) {
            touch_tcp(&p);
            let r1 = TcpRepr::parse(&p, A, B, false).unwrap();
            let _ = TcpRepr::parse(&p, A, B, true);
            let _ = r1.to_string();
            let buf = emit_tcp(&r1, A, B);
            let r2 = TcpRepr::parse(&TcpPacket::new_checked(&buf[..]).unwrap(), A, B, true).unwrap();
            let room = (40 - fixed_opts(&r1)).saturating_sub(4) / 8;
            if r1.sack_ranges.len() <= room {
                prop_assert_eq!(r2, r1);
            } else {
                prop_assert_eq!(r2.sack_ranges.as_slice(), &r1.sack_ranges.as_slice()[..room]);
            }
            prop_assert_eq!(emit_tcp(&r2, A, B), buf);
        } else {
            prop_assert!(TcpRepr::parse(&TcpPacket::new_unchecked(&bytes[..]), A, B, false).is_err());
        }
        for o in TcpOptionIter::new(&bytes) {
            let _ = o;
        }
        let _ = TcpOption::parse(&bytes);
    }

    #[test]
    fn ipv4_never_panics(bytes in arb_ipv4_bytes()) {
        if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
            touch_ipv4(&p);
            let _ = Ipv4Repr::parse(&p, true);
            if let Ok(r) = Ipv4Repr::parse(&p, false) {
                prop_assert_eq!(r.payload_len, p.payload().len());
                if let Ok(t) = TcpPacket::new_checked(p.payload()) {
                    touch_tcp(&t);
                    let _ = TcpRepr::parse(&t, r.src_addr, r.dst_addr, true);
                }
            }
        } else {
            prop_assert!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&bytes[..]), false).is_err());
        }
    }
}
