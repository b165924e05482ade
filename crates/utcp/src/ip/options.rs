//! IPv4 header options (net/ipv4/ip_options.c): `ip_options_compile` validates them (the
//! IP_OPTIONS a socket sets, and those a received datagram carries), `ip_options_build`
//! writes them into an outgoing header, `ip_options_echo` turns a received set into the
//! reply's (a SYN's, for the SYN-ACK and the child socket), and `ip_options_undo` gives
//! getsockopt(IP_OPTIONS) back what was set.

use crate::errno::Errno;
use std::net::Ipv4Addr;

/// End of the option list.
pub(crate) const IPOPT_END: u8 = 0;
/// No operation (padding).
pub(crate) const IPOPT_NOOP: u8 = 1;
/// Record route.
pub(crate) const IPOPT_RR: u8 = 7;
/// Internet timestamp.
pub(crate) const IPOPT_TIMESTAMP: u8 = 68;
/// Security (RFC 1108).
pub const IPOPT_SEC: u8 = 130;
/// Loose source and record route.
pub(crate) const IPOPT_LSRR: u8 = 131;
/// Commercial IP security (CIPSO).
pub(crate) const IPOPT_CIPSO: u8 = 134;
/// Stream identifier.
pub const IPOPT_SID: u8 = 136;
/// Strict source and record route.
pub(crate) const IPOPT_SSRR: u8 = 137;
/// Router alert (RFC 2113).
pub(crate) const IPOPT_RA: u8 = 148;
/// Timestamp flags: timestamps only.
pub(crate) const IPOPT_TS_TSONLY: u8 = 0;
/// Timestamp flags: address and timestamp pairs.
pub(crate) const IPOPT_TS_TSANDADDR: u8 = 1;
/// Timestamp flags: prespecified addresses.
pub(crate) const IPOPT_TS_PRESPEC: u8 = 3;
/// The most option bytes an IPv4 header holds (`MAX_IPOPTLEN`).
pub(crate) const MAX_IPOPTLEN: usize = 40;

/// `struct ip_options`: the option bytes and where each option sits. Offsets (`srr`, `rr`,
/// `ts`, `router_alert`) count from the start of the IP header, as Linux's do (so the first
/// option byte is at 20; 0 = absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IpOptions {
    /// The first hop of a source route (`faddr`): where the datagram is sent.
    pub(crate) faddr: Ipv4Addr,
    /// Bytes used in `data`, a multiple of 4 once compiled for sending.
    pub(crate) optlen: u8,
    /// Offset of the source route option.
    pub(crate) srr: u8,
    /// Offset of the record route option.
    pub(crate) rr: u8,
    /// Offset of the timestamp option.
    pub(crate) ts: u8,
    /// The source route is strict (SSRR).
    pub(crate) is_strictroute: bool,
    /// The sender records its address in the RR option.
    pub(crate) rr_needaddr: bool,
    /// The sender records a timestamp in the TS option.
    pub(crate) ts_needtime: bool,
    /// The sender records its address in the TS option.
    pub(crate) ts_needaddr: bool,
    /// Offset of a router alert option with value 0.
    pub(crate) router_alert: u8,
    /// The option bytes (`__data`).
    pub(crate) data: [u8; MAX_IPOPTLEN],
}

impl Default for IpOptions {
    fn default() -> IpOptions {
        IpOptions {
            faddr: Ipv4Addr::UNSPECIFIED,
            optlen: 0,
            srr: 0,
            rr: 0,
            ts: 0,
            is_strictroute: false,
            rr_needaddr: false,
            ts_needtime: false,
            ts_needaddr: false,
            router_alert: 0,
            data: [0; MAX_IPOPTLEN],
        }
    }
}

/// Which kind of address `inet_addr_type()` finds (the kinds the options ask about).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AddrType {
    /// One of this host's addresses (RTN_LOCAL).
    Local,
    /// Any other unicast address (RTN_UNICAST).
    Unicast,
    /// 0.0.0.0/8 and 255.255.255.255 (RTN_BROADCAST).
    Broadcast,
    /// 224.0.0.0/4 (RTN_MULTICAST).
    Multicast,
}

