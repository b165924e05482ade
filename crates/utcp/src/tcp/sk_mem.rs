//! Socket memory accounting in pages: `sk_forward_alloc`, the `sk_mem_*` helpers and the
//! protocol's memory account with its pressure states (include/net/sock.h, net/core/sock.c,
//! `tcp_enter_memory_pressure()` / `tcp_leave_memory_pressure()` of net/ipv4/tcp.c, v6.18).
//!
//! A socket charges memory to the protocol in whole pages and keeps the unused part of its
//! charge as `sk_forward_alloc`. Receive (`sk_rmem_schedule`) and send (`sk_wmem_schedule`)
//! charge the pages a buffer lacks; freeing a buffer (`sk_mem_uncharge`) returns whole free
//! pages (`sk_mem_reclaim`), keeping less than one. The receive fast path only queues a
//! segment whose truesize fits in `sk_forward_alloc` (`tcp_rcv_established()`), so which path a
//! segment takes, and with it whether its ACK number is checked before its data is queued,
//! depends on this history. utcp keeps the pages charged (`mem_charged`); the forward
//! allocation is what the receive and send queues do not use.
//!
//! The pages of every socket of the stack add up in `tcp_memory_allocated`
//! ([`ProtoMem`]), which `net.ipv4.tcp_mem` (min, pressure, max, in pages) limits as
//! `__sk_mem_raise_allocated()` does: below min every charge is granted and the pressure state
//! ends; above pressure the stack enters it (TCPMemoryPressures); above max a charge fails;
//! in between, under pressure, a socket still gets memory while its receive queue is below
//! `tcp_rmem[0]` (its send queue below `tcp_wmem[0]`), or while it uses less than its share
//! (max / sockets). A refused send charge moderates the send buffer; the writer then waits
//! (`tcp_wmem_schedule()` here, `sk_stream_wait_memory()` in the sendmsg path).

use super::TcpSock;
use crate::mib::LinuxMib;
use crate::netns::ProtoMem;
use crate::time::Instant;
use core::sync::atomic::Ordering;

/// `PAGE_SIZE`.
pub(crate) const SK_MEM_QUANTUM: i64 = 4096;
/// `PAGE_SHIFT`.
const PAGE_SHIFT: u32 = 12;

/// `SK_MEM_SEND` / `SK_MEM_RECV`: what a charge is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SkMemKind {
    /// A send buffer.
    Send,
    /// A received buffer.
    Recv,
}

/// `sk_mem_pages()`: whole pages for `amt` bytes.
fn sk_mem_pages(amt: i64) -> i64 {
    (amt + SK_MEM_QUANTUM - 1) >> PAGE_SHIFT
}

impl ProtoMem {
    /// `sk_prot_mem_limits(sk, index)`: `tcp_mem[index]`, in pages.
    pub fn limit(&self, index: usize) -> i64 {
        self.sysctl.tcp_mem.idx(index)
    }
    /// `sk_memory_allocated()`: pages charged by the stack's sockets.
    pub fn allocated(&self) -> i64 {
        self.memory_allocated.load(Ordering::Relaxed)
    }
    /// `tcp_under_memory_pressure()` (no memory cgroups: the global state only).
    pub fn under_pressure(&self) -> bool {
        self.memory_pressure.load(Ordering::Relaxed) != 0
    }
    fn tick(&self, now: Instant) -> u64 {
        let ms = now.saturating_since(Instant::ZERO).as_millis() as u64;
        self.clock_ms.fetch_max(ms, Ordering::Relaxed);
        self.clock_ms.load(Ordering::Relaxed)
    }
    /// `tcp_enter_memory_pressure()`: records when the state began; the socket that enters it
    /// counts TCPMemoryPressures.
    pub(crate) fn tcp_enter_memory_pressure(&self) {
        if self.under_pressure() {
            return;
        }
        let val = self.clock_ms.load(Ordering::Relaxed) + 1;
        if self.memory_pressure.compare_exchange(0, val, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.mib.inc(LinuxMib::TCPMemoryPressures);
        }
    }
    /// `tcp_leave_memory_pressure()`: ends the state, adding its length in milliseconds to
    /// TCPMemoryPressuresChrono.
    pub(crate) fn tcp_leave_memory_pressure(&self) {
        if !self.under_pressure() {
            return;
        }
        let val = self.memory_pressure.swap(0, Ordering::Relaxed);
        if val != 0 {
            let now = self.clock_ms.load(Ordering::Relaxed);
            self.mib.add(LinuxMib::TCPMemoryPressuresChrono, now.saturating_sub(val - 1));
        }
    }
    /// `sk_memory_allocated_add()`.
    fn add(&self, pages: i64) {
        self.memory_allocated.fetch_add(pages, Ordering::Relaxed);
    }
    /// `__sk_mem_reduce_allocated()`: returns `pages`; the pressure state ends below min.
    pub(crate) fn __sk_mem_reduce_allocated(&self, pages: i64) {
        self.memory_allocated.fetch_sub(pages, Ordering::Relaxed);
        if self.under_pressure() && self.allocated() < self.limit(0) {
            self.tcp_leave_memory_pressure();
        }
    }
}

