//! IP-level socket options (net/ipv4/ip_sockglue.c): `do_ip_setsockopt` and
//! `do_ip_getsockopt` on a socket's [`InetOpts`] (the option part of `struct inet_sock`).

use crate::errno::{Errno, SysResult};
use crate::netns::Netns;
use crate::uapi::opt::*;
use crate::uapi::optval_int;

/// The IP options of one socket (`inet_sock`'s option fields).
#[derive(Clone, Debug)]
pub struct InetOpts {
    /// `inet->tos` (IP_TOS): the TOS byte of every packet this socket sends.
    pub tos: u8,
    /// `inet->uc_ttl` (IP_TTL): -1 = `net.ipv4.ip_default_ttl`.
    pub uc_ttl: i32,
    /// `inet->freebind` (IP_FREEBIND): bind to an address that is not (yet) local.
    pub freebind: bool,
    /// `inet->recverr` (IP_RECVERR).
    pub recverr: bool,
}

impl Default for InetOpts {
    fn default() -> InetOpts {
        InetOpts { tos: 0, uc_ttl: -1, freebind: false, recverr: false }
    }
}

/// `do_ip_setsockopt()`. `priority` is `sk->sk_priority`, which IP_TOS sets.
pub fn do_ip_setsockopt(inet: &mut InetOpts, priority: &mut u32, name: i32, val: &[u8]) -> SysResult<()> {
    let v = optval_int(val)?;
    match name {
        IP_FREEBIND => inet.freebind = v != 0,
        IP_TOS => {
            // The ECN bits stay TCP's; the priority follows the TOS.
            let tos = ((v & !0x3) as u8) | (inet.tos & 0x3);
            inet.tos = tos;
            *priority = super::rt_tos2priority(tos);
        }
        IP_TTL => {
            if v != -1 && !(1..=255).contains(&v) {
                return Err(Errno::EINVAL);
            }
            inet.uc_ttl = v;
        }
        IP_RECVERR => inet.recverr = v != 0,
        _ => return Err(Errno::ENOPROTOOPT),
    }
    Ok(())
}

/// `do_ip_getsockopt()`: the value's bytes.
pub fn do_ip_getsockopt(inet: &InetOpts, net: &Netns, name: i32) -> SysResult<Vec<u8>> {
    let i = |v: i32| v.to_ne_bytes().to_vec();
    Ok(match name {
        IP_TOS => i(inet.tos as i32),
        IP_TTL => i(if inet.uc_ttl < 0 { net.sysctl.ip_default_ttl.get() as i32 } else { inet.uc_ttl }),
        IP_FREEBIND => i(inet.freebind as i32),
        IP_RECVERR => i(inet.recverr as i32),
        _ => return Err(Errno::ENOPROTOOPT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tos_keeps_ecn_bits_and_sets_priority() {
        let mut o = InetOpts { tos: 0x2, ..Default::default() };
        let mut prio = 0;
        do_ip_setsockopt(&mut o, &mut prio, IP_TOS, &0x13i32.to_ne_bytes()).unwrap();
        assert_eq!(o.tos, 0x12);
        assert_eq!(prio, crate::ip::rt_tos2priority(0x12));
    }

    #[test]
    fn ttl_range_and_short_values() {
        let mut o = InetOpts::default();
        let mut prio = 0;
        assert_eq!(do_ip_setsockopt(&mut o, &mut prio, IP_TTL, &0i32.to_ne_bytes()), Err(Errno::EINVAL));
        assert_eq!(do_ip_setsockopt(&mut o, &mut prio, IP_TTL, &256i32.to_ne_bytes()), Err(Errno::EINVAL));
        assert_eq!(do_ip_setsockopt(&mut o, &mut prio, IP_TTL, &[1]), Err(Errno::EINVAL));
        do_ip_setsockopt(&mut o, &mut prio, IP_TTL, &7i32.to_ne_bytes()).unwrap();
        assert_eq!(o.uc_ttl, 7);
        let net = Netns::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 1500, 1);
        assert_eq!(do_ip_getsockopt(&o, &net, IP_TTL).unwrap(), 7i32.to_ne_bytes());
        assert_eq!(do_ip_getsockopt(&o, &net, 9999), Err(Errno::ENOPROTOOPT));
    }
}