/// `inet_addr_type()` on a host whose addresses are `local` and the loopback net.
pub(crate) fn inet_addr_type(local: Ipv4Addr, addr: Ipv4Addr) -> AddrType {
    if addr.octets()[0] == 0 || addr.is_broadcast() {
        AddrType::Broadcast
    } else if addr.is_multicast() {
        AddrType::Multicast
    } else if addr == local || addr.is_loopback() {
        AddrType::Local
    } else {
        AddrType::Unicast
    }
}

/// What a received datagram's options are compiled against (`skb` with its input route):
/// the address the RR and TS options record (`spec_dst`) and the time they record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RcvCtx {
    /// `fib_compute_spec_dst()`: our address on the way the datagram came.
    pub(crate) spec_dst: Ipv4Addr,
    /// `inet_current_timestamp()`: milliseconds since midnight UTC, host order.
    pub(crate) midtime: u32,
}

/// `inet_current_timestamp()` from a realtime clock in nanoseconds since the epoch.
pub(crate) fn inet_current_timestamp(realtime_ns: u64) -> u32 {
    let secs = (realtime_ns / 1_000_000_000) % 86400;
    (secs * 1000 + (realtime_ns % 1_000_000_000) / 1_000_000) as u32
}

/// Reads the option at `at` of `d`, bounds checked (0 outside).
fn byte(d: &[u8], at: usize) -> u8 {
    d.get(at).copied().unwrap_or(0)
}

/// Writes 4 bytes at `at` when they fit.
fn put4(d: &mut [u8], at: usize, v: [u8; 4]) {
    if let Some(s) = d.get_mut(at..at + 4) {
        s.copy_from_slice(&v);
    }
}