impl TcpSock {
    /// `sk->sk_forward_alloc`: charged bytes not used by the receive or send queues.
    pub(crate) fn sk_forward_alloc(&self) -> i64 {
        self.mem_charged - self.rmem_alloc as i64 - self.wmem_queued as i64
    }

    /// `tcp_under_memory_pressure()`.
    pub(crate) fn tcp_under_memory_pressure(&self) -> bool {
        self.proto_mem.under_pressure()
    }

    /// `__sk_mem_raise_allocated()`: charges `amt` pages (for `size` bytes) to the protocol,
    /// false (and nothing charged) when the limits refuse them.
    fn __sk_mem_raise_allocated(&mut self, size: i64, amt: i64, kind: SkMemKind) -> bool {
        let pm = self.proto_mem.clone();
        pm.add(amt);
        let allocated = pm.allocated();
        // Under limit.
        if allocated <= pm.limit(0) {
            pm.tcp_leave_memory_pressure();
            return true;
        }
        // Under pressure.
        if allocated > pm.limit(1) {
            pm.tcp_enter_memory_pressure();
        }
        // Over hard limit.
        if allocated <= pm.limit(2) {
            // Guarantee a minimum buffer under pressure (RFC 7323 needs one), but not over the
            // hard limit, where many sockets below it would be a DoS.
            match kind {
                SkMemKind::Recv if (self.rmem_alloc as i64) < pm.sysctl.tcp_rmem.idx(0) => return true,
                SkMemKind::Send if (self.wmem_queued as i64) < pm.sysctl.tcp_wmem.idx(0) => return true,
                _ => {}
            }
            // Fair share under global pressure: a socket using less than max / sockets may grow.
            if !pm.under_pressure() {
                return true;
            }
            let alloc = pm.sockets_allocated.load(Ordering::Relaxed).max(0);
            if pm.limit(2) > alloc * sk_mem_pages(self.mem_charged) {
                return true;
            }
        }
        // suppress_allocation:
        if kind == SkMemKind::Send {
            self.sk_stream_moderate_sndbuf();
            // "Fail only if socket is _under_ its sndbuf."
            if self.wmem_queued as i64 + size >= self.sndbuf as i64 {
                return true;
            }
            tracing::trace!(target: "sock_exceed_buf_limit", allocated, kind = ?kind);
        }
        pm.__sk_mem_reduce_allocated_quiet(amt);
        false
    }

    /// `sk_stream_moderate_sndbuf()`: under memory trouble the send buffer shrinks to half
    /// of what is queued (at least `SOCK_MIN_SNDBUF`), unless SO_SNDBUF locked it.
    fn sk_stream_moderate_sndbuf(&mut self) {
        if self.userlocks & super::SOCK_SNDBUF_LOCK == 0 {
            let val = self.sndbuf.min(self.wmem_queued >> 1);
            self.sndbuf = val.max(super::SOCK_MIN_SNDBUF);
        }
    }

    /// `__sk_mem_schedule()` for `size` more bytes: charges the whole pages that lack.
    fn __sk_mem_schedule(&mut self, size: i64, kind: SkMemKind) -> bool {
        let amt = sk_mem_pages(size);
        self.mem_charged += amt << PAGE_SHIFT;
        if !self.__sk_mem_raise_allocated(size, amt, kind) {
            self.mem_charged -= amt << PAGE_SHIFT;
            return false;
        }
        true
    }

