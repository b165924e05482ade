//! TCP-level socket options (net/ipv4/tcp.c): `do_tcp_setsockopt` and `do_tcp_getsockopt`.

use super::ack_flags::ICSK_ACK_SCHED;
use super::info::{tcp_get_info, tcp_info_bytes};
use super::{Ctx, TcpSock, TcpState};
use crate::errno::{Errno, SysResult};
use crate::netns::Netns;
use crate::time::Instant;
use crate::uapi::opt::*;
use crate::uapi::{in_range, optval_int};

/// `do_tcp_setsockopt()`, run with the socket owned.
pub fn do_tcp_setsockopt(tp: &mut TcpSock, ctx: &mut Ctx<'_>, name: i32, val: &[u8]) -> SysResult<()> {
    let net = ctx.net;
    if name == TCP_CONGESTION {
        // tcp_set_congestion_control(): the name up to the first NUL.
        let end = val.iter().position(|&b| b == 0).unwrap_or(val.len());
        if end == 0 {
            return Err(Errno::EINVAL);
        }
        let name = String::from_utf8_lossy(&val[..end]);
        // DEVIATION(linux): only the built-in cubic and reno exist (no modules: bbr,
        // htcp... answer ENOENT as an unloadable module does).
        let algo = super::cong::CongAlgo::from_name(&name).ok_or(Errno::ENOENT)?;
        if algo != tp.ca_algo {
            tp.ca_algo = algo;
            tp.cubic_reset();
        }
        return Ok(());
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
            tp.keepalive_time = in_range(v, 1, 32767)? as u32;
            // tcp_sock_set_keepidle_locked(): a running keepalive timer follows.
            tp.tcp_keepalive_rearm(ctx.now, net);
        }
        TCP_KEEPINTVL => tp.keepalive_intvl = in_range(v, 1, 32767)? as u32,
        TCP_KEEPCNT => tp.keepalive_probes = in_range(v, 1, 127)? as u8,
        TCP_SYNCNT => tp.syn_retries = in_range(v, 1, 127)? as u8,
        TCP_LINGER2 => tp.linger2 = Some(v),
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
                let min = super::SOCK_MIN_RCVBUF / 2;
                tp.window_clamp = (v as u32).max(min);
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
            tp.user_timeout_ms = v as u32;
        }
        TCP_NOTSENT_LOWAT => {
            tp.notsent_lowat = v as u32;
            // A raised limit may let writers go on: tcp_write_space() at once.
            if tp.sk_stream_is_writeable(ctx.net) {
                ctx.ev.write_space = true;
            }
        }
        TCP_DEFER_ACCEPT => {
            // Seconds, kept as SYN-ACK retransmissions (secs_to_retrans()).
            tp.defer_accept = super::listen::secs_to_retrans(v, 1, 120);
        }
        _ => return Err(Errno::ENOPROTOOPT),
    }
    Ok(())
}

/// `do_tcp_getsockopt()`: the value's bytes (the caller truncates them to `optlen`).
pub fn do_tcp_getsockopt(tp: &TcpSock, net: &Netns, now: Instant, name: i32) -> SysResult<Vec<u8>> {
    let i = |v: i32| v.to_ne_bytes().to_vec();
    Ok(match name {
        TCP_INFO => tcp_info_bytes(&tcp_get_info(tp, now, net)).to_vec(),
        TCP_USER_TIMEOUT => i(tp.user_timeout_ms as i32),
        TCP_NOTSENT_LOWAT => i(tp.notsent_lowat as i32),
        TCP_DEFER_ACCEPT => i(super::listen::retrans_to_secs(tp.defer_accept, 1, 120)),
        TCP_NODELAY => i(tp.nodelay as i32),
        TCP_CORK => i(tp.cork as i32),
        TCP_MAXSEG => i(if tp.state == TcpState::Established {
            tp.mss_cache
        } else if tp.user_mss != 0 {
            tp.user_mss
        } else {
            super::TCP_MSS_DEFAULT
        } as i32),
        TCP_KEEPIDLE => i(if tp.keepalive_time != 0 {
            tp.keepalive_time as i32
        } else {
            net.sysctl.tcp_keepalive_time.get() as i32
        }),
        TCP_KEEPINTVL => i(if tp.keepalive_intvl != 0 {
            tp.keepalive_intvl as i32
        } else {
            net.sysctl.tcp_keepalive_intvl.get() as i32
        }),
        TCP_KEEPCNT => i(if tp.keepalive_probes != 0 {
            tp.keepalive_probes as i32
        } else {
            net.sysctl.tcp_keepalive_probes.get() as i32
        }),
        TCP_SYNCNT => {
            i(if tp.syn_retries != 0 { tp.syn_retries as i32 } else { net.sysctl.tcp_syn_retries.get() as i32 })
        }
        TCP_LINGER2 => i(tp.linger2.unwrap_or(net.sysctl.tcp_fin_timeout.get() as i32)),
        TCP_QUICKACK => i((tp.ack.quick > 0 && tp.ack.pingpong == 0) as i32),
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
        do_tcp_getsockopt(tp, net, Instant::ZERO, name).map(|b| i32::from_ne_bytes(b[..4].try_into().unwrap()))
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
        assert_eq!(do_tcp_getsockopt(&tp, &net, Instant::ZERO, 9999), Err(Errno::ENOPROTOOPT));
        assert_eq!(set(&mut tp, &net, TCP_CONGESTION, b"bogus"), Err(Errno::ENOENT));
        assert_eq!(set(&mut tp, &net, TCP_CONGESTION, b""), Err(Errno::EINVAL));
        set(&mut tp, &net, TCP_CONGESTION, b"reno\0junk").unwrap();
        let name = do_tcp_getsockopt(&tp, &net, Instant::ZERO, TCP_CONGESTION).unwrap();
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