/// `__ip_options_compile()`: checks the options in `opt.data[..opt.optlen]` and records
/// where each sits. `rcv` is `None` for options a socket sets (IP_OPTIONS: a source route's
/// first hop moves to `faddr`, option kinds Linux leaves to CAP_NET_RAW are allowed, utcp's
/// callers holding it) and the datagram's context for received ones (RR and TS record our
/// address and time). `local` is this host's address (`inet_addr_type`). Err carries the
/// offset of the faulty byte from the start of the IP header (ICMP parameter problem's
/// pointer), as `pp_ptr - iph`.
pub(crate) fn ip_options_compile(opt: &mut IpOptions, rcv: Option<RcvCtx>, local: Ipv4Addr) -> Result<(), u8> {
    let total = (opt.optlen as usize).min(MAX_IPOPTLEN);
    let d = &mut opt.data;
    let mut i = 0usize;
    let err = |at: usize| Err((20 + at) as u8);
    while i < total {
        let l = total - i;
        match d[i] {
            IPOPT_END => {
                // Everything after the end of the list is made END too.
                for b in &mut d[i + 1..total] {
                    *b = IPOPT_END;
                }
                return Ok(());
            }
            IPOPT_NOOP => {
                i += 1;
                continue;
            }
            _ => {}
        }
        if l < 2 {
            return err(i);
        }
        let optlen = d[i + 1] as usize;
        if optlen < 2 || optlen > l {
            return err(i);
        }
        let o = i; // the option's first byte
        match d[o] {
            IPOPT_SSRR | IPOPT_LSRR => {
                if optlen < 3 {
                    return err(o + 1);
                }
                if d[o + 2] < 4 {
                    return err(o + 2);
                }
                // RFC 1812 5.2.4.1: one source route only.
                if opt.srr != 0 {
                    return err(o);
                }
                if rcv.is_none() {
                    if d[o + 2] != 4 || optlen < 7 || (optlen - 3) & 3 != 0 {
                        return err(o + 1);
                    }
                    opt.faddr = Ipv4Addr::new(d[o + 3], d[o + 4], d[o + 5], d[o + 6]);
                    if optlen > 7 {
                        d.copy_within(o + 7..o + optlen, o + 3);
                    }
                }
                opt.is_strictroute = d[o] == IPOPT_SSRR;
                opt.srr = (20 + o) as u8;
            }
            IPOPT_RR => {
                if opt.rr != 0 {
                    return err(o);
                }
                if optlen < 3 {
                    return err(o + 1);
                }
                let ptr = d[o + 2] as usize;
                if ptr < 4 {
                    return err(o + 2);
                }
                if ptr <= optlen {
                    if ptr + 3 > optlen {
                        return err(o + 2);
                    }
                    if let Some(r) = rcv {
                        put4(d, o + ptr - 1, r.spec_dst.octets());
                    }
                    d[o + 2] += 4;
                    opt.rr_needaddr = true;
                }
                opt.rr = (20 + o) as u8;
            }
            IPOPT_TIMESTAMP => {
                if opt.ts != 0 {
                    return err(o);
                }
                if optlen < 4 {
                    return err(o + 1);
                }
                let ptr = d[o + 2] as usize;
                if ptr < 5 {
                    return err(o + 2);
                }
                if ptr <= optlen {
                    if ptr + 3 > optlen {
                        return err(o + 2);
                    }
                    let mut timeptr = None;
                    match d[o + 3] & 0xf {
                        IPOPT_TS_TSONLY => {
                            if rcv.is_some() {
                                timeptr = Some(o + ptr - 1);
                            }
                            opt.ts_needtime = true;
                            d[o + 2] += 4;
                        }
                        IPOPT_TS_TSANDADDR => {
                            if ptr + 7 > optlen {
                                return err(o + 2);
                            }
                            if let Some(r) = rcv {
                                put4(d, o + ptr - 1, r.spec_dst.octets());
                                timeptr = Some(o + ptr + 3);
                            }
                            opt.ts_needaddr = true;
                            opt.ts_needtime = true;
                            d[o + 2] += 8;
                        }
                        IPOPT_TS_PRESPEC => {
                            if ptr + 7 > optlen {
                                return err(o + 2);
                            }
                            let at = o + ptr - 1;
                            let addr = Ipv4Addr::new(d[at], d[at + 1], d[at + 2], d[at + 3]);
                            // Not ours to stamp: left for the host it names.
                            if inet_addr_type(local, addr) != AddrType::Unicast {
                                if rcv.is_some() {
                                    timeptr = Some(o + ptr + 3);
                                }
                                opt.ts_needtime = true;
                                d[o + 2] += 8;
                            }
                        }
                        // Other flags: CAP_NET_RAW for a socket's; kept as they are.
                        _ => {}
                    }
                    if let (Some(t), Some(r)) = (timeptr, rcv) {
                        put4(d, t, r.midtime.to_be_bytes());
                    }
                } else if d[o + 3] & 0xf != IPOPT_TS_PRESPEC {
                    // The option is full: count the overflow.
                    let overflow = d[o + 3] >> 4;
                    if overflow == 15 {
                        return err(o + 3);
                    }
                    if rcv.is_some() {
                        d[o + 3] = (d[o + 3] & 0xf) | ((overflow + 1) << 4);
                    }
                }
                opt.ts = (20 + o) as u8;
            }
            IPOPT_RA => {
                if optlen < 4 {
                    return err(o + 1);
                }
                if d[o + 2] == 0 && d[o + 3] == 0 {
                    opt.router_alert = (20 + o) as u8;
                }
            }
            // cipso_v4_validate(): no CIPSO DOI is configured (NetLabel), so every CIPSO
            // option is refused, as the kernel without a DOI refuses it.
            IPOPT_CIPSO => return err(o),
            // IPOPT_SEC, IPOPT_SID and unknown kinds: CAP_NET_RAW for a socket's; passed on.
            _ => {}
        }
        i += optlen;
    }
    Ok(())
}

