//! TCP-level socket options (net/ipv4/tcp.c): `do_tcp_setsockopt` and `do_tcp_getsockopt`.

use super::ack_flags::ICSK_ACK_SCHED;
use super::info::{tcp_get_info, tcp_info_bytes};
use super::{jiffies_from_us, Ctx, TcpSock, TcpState};
use crate::errno::{Errno, SysResult};
use crate::netns::Netns;
use crate::time::{Duration, Instant};
use crate::uapi::opt::*;
use crate::uapi::{in_range, optval_int};

/// `TCP_CA_NAME_MAX` / `TCP_ULP_NAME_MAX`: names are read up to 15 bytes and a NUL.
const NAME_MAX: usize = 16;
/// `TCP_FASTOPEN_KEY_LENGTH`: one key; two (primary and backup) may be given.
const TCP_FASTOPEN_KEY_LENGTH: usize = 16;
/// `sizeof(struct tcp_repair_window)`.
const REPAIR_WINDOW_LEN: usize = 20;

/// `strncpy_from_sockptr(name, optval, min(NAME_MAX - 1, optlen))`: the name up to its NUL.
fn opt_name(val: &[u8]) -> &[u8] {
    let v = &val[..val.len().min(NAME_MAX - 1)];
    &v[..v.iter().position(|&b| b == 0).unwrap_or(v.len())]
}

