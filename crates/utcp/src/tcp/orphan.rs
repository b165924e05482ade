//! Orphaned sockets and running out of resources (net/ipv4/tcp.c `tcp_orphan_count`,
//! `tcp_orphan_update()`, `tcp_too_many_orphans()`, `tcp_out_of_memory()`, `tcp_check_oom()`;
//! net/ipv4/tcp_timer.c `tcp_out_of_resources()`, `tcp_orphan_retries()`, v6.18).
//!
//! A socket its user closed while the connection still has work to do (a FIN to deliver, data
//! the peer has not taken) lives on as an orphan (`SOCK_DEAD`). `tcp_close()` counts it in
//! `tcp_orphan_count` and the count falls when the socket is destroyed or becomes a timewait
//! sock. A timer refreshes `tcp_orphan_cache` from the count every 100 ms; the checks read the
//! cache, so a burst of closes within one period is judged by the count before it.
//!
//! `tcp_check_oom()` says the host is out of resources when the (cached) orphans, doubled once
//! per `shift`, exceed `net.ipv4.tcp_max_orphans`, or when this socket has more than
//! `SOCK_MIN_SNDBUF` queued while TCP memory is over `tcp_mem[2]`. `tcp_close()` then resets
//! the connection at once (TCPAbortOnMemory), and an orphan's retransmission or zero-window
//! probe timer kills it through `tcp_out_of_resources()`, with a RST when it sent something
//! in the last minute or the peer's window is closed.

use super::{Ctx, TcpSock, SOCK_MIN_SNDBUF, TCP_RTO_MAX, TCP_TIMEWAIT_LEN};
use crate::mib::LinuxMib;
use crate::netns::{Orphans, ProtoMem};
use crate::time::Instant;
use core::sync::atomic::Ordering;

/// `TCP_ORPHAN_TIMER_PERIOD` in milliseconds.
const TCP_ORPHAN_TIMER_PERIOD_MS: u64 = 100;

impl ProtoMem {
    /// The orphan count with `tcp_orphan_update()`'s ticks up to `now_ms` applied: the count
    /// only changes here, so the value a tick read is the count before the first change
    /// after it.
    fn orphans_at(&self, now_ms: u64) -> crate::sync::MutexGuard<'_, Orphans> {
        let now_ms = self.clock_ms.fetch_max(now_ms, Ordering::Relaxed).max(now_ms);
        let mut o = self.orphans.lock();
        let tick = now_ms / TCP_ORPHAN_TIMER_PERIOD_MS;
        if tick > o.tick {
            o.cache = o.count;
            o.tick = tick;
        }
        o
    }

    fn ms(now: Instant) -> u64 {
        now.saturating_since(Instant::ZERO).as_millis() as u64
    }

    /// `tcp_orphan_count_inc()`.
    pub(crate) fn tcp_orphan_count_inc(&self, now: Instant) {
        self.orphans_at(Self::ms(now)).count += 1;
    }

    /// `tcp_orphan_count_dec()` (at the latest time the stack's clock was seen: a socket may
    /// be freed without a clock at hand).
    pub(crate) fn tcp_orphan_count_dec(&self) {
        self.orphans_at(self.clock_ms.load(Ordering::Relaxed)).count -= 1;
    }

    /// `tcp_orphan_count_sum()`: orphans now (what `/proc/net/sockstat` shows).
    pub fn tcp_orphan_count_sum(&self) -> i64 {
        self.orphans.lock().count
    }

    /// `tcp_too_many_orphans()`: `tcp_orphan_cache << shift > tcp_max_orphans`.
    pub(crate) fn tcp_too_many_orphans(&self, now: Instant, shift: u32) -> bool {
        let cache = self.orphans_at(Self::ms(now)).cache.max(0);
        cache << shift > self.sysctl.tcp_max_orphans.get()
    }
}

impl TcpSock {
    /// `sock_orphan()` + `tcp_orphan_count_inc()` of `__tcp_close()`: the user let go.
    pub(crate) fn tcp_orphan(&mut self, now: Instant) {
        self.orphan = true;
        if !self.orphan_counted {
            self.orphan_counted = true;
            self.proto_mem.tcp_orphan_count_inc(now);
        }
    }

    /// The `tcp_orphan_count_dec()` of `inet_csk_destroy_sock()`: the orphan is destroyed,
    /// or a timewait sock replaces it.
    pub(crate) fn tcp_orphan_gone(&mut self) {
        if self.orphan_counted {
            self.orphan_counted = false;
            self.proto_mem.tcp_orphan_count_dec();
        }
    }

    /// `tcp_out_of_memory()`: this socket queues more than `SOCK_MIN_SNDBUF` while TCP memory
    /// is over its hard limit.
    pub(crate) fn tcp_out_of_memory(&self) -> bool {
        self.wmem_queued > SOCK_MIN_SNDBUF && self.proto_mem.allocated() > self.proto_mem.limit(2)
    }

    /// `tcp_check_oom()`.
    pub(crate) fn tcp_check_oom(&self, now: Instant, shift: u32) -> bool {
        let too_many_orphans = self.proto_mem.tcp_too_many_orphans(now, shift);
        let out_of_socket_memory = self.tcp_out_of_memory();
        if too_many_orphans {
            tracing::info!("too many orphaned sockets");
        }
        if out_of_socket_memory {
            tracing::info!("out of memory -- consider tuning tcp_mem");
        }
        too_many_orphans || out_of_socket_memory
    }

    /// `tcp_out_of_resources()`: an orphan's retransmission or probe timer fired; true when
    /// the socket was killed (RST if it sent within `TCP_TIMEWAIT_LEN` or the peer's window
    /// is closed with nothing in flight, or if `do_reset`).
    pub(crate) fn tcp_out_of_resources(&mut self, ctx: &mut Ctx<'_>, mut do_reset: bool) -> bool {
        let since_sent = ctx.now.saturating_since(self.lsndtime);
        let mut shift = 0;
        // A peer that kept its window shut, or has heard nothing for long, is penalized.
        if since_sent > TCP_RTO_MAX * 2 || !do_reset {
            shift += 1;
        }
        // So is one a dubious ICMP error came from.
        if self.err_soft.is_some() {
            shift += 1;
        }
        if self.tcp_check_oom(ctx.now, shift) {
            if since_sent <= TCP_TIMEWAIT_LEN || (self.snd_wnd == 0 && self.packets_out == 0) {
                do_reset = true;
            }
            if do_reset {
                self.tcp_send_active_reset(ctx);
            }
            self.tcp_done(ctx);
            ctx.inc(LinuxMib::TCPAbortOnMemory);
            return true;
        }
        false
    }

    /// `tcp_orphan_retries()`: how often an orphan retransmits (or probes). 0 in
    /// `net.ipv4.tcp_orphan_retries` means 8 (over 100 s from a 200 ms RTO) while the socket
    /// is `alive` (its RTO below the maximum); an ICMP error on a socket that is not alive
    /// gives up at once.
    pub(crate) fn tcp_orphan_retries(&self, ctx: &Ctx<'_>, alive: bool) -> u32 {
        let mut retries = ctx.net.sysctl.tcp_orphan_retries.get().max(0) as u32;
        if self.err_soft.is_some() && !alive {
            retries = 0;
        }
        if retries == 0 && alive {
            retries = 8;
        }
        retries
    }
}