    /// `sk_rmem_schedule()`: before a received buffer of `size` is charged; false when the
    /// protocol's limits refuse the pages it lacks.
    pub(crate) fn sk_rmem_schedule(&mut self, now: Instant, size: u32) -> bool {
        self.proto_mem.tick(now);
        let delta = size as i64 - self.sk_forward_alloc();
        delta <= 0 || self.__sk_mem_schedule(delta, SkMemKind::Recv)
    }

    /// `sk_forced_mem_schedule()`: charges the pages `size` lacks whatever the limits say.
    pub(crate) fn sk_forced_mem_schedule(&mut self, size: u32) {
        let delta = size as i64 - self.sk_forward_alloc();
        if delta <= 0 {
            return;
        }
        let amt = sk_mem_pages(delta);
        self.mem_charged += amt << PAGE_SHIFT;
        self.proto_mem.add(amt);
    }

    /// `sk_wmem_schedule()`: before a send buffer of `size` is queued; false when the
    /// protocol's limits refuse the pages it lacks (under pressure the send buffer is
    /// moderated first, and a socket over its moderated send buffer is granted them:
    /// `__sk_mem_raise_allocated()` fails a send only while the socket is under its sndbuf).
    pub(crate) fn sk_wmem_schedule(&mut self, now: Instant, size: u32) -> bool {
        self.proto_mem.tick(now);
        let delta = size as i64 - self.sk_forward_alloc();
        delta <= 0 || self.__sk_mem_schedule(delta, SkMemKind::Send)
    }

    /// `tcp_wmem_schedule()`: how many of `copy` bytes the send buffer may take. When the
    /// limits refuse them, a socket queueing less than `tcp_wmem[0]` is forced that much (so
    /// that it makes some progress), and what the forward allocation holds is taken.
    pub(crate) fn tcp_wmem_schedule(&mut self, now: Instant, copy: u32) -> u32 {
        if self.sk_wmem_schedule(now, copy) {
            return copy;
        }
        let left = self.proto_mem.sysctl.tcp_wmem.idx(0) - self.wmem_queued as i64;
        if left > 0 {
            self.sk_forced_mem_schedule(left.min(copy as i64) as u32);
        }
        (copy as i64).min(self.sk_forward_alloc().max(0)) as u32
    }

    /// A send buffer grows by `size` with its pages charged whatever the limits say: the
    /// `sk_forced_mem_schedule()` of the skbs `tcp_fragment()` and TSO splitting allocate
    /// (`tcp_stream_alloc_skb(sk, gfp, true)`), which must not fail.
    pub(crate) fn sk_wmem_queued_add(&mut self, size: u32) {
        self.sk_forced_mem_schedule(size);
        self.wmem_queued += size;
    }

    /// `sk_mem_reclaim()`: after buffers were freed, returns the whole free pages.
    pub(crate) fn sk_mem_reclaim(&mut self) {
        let fwd = self.sk_forward_alloc();
        if fwd >= SK_MEM_QUANTUM {
            let pages = fwd >> PAGE_SHIFT;
            self.mem_charged -= pages << PAGE_SHIFT;
            self.proto_mem.__sk_mem_reduce_allocated(pages);
        }
    }
}

impl ProtoMem {
    /// `sk_memory_allocated_sub()` of a refused charge (no pressure check: the charge never
    /// happened).
    fn __sk_mem_reduce_allocated_quiet(&self, pages: i64) {
        self.memory_allocated.fetch_sub(pages, Ordering::Relaxed);
    }
}

