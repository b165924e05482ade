//! Socket memory accounting in pages: `sk_forward_alloc` and the `sk_mem_*` helpers
//! (include/net/sock.h, net/core/sock.c, v6.18).
//!
//! A socket charges memory to the protocol in whole pages and keeps the unused part of its
//! charge as `sk_forward_alloc`. Receive (`sk_rmem_schedule`) and send (`sk_wmem_schedule`)
//! charge the pages a buffer lacks; freeing a buffer (`sk_mem_uncharge`) returns whole free
//! pages (`sk_mem_reclaim`), keeping less than one. The receive fast path only queues a
//! segment whose truesize fits in `sk_forward_alloc` (`tcp_rcv_established()`), so which path a
//! segment takes, and with it whether its ACK number is checked before its data is queued,
//! depends on this history. utcp keeps the pages charged (`mem_charged`); the forward
//! allocation is what the receive and send queues do not use.

use super::TcpSock;

/// `PAGE_SIZE`.
pub const SK_MEM_QUANTUM: i64 = 4096;

impl TcpSock {
    /// `sk->sk_forward_alloc`: charged bytes not used by the receive or send queues.
    pub fn sk_forward_alloc(&self) -> i64 {
        self.mem_charged - self.rmem_alloc as i64 - self.wmem_queued as i64
    }

    /// `__sk_mem_schedule()` for `size` more bytes: charges the whole pages the forward
    /// allocation lacks. (utcp keeps no global `tcp_mem` pressure state, so it never fails.)
    fn sk_mem_schedule(&mut self, size: u32) {
        let lack = size as i64 - self.sk_forward_alloc();
        if lack > 0 {
            self.mem_charged += (lack + SK_MEM_QUANTUM - 1) / SK_MEM_QUANTUM * SK_MEM_QUANTUM;
        }
    }

    /// `sk_rmem_schedule()`: before a received buffer of `size` is charged.
    pub fn sk_rmem_schedule(&mut self, size: u32) {
        self.sk_mem_schedule(size);
    }

    /// `sk_wmem_schedule()` then `sk_wmem_queued_add()`: a send buffer grows by `size`.
    pub fn sk_wmem_queued_add(&mut self, size: u32) {
        self.sk_mem_schedule(size);
        self.wmem_queued += size;
    }

    /// `sk_mem_reclaim()`: after buffers were freed, returns the whole free pages.
    pub fn sk_mem_reclaim(&mut self) {
        let fwd = self.sk_forward_alloc();
        if fwd >= SK_MEM_QUANTUM {
            self.mem_charged -= fwd / SK_MEM_QUANTUM * SK_MEM_QUANTUM;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_charged_and_reclaimed() {
        let net = crate::netns::Netns::new(std::net::Ipv4Addr::new(10, 0, 0, 1), 1500, 1);
        let mut tp = TcpSock::new(&net, crate::time::Instant::ZERO);
        assert_eq!(tp.sk_forward_alloc(), 0);
        tp.sk_rmem_schedule(2304);
        tp.rmem_alloc += 2304;
        assert_eq!(tp.sk_forward_alloc(), 4096 - 2304, "one page charged");
        tp.sk_rmem_schedule(2304);
        tp.rmem_alloc += 2304;
        assert_eq!(tp.mem_charged, 8192, "only the missing page");
        tp.rmem_alloc -= 2304;
        tp.sk_mem_reclaim();
        assert_eq!(tp.mem_charged, 4096, "a whole free page goes back");
        tp.sk_wmem_queued_add(5000);
        // 1792 bytes are left of the page the receive queue uses: one more page covers 5000.
        assert_eq!(tp.mem_charged, 8192, "send buffers share the forward allocation");
        assert!(tp.sk_forward_alloc() >= 0 && tp.sk_forward_alloc() < SK_MEM_QUANTUM);
    }
}