/// `do_tcp_setsockopt()`, run with the socket owned.
pub(crate) fn do_tcp_setsockopt(tp: &mut TcpSock, ctx: &mut Ctx<'_>, name: i32, val: &[u8]) -> SysResult<()> {
    let net = ctx.net;
    // These are data/string values, all the others are ints.
    match name {
        TCP_CONGESTION => {
            if val.is_empty() {
                return Err(Errno::EINVAL);
            }
            // tcp_set_congestion_control(): an empty or unknown name is not found.
            let name = String::from_utf8_lossy(opt_name(val));
            // DEVIATION(linux): only cubic, reno and bbr exist (no other modules: htcp,
            // vegas... answer ENOENT as an unloadable module does).
            let algo = super::cong::CongAlgo::from_name(&name).ok_or(Errno::ENOENT)?;
            if algo != tp.ca_algo {
                tp.tcp_reinit_congestion_control(algo, ctx.now);
            }
            return Ok(());
        }
        TCP_ULP => {
            if val.is_empty() {
                return Err(Errno::EINVAL);
            }
            // tcp_set_ulp(): utcp registers no upper-layer protocol (Linux's are modules:
            // tls, espintcp, smc; none is loaded on a stock 6.18), so every name is not found.
            let _ = opt_name(val);
            return Err(Errno::ENOENT);
        }
        TCP_FASTOPEN_KEY => {
            // tcp_fastopen_reset_cipher(): a primary key, optionally with a backup.
            if val.len() != TCP_FASTOPEN_KEY_LENGTH && val.len() != 2 * TCP_FASTOPEN_KEY_LENGTH {
                return Err(Errno::EINVAL);
            }
            tp.ext_mut().fastopen_key = Some(val.to_vec());
            return Ok(());
        }
        _ => {}
    }
    let v = optval_int(val)?;
    match name {
        TCP_NODELAY => {
            tp.nodelay = v != 0;
            if v != 0 {
                tp.tcp_push_pending_frames(ctx);
            }
        }
        TCP_CORK => {
            tp.cork = v != 0;
            if v == 0 {
                let mss = tp.tcp_current_mss();
                tp.__tcp_push_pending_frames(ctx, mss, super::output::TCP_NAGLE_PUSH | tp.nonagle());
            }
        }
        TCP_MAXSEG => {
            if v != 0 && !(88..=32767).contains(&v) {
                return Err(Errno::EINVAL);
            }
            tp.user_mss = v as u32;
        }
        TCP_KEEPIDLE => {
            tp.ext_mut().keepalive_time = in_range(v, 1, 32767)? as u32;
            // tcp_sock_set_keepidle_locked(): a running keepalive timer follows.
            tp.tcp_keepalive_rearm(ctx.now, net);
        }
        TCP_KEEPINTVL => tp.ext_mut().keepalive_intvl = in_range(v, 1, 32767)? as u32,
        TCP_KEEPCNT => tp.ext_mut().keepalive_probes = in_range(v, 1, 127)? as u8,
        TCP_SYNCNT => tp.ext_mut().syn_retries = in_range(v, 1, 127)? as u8,
        TCP_LINGER2 => {
            tp.ext_mut().linger2 = if v < 0 { -1 } else { v.min(super::TCP_FIN_TIMEOUT_MAX) };
        }
        TCP_THIN_LINEAR_TIMEOUTS => tp.thin_lto = in_range(v, 0, 1)? != 0,
        // Linux has kept TCP_THIN_DUPACK as a checked no-op since 4.13 (RACK replaced it).
        TCP_THIN_DUPACK => {
            in_range(v, 0, 1)?;
        }
        // DEVIATION(linux): utcp has no repair mode (checkpoint/restore of a connection's
        // state); it answers as Linux answers a process without CAP_NET_ADMIN
        // (tcp_can_repair_sock() false), so tp->repair stays 0 and what needs it fails as
        // Linux's checks make it fail outside repair mode.
        TCP_REPAIR => return Err(Errno::EPERM),
        TCP_REPAIR_QUEUE => return Err(Errno::EPERM),
        TCP_QUEUE_SEQ => {
            // In CLOSE, the queue selector is TCP_NO_QUEUE outside repair mode.
            return Err(if tp.state != TcpState::Close { Errno::EPERM } else { Errno::EINVAL });
        }
        TCP_REPAIR_OPTIONS => return Err(Errno::EINVAL),
        TCP_REPAIR_WINDOW => return Err(Errno::EPERM),
        TCP_TIMESTAMP => return Err(Errno::EPERM),
        TCP_SAVE_SYN => {
            tp.save_syn = in_range(v, 0, 2)? as u8;
            if tp.save_syn != 0 {
                ctx.net.save_syn_used.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        TCP_FASTOPEN => {
            // fastopen_queue_tune(): the TFO request queue of a (future) listener.
            if v < 0 || !matches!(tp.state, TcpState::Close | TcpState::Listen) {
                return Err(Errno::EINVAL);
            }
            tp.ext_mut().fastopen_max_qlen = v.min(net.sysctl.somaxconn.get() as i32);
        }
        TCP_FASTOPEN_CONNECT => {
            in_range(v, 0, 1)?;
            // DEVIATION(linux): utcp sends no data on a SYN (no TFO client); it answers as
            // Linux does when net.ipv4.tcp_fastopen lacks TFO_CLIENT_ENABLE.
            return Err(Errno::EOPNOTSUPP);
        }
        TCP_FASTOPEN_NO_COOKIE => {
            in_range(v, 0, 1)?;
            if !matches!(tp.state, TcpState::Close | TcpState::Listen) {
                return Err(Errno::EINVAL);
            }
            tp.ext_mut().fastopen_no_cookie = v != 0;
        }
        TCP_RTO_MAX_MS => {
            // 1 s ..= TCP_RTO_MAX_SEC (120 s).
            in_range(v, 1000, 120_000)?;
            // msecs_to_jiffies(): kept in whole jiffies, so 65535 reads back 65536.
            tp.ext_mut().rto_max = jiffies_from_us(v as i64 * 1000);
            tp.rto = tp.rto.min(tp.ext().rto_max);
        }
        TCP_RTO_MIN_US => tp.rto_min = jiffies_in(v, super::TCP_RTO_MIN)?,
        TCP_DELACK_MAX_US => tp.ext_mut().delack_max = jiffies_in(v, super::TCP_DELACK_MAX)?,
        TCP_QUICKACK => {
            tp.quickack_opt = v != 0;
            if v != 0 {
                tp.ack.pingpong = 0;
                let rm = tp.ack.rcv_mss.max(1);
                tp.ack.quick = (tp.rcv_wnd / (2 * rm)).clamp(2, 16) as u8;
                if tp.ack.pending & ICSK_ACK_SCHED != 0 {
                    tp.tcp_cleanup_rbuf(ctx, 1);
                    if tp.ack.pending & ICSK_ACK_SCHED != 0 {
                        tp.tcp_send_ack(ctx);
                    }
                    // __tcp_sock_set_quickack(): an even value returns to pingpong mode.
                    if v & 1 == 0 {
                        tp.ack.pingpong = tp.ack.pingpong.max(1);
                    }
                }
            } else {
                tp.ack.pingpong = tp.ack.pingpong.max(1);
            }
        }
        TCP_WINDOW_CLAMP => {
            if v == 0 {
                if tp.state != TcpState::Close {
                    return Err(Errno::EINVAL);
                }
                tp.window_clamp = 0;
            } else {
                // max_t(int, SOCK_MIN_RCVBUF / 2, val): a negative value is the minimum.
                let min = super::SOCK_MIN_RCVBUF / 2;
                tp.window_clamp = v.max(min as i32) as u32;
                tp.rcv_ssthresh = tp.rcv_ssthresh.min(tp.window_clamp);
            }
        }
        TCP_INQ => {
            if !(0..=1).contains(&v) {
                return Err(Errno::EINVAL);
            }
            tp.recvmsg_inq = v != 0;
        }
        TCP_USER_TIMEOUT => {
            if v < 0 {
                return Err(Errno::EINVAL);
            }
            tp.ext_mut().user_timeout_ms = v as u32;
        }
        TCP_NOTSENT_LOWAT => {
            tp.ext_mut().notsent_lowat = v as u32;
            // A raised limit may let writers go on: sk->sk_write_space() at once.
            tp.sk_stream_write_space(ctx);
        }
        TCP_DEFER_ACCEPT => {
            // Seconds, kept as SYN-ACK retransmissions (secs_to_retrans()).
            tp.defer_accept = super::listen::secs_to_retrans(v, 1, 120);
        }
        // DEVIATION(linux): TCP_TX_DELAY delays departures through an EDT qdisc (fq); utcp's
        // devices send in FIFO order at once, so it answers as a kernel without the option
        // (before 5.4). TCP_MD5SIG/TCP_MD5SIG_EXT: as a kernel without CONFIG_TCP_MD5SIG.
        _ => return Err(Errno::ENOPROTOOPT),
    }
    Ok(())
}

/// `usecs_to_jiffies(val)` for TCP_RTO_MIN_US and TCP_DELACK_MAX_US: between
/// `TCP_TIMEOUT_MIN` and `max`, else EINVAL (the value is unsigned there).
fn jiffies_in(v: i32, max: Duration) -> SysResult<Duration> {
    let d = jiffies_from_us(v as u32 as i64);
    if d > max || d < super::TCP_TIMEOUT_MIN {
        return Err(Errno::EINVAL);
    }
    Ok(d)
}

/// `do_tcp_getsockopt()`: the value's bytes (the caller truncates them to `len`, the
/// caller's `optlen`). TCP_SAVED_SYN, which consumes what it reads, is
/// [`tcp_getsockopt_saved_syn`].
pub(crate) fn do_tcp_getsockopt(tp: &TcpSock, net: &Netns, now: Instant, name: i32, len: usize) -> SysResult<Vec<u8>> {
    let i = |v: i32| v.to_ne_bytes().to_vec();
    Ok(match name {
        TCP_THIN_LINEAR_TIMEOUTS => i(tp.thin_lto as i32),
        TCP_THIN_DUPACK => i(0),
        // Repair mode is never on (see do_tcp_setsockopt).
        TCP_REPAIR => i(0),
        TCP_REPAIR_QUEUE | TCP_QUEUE_SEQ => return Err(Errno::EINVAL),
        TCP_REPAIR_WINDOW => {
            return Err(if len != REPAIR_WINDOW_LEN { Errno::EINVAL } else { Errno::EPERM });
        }
        // tcp_clock_ts() + tp->tsoffset: the TSval this socket would send now.
        TCP_TIMESTAMP => i(tp.tcp_time_stamp(now) as i32),
        TCP_FASTOPEN => i(tp.ext().fastopen_max_qlen),
        TCP_FASTOPEN_CONNECT => i(0),
        TCP_FASTOPEN_NO_COOKIE => i(tp.ext().fastopen_no_cookie as i32),
        TCP_FASTOPEN_KEY => tp.ext().fastopen_key.clone().unwrap_or_default(),
        TCP_SAVE_SYN => i(tp.save_syn as i32),
        // Neither cubic nor reno has a get_info(): no tcp_cc_info bytes; bbr's tcp_bbr_info.
        TCP_CC_INFO => tp.tcp_ca_get_info(),
        // No ULP attached: a zero length.
        TCP_ULP => Vec::new(),
        TCP_IS_MPTCP => i(0),
        // DEVIATION(linux): no page of a utcp socket can be mmap()ed, so every request names
        // an address that is not a TCP mapping: EINVAL, as Linux's own checks of a short
        // struct or of a foreign address answer.
        TCP_ZEROCOPY_RECEIVE => return Err(Errno::EINVAL),
        TCP_RTO_MAX_MS => i(tp.ext().rto_max.as_millis() as i32),
        TCP_RTO_MIN_US => i(tp.rto_min.as_micros() as i32),
        TCP_DELACK_MAX_US => i(tp.ext().delack_max.as_micros() as i32),
        TCP_INFO => tcp_info_bytes(&tcp_get_info(tp, now, net)).to_vec(),
        TCP_USER_TIMEOUT => i(tp.ext().user_timeout_ms as i32),
        TCP_NOTSENT_LOWAT => i(tp.ext().notsent_lowat as i32),
        TCP_DEFER_ACCEPT => i(super::listen::retrans_to_secs(tp.defer_accept, 1, 120)),
        TCP_NODELAY => i(tp.nodelay as i32),
        TCP_CORK => i(tp.cork as i32),
        // mss_cache (536 until connect() syncs it to the route, with room for the timestamp
        // option), or the user's value on a closed or listening socket.
        TCP_MAXSEG => i(if tp.user_mss != 0 && matches!(tp.state, TcpState::Close | TcpState::Listen) {
            tp.user_mss
        } else {
            tp.mss_cache
        } as i32),
        TCP_KEEPIDLE => i(if tp.ext().keepalive_time != 0 {
            tp.ext().keepalive_time as i32
        } else {
            net.sysctl.tcp_keepalive_time.get() as i32
        }),
        TCP_KEEPINTVL => i(if tp.ext().keepalive_intvl != 0 {
            tp.ext().keepalive_intvl as i32
        } else {
            net.sysctl.tcp_keepalive_intvl.get() as i32
        }),
        TCP_KEEPCNT => i(if tp.ext().keepalive_probes != 0 {
            tp.ext().keepalive_probes as i32
        } else {
            net.sysctl.tcp_keepalive_probes.get() as i32
        }),
        TCP_SYNCNT => i(if tp.ext().syn_retries != 0 {
            tp.ext().syn_retries as i32
        } else {
            net.sysctl.tcp_syn_retries.get() as i32
        }),
        TCP_LINGER2 => i(match tp.ext().linger2 {
            0 => net.sysctl.tcp_fin_timeout.get() as i32,
            l => l,
        }),
        // !inet_csk_in_pingpong_mode().
        TCP_QUICKACK => i((tp.ack.pingpong == 0) as i32),
        TCP_WINDOW_CLAMP => i(tp.window_clamp as i32),
        TCP_INQ => i(tp.recvmsg_inq as i32),
        TCP_CONGESTION => {
            let mut v = tp.ca_algo.name().as_bytes().to_vec();
            v.resize(16, 0); // TCP_CA_NAME_MAX
            v
        }
        _ => return Err(Errno::ENOPROTOOPT),
    })
}

/// `do_tcp_getsockopt(TCP_SAVED_SYN)`: the SYN's headers, once; a `len` too short for them is
/// EINVAL with the length needed; nothing saved reads as zero bytes.
pub(crate) fn tcp_getsockopt_saved_syn(tp: &mut TcpSock, len: usize) -> Result<Vec<u8>, (Errno, usize)> {
    match tp.ext_if_any().and_then(|e| e.saved_syn.take()) {
        Some(syn) if len < syn.len() => {
            let need = syn.len();
            tp.ext_mut().saved_syn = Some(syn);
            Err((Errno::EINVAL, need))
        }
        Some(syn) => Ok(syn.to_vec()),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn net() -> Netns {
        Netns::new(Ipv4Addr::new(192, 0, 2, 1), 1500, 1)
    }

    fn set(tp: &mut TcpSock, net: &Netns, name: i32, val: &[u8]) -> SysResult<()> {
        let mut out = Vec::new();
        let mut ctx = Ctx::new(Instant::ZERO, net, &mut out);
        do_tcp_setsockopt(tp, &mut ctx, name, val)
    }

    fn get(tp: &TcpSock, net: &Netns, name: i32) -> SysResult<i32> {
        do_tcp_getsockopt(tp, net, Instant::ZERO, name, 4).map(|b| i32::from_ne_bytes(b[..4].try_into().unwrap()))
    }

    #[test]
    fn keepalive_ranges_and_defaults() {
        let net = net();
        let mut tp = TcpSock::new(&net, Instant::ZERO);
        assert_eq!(get(&tp, &net, TCP_KEEPIDLE), Ok(7200));
        assert_eq!(set(&mut tp, &net, TCP_KEEPIDLE, &0i32.to_ne_bytes()), Err(Errno::EINVAL));
        assert_eq!(set(&mut tp, &net, TCP_KEEPIDLE, &32768i32.to_ne_bytes()), Err(Errno::EINVAL));
        set(&mut tp, &net, TCP_KEEPIDLE, &30i32.to_ne_bytes()).unwrap();
        assert_eq!(get(&tp, &net, TCP_KEEPIDLE), Ok(30));
        assert_eq!(set(&mut tp, &net, TCP_KEEPCNT, &128i32.to_ne_bytes()), Err(Errno::EINVAL));
    }

    #[test]
    fn short_values_unknown_names_and_congestion() {
        let net = net();
        let mut tp = TcpSock::new(&net, Instant::ZERO);
        assert_eq!(set(&mut tp, &net, TCP_NODELAY, &[1]), Err(Errno::EINVAL));
        assert_eq!(set(&mut tp, &net, 9999, &1i32.to_ne_bytes()), Err(Errno::ENOPROTOOPT));
        assert_eq!(do_tcp_getsockopt(&tp, &net, Instant::ZERO, 9999, 4), Err(Errno::ENOPROTOOPT));
        assert_eq!(set(&mut tp, &net, TCP_CONGESTION, b"bogus"), Err(Errno::ENOENT));
        assert_eq!(set(&mut tp, &net, TCP_CONGESTION, b""), Err(Errno::EINVAL));
        // A name that is empty up to its NUL is looked up, and not found.
        assert_eq!(set(&mut tp, &net, TCP_CONGESTION, &[0, 0, 0, 0]), Err(Errno::ENOENT));
        // Only 15 bytes are read: "cubicX..." does not match, "reno" + NUL does.
        assert_eq!(set(&mut tp, &net, TCP_CONGESTION, b"0123456789abcdereno"), Err(Errno::ENOENT));
        set(&mut tp, &net, TCP_CONGESTION, b"reno\0junk").unwrap();
        let name = do_tcp_getsockopt(&tp, &net, Instant::ZERO, TCP_CONGESTION, 16).unwrap();
        assert_eq!(name.len(), 16);
        assert_eq!(&name[..5], b"reno\0");
    }

    #[test]
    fn maxseg_bounds_and_window_clamp_zero() {
        let net = net();
        let mut tp = TcpSock::new(&net, Instant::ZERO);
        assert_eq!(set(&mut tp, &net, TCP_MAXSEG, &87i32.to_ne_bytes()), Err(Errno::EINVAL));
        set(&mut tp, &net, TCP_MAXSEG, &1000i32.to_ne_bytes()).unwrap();
        assert_eq!(get(&tp, &net, TCP_MAXSEG), Ok(1000));
        // 0 is allowed in CLOSE only.
        set(&mut tp, &net, TCP_WINDOW_CLAMP, &0i32.to_ne_bytes()).unwrap();
        tp.state = TcpState::Listen;
        assert_eq!(set(&mut tp, &net, TCP_WINDOW_CLAMP, &0i32.to_ne_bytes()), Err(Errno::EINVAL));
    }
}
