//! The payload checksum taken while `tcp_sendmsg` copies user data into the write queue
//! (`skb_do_copy_data_nocache()` → `csum_and_copy_from_iter_full()`, kept in `skb->csum`), so
//! that transmission does not walk the payload a second time.
//!
//! Linux keeps one `skb->csum` per write-queue skb and sums only the headers when it sends a
//! packet (`__tcp_v4_send_check()` with `CHECKSUM_NONE`). utcp's write-queue entries are
//! super-segments that software GSO cuts into `mss`-byte packets, so the sums are kept per
//! packet-to-be: one `CsumBlock` for each `mss` bytes from the start of every write-queue
//! entry (where `tso_fragment()` and GSO cut). Transmission asks for the sum of a packet's
//! payload by its sequence number and length; a block that does not match exactly (the MSS
//! changed, the entry was reshaped) is no answer and the payload is summed as before. The
//! bytes at a sequence number never change, so a matching block is always right.
//!
//! Only unsent data has blocks: a lookup drops the blocks below the packet it asks for (first
//! transmissions go in sequence order; a retransmission sums its payload itself). The blocks
//! are kept only for a device without TSO: one that takes super-segments gets them with a
//! partial checksum and sums nothing. The blocks live in an [`SkbQueue`]: a socket with no
//! unsent data holds no storage, and a busy one reuses the thread's cached storage.

use crate::seq::SeqNum;
use crate::skb_queue::SkbQueue;
use bytes::BytesMut;

/// Writes shorter than this start no blocks (their payload is summed at transmission: a
/// request/response socket keeps no block storage).
const MIN_BLOCK_WRITE: usize = 256;

/// The folded sum of the `len` payload bytes from `seq`: the future packet's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CsumBlock {
    seq: SeqNum,
    len: u16,
    sum: u16,
}

/// The payload sums of a socket's unsent data, in sequence order.
#[derive(Debug, Default)]
pub(crate) struct TxCsum {
    blocks: SkbQueue<CsumBlock>,
}

crate::skb_queue::queue_cache!(CsumBlock);

impl TxCsum {
    /// `csum_and_copy_from_iter()`: appends `src` to `dst`, the payload of the write-queue
    /// entry starting at `skb_seq` that already holds `dst.len()` bytes, and records the sum
    /// of each `mss`-byte piece from the entry's start. The copy goes a block at a time, and
    /// each block is summed while it is in the cache.
    pub(crate) fn copy_and_csum(&mut self, dst: &mut BytesMut, src: &[u8], skb_seq: SeqNum, mss: u32) {
        let mss = mss.min(u16::MAX as u32) as usize;
        if mss == 0 || (self.blocks.is_empty() && src.len() < MIN_BLOCK_WRITE) {
            dst.extend_from_slice(src);
            return;
        }
        let mut off = dst.len();
        let mut rest = src;
        while !rest.is_empty() {
            let in_block = off % mss;
            let (piece, tail) = rest.split_at((mss - in_block).min(rest.len()));
            dst.extend_from_slice(piece);
            let sum = crate::wire::checksum(piece);
            self.add(skb_seq + (off - in_block) as u32, in_block, piece.len(), sum);
            off += piece.len();
            rest = tail;
        }
    }

    /// Adds `len` bytes summing to `sum` at offset `at` of the block that starts at `seq`.
    fn add(&mut self, seq: SeqNum, at: usize, len: usize, sum: u16) {
        if at == 0 {
            self.blocks.push_back(CsumBlock { seq, len: len as u16, sum });
            return;
        }
        match self.blocks.back_mut() {
            Some(b) if b.seq == seq && b.len as usize == at => {
                // A piece at an odd offset has its byte lanes swapped (RFC 1071 §2(B)).
                let sum = if at % 2 == 1 { sum.swap_bytes() } else { sum };
                b.sum = crate::wire::combine(&[b.sum, sum]);
                b.len += len as u16;
            }
            // The block's start was not recorded: it stays without a sum.
            _ => {}
        }
    }

    /// The sum of the `len` payload bytes from `seq` when a block holds exactly them; the
    /// blocks before it go (their data was sent), and so does the block found.
    pub(crate) fn take(&mut self, seq: SeqNum, len: usize) -> Option<u16> {
        while let Some(b) = self.blocks.front() {
            if !b.seq.before(seq) {
                break;
            }
            self.blocks.pop_front();
        }
        let b = self.blocks.front().filter(|b| b.seq == seq && b.len as usize == len)?;
        let sum = b.sum;
        self.blocks.pop_front();
        Some(sum)
    }

    /// True when no block is kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Forgets every block (the write queue was purged).
    pub(crate) fn clear(&mut self) {
        self.blocks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn blocks_hold_the_sums_of_mss_pieces_from_the_entry_start() {
        let src = data(5000);
        let mut t = TxCsum::default();
        let mut b = BytesMut::new();
        let seq = SeqNum(1000);
        // Three writes, the second and third ending inside blocks at odd offsets.
        t.copy_and_csum(&mut b, &src[..1500], seq, 1448);
        t.copy_and_csum(&mut b, &src[1500..2901], seq, 1448);
        t.copy_and_csum(&mut b, &src[2901..], seq, 1448);
        assert_eq!(&b[..], &src[..]);
        for (i, piece) in src.chunks(1448).enumerate() {
            let at = seq + (i * 1448) as u32;
            assert_eq!(t.take(at, piece.len()), Some(checksum(piece)), "block {i}");
        }
        assert!(t.is_empty());
    }

    #[test]
    fn a_lookup_that_does_not_match_a_block_exactly_has_no_answer() {
        let src = data(4000);
        let mut t = TxCsum::default();
        let mut b = BytesMut::new();
        t.copy_and_csum(&mut b, &src, SeqNum(1), 1000);
        // Another length (the MSS shrank), another start: no sum; the block before goes.
        assert_eq!(t.take(SeqNum(1), 900), None);
        assert_eq!(t.take(SeqNum(1501), 1000), None);
        assert_eq!(t.take(SeqNum(2001), 1000), Some(checksum(&src[2000..3000])));
        t.clear();
        assert_eq!(t.take(SeqNum(3001), 1000), None);
    }

    #[test]
    fn a_short_write_records_nothing_and_a_block_without_start_stays_unsummed() {
        let src = data(3000);
        let mut t = TxCsum::default();
        let mut b = BytesMut::new();
        t.copy_and_csum(&mut b, &src[..100], SeqNum(0), 1448);
        assert!(t.is_empty());
        // The rest of the first block has no start recorded; the next blocks do.
        t.copy_and_csum(&mut b, &src[100..], SeqNum(0), 1448);
        assert_eq!(&b[..], &src[..]);
        assert_eq!(t.take(SeqNum(0), 1448), None);
        assert_eq!(t.take(SeqNum(1448), 1448), Some(checksum(&src[1448..2896])));
        assert_eq!(t.take(SeqNum(2896), 104), Some(checksum(&src[2896..])));
    }
}
