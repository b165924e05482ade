//! SYN cookies (net/ipv4/syncookies.c): when the SYN queue is full (or `tcp_syncookies=2`) the
//! listener keeps no request; the SYN-ACK's ISN encodes the peer's MSS (rounded down to
//! `MSSTAB`) under a keyed hash of the 4-tuple and a minute counter, and with timestamps the
//! low bits of its TSval carry the peer's window scale and SACK. The returning ACK is checked
//! (`TcpSock::cookie_v4_check`) and rebuilt into a request that becomes a child at once.

use super::input::Seg;
use super::listen::RequestSock;
use super::window::tcp_select_initial_window;
use super::{Ctx, TcpSock, SOCK_RCVBUF_LOCK};
use crate::mib::LinuxMib;
use crate::netns::Netns;
use crate::seq::SeqNum;
use crate::time::{Duration, Instant};
use std::net::IpAddr;

/// Upper bits of the cookie hold the minute counter.
const COOKIEBITS: u32 = 24;
const COOKIEMASK: u32 = (1 << COOKIEBITS) - 1;
/// A cookie is good for the minute it was made and the next one.
const MAX_SYNCOOKIE_AGE: u32 = 2;
/// `TCP_SYNCOOKIE_PERIOD`: the counter's tick, in seconds.
const TCP_SYNCOOKIE_PERIOD: u64 = 60;
/// `TCP_SYNCOOKIE_VALID`: how long after the last cookie a listener checks ACKs for one.
pub(crate) const TCP_SYNCOOKIE_VALID: Duration = Duration::from_secs(2 * 60);

/// The TSval bits of a cookie SYN-ACK: `| 31 .. 6 timestamp | 5 ECN | 4 SACK | 3..0 wscale |`,
/// wscale 0xf meaning none.
const TS_OPT_WSCALE_MASK: u32 = 0xf;
const TS_OPT_SACK: u32 = 1 << 4;
const TSBITS: u32 = 6;

/// `msstab`: the MSS values a cookie can carry (sorted).
pub(crate) const MSSTAB: [u16; 4] = [536, 1300, 1440, 1460];
/// net/ipv6/syncookies.c's `msstab[]`: IPv6's MTUs less 60 bytes of headers.
pub const MSSTAB6: [u16; 4] = [1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60];

/// The MSS table of the family a cookie is for.
fn msstab(raddr: &IpAddr) -> &'static [u16; 4] {
    if raddr.is_ipv6() {
        &MSSTAB6
    } else {
        &MSSTAB
    }
}

/// `tcp_cookie_time()`: the minute counter.
fn tcp_cookie_time(now: Instant) -> u32 {
    (now.nanos() / 1_000_000_000 / TCP_SYNCOOKIE_PERIOD) as u32
}

/// `cookie_hash()`: SipHash of the 4-tuple and `count` under secret `c`.
fn cookie_hash(net: &Netns, saddr: IpAddr, daddr: IpAddr, sport: u16, dport: u16, count: u32, c: usize) -> u32 {
    let (k0, k1) = net.syncookie_keys()[c];
    let mut m = crate::netns::AddrMsg::default();
    m.addr(saddr).addr(daddr).put(&(((sport as u32) << 16) | dport as u32).to_le_bytes()).put(&count.to_le_bytes());
    crate::siphash::siphash24(k0, k1, m.bytes()) as u32
}

/// `secure_tcp_syn_cookie()`: hash + their ISN + count << 24 + (hash2 + data) mod 2^24.
fn secure_tcp_syn_cookie(ctx: &Ctx<'_>, t: (IpAddr, IpAddr, u16, u16), sseq: u32, data: u32) -> u32 {
    let (saddr, daddr, sport, dport) = t;
    let count = tcp_cookie_time(ctx.now);
    cookie_hash(ctx.net, saddr, daddr, sport, dport, 0, 0)
        .wrapping_add(sseq)
        .wrapping_add(count << COOKIEBITS)
        .wrapping_add(cookie_hash(ctx.net, saddr, daddr, sport, dport, count, 1).wrapping_add(data) & COOKIEMASK)
}

/// `check_tcp_syn_cookie()`: the data of a cookie at most [`MAX_SYNCOOKIE_AGE`] minutes old, or
/// a value out of [`MSSTAB`]'s range.
fn check_tcp_syn_cookie(ctx: &Ctx<'_>, cookie: u32, t: (IpAddr, IpAddr, u16, u16), sseq: u32) -> u32 {
    let (saddr, daddr, sport, dport) = t;
    let count = tcp_cookie_time(ctx.now);
    let cookie = cookie.wrapping_sub(cookie_hash(ctx.net, saddr, daddr, sport, dport, 0, 0).wrapping_add(sseq));
    let diff = count.wrapping_sub(cookie >> COOKIEBITS) & (u32::MAX >> COOKIEBITS);
    if diff >= MAX_SYNCOOKIE_AGE {
        return u32::MAX;
    }
    cookie.wrapping_sub(cookie_hash(ctx.net, saddr, daddr, sport, dport, count.wrapping_sub(diff), 1)) & COOKIEMASK
}

