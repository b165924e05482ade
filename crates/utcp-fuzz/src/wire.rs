//! The wire parsers on arbitrary bytes: `Ipv4Repr::parse`, `TcpRepr::parse`, the option
//! walker and the checksums. None may panic; whatever parses must re-emit and parse back to
//! the same representation (the wire module's parse → emit → parse identity).

use std::net::Ipv4Addr;
use utcp::wire::{checksum, Ipv4Packet, Ipv4Repr, TcpOption, TcpOptionIter, TcpPacket, TcpRepr, IPPROTO_TCP};

/// Runs every parser over `data`: as an IPv4 packet, as a bare TCP segment and as an option
/// list.
pub fn run(data: &[u8]) {
    let _ = checksum(data);
    ipv4(data);
    let src = Ipv4Addr::new(192, 0, 2, 1);
    let dst = Ipv4Addr::new(192, 0, 2, 2);
    tcp(data, src, dst);
    options(data);
    ipv6(data);
}

/// As an IPv6 packet: the fixed header parse → emit → parse identity, the extension-header
/// walk, and the payload as an ICMPv6 message.
fn ipv6(data: &[u8]) {
    use utcp::wire::ipv6::walk_ext_headers;
    use utcp::wire::{Icmpv6Packet, Icmpv6Repr, Ipv6Packet, Ipv6Repr};
    let Ok(pkt) = Ipv6Packet::new_checked(data) else { return };
    let Ok(repr) = Ipv6Repr::parse(&pkt) else { return };
    let mut buf = [0u8; 40];
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
    assert_eq!(&buf[..], &data[..40], "IPv6 parse-emit-parse");
    let _ = walk_ext_headers(pkt.payload(), repr.next_header, &|_, o| (o.kind == 5).then_some(o.data.len() == 2));
    let (s, d) = (repr.src_addr, repr.dst_addr);
    if let Ok(m) = Icmpv6Packet::new_checked(pkt.payload()) {
        if let Ok(r) = Icmpv6Repr::parse(&m, &s, &d) {
            // parse → emit → parse gives the same message. Not byte for byte: the repr keeps
            // only what receivers read (no code for echo and packet-too-big, no unused word),
            // and a checksum field of 0xffff verifies as 0x0000 does (emit writes the computed
            // one). What it keeps must come back, and the body exactly.
            let out = r.to_bytes(&s, &d);
            let inp = pkt.payload();
            assert_eq!(out.len(), inp.len(), "ICMPv6 emitted length");
            assert_eq!(out[0], inp[0], "ICMPv6 type");
            assert_eq!(&out[8..], &inp[8..], "ICMPv6 body");
            let again = Icmpv6Packet::new_checked(&out[..]).expect("emitted ICMPv6 message");
            assert_eq!(Icmpv6Repr::parse(&again, &s, &d), Ok(r), "ICMPv6 parse-emit-parse");
        }
    }
}

fn ipv4(data: &[u8]) {
    let Ok(pkt) = Ipv4Packet::new_checked(data) else { return };
    let _ = pkt.options();
    for verify in [false, true] {
        let Ok(repr) = Ipv4Repr::parse(&pkt, verify) else { continue };
        let payload = pkt.payload();
        assert_eq!(payload.len(), repr.payload_len, "payload length of a parsed packet");
        // Emit a header for the same payload and parse it back.
        let mut buf = vec![0u8; repr.buffer_len() + payload.len()];
        buf[repr.buffer_len()..].copy_from_slice(payload);
        let mut out = Ipv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut out, true);
        let back = Ipv4Packet::new_checked(&buf[..]).expect("emitted packet checks");
        assert_eq!(Ipv4Repr::parse(&back, true), Ok(repr), "IPv4 parse-emit-parse");
        if repr.protocol == IPPROTO_TCP {
            tcp(payload, repr.src_addr, repr.dst_addr);
        }
    }
}

fn tcp(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let Ok(pkt) = TcpPacket::new_checked(data) else { return };
    let _ = (pkt.options(), pkt.payload(), pkt.verify_checksum(src, dst));
    for verify in [false, true] {
        let Ok(repr) = TcpRepr::parse(&pkt, src, dst, verify) else { continue };
        let mut buf = vec![0u8; repr.buffer_len()];
        let mut out = TcpPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut out, src, dst, true);
        let back = TcpPacket::new_checked(&buf[..]).expect("emitted segment checks");
        let again = TcpRepr::parse(&back, src, dst, true).expect("emitted segment parses");
        // Everything comes back; SACK blocks beyond the option space are not emitted.
        let n = again.sack_ranges.len();
        assert_eq!(again.sack_ranges.as_slice(), &repr.sack_ranges.as_slice()[..n], "SACK blocks");
        assert_eq!(TcpRepr { sack_ranges: repr.sack_ranges, ..again }, repr, "TCP parse-emit-parse");
    }
}

fn options(data: &[u8]) {
    for opt in TcpOptionIter::new(data).take(64).flatten() {
        let mut buf = vec![0u8; opt.buffer_len()];
        opt.emit(&mut buf);
        let reparse = match opt {
            TcpOption::Sack(b) if b.is_empty() => false,
            TcpOption::FastOpen(d) | TcpOption::Unknown { data: d, .. } => d.len() <= 253,
            _ => true,
        };
        if reparse {
            let (rest, back) = TcpOption::parse(&buf).expect("an emitted option parses");
            assert!(rest.is_empty());
            assert_eq!(back, opt, "option emit-parse");
        }
    }
    let mut rest = data;
    for _ in 0..64 {
        match TcpOption::parse(rest) {
            Ok((r, _)) if r.len() < rest.len() => rest = r,
            _ => break,
        }
    }
}
