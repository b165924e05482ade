//! The Internet checksum (RFC 1071), as computed by Linux's `csum_partial()`
//! (`lib/checksum.c`, `arch/x86/lib/csum-partial_64.c`), `csum_fold()` and
//! `csum_tcpudp_nofold()` (`include/net/checksum.h`).
//!
//! All functions here return the *folded one's-complement sum*, **not** its complement.
//! To produce a header's checksum field, complement the combined sum:
//! `!combine(&[pseudo_header_checksum(..), checksum(segment)])` (with the field zeroed).
//! To verify a received header, the combined sum over the data *including* the checksum
//! field must be `0xffff` (Linux: `csum_fold(sum) == 0`).
//!
//! Sums are never `0x0000` unless every summed byte was zero; a non-zero input always
//! folds to a value in `1..=0xffff` (one's-complement "negative zero" is `0xffff`).

use std::net::Ipv4Addr;

/// Sums are accumulated in a `u64` in blocks of at most this many bytes; each 8-byte
/// word contributes less than 2^33, so a block cannot overflow the accumulator.
const BLOCK: usize = 1 << 30;

/// Folds a 32-bit one's-complement accumulator down to 16 bits with end-around carry
/// (Linux `csum_fold()` without the final complement).
#[inline]
pub fn fold(sum: u32) -> u16 {
    fold64(u64::from(sum))
}

/// Folds a 64-bit accumulator down to 16 bits with end-around carry.
#[inline]
fn fold64(sum: u64) -> u16 {
    // 64 -> 33 bits -> 17 bits -> 16 bits (+carry) -> 16 bits.
    let s = (sum & 0xffff_ffff) + (sum >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Native-endian sum of `data` as 32-bit halves of 8-byte words. The caller guarantees
/// `data.len() <= BLOCK` so the `u64` cannot overflow.
#[inline]
fn sum_block(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_ne_bytes(w);
        // Adding the two 32-bit halves separately needs no carry handling and lets
        // the compiler vectorise the loop (congruent modulo 0xffff to 16-bit sums).
        acc += (w & 0xffff_ffff) + (w >> 32);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        // Zero padding at the same memory positions keeps an odd final byte in the
        // high-order half of its (big-endian) 16-bit word, as RFC 1071 requires.
        let mut w = [0u8; 8];
        w[..rem.len()].copy_from_slice(rem);
        let w = u64::from_ne_bytes(w);
        acc += (w & 0xffff_ffff) + (w >> 32);
    }
    acc
}

/// Headers (IPv4 20-60 bytes, TCP 20-60, the pseudo header) are summed by [`sum_small`]:
/// the vectorised loop's setup and tail cost more than they save on a few words.
const SMALL: usize = 64;

/// [`sum_block`] for at most [`SMALL`] bytes, a native 4-byte word at a time: the same sum
/// (an 8-byte word's halves are two consecutive 4-byte words; a tail byte keeps its lane).
#[inline]
fn sum_small(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for c in &mut words {
        acc += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rem = words.remainder();
    if !rem.is_empty() {
        let mut w = [0u8; 4];
        w[..rem.len()].copy_from_slice(rem);
        acc += u64::from(u32::from_ne_bytes(w));
    }
    acc
}

/// Computes the RFC 1071 one's-complement sum of `data`, taken as big-endian 16-bit
/// words (an odd trailing byte is padded with a zero byte), folded to 16 bits.
///
/// Returns the folded sum, **not** complemented (like Linux `csum_fold(csum_partial())`
/// before its final `~`). Works on any length and alignment.
///
/// Implementation: native-endian 8-byte loads summed into a `u64`; since the
/// one's-complement sum is byte-order independent (RFC 1071 §2(B)), the folded result is
/// byte-swapped at the end on little-endian machines.
pub fn checksum(data: &[u8]) -> u16 {
    let folded = if data.len() <= SMALL {
        fold64(sum_small(data))
    } else if data.len() <= BLOCK {
        fold64(sum_block(data))
    } else {
        // Only reachable for gigantic slices: fold each block before adding.
        let mut acc: u64 = 0;
        for block in data.chunks(BLOCK) {
            // Every block but the last has even length, so word alignment is kept.
            acc += u64::from(fold64(sum_block(block)));
        }
        fold64(acc)
    };
    if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    }
}

/// Computes the folded (not complemented) one's-complement sum of the IPv4 pseudo header
/// used by TCP and UDP (RFC 9293 §3.1, Linux `csum_tcpudp_nofold()`): source address,
/// destination address, zero byte + protocol, and the 32-bit `length` of the
/// transport segment (header + payload).
pub fn pseudo_header_checksum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    let words = [
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(protocol),
        (length >> 16) as u16,
        length as u16,
    ];
    combine(&words)
}

/// One's-complement addition of already-folded 16-bit sums (Linux `csum_add()` + fold).
/// Returns the folded, not complemented, result.
pub fn combine(sums: &[u16]) -> u16 {
    let acc: u64 = sums.iter().map(|&s| u64::from(s)).sum();
    fold64(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook RFC 1071 algorithm: big-endian byte pairs into a u32, folded.
    fn naive(data: &[u8]) -> u16 {
        let mut sum: u64 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            sum += u64::from(u16::from_be_bytes([data[i], data[i + 1]]));
            i += 2;
        }
        if i < data.len() {
            sum += u64::from(data[i]) << 8;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
    }

    #[test]
    fn edge_values() {
        assert_eq!(checksum(&[]), 0);
        assert_eq!(checksum(&[0; 33]), 0);
        assert_eq!(checksum(&[0xff, 0xff]), 0xffff);
        assert_eq!(checksum(&[0xff; 9]), 0xff00);
        assert_eq!(checksum(&[0xff; 10]), 0xffff);
        assert_eq!(checksum(&[0x12]), 0x1200);
        assert_eq!(fold(0x0001_ffff), 0x0001);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0), 0);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(combine(&[]), 0);
    }

    #[test]
    fn ipv4_header_example() {
        // The classic header 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(!checksum(&hdr), 0xb861);
        hdr[10] = 0xb8;
        hdr[11] = 0x61;
        assert_eq!(checksum(&hdr), 0xffff);
    }

    #[test]
    fn pseudo_header() {
        let src = Ipv4Addr::new(10, 9, 0, 1);
        let dst = Ipv4Addr::new(10, 9, 0, 2);
        let expect = naive(&[10, 9, 0, 1, 10, 9, 0, 2, 0, 6, 0, 40]);
        assert_eq!(pseudo_header_checksum(src, dst, 6, 40), expect);
        let big = naive(&[10, 9, 0, 1, 10, 9, 0, 2, 0, 6, 0, 1, 0, 40]);
        assert_eq!(pseudo_header_checksum(src, dst, 6, 0x1_0028), big);
    }

    proptest! {
        #[test]
        fn matches_naive(data in proptest::collection::vec(any::<u8>(), 0..3100), skip in 0usize..8) {
            // `skip` produces every alignment of the slice start; odd and even lengths.
            let s = &data[skip.min(data.len())..];
            prop_assert_eq!(checksum(s), naive(s));
        }

        #[test]
        fn split_and_combine(data in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..300) {
            // Sums of even-length prefixes combine with the sum of the rest.
            let cut = (cut * 2).min(data.len() & !1);
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(combine(&[checksum(a), checksum(b)]), naive(&data));
        }

        #[test]
        fn fold_matches_naive(x: u32) {
            let mut s = u64::from(x);
            while s >> 16 != 0 {
                s = (s & 0xffff) + (s >> 16);
            }
            prop_assert_eq!(fold(x), s as u16);
        }
    }
}
