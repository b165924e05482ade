//! SOL_SOCKET options (net/core/sock.c): `sock_setsockopt` and `sk_getsockopt`.

use crate::errno::{Errno, SysResult};
use crate::tcp::{
    Ctx, TcpSock, TcpState, TcpTimer, SOCK_MIN_RCVBUF, SOCK_MIN_SNDBUF, SOCK_RCVBUF_LOCK, SOCK_SNDBUF_LOCK,
};
use crate::time::Duration;
use crate::uapi::opt::*;
use crate::uapi::{optval_int, SOL_SOCKET};

/// Jiffy length at HZ=250 (socket timeouts are kept in jiffies).
pub const JIFFY_US: u64 = 4000;

const AF_INET: i32 = 2;
const SOCK_STREAM: i32 = 1;
const IPPROTO_TCP: i32 = 6;

/// A timeout as `struct __kernel_old_timeval` (None: 0/0, forever).
pub fn to_timeval(d: Option<Duration>) -> [u8; 16] {
    let mut b = [0u8; 16];
    if let Some(d) = d {
        b[..8].copy_from_slice(&(d.as_secs() as i64).to_ne_bytes());
        b[8..].copy_from_slice(&(d.subsec_micros() as i64).to_ne_bytes());
    }
    b
}

/// `sock_set_timeout()`: a `struct timeval` as a timeout (None = forever).
fn sock_set_timeout(val: &[u8]) -> SysResult<Option<Duration>> {
    if val.len() < 16 {
        return Err(Errno::EINVAL);
    }
    let sec = i64::from_ne_bytes(val[..8].try_into().expect("8"));
    let usec = i64::from_ne_bytes(val[8..16].try_into().expect("8"));
    if !(0..1_000_000).contains(&usec) {
        return Err(Errno::EDOM);
    }
    // A timeout too large for jiffies is MAX_SCHEDULE_TIMEOUT.
    const HZ: i64 = (1_000_000 / JIFFY_US) as i64;
    Ok(if sec < 0 {
        Some(Duration::ZERO)
    } else if (sec == 0 && usec == 0) || sec >= i64::MAX / HZ - 1 {
        None
    } else {
        let jiffies = sec as u64 * HZ as u64 + (usec as u64).div_ceil(JIFFY_US);
        Some(Duration::from_micros(jiffies).saturating_mul(JIFFY_US as u32))
    })
}