/// `ip_options_get()`: a socket's IP_OPTIONS value, padded with END to a multiple of 4 and
/// compiled. EINVAL when it is longer than 40 bytes or does not compile.
pub(crate) fn ip_options_get(val: &[u8], local: Ipv4Addr) -> Result<IpOptions, Errno> {
    if val.len() > MAX_IPOPTLEN {
        return Err(Errno::EINVAL);
    }
    let mut opt = IpOptions::default();
    opt.data[..val.len()].copy_from_slice(val);
    opt.optlen = (val.len().div_ceil(4) * 4) as u8;
    if opt.optlen != 0 && ip_options_compile(&mut opt, None, local).is_err() {
        return Err(Errno::EINVAL);
    }
    Ok(opt)
}

/// `ip_options_undo()`: the options as the socket set them (getsockopt(IP_OPTIONS)): the
/// source route's first hop back in place, the pointers the compilation advanced moved
/// back, and the slots they passed cleared.
pub(crate) fn ip_options_undo(opt: &IpOptions) -> Vec<u8> {
    let mut d = opt.data;
    let n = opt.optlen as usize;
    if opt.srr != 0 {
        let o = opt.srr as usize - 20;
        let len = byte(&d, o + 1) as usize;
        if len >= 7 && o + len <= n {
            d.copy_within(o + 3..o + len - 4, o + 7);
            put4(&mut d, o + 3, opt.faddr.octets());
        }
    }
    let back = |d: &mut [u8; MAX_IPOPTLEN], o: usize| {
        d[o + 2] = d[o + 2].wrapping_sub(4);
        let at = (d[o + 2] as usize).wrapping_sub(1);
        put4(&mut d[..], o + at, [0; 4]);
    };
    if opt.rr_needaddr {
        back(&mut d, opt.rr as usize - 20);
    }
    if opt.ts != 0 {
        let o = opt.ts as usize - 20;
        if opt.ts_needtime {
            back(&mut d, o);
            if d[o + 3] & 0xf == IPOPT_TS_PRESPEC {
                d[o + 2] = d[o + 2].wrapping_sub(4);
            }
        }
        if opt.ts_needaddr {
            back(&mut d, o);
        }
    }
    d[..n].to_vec()
}

/// `ip_options_build()`: the option bytes of one outgoing datagram from `saddr` whose final
/// destination is `daddr`: the source route ends at `daddr`, RR and TS record `saddr` and the
/// time (`midtime`, ms since midnight UTC).
pub(crate) fn ip_options_build(opt: &IpOptions, daddr: Ipv4Addr, saddr: Ipv4Addr, midtime: u32) -> [u8; MAX_IPOPTLEN] {
    let mut d = opt.data;
    if opt.srr != 0 {
        let o = opt.srr as usize - 20;
        let at = (o + byte(&d, o + 1) as usize).wrapping_sub(4);
        put4(&mut d, at, daddr.octets());
    }
    if opt.rr_needaddr {
        let o = opt.rr as usize - 20;
        let at = (o + byte(&d, o + 2) as usize).wrapping_sub(5);
        put4(&mut d, at, saddr.octets());
    }
    if opt.ts_needaddr {
        let o = opt.ts as usize - 20;
        let at = (o + byte(&d, o + 2) as usize).wrapping_sub(9);
        put4(&mut d, at, saddr.octets());
    }
    if opt.ts_needtime {
        let o = opt.ts as usize - 20;
        let at = (o + byte(&d, o + 2) as usize).wrapping_sub(5);
        put4(&mut d, at, midtime.to_be_bytes());
    }
    d
}