impl Drop for TcpSock {
    /// `sk_mem_reclaim_final()` and the `sk_sockets_allocated_dec()` of `tcp_v4_destroy_sock()`:
    /// a freed socket gives back every page it held.
    fn drop(&mut self) {
        self.tcp_orphan_gone();
        let pages = self.mem_charged >> PAGE_SHIFT;
        if pages > 0 {
            self.proto_mem.__sk_mem_reduce_allocated(pages);
        }
        self.proto_mem.sockets_allocated.fetch_sub(1, Ordering::Relaxed);
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
        assert!(tp.sk_rmem_schedule(Instant::ZERO, 2304));
        tp.rmem_alloc += 2304;
        assert_eq!(tp.sk_forward_alloc(), 4096 - 2304, "one page charged");
        assert!(tp.sk_rmem_schedule(Instant::ZERO, 2304));
        tp.rmem_alloc += 2304;
        assert_eq!(tp.mem_charged, 8192, "only the missing page");
        assert_eq!(net.tcp_mem.allocated(), 2, "the stack's account holds the socket's pages");
        tp.rmem_alloc -= 2304;
        tp.sk_mem_reclaim();
        assert_eq!(tp.mem_charged, 4096, "a whole free page goes back");
        assert_eq!(net.tcp_mem.allocated(), 1);
        tp.sk_wmem_queued_add(5000);
        // 1792 bytes are left of the page the receive queue uses: one more page covers 5000.
        assert_eq!(tp.mem_charged, 8192, "send buffers share the forward allocation");
        assert!(tp.sk_forward_alloc() >= 0 && tp.sk_forward_alloc() < SK_MEM_QUANTUM);
        drop(tp);
        assert_eq!(net.tcp_mem.allocated(), 0, "a freed socket returns its pages");
        assert_eq!(net.tcp_mem.sockets_allocated.load(Ordering::Relaxed), 0);
    }

    /// `tcp_mem` = 4 6 12 pages: charges up to min are granted; past pressure the stack enters
    /// the pressure state once (TCPMemoryPressures); under it a socket gets memory below
    /// `tcp_rmem[0]` or below its share (max / sockets); past max a charge fails; freeing
    /// below min leaves the state (TCPMemoryPressuresChrono: its length on the stack's clock).
    #[test]
    fn tcp_mem_states() {
        let net = crate::netns::Netns::new(std::net::Ipv4Addr::new(10, 0, 0, 1), 1500, 1);
        net.sysctl.set_by_name("net.ipv4.tcp_mem", "4 6 12").unwrap();
        let mut a = TcpSock::new(&net, Instant::ZERO);
        let mut b = TcpSock::new(&net, Instant::ZERO);
        let t = |ms: u64| Instant::ZERO + std::time::Duration::from_millis(ms);
        const PAGE: u32 = 4096;
        // a takes 4 pages (min): no pressure.
        assert!(a.sk_rmem_schedule(t(0), 4 * PAGE));
        a.rmem_alloc += 4 * PAGE;
        assert!(!a.tcp_under_memory_pressure());
        // b takes 3 (7 in all, above pressure): granted below tcp_rmem[0]; pressure begins.
        assert!(b.sk_rmem_schedule(t(10), 3 * PAGE));
        b.rmem_alloc += 3 * PAGE;
        assert!(b.tcp_under_memory_pressure());
        assert_eq!(net.mib.get(LinuxMib::TCPMemoryPressures), 1);
        // a would hold 6 pages, not below its share (12 / 2 sockets): refused, nothing taken.
        assert!(!a.sk_rmem_schedule(t(20), 2 * PAGE));
        assert_eq!(net.tcp_mem.allocated(), 7, "a refused charge takes nothing");
        assert_eq!(a.mem_charged, 4 * PAGE as i64);
        // b, with 4 pages, is below its share.
        assert!(b.sk_rmem_schedule(t(30), PAGE));
        b.rmem_alloc += PAGE;
        // Past max nothing is granted.
        assert!(!b.sk_rmem_schedule(t(100), 5 * PAGE), "over tcp_mem[2]");
        assert_eq!(net.mib.get(LinuxMib::TCPMemoryPressures), 1, "entered once");
        // Freeing a's pages (8 - 4 = 4, not below min) keeps the state; b's too ends it.
        a.rmem_alloc = 0;
        a.sk_mem_reclaim();
        assert!(a.tcp_under_memory_pressure());
        b.rmem_alloc = 0;
        b.sk_mem_reclaim();
        assert!(!b.tcp_under_memory_pressure());
        assert_eq!(net.tcp_mem.allocated(), 0);
        assert_eq!(net.mib.get(LinuxMib::TCPMemoryPressuresChrono), 90, "from 10 ms to the last charge at 100 ms");
    }
}