/// `__cookie_v4_init_sequence()`: the cookie ISN for a SYN from `raddr:rport` to
/// `laddr:lport` with sequence `seq` and MSS `mss`, and that MSS rounded down to the table.
pub(crate) fn cookie_v4_init_sequence(
    ctx: &Ctx<'_>,
    (raddr, rport, laddr, lport): (IpAddr, u16, IpAddr, u16),
    seq: SeqNum,
    mss: u32,
) -> (SeqNum, u32) {
    let tab = msstab(&raddr);
    let mut mssind = tab.len() - 1;
    while mssind > 0 && mss < tab[mssind] as u32 {
        mssind -= 1;
    }
    let isn = secure_tcp_syn_cookie(ctx, (raddr, laddr, rport, lport), seq.0, mssind as u32);
    (SeqNum(isn), tab[mssind] as u32)
}

/// `__cookie_v4_check()`: the MSS the ACK's cookie carries, 0 if it is not a valid cookie.
fn cookie_v4_mss(ctx: &Ctx<'_>, seg: &Seg, t: (IpAddr, IpAddr, u16, u16)) -> u32 {
    let cookie = seg.ack_seq.0.wrapping_sub(1);
    let seq = seg.seq.0.wrapping_sub(1);
    let mssind = check_tcp_syn_cookie(ctx, cookie, t, seq) as usize;
    msstab(&t.0).get(mssind).map_or(0, |&m| m as u32)
}

/// `cookie_init_timestamp()`: the SYN-ACK's TSval (before the offset) at `now_ms`, its low
/// `TSBITS` (6) bits the peer's options (its window shift, if any, and SACK), never above the
/// clock.
pub(crate) fn cookie_init_timestamp(snd_wscale: Option<u8>, sack_ok: bool, now_ms: u64) -> u32 {
    let mut options = snd_wscale.map_or(TS_OPT_WSCALE_MASK as u64, |w| w as u64);
    if sack_ok {
        options |= TS_OPT_SACK as u64;
    }
    let mut ts = ((now_ms >> TSBITS) << TSBITS) | options;
    if ts > now_ms {
        ts -= 1 << TSBITS;
    }
    ts as u32
}

/// The options a cookie ACK restores (`struct tcp_options_received`).
struct CookieOpts {
    saw_tstamp: bool,
    tsval: u32,
    tsecr: u32,
    sack_ok: bool,
    wscale_ok: bool,
    snd_wscale: u8,
}

/// `cookie_timestamp_decode()`: the options encoded in the echoed TSval; false when one is
/// disabled on this host.
fn cookie_timestamp_decode(net: &Netns, o: &mut CookieOpts) -> bool {
    let options = o.tsecr;
    if !o.saw_tstamp {
        // tcp_clear_options()
        o.sack_ok = false;
        o.wscale_ok = false;
        o.snd_wscale = 0;
        return true;
    }
    let s = &net.sysctl;
    if s.tcp_timestamps.get() == 0 {
        return false;
    }
    o.sack_ok = options & TS_OPT_SACK != 0;
    if o.sack_ok && s.tcp_sack.get() == 0 {
        return false;
    }
    if options & TS_OPT_WSCALE_MASK == TS_OPT_WSCALE_MASK {
        return true;
    }
    o.wscale_ok = true;
    o.snd_wscale = (options & TS_OPT_WSCALE_MASK) as u8;
    s.tcp_window_scaling.get() != 0
}

/// What [`TcpSock::cookie_v4_check`] found.
pub(crate) enum CookieCheck {
    /// Not a cookie ACK for this listener: the listener handles the segment (and resets it).
    Listener,
    /// A valid cookie: the rebuilt request.
    Request(Box<RequestSock>),
}

impl TcpSock {
    /// `tcp_synq_overflow()`: notes that a cookie was sent (at most once a second).
    pub(crate) fn tcp_synq_overflow(&mut self, now: Instant) {
        if let Some(l) = self.listen.as_mut() {
            let recent = l.last_overflow.is_some_and(|t| now >= t && now <= t + Duration::from_secs(1));
            if !recent {
                l.last_overflow = Some(now);
            }
        }
    }