/// `__ip_options_echo()`: the options of a reply to a datagram from `src` whose compiled
/// options are `sopt`: RR and TS carried on (recording again where there is room), a source
/// route reversed. EINVAL when a recorded option has no room left.
pub(crate) fn ip_options_echo(sopt: &IpOptions, src: Ipv4Addr, local: Ipv4Addr) -> Result<IpOptions, Errno> {
    let mut dopt = IpOptions::default();
    if sopt.optlen == 0 {
        return Ok(dopt);
    }
    let s = &sopt.data;
    let mut dl = 0usize; // bytes written to dopt.data
    if sopt.rr != 0 {
        let o = sopt.rr as usize - 20;
        let optlen = byte(s, o + 1) as usize;
        let soffset = byte(s, o + 2) as usize;
        if o + optlen > MAX_IPOPTLEN || dl + optlen > MAX_IPOPTLEN {
            return Err(Errno::EINVAL);
        }
        dopt.rr = (dl + 20) as u8;
        dopt.data[dl..dl + optlen].copy_from_slice(&s[o..o + optlen]);
        if sopt.rr_needaddr && soffset <= optlen {
            if soffset + 3 > optlen {
                return Err(Errno::EINVAL);
            }
            dopt.data[dl + 2] = (soffset + 4) as u8;
            dopt.rr_needaddr = true;
        }
        dl += optlen;
    }
    if sopt.ts != 0 {
        let o = sopt.ts as usize - 20;
        let optlen = byte(s, o + 1) as usize;
        let mut soffset = byte(s, o + 2) as usize;
        if o + optlen > MAX_IPOPTLEN || dl + optlen > MAX_IPOPTLEN || optlen < 4 {
            return Err(Errno::EINVAL);
        }
        dopt.ts = (dl + 20) as u8;
        dopt.data[dl..dl + optlen].copy_from_slice(&s[o..o + optlen]);
        if soffset <= optlen {
            if sopt.ts_needaddr {
                if soffset + 3 > optlen {
                    return Err(Errno::EINVAL);
                }
                dopt.ts_needaddr = true;
                soffset += 4;
            }
            if sopt.ts_needtime {
                if soffset + 3 > optlen {
                    return Err(Errno::EINVAL);
                }
                if dopt.data[dl + 3] & 0xf != IPOPT_TS_PRESPEC {
                    dopt.ts_needtime = true;
                    soffset += 4;
                } else {
                    dopt.ts_needtime = false;
                    if soffset + 7 <= optlen {
                        let at = dl + soffset - 1;
                        let d = &dopt.data;
                        let addr = Ipv4Addr::new(d[at], d[at + 1], d[at + 2], d[at + 3]);
                        if inet_addr_type(local, addr) != AddrType::Unicast {
                            dopt.ts_needtime = true;
                            soffset += 8;
                        }
                    }
                }
            }
            dopt.data[dl + 2] = soffset as u8;
        }
        dl += optlen;
    }
    if sopt.srr != 0 {
        let st = sopt.srr as usize - 20;
        let optlen = byte(s, st + 1) as usize;
        let mut soffset = byte(s, st + 2) as usize;
        let mut doffset = 0usize;
        let mut faddr = Ipv4Addr::UNSPECIFIED;
        if soffset > optlen {
            soffset = optlen + 1;
        }
        soffset = soffset.saturating_sub(4);
        let at =
            |k: usize| Ipv4Addr::new(byte(s, st + k), byte(s, st + k + 1), byte(s, st + k + 2), byte(s, st + k + 3));
        if soffset > 3 {
            faddr = at(soffset - 1);
            soffset -= 4;
            doffset = 4;
            while soffset > 3 {
                if dl + doffset + 3 > MAX_IPOPTLEN {
                    return Err(Errno::EINVAL);
                }
                dopt.data[dl + doffset - 1..dl + doffset + 3].copy_from_slice(&at(soffset - 1).octets());
                soffset -= 4;
                doffset += 4;
            }
            // RFC 1812: an illegal route through the sender itself is fixed.
            if at(soffset + 3) == src {
                doffset -= 4;
            }
        }
        if doffset > 3 {
            if dl + doffset + 3 > MAX_IPOPTLEN {
                return Err(Errno::EINVAL);
            }
            dopt.faddr = faddr;
            dopt.data[dl] = s[st];
            dopt.data[dl + 1] = (doffset + 3) as u8;
            dopt.data[dl + 2] = 4;
            dopt.srr = (dl + 20) as u8;
            dl += doffset + 3;
            dopt.is_strictroute = sopt.is_strictroute;
        }
    }
    while dl & 3 != 0 {
        if dl >= MAX_IPOPTLEN {
            return Err(Errno::EINVAL);
        }
        dopt.data[dl] = IPOPT_END;
        dl += 1;
    }
    dopt.optlen = dl as u8;
    Ok(dopt)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    fn set_get(v: &[u8]) -> Result<Vec<u8>, Errno> {
        ip_options_get(v, LOCAL).map(|o| ip_options_undo(&o))
    }

    /// Each value and what Linux 6.18 answers (setsockopt; then getsockopt's bytes), from
    /// the kernel on loopback (scripts/kernel_ip_opts.py prints the same).
    #[test]
    fn setsockopt_and_getsockopt_as_the_kernel() {
        let ok: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"\x01", b"\x01\0\0\0"),
            (b"\x00", b"\0\0\0\0"),
            (b"\x01\x01\x01\x01\x01", b"\x01\x01\x01\x01\x01\0\0\0"),
            (b"\x07\x07\x04\0\0\0\0", b"\x07\x07\x04\0\0\0\0\0"),
            (b"\x07\x0b\x04\x01\x01\x01\x01\x01\x01\x01\x01", b"\x07\x0b\x04\0\0\0\0\x01\x01\x01\x01\0"),
            (b"\x94\x04\x00\x01", b"\x94\x04\x00\x01"),
            (b"\x44\x0c\x05\x00\x02\x02\x02\x02\x02\x02\x02\x02", b"\x44\x0c\x05\x00\0\0\0\0\x02\x02\x02\x02"),
            (b"\x44\x0c\x05\x01\x02\x02\x02\x02\x02\x02\x02\x02", b"\x44\x0c\x05\x01\0\0\0\0\0\0\0\0"),
            (b"\x44\x0c\x05\x03\x0a\0\0\x01\x02\x02\x02\x02", b"\x44\x0c\x05\x03\x0a\0\0\x01\x02\x02\x02\x02"),
            (b"\x44\x0c\x05\x03\x7f\0\0\x01\x02\x02\x02\x02", b"\x44\x0c\x05\x03\x7f\0\0\x01\0\0\0\0"),
            (b"\x83\x07\x04\x0a\0\0\x01", b"\x83\x07\x04\x0a\0\0\x01\0"),
            (b"\x83\x0b\x04\x0a\0\0\x01\x0b\0\0\x02", b"\x83\x0b\x04\x0a\0\0\x01\x0b\0\0\x02\0"),
            (b"\x89\x07\x04\x0a\0\0\x01", b"\x89\x07\x04\x0a\0\0\x01\0"),
            (b"\x82\x0b\0\0\0\0\0\0\0\0\0", b"\x82\x0b\0\0\0\0\0\0\0\0\0\0"),
            (b"\x99\x02", b"\x99\x02\0\0"),
            (b"\x00\x01\x02", b"\0\0\0\0"),
            (b"\x07\x03\x04", b"\x07\x03\x04\0"),
            (b"\x07\x07\x08\0\0\0\0", b"\x07\x07\x08\0\0\0\0\0"),
            (b"\x44\x04\x05\x00", b"\x44\x04\x05\x00"),
            (b"\x44\x08\x09\x00\0\0\0\0", b"\x44\x08\x09\x00\0\0\0\0"),
            (b"\x44\x08\x05\xf0\0\0\0\0", b"\x44\x08\x05\xf0\0\0\0\0"),
            (b"\x44\x08\x09\xe0\0\0\0\0", b"\x44\x08\x09\xe0\0\0\0\0"),
        ];
        for (set, get) in ok {
            assert_eq!(set_get(set).as_deref(), Ok(*get), "{set:x?}");
        }
        let bad: &[&[u8]] = &[
            b"\x44\x0c\x05\x02",
            b"\x86\x06\0\0\0\0",
            &[1; 41],
            b"\x07\x04\x04\x00",
            b"\x07\x07\x03\0\0\0\0",
            b"\x44\x08\x09\xf0\0\0\0\0",
            b"\x07\x01",
            b"\x07",
            b"\x83\x08\x04\0\0\0\0\0",
            b"\x83\x07\x05\0\0\0\0",
            b"\x07\x07\x04\0\0\0\0\x07\x07\x04\0\0\0\0",
            b"\x94\x03\0",
        ];
        for set in bad {
            assert_eq!(set_get(set), Err(Errno::EINVAL), "{set:x?}");
        }
        assert_eq!(set_get(&[1; 40]).unwrap(), [1; 40]);
    }

    #[test]
    fn build_records_and_routes() {
        let o = ip_options_get(b"\x01\x07\x0b\x04\0\0\0\0\0\0\0\0\x44\x0c\x05\x00\0\0\0\0\0\0\0\0", LOCAL).unwrap();
        assert_eq!(o.optlen, 24);
        let d = ip_options_build(&o, Ipv4Addr::new(192, 0, 2, 2), LOCAL, 0x01020304);
        assert_eq!(&d[1..12], b"\x07\x0b\x08\xc0\x00\x02\x01\0\0\0\0");
        assert_eq!(&d[12..24], b"\x44\x0c\x09\x00\x01\x02\x03\x04\0\0\0\0");
        // A loose source route: sent to its first hop, the final destination in its last slot.
        let o = ip_options_get(b"\x83\x0b\x04\x0a\0\0\x01\x0a\0\0\x02", LOCAL).unwrap();
        assert_eq!(o.faddr, Ipv4Addr::new(10, 0, 0, 1));
        let d = ip_options_build(&o, Ipv4Addr::new(192, 0, 2, 2), LOCAL, 0);
        assert_eq!(&d[..12], b"\x83\x0b\x04\x0a\0\0\x02\xc0\x00\x02\x02\0");
    }

    #[test]
    fn received_options_record_and_echo() {
        let peer = Ipv4Addr::new(192, 0, 2, 2);
        // The peer sent RR with its own address in the first slot and TS (timestamps only).
        let mut o = IpOptions::default();
        o.data[..20].copy_from_slice(b"\x07\x0b\x08\xc0\x00\x02\x02\0\0\0\0\x44\x08\x05\x00\0\0\0\0\0");
        o.optlen = 20;
        let rcv = RcvCtx { spec_dst: LOCAL, midtime: 7 };
        ip_options_compile(&mut o, Some(rcv), LOCAL).unwrap();
        assert_eq!(&o.data[..11], b"\x07\x0b\x0c\xc0\x00\x02\x02\xc0\x00\x02\x01");
        assert_eq!(&o.data[11..19], b"\x44\x08\x09\x00\0\0\0\x07");
        // Both full now: the reply carries them unchanged, recording nothing.
        let e = ip_options_echo(&o, peer, LOCAL).unwrap();
        assert_eq!(e.optlen, 20);
        assert_eq!(&e.data[..19], &o.data[..19]);
        assert!(!e.rr_needaddr && !e.ts_needtime);
        // A timestamp option with room records the reply's time.
        let mut o = IpOptions::default();
        o.data[..12].copy_from_slice(b"\x44\x0c\x05\x00\0\0\0\0\0\0\0\0");
        o.optlen = 12;
        ip_options_compile(&mut o, Some(rcv), LOCAL).unwrap();
        let e = ip_options_echo(&o, peer, LOCAL).unwrap();
        assert!(e.ts_needtime);
        let d = ip_options_build(&e, peer, LOCAL, 9);
        assert_eq!(&d[..12], b"\x44\x0c\x0d\x00\0\0\0\x07\0\0\0\x09");
        // Overflow counted when full; 15 overflows is a parameter problem.
        let mut o = IpOptions::default();
        o.data[..4].copy_from_slice(b"\x44\x04\x05\xe0");
        o.optlen = 4;
        ip_options_compile(&mut o, Some(rcv), LOCAL).unwrap();
        assert_eq!(o.data[3], 0xf0);
        let mut o2 = IpOptions { rr: 0, ts: 0, ..o };
        assert_eq!(ip_options_compile(&mut o2, Some(rcv), LOCAL), Err(23));
    }

    #[test]
    fn timestamp_is_ms_since_midnight() {
        assert_eq!(inet_current_timestamp(86_400_000_000_000 + 1_500_000_000), 1500);
    }
}