/// `sock_setsockopt()` (with TCP's `tcp_set_rcvlowat`/`tcp_set_keepalive` hooks), run with
/// the socket owned.
pub fn sock_setsockopt(tp: &mut TcpSock, ctx: &mut Ctx<'_>, name: i32, val: &[u8]) -> SysResult<()> {
    let net = ctx.net;
    match name {
        SO_LINGER => {
            if val.len() < 8 {
                return Err(Errno::EINVAL);
            }
            let on = optval_int(&val[..4])?;
            let secs = optval_int(&val[4..8])?;
            tp.linger = (on != 0).then_some(secs.max(0) as u32);
            return Ok(());
        }
        SO_RCVTIMEO => {
            tp.rcvtimeo = sock_set_timeout(val)?;
            return Ok(());
        }
        SO_SNDTIMEO => {
            tp.sndtimeo = sock_set_timeout(val)?;
            return Ok(());
        }
        _ => {}
    }
    let v = optval_int(val)?;
    match name {
        SO_REUSEADDR => tp.reuseaddr = v != 0,
        SO_KEEPALIVE => {
            // tcp_set_keepalive(): not in CLOSE or LISTEN; turning it on again keeps the
            // running timer.
            let was = tp.keepalive;
            tp.keepalive = v != 0;
            if !matches!(tp.state, TcpState::Close | TcpState::Listen) {
                if v != 0 && !was {
                    let t = tp.keepalive_time_when(net);
                    tp.reset_timer(TcpTimer::Keepalive, ctx.now + t);
                } else if v == 0 {
                    tp.clear_timer(TcpTimer::Keepalive);
                }
            }
        }
        SO_OOBINLINE => tp.urginline = v != 0,
        SO_RCVBUF | SO_RCVBUFFORCE => {
            let max = net.sysctl.rmem_max.get();
            let val = if name == SO_RCVBUF { (v as i64).min(max) } else { v as i64 };
            let val = val.max(0);
            tp.userlocks |= SOCK_RCVBUF_LOCK;
            tp.rcvbuf = (val * 2).clamp(SOCK_MIN_RCVBUF as i64, i32::MAX as i64) as u32;
        }
        SO_SNDBUF | SO_SNDBUFFORCE => {
            let max = net.sysctl.wmem_max.get();
            let val = if name == SO_SNDBUF { (v as i64).min(max) } else { v as i64 };
            let val = val.max(0);
            tp.userlocks |= SOCK_SNDBUF_LOCK;
            tp.sndbuf = (val * 2).clamp(SOCK_MIN_SNDBUF as i64, i32::MAX as i64) as u32;
        }
        SO_RCVLOWAT => {
            // tcp_set_rcvlowat()
            let mut val = if v < 0 { i32::MAX } else { v };
            let cap = if tp.userlocks & SOCK_RCVBUF_LOCK != 0 {
                (tp.rcvbuf >> 1) as i32
            } else {
                (net.sysctl.tcp_rmem.idx(2) >> 1) as i32
            };
            val = val.min(cap);
            tp.rcvlowat = if val == 0 { 1 } else { val };
            if tp.userlocks & SOCK_RCVBUF_LOCK == 0 {
                let space = tp.space_from_win(val as i64);
                if space > tp.rcvbuf as i64 {
                    tp.rcvbuf = space as u32;
                    if tp.window_clamp != 0 && (tp.window_clamp as i64) < val as i64 {
                        tp.window_clamp = val as u32;
                    }
                }
            }
        }
        SO_PEEK_OFF => tp.peek_off = v,
        SO_TIMESTAMP => tp.rx_tstamp_opt = if v != 0 { 1 } else { 0 },
        SO_TIMESTAMPNS => tp.rx_tstamp_opt = if v != 0 { 2 } else { 0 },
        SO_BUSY_POLL => {
            if v < 0 {
                return Err(Errno::EINVAL);
            }
            tp.ll_usec = v as u32;
        }
        SO_PREFER_BUSY_POLL => tp.prefer_busy_poll = v != 0,
        SO_BUSY_POLL_BUDGET => {
            if v < 0 || v > u16::MAX as i32 {
                return Err(Errno::EINVAL);
            }
            tp.busy_poll_budget = v as u16;
        }
        // SO_SNDLOWAT is not changeable on Linux.
        SO_SNDLOWAT => return Err(Errno::ENOPROTOOPT),
        // The sender's skb->priority (any value: the caller is CAP_NET_ADMIN here).
        // DEVIATION(linux): it rides on every frame (`Frame::priority`), but utcp's devices
        // have one FIFO queue (no pfifo_fast bands), so it reorders nothing between sockets.
        SO_PRIORITY => tp.priority = v as u32,
        // DEVIATION(linux): every destination is on-link on utcp's devices (memlink, a
        // point-to-point TUN), so SOCK_LOCALROUTE changes no route; it is kept for
        // getsockopt and inherited by accepted sockets.
        SO_DONTROUTE => tp.dontroute = v != 0,
        SO_REUSEPORT => tp.reuseport = v != 0,
        // DEVIATION(linux): SO_DEBUG, SO_BROADCAST and SO_NO_CHECK have no effect on a TCP
        // socket in Linux either; stored for getsockopt.
        SO_DEBUG | SO_BROADCAST | SO_NO_CHECK => {
            tp.sockopt_misc.insert((SOL_SOCKET, name), (v != 0) as i32);
        }
        _ => return Err(Errno::ENOPROTOOPT),
    }
    Ok(())
}

/// `sock_error()`: the pending error, cleared (SO_ERROR).
pub fn sock_error(tp: &mut TcpSock) -> i32 {
    tp.err.take().map(|e| e as i32).unwrap_or(0)
}