    /// `tcp_synq_no_recent_overflow()`: no cookie sent in the last [`TCP_SYNCOOKIE_VALID`].
    // DEVIATION(linux): a SO_REUSEPORT listener keeps its own stamp; Linux keeps one for the
    // whole reuseport group, so a cookie ACK hashed to another member of the group after the
    // group changed is checked there too.
    fn tcp_synq_no_recent_overflow(&self, now: Instant) -> bool {
        let last = self.listen.as_ref().and_then(|l| l.last_overflow);
        !last.is_some_and(|t| now >= t && now <= t + TCP_SYNCOOKIE_VALID)
    }

    /// `cookie_v4_check()`: an ACK for a listener with no request for the pair, checked as the
    /// answer to a cookie SYN-ACK.
    pub(crate) fn cookie_v4_check(
        &mut self,
        ctx: &mut Ctx<'_>,
        seg: &Seg,
        (raddr, rport, laddr): (IpAddr, u16, IpAddr),
    ) -> CookieCheck {
        if ctx.net.sysctl.tcp_syncookies.get() == 0 || !seg.flags.ack() || seg.flags.rst() {
            return CookieCheck::Listener;
        }
        if self.tcp_synq_no_recent_overflow(ctx.now) {
            return CookieCheck::Listener;
        }
        let mss = cookie_v4_mss(ctx, seg, (raddr, laddr, rport, self.sport));
        if mss == 0 {
            ctx.inc(LinuxMib::SyncookiesFailed);
            return CookieCheck::Listener;
        }
        ctx.inc(LinuxMib::SyncookiesRecv);
        // tcp_parse_options() on a non-SYN of no connection: the timestamp only with
        // net.ipv4.tcp_timestamps.
        let saw_tstamp = seg.ts.is_some() && ctx.net.sysctl.tcp_timestamps.get() != 0;
        let (tsval, mut tsecr) = seg.ts.filter(|_| saw_tstamp).unwrap_or((0, 0));
        let mut tsoff = 0;
        if saw_tstamp && tsecr != 0 {
            tsoff = ctx.net.ts_offset(laddr, raddr);
            tsecr = tsecr.wrapping_sub(tsoff);
        }
        let mut o = CookieOpts { saw_tstamp, tsval, tsecr, sack_ok: false, wscale_ok: false, snd_wscale: 0 };
        if !cookie_timestamp_decode(ctx.net, &mut o) {
            return CookieCheck::Listener;
        }
        // Redo what the SYN-ACK did: the window for the (decoded) MSS.
        let full_space = self.full_space();
        let mut window_clamp = self.window_clamp;
        if self.userlocks & SOCK_RCVBUF_LOCK != 0 && (window_clamp as i64 > full_space || window_clamp == 0) {
            window_clamp = full_space.max(0) as u32;
        }
        let (rcv_wnd, window_clamp, rcv_wscale) =
            tcp_select_initial_window(ctx, full_space, mss, window_clamp, o.wscale_ok, 0);
        CookieCheck::Request(Box::new(RequestSock {
            raddr,
            rport,
            laddr,
            irs: seg.seq - 1,
            iss: seg.ack_seq - 1,
            mss_clamp: mss,
            wscale_ok: o.wscale_ok,
            snd_wscale: if o.wscale_ok { o.snd_wscale.min(super::TCP_MAX_WSCALE) } else { 0 },
            rcv_wscale: if o.wscale_ok { rcv_wscale } else { 0 },
            sack_ok: o.sack_ok,
            tstamp_ok: o.saw_tstamp,
            ts_recent: if o.saw_tstamp { o.tsval } else { 0 },
            ts_off: tsoff,
            rcv_wnd,
            window_clamp,
            first_synack: ctx.now,
            num_retrans: 0,
            num_timeout: 0,
            expires: ctx.now,
            acked: false,
            saved_syn: None,
            // cookie_v4_check(): ireq_opt from the ACK's own IP options (tcp_v4_save_options).
            ireq_opt: super::listen::tcp_v4_save_options(ctx, seg, raddr),
            syncookie: true,
            txhash: ctx.net.net_tx_rndhash(),
            syn_tclass: seg.rx.tclass,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_timestamp_keeps_options_in_the_low_bits_and_never_runs_ahead() {
        for now in [64u64, 100, 1_000_003, 5_000_063, 5_000_064] {
            let ts = cookie_init_timestamp(Some(7), true, now) as u64;
            assert_eq!(ts & 0x3f, 7 | 16);
            assert!(ts <= now && now - ts < 128, "{ts} vs {now}");
        }
        assert_eq!(cookie_init_timestamp(None, false, 1000) & 0x3f, 0xf);
        assert_eq!(cookie_init_timestamp(Some(0), false, 1000) & 0x3f, 0);
    }
}
