//! SOL_SOCKET options (net/core/sock.c): `sock_setsockopt` and `sk_getsockopt`.

use crate::errno::{Errno, SysResult};
use crate::tcp::{
    Ctx, TcpSock, TcpState, TcpTimer, LINGER_FOREVER, SOCK_MIN_RCVBUF, SOCK_MIN_SNDBUF, SOCK_RCVBUF_LOCK,
    SOCK_SNDBUF_LOCK,
};

/// `SOCK_BUF_LOCK_MASK`: SOCK_SNDBUF_LOCK | SOCK_RCVBUF_LOCK.
const SOCK_BUF_LOCK_MASK: i32 = (SOCK_SNDBUF_LOCK | SOCK_RCVBUF_LOCK) as i32;
use crate::time::Duration;
use crate::uapi::opt::*;
use crate::uapi::{optval_int, SOL_SOCKET};

/// Jiffy length at HZ=250 (socket timeouts are kept in jiffies).
pub(crate) const JIFFY_US: u64 = 4000;

const SOCK_STREAM: i32 = 1;
const IPPROTO_TCP: i32 = 6;

/// A timeout as `struct __kernel_old_timeval` (None: 0/0, forever).
pub(crate) fn to_timeval(d: Option<Duration>) -> [u8; 16] {
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
pub(crate) fn sock_setsockopt(tp: &mut TcpSock, ctx: &mut Ctx<'_>, name: i32, val: &[u8]) -> SysResult<()> {
    let net = ctx.net;
    match name {
        SO_LINGER => {
            if val.len() < 8 {
                return Err(Errno::EINVAL);
            }
            let on = optval_int(&val[..4])?;
            // `l_linger` is read as unsigned long: a negative one is "forever".
            let secs = optval_int(&val[4..8])? as i64 as u64;
            const MAX_SECS: u64 = i64::MAX as u64 / (1_000_000 / JIFFY_US);
            tp.ext_mut().linger = (on != 0).then_some(if secs >= MAX_SECS { LINGER_FOREVER } else { secs as u32 });
            return Ok(());
        }
        // SO_RCVTIMEO_NEW takes a `struct __kernel_sock_timeval`, the same 16 bytes as the
        // old `timeval` on a 64-bit machine.
        SO_RCVTIMEO | SO_RCVTIMEO_NEW => {
            tp.ext_mut().rcvtimeo = sock_set_timeout(val)?;
            return Ok(());
        }
        SO_SNDTIMEO | SO_SNDTIMEO_NEW => {
            tp.ext_mut().sndtimeo = sock_set_timeout(val)?;
            return Ok(());
        }
        SO_ATTACH_FILTER | SO_ATTACH_REUSEPORT_CBPF => return sk_attach_filter(tp, name, val),
        SO_BINDTODEVICE => return sock_setbindtodevice(tp, net, val),
        // An unsigned long when the caller passes 8 bytes or more (tcp/pacing.rs).
        SO_MAX_PACING_RATE if val.len() >= 8 => {
            tp.set_max_pacing_rate(u64::from_ne_bytes(val[..8].try_into().expect("8")));
            return Ok(());
        }
        SO_TXTIME => return sock_set_txtime(tp, val),
        SO_TIMESTAMPING | SO_TIMESTAMPING_NEW => {
            optval_int(val)?;
            let bound = net.netdev_get_name(tp.bound_dev_if).is_some();
            return super::timestamping::so_timestamping_set(tp, bound, name, val);
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
        // `min_t(u32, val, sysctl_rmem_max)`: a negative value is a huge unsigned one, so
        // it asks for the maximum; the FORCE variants (CAP_NET_ADMIN) take `max(val, 0)`.
        SO_RCVBUF | SO_RCVBUFFORCE => {
            let max = net.sysctl.rmem_max.get();
            let val = if name == SO_RCVBUF { (v as u32 as i64).min(max) } else { v.max(0) as i64 };
            // __sock_set_rcvbuf(): min(val, INT_MAX / 2) * 2, at least SOCK_MIN_RCVBUF.
            let val = val.min(i32::MAX as i64 / 2);
            tp.userlocks |= SOCK_RCVBUF_LOCK;
            tp.rcvbuf = (val * 2).max(SOCK_MIN_RCVBUF as i64) as u32;
        }
        SO_SNDBUF | SO_SNDBUFFORCE => {
            let max = net.sysctl.wmem_max.get();
            let val = if name == SO_SNDBUF { (v as u32 as i64).min(max) } else { v.max(0) as i64 };
            let val = val.min(i32::MAX as i64 / 2);
            tp.userlocks |= SOCK_SNDBUF_LOCK;
            tp.sndbuf = (val * 2).max(SOCK_MIN_SNDBUF as i64) as u32;
        }
        // The SO_SNDBUF/SO_RCVBUF locks themselves (they stop buffer autotuning).
        SO_BUF_LOCK => {
            if v & !SOCK_BUF_LOCK_MASK != 0 {
                return Err(Errno::EINVAL);
            }
            tp.userlocks = (tp.userlocks & !SOCK_BUF_LOCK_MASK as u8) | v as u8;
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
        // sock_set_timestamp(): SO_TIMESTAMP(NS)_NEW choose the SO_TIMESTAMP(NS)_NEW control
        // message types (`tcp_recv_timestamp`); turning any of them off turns all off.
        SO_TIMESTAMP | SO_TIMESTAMPNS | SO_TIMESTAMP_NEW | SO_TIMESTAMPNS_NEW => {
            if v != 0 {
                tp.tstamp_new = matches!(name, SO_TIMESTAMP_NEW | SO_TIMESTAMPNS_NEW);
                tp.rx_tstamp_opt = if matches!(name, SO_TIMESTAMP | SO_TIMESTAMP_NEW) { 1 } else { 2 };
            } else {
                tp.rx_tstamp_opt = 0;
            }
        }
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
            tp.ext_mut().busy_poll_budget = v as u16;
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
        // `skb->mark` of every frame the socket sends (CAP_NET_ADMIN or CAP_NET_RAW: the
        // process's credentials, root here; sk_dst_reset has no cached route to drop).
        // DEVIATION(linux): utcp has no policy routing or packet filter that matches marks;
        // the mark rides on each `Frame` for devices and captures.
        SO_MARK => tp.mark = v as u32,
        SO_BINDTOIFINDEX => sock_bindtoindex(tp, v)?,
        // TCP (and UDP) sockets only, 0 or 1 (tcp/zerocopy.rs).
        SO_ZEROCOPY => {
            if !(0..=1).contains(&v) {
                return Err(Errno::EINVAL);
            }
            tp.zerocopy = v != 0;
        }
        // An unsigned int; ~0U stands for ~0UL (no limit).
        SO_MAX_PACING_RATE => tp.set_max_pacing_rate(if v == -1 { u64::MAX } else { v as u32 as u64 }),
        // BSD compatibility is gone from Linux: accepted, no effect, reads as 0.
        SO_BSDCOMPAT => {}
        // Unix-domain credentials/rights/security passing: not on an inet socket.
        SO_PASSCRED | SO_PASSPIDFD | SO_PASSRIGHTS | SO_PASSSEC => return Err(Errno::EOPNOTSUPP),
        // SO_TXREHASH: -1 (SOCK_TXREHASH_DEFAULT) takes net.core.txrehash. On, an RTO or a
        // second duplicate of received data re-draws sk_txhash (`sk_rethink_txhash`), and
        // with it an IPv6 connection's flow label.
        SO_TXREHASH => {
            if !(-1..=1).contains(&v) {
                return Err(Errno::EINVAL);
            }
            tp.txrehash = if v == -1 { net.sysctl.txrehash.get() as u8 } else { v as u8 };
        }
        // reuseport_update_incoming_cpu(). DEVIATION(linux): utcp has no CPU numbers, so
        // packet input does not overwrite it and reuseport groups do not prefer by it.
        SO_INCOMING_CPU => tp.ext_mut().incoming_cpu = v,
        // dst_negative_advice(): utcp caches no route, so there is nothing to forget.
        SO_CNX_ADVICE => {}
        // A socket with no memory cgroup cannot reserve memory (sock_reserve_memory()).
        SO_RESERVE_MEM => return Err(if v < 0 { Errno::EINVAL } else { Errno::EOPNOTSUPP }),
        SO_LOCK_FILTER => {
            if tp.filter_locked && v == 0 {
                return Err(Errno::EPERM);
            }
            tp.filter_locked = v != 0;
        }
        // sk_detach_filter(): no filter is attached (SO_ATTACH_FILTER never succeeds).
        SO_DETACH_FILTER => return Err(if tp.filter_locked { Errno::EPERM } else { Errno::ENOENT }),
        // reuseport_detach_prog(): no reuseport group carries a program.
        SO_DETACH_REUSEPORT_BPF => return Err(if tp.reuseport { Errno::ENOENT } else { Errno::EINVAL }),
        // Devmem TCP: no dma-buf bindings, so no tokens to give back.
        SO_DEVMEM_DONTNEED => return Err(Errno::EINVAL),
        // The caller (`Stack::setsockopt`) answered EBADF for a closed fd; an open one is not a
        // BPF program (bpf_prog_get()).
        SO_ATTACH_BPF | SO_ATTACH_REUSEPORT_EBPF => return Err(Errno::EINVAL),
        // Flags whose effect is on datagram, packet or Wi-Fi sockets (SO_SELECT_ERR_QUEUE's
        // EPOLLPRI is datagram_poll's; tcp_poll reports the error queue as EPOLLERR alone): a
        // TCP socket in Linux stores them for getsockopt only.
        SO_RCVMARK | SO_RCVPRIORITY | SO_RXQ_OVFL | SO_WIFI_STATUS | SO_NOFCS | SO_SELECT_ERR_QUEUE => {
            tp.ext_mut().sockopt_misc.insert((SOL_SOCKET, name), (v != 0) as i32);
        }
        // DEVIATION(linux): SO_DEBUG, SO_BROADCAST and SO_NO_CHECK have no effect on a TCP
        // socket in Linux either; stored for getsockopt.
        SO_DEBUG | SO_BROADCAST | SO_NO_CHECK => {
            tp.ext_mut().sockopt_misc.insert((SOL_SOCKET, name), (v != 0) as i32);
        }
        _ => return Err(Errno::ENOPROTOOPT),
    }
    Ok(())
}

/// `sk_attach_filter()` / `sk_reuseport_attach_filter()`: a `struct sock_fprog` (16 bytes:
/// length, pointer).
// DEVIATION(linux): utcp runs no BPF, and its setsockopt takes the option's bytes, not the
// caller's memory, so a filter program cannot be read. A well-formed `sock_fprog` is answered
// ENOPROTOOPT, as for an option the kernel does not have; the checks before the program is
// read are Linux's (EINVAL for another length, a zero or oversized count, a NULL pointer).
fn sk_attach_filter(tp: &TcpSock, name: i32, val: &[u8]) -> SysResult<()> {
    if val.len() != 16 {
        return Err(Errno::EINVAL);
    }
    let len = u16::from_ne_bytes([val[0], val[1]]);
    let filter = u64::from_ne_bytes(val[8..16].try_into().expect("8"));
    // bpf_check_basics_ok(): 1..=BPF_MAXINSNS instructions at a non-NULL address.
    if len == 0 || len > 4096 || filter == 0 {
        return Err(Errno::EINVAL);
    }
    if name == SO_ATTACH_FILTER && tp.filter_locked {
        return Err(Errno::EPERM);
    }
    Err(Errno::ENOPROTOOPT)
}

/// SO_TXTIME: `struct sock_txtime { clockid_t clockid; u32 flags; }`. TCP paces by its own
/// departure times and ignores SCM_TXTIME, so in Linux too the setting only reads back.
fn sock_set_txtime(tp: &mut TcpSock, val: &[u8]) -> SysResult<()> {
    const SOF_TXTIME_FLAGS_MASK: u32 = 0x3;
    if val.len() != 8 {
        return Err(Errno::EINVAL);
    }
    let clockid = optval_int(&val[..4])?;
    let flags = u32::from_ne_bytes(val[4..8].try_into().expect("4"));
    if flags & !SOF_TXTIME_FLAGS_MASK != 0 {
        return Err(Errno::EINVAL);
    }
    tp.ext_mut().txtime = Some((clockid, flags));
    Ok(())
}

/// `sock_setbindtodevice()`: an interface name (at most IFNAMSIZ - 1 bytes are read; "" or a
/// leading NUL unbinds); ENODEV for a name no device has.
fn sock_setbindtodevice(tp: &mut TcpSock, net: &crate::netns::Netns, val: &[u8]) -> SysResult<()> {
    const IFNAMSIZ: usize = 16;
    let raw = &val[..val.len().min(IFNAMSIZ - 1)];
    let name = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
    let index = if name.is_empty() { 0 } else { net.dev_get_by_name(name).ok_or(Errno::ENODEV)? };
    sock_bindtoindex(tp, index)
}

/// `sock_bindtoindex_locked()`: any index not below 0 (CAP_NET_RAW to change a binding: the
/// caller is root); one no device has fails later, in connect() (ENODEV). Packet input
/// ignores a socket bound to another device than the one a segment came in on.
fn sock_bindtoindex(tp: &mut TcpSock, ifindex: i32) -> SysResult<()> {
    if ifindex < 0 {
        return Err(Errno::EINVAL);
    }
    tp.bound_dev_if = ifindex;
    Ok(())
}

/// `sock_error()`: the pending error, cleared (SO_ERROR).
pub(crate) fn sock_error(tp: &mut TcpSock) -> i32 {
    tp.err.take().map(|e| e as i32).unwrap_or(0)
}

/// What `sk_getsockopt` reads from outside the TCP state.
#[derive(Clone, Debug, Default)]
pub(crate) struct SockView {
    /// `sk->sk_napi_id`.
    pub(crate) napi_id: u32,
    /// `sock_net(sk)->net_cookie`.
    pub(crate) netns_cookie: u64,
    /// The name of the device the socket is bound to, if that device exists.
    pub(crate) netdev_name: Option<String>,
}

/// Entries of SO_MEMINFO (`SK_MEMINFO_VARS`).
const SK_MEMINFO_VARS: usize = 9;

/// `sk_getsockopt()`: the value's bytes (the caller copies at most `len` of them and reports
/// that many). SO_ERROR is [`sock_error`], which needs the socket owned.
pub(crate) fn sk_getsockopt(tp: &TcpSock, view: SockView, name: i32, len: usize) -> SysResult<Vec<u8>> {
    let i = |v: i32| v.to_ne_bytes().to_vec();
    let misc = |n: i32| i(tp.ext().sockopt_misc.get(&(SOL_SOCKET, n)).copied().unwrap_or(0));
    Ok(match name {
        SO_TYPE => i(SOCK_STREAM),
        SO_DOMAIN => i(tp.family),
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
        SO_TIMESTAMP => i((tp.rx_tstamp_opt == 1 && !tp.tstamp_new) as i32),
        SO_TIMESTAMP_NEW => i((tp.rx_tstamp_opt == 1 && tp.tstamp_new) as i32),
        SO_TIMESTAMPNS => i((tp.rx_tstamp_opt == 2 && !tp.tstamp_new) as i32),
        SO_TIMESTAMPNS_NEW => i((tp.rx_tstamp_opt == 2 && tp.tstamp_new) as i32),
        SO_TIMESTAMPING | SO_TIMESTAMPING_NEW => super::timestamping::so_timestamping_get(tp, name),
        SO_BUSY_POLL => i(tp.ll_usec as i32),
        SO_PREFER_BUSY_POLL => i(tp.prefer_busy_poll as i32),
        SO_INCOMING_NAPI_ID => i(view.napi_id as i32),
        SO_LINGER => {
            let mut v = i(tp.ext().linger.is_some() as i32);
            // `sk_lingertime / HZ` as an int: MAX_SCHEDULE_TIMEOUT / HZ, truncated.
            let secs = match tp.ext().linger {
                Some(LINGER_FOREVER) => (i64::MAX / (1_000_000 / JIFFY_US) as i64) as i32,
                l => l.unwrap_or(0) as i32,
            };
            v.extend_from_slice(&secs.to_ne_bytes());
            v
        }
        SO_RCVTIMEO | SO_RCVTIMEO_NEW => to_timeval(tp.ext().rcvtimeo).to_vec(),
        SO_SNDTIMEO | SO_SNDTIMEO_NEW => to_timeval(tp.ext().sndtimeo).to_vec(),
        SO_DEBUG | SO_BROADCAST | SO_NO_CHECK => misc(name),
        SO_RCVMARK | SO_RCVPRIORITY | SO_RXQ_OVFL | SO_WIFI_STATUS | SO_NOFCS | SO_SELECT_ERR_QUEUE => misc(name),
        SO_MARK => i(tp.mark as i32),
        SO_BSDCOMPAT => i(0),
        SO_BUF_LOCK => i((tp.userlocks & SOCK_BUF_LOCK_MASK as u8) as i32),
        SO_TXREHASH => i(tp.txrehash as i32),
        SO_INCOMING_CPU => i(tp.ext().incoming_cpu),
        SO_RESERVE_MEM => i(0),
        SO_LOCK_FILTER => i(tp.filter_locked as i32),
        // bpf_tell_extensions(): SKF_AD_MAX.
        SO_BPF_EXTENSIONS => i(64),
        // SO_GET_FILTER: no filter, so nothing is copied and the length is 0.
        SO_ATTACH_FILTER => Vec::new(),
        // Unset: a zeroed struct sock_txtime.
        SO_TXTIME => {
            let (clockid, flags) = tp.ext().txtime.unwrap_or((0, 0));
            let mut v = i(clockid);
            v.extend_from_slice(&flags.to_ne_bytes());
            v
        }
        // sock_getbindtodevice(): nothing bound copies nothing (length 0); else the name and
        // its NUL, EINVAL for a shorter buffer, ENODEV when the index names no device.
        SO_BINDTODEVICE => {
            if tp.bound_dev_if == 0 {
                return Ok(Vec::new());
            }
            let mut name = view.netdev_name.ok_or(Errno::ENODEV)?.into_bytes();
            name.push(0);
            if len < name.len() {
                return Err(Errno::EINVAL);
            }
            name
        }
        SO_BINDTOIFINDEX => i(tp.bound_dev_if),
        SO_ZEROCOPY => i(tp.zerocopy as i32),
        // 8 bytes for a buffer that holds them, else the rate capped at ~0U.
        SO_MAX_PACING_RATE => {
            if len >= 8 {
                tp.ext().max_pacing_rate.to_ne_bytes().to_vec()
            } else {
                (tp.ext().max_pacing_rate.min(u32::MAX as u64) as u32).to_ne_bytes().to_vec()
            }
        }
        // struct ucred of a TCP peer: no pid, the overflow uid/gid (-1).
        SO_PEERCRED => {
            let mut v = 0i32.to_ne_bytes().to_vec();
            v.extend_from_slice(&u32::MAX.to_ne_bytes());
            v.extend_from_slice(&u32::MAX.to_ne_bytes());
            v
        }
        SO_PEERGROUPS | SO_PEERPIDFD => return Err(Errno::ENODATA),
        SO_PASSCRED | SO_PASSPIDFD | SO_PASSRIGHTS | SO_PASSSEC => return Err(Errno::EOPNOTSUPP),
        // inet_getname(peer = 2): ENOTCONN without a peer port (no state check, unlike
        // getpeername); a caller's buffer longer than the address is EINVAL.
        SO_PEERNAME => {
            if tp.dport == 0 {
                return Err(Errno::ENOTCONN);
            }
            let (b, n) = crate::uapi::sockaddr_bytes(&crate::uapi::sock_addr(tp.family, tp.daddr, tp.dport));
            if len > n {
                return Err(Errno::EINVAL);
            }
            b[..n].to_vec()
        }
        SO_COOKIE => {
            if len < 8 {
                return Err(Errno::EINVAL);
            }
            tp.cookie.to_ne_bytes().to_vec()
        }
        SO_NETNS_COOKIE => {
            if len != 8 {
                return Err(Errno::EINVAL);
            }
            view.netns_cookie.to_ne_bytes().to_vec()
        }
        // sk_get_meminfo(): rmem_alloc, rcvbuf, wmem_alloc, sndbuf, forward_alloc,
        // wmem_queued, optmem, backlog, drops.
        SO_MEMINFO => {
            let m: [u32; SK_MEMINFO_VARS] = [tp.rmem_alloc, tp.rcvbuf, 0, tp.sndbuf, 0, tp.wmem_queued, 0, 0, 0];
            m.iter().flat_map(|v| v.to_ne_bytes()).collect()
        }
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
        assert_eq!(sk_getsockopt(&tp, SockView::default(), SO_TYPE, 4), Ok(SOCK_STREAM.to_ne_bytes().to_vec()));
        assert_eq!(sk_getsockopt(&tp, SockView::default(), SO_SNDLOWAT, 4), Ok(1i32.to_ne_bytes().to_vec()));
        assert_eq!(sk_getsockopt(&tp, SockView::default(), SO_LINGER, 4).map(|v| v.len()), Ok(8));
        assert_eq!(sk_getsockopt(&tp, SockView::default(), 9999, 4), Err(Errno::ENOPROTOOPT));
    }
}