/// `sk_getsockopt()`: the value's bytes (the caller truncates them to `optlen`). SO_ERROR is
/// [`sock_error`], which needs the socket owned. `napi_id` is `sk->sk_napi_id`.
pub fn sk_getsockopt(tp: &TcpSock, napi_id: u32, name: i32) -> SysResult<Vec<u8>> {
    let i = |v: i32| v.to_ne_bytes().to_vec();
    Ok(match name {
        SO_TYPE => i(SOCK_STREAM),
        SO_DOMAIN => i(AF_INET),
        SO_PROTOCOL => i(IPPROTO_TCP),
        SO_ACCEPTCONN => i((tp.state == TcpState::Listen) as i32),
        SO_REUSEADDR => i(tp.reuseaddr as i32),
        SO_KEEPALIVE => i(tp.keepalive as i32),
        SO_OOBINLINE => i(tp.urginline as i32),
        SO_RCVBUF => i(tp.rcvbuf as i32),
        SO_SNDBUF => i(tp.sndbuf as i32),
        SO_RCVLOWAT => i(tp.rcvlowat),
        SO_SNDLOWAT => i(1),
        SO_PRIORITY => i(tp.priority as i32),
        SO_DONTROUTE => i(tp.dontroute as i32),
        SO_REUSEPORT => i(tp.reuseport as i32),
        SO_PEEK_OFF => i(tp.peek_off),
        SO_TIMESTAMP => i((tp.rx_tstamp_opt == 1) as i32),
        SO_TIMESTAMPNS => i((tp.rx_tstamp_opt == 2) as i32),
        SO_BUSY_POLL => i(tp.ll_usec as i32),
        SO_PREFER_BUSY_POLL => i(tp.prefer_busy_poll as i32),
        SO_BUSY_POLL_BUDGET => i(tp.busy_poll_budget as i32),
        SO_INCOMING_NAPI_ID => i(napi_id as i32),
        SO_LINGER => {
            let mut v = i(tp.linger.is_some() as i32);
            v.extend_from_slice(&(tp.linger.unwrap_or(0) as i32).to_ne_bytes());
            v
        }
        SO_RCVTIMEO => to_timeval(tp.rcvtimeo).to_vec(),
        SO_SNDTIMEO => to_timeval(tp.sndtimeo).to_vec(),
        SO_DEBUG | SO_BROADCAST | SO_NO_CHECK => i(tp.sockopt_misc.get(&(SOL_SOCKET, name)).copied().unwrap_or(0)),
        _ => return Err(Errno::ENOPROTOOPT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tv(sec: i64, usec: i64) -> Vec<u8> {
        let mut v = sec.to_ne_bytes().to_vec();
        v.extend(usec.to_ne_bytes());
        v
    }

    #[test]
    fn timeouts_round_to_jiffies_and_check_usec() {
        assert_eq!(sock_set_timeout(&tv(0, 0)), Ok(None));
        assert_eq!(sock_set_timeout(&tv(-1, 0)), Ok(Some(Duration::ZERO)));
        assert_eq!(sock_set_timeout(&tv(0, 1_000_000)), Err(Errno::EDOM));
        assert_eq!(sock_set_timeout(&tv(0, -1)), Err(Errno::EDOM));
        assert_eq!(sock_set_timeout(&[0; 15]), Err(Errno::EINVAL));
        // 1 µs is one 4 ms jiffy.
        let t = sock_set_timeout(&tv(0, 1)).unwrap();
        assert_eq!(t, Some(Duration::from_micros(4000)));
        assert_eq!(to_timeval(t)[8..], 4000i64.to_ne_bytes());
        assert_eq!(sock_set_timeout(&tv(i64::MAX, 0)), Ok(None));
    }

    #[test]
    fn sk_getsockopt_constants_and_unknown() {
        let net = crate::netns::Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        let tp = TcpSock::new(&net, crate::time::Instant::ZERO);
        assert_eq!(sk_getsockopt(&tp, 0, SO_TYPE), Ok(SOCK_STREAM.to_ne_bytes().to_vec()));
        assert_eq!(sk_getsockopt(&tp, 0, SO_SNDLOWAT), Ok(1i32.to_ne_bytes().to_vec()));
        assert_eq!(sk_getsockopt(&tp, 0, SO_LINGER).map(|v| v.len()), Ok(8));
        assert_eq!(sk_getsockopt(&tp, 0, 9999), Err(Errno::ENOPROTOOPT));
    }
}
