//! Packet building (inbound) and matching (outbound), following packetdrill's
//! `run_packet.c`: script sequence numbers are mapped to the live ISN, TS ecr values to the
//! live TS vals they echo, and outbound packets are compared field by field in the order
//! `verify_tcp()` uses, with packetdrill's error wording.

use crate::ast::{TcpOption, TcpOptions, TcpSpec};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// Internet checksum over `data`, continuing `sum`.
fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [b] = chunks.remainder() {
        sum += (*b as u32) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// TCP flag bits from a packetdrill flag string (`.` is ACK, `-` none).
pub fn flag_bits(flags: &str) -> Result<(u8, u8), String> {
    let mut f = 0u8;
    let mut ae = 0u8;
    for c in flags.chars() {
        f |= match c {
            'F' => 0x01,
            'S' => 0x02,
            'R' => 0x04,
            'P' => 0x08,
            '.' => 0x10,
            'U' => 0x20,
            'E' => 0x40,
            'W' => 0x80,
            'A' => {
                ae = 1;
                0
            }
            '-' => 0,
            other => return Err(format!("unsupported TCP flag '{other}'")),
        };
    }
    Ok((f, ae))
}

/// Per-connection state packetdrill keeps in `struct socket` for mapping values.
#[derive(Debug, Default, Clone)]
pub struct ConnMap {
    /// The script's local ISN (from the first outbound SYN / SYN-ACK).
    pub script_local_isn: u32,
    /// The live local ISN, once seen.
    pub live_local_isn: Option<u32>,
    /// Script TS val -> live TS val of outbound packets.
    pub ts_val_map: HashMap<u32, u32>,
    /// First (script, live) outbound TS val pair.
    pub first_ts: Option<(u32, u32)>,
}

impl ConnMap {
    fn ack_offset(&self) -> u32 {
        self.live_local_isn.unwrap_or(0).wrapping_sub(self.script_local_isn)
    }
}

/// Encodes TCP options; sack blocks are shifted by `sack_off`, TS ecr is mapped by `ecr`.
fn encode_options(
    opts: &[TcpOption],
    sack_off: u32,
    mut ecr: impl FnMut(u32) -> Result<u32, String>,
    ack: bool,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for o in opts {
        match o {
            TcpOption::Nop => out.push(1),
            TcpOption::Eol => out.push(0),
            TcpOption::Mss(m) => {
                out.extend_from_slice(&[2, 4]);
                out.extend_from_slice(&m.to_be_bytes());
            }
            TcpOption::WScale(w) => out.extend_from_slice(&[3, 3, *w]),
            TcpOption::SackOk => out.extend_from_slice(&[4, 2]),
            TcpOption::Sack(blocks) => {
                out.extend_from_slice(&[5, (2 + 8 * blocks.len()) as u8]);
                for (l, r) in blocks {
                    out.extend_from_slice(&l.wrapping_add(sack_off).to_be_bytes());
                    out.extend_from_slice(&r.wrapping_add(sack_off).to_be_bytes());
                }
            }
            TcpOption::Timestamp { val, ecr: e } => {
                out.extend_from_slice(&[8, 10]);
                out.extend_from_slice(&val.to_be_bytes());
                let live = if ack { ecr(*e)? } else { *e };
                out.extend_from_slice(&live.to_be_bytes());
            }
            TcpOption::Md5(_) | TcpOption::FastOpen(_) | TcpOption::FastOpenExp(_) | TcpOption::AccEcn(_) => {
                return Err(format!("unsupported TCP option {o:?}"));
            }
        }
    }
    if out.len() > 40 {
        return Err("TCP options too long".into());
    }
    Ok(out)
}

/// Addresses and ports of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    /// Source address (IPv4, or IPv6 under `--ip_version=ipv6`).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// The bytes of an address.
fn octets(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Builds the inbound IPv4+TCP (or IPv6+TCP, for IPv6 addresses: traffic class `tos`, hop
/// limit `ttl`, flow label 0, as packetdrill's `new_tcp_packet()` for AF_INET6) packet for
/// `spec`, mapping ack/SACK/TS ecr to live values.
pub fn build_inbound(spec: &TcpSpec, t: Tuple, map: &ConnMap, tos: u8, ttl: u8) -> Result<Vec<u8>, String> {
    let (flags, ae) = flag_bits(&spec.flags)?;
    let is_ack = flags & 0x10 != 0;
    let ack_off = map.ack_offset();
    let opts = match &spec.options {
        TcpOptions::Any => return Err("<...> is not allowed on inbound packets".into()),
        TcpOptions::List(l) => l,
    };
    let mut opt_bytes = encode_options(
        opts,
        ack_off,
        |e| {
            if let Some(v) = map.ts_val_map.get(&e) {
                Ok(*v)
            } else {
                Err(format!(
                    "unable to infer live TS ecr for script TS ecr {e};  no matching or preceding outbound TS val"
                ))
            }
        },
        is_ack,
    )?;
    while opt_bytes.len() % 4 != 0 {
        opt_bytes.push(0);
    }
    let tcp_len = 20 + opt_bytes.len() + spec.payload_len as usize;
    let v6 = t.src.is_ipv6();
    let ihl = if v6 { 40 } else { 20 };
    let total = ihl + tcp_len;
    if tcp_len > 65535 || (!v6 && total > 65535) {
        return Err("packet too long".into());
    }
    let mut p = vec![0u8; total];
    if v6 {
        p[0] = 0x60 | (tos >> 4);
        p[1] = tos << 4;
        p[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        p[6] = 6;
        p[7] = ttl;
        p[8..24].copy_from_slice(&octets(&t.src));
        p[24..40].copy_from_slice(&octets(&t.dst));
    } else {
        p[0] = 0x45;
        p[1] = tos;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = ttl;
        p[9] = 6;
        p[12..16].copy_from_slice(&octets(&t.src));
        p[16..20].copy_from_slice(&octets(&t.dst));
        let c = fold(sum16(0, &p[..20]));
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let tcp = &mut p[ihl..];
    tcp[0..2].copy_from_slice(&t.sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&t.dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&spec.seq_start.to_be_bytes());
    let ack = if is_ack { spec.ack.unwrap_or(0).wrapping_add(ack_off) } else { spec.ack.unwrap_or(0) };
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12] = (((20 + opt_bytes.len()) / 4) as u8) << 4 | ae;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&spec.win.unwrap_or(0).to_be_bytes());
    tcp[18..20].copy_from_slice(&spec.urg.unwrap_or(0).to_be_bytes());
    tcp[20..20 + opt_bytes.len()].copy_from_slice(&opt_bytes);
    let mut pseudo = 0u32;
    pseudo = sum16(pseudo, &octets(&t.src));
    pseudo = sum16(pseudo, &octets(&t.dst));
    pseudo += 6 + tcp_len as u32;
    let c = fold(sum16(pseudo, tcp));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    Ok(p)
}

/// A parsed outbound packet.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// Addresses and ports.
    pub tuple: Tuple,
    /// An IPv6 packet (`ihl` is then 5 and `tot_len` the payload length plus 20, so that the
    /// TCP length reads the same).
    pub v6: bool,
    /// IP TOS byte.
    pub tos: u8,
    /// IP TTL.
    pub ttl: u8,
    /// IP header length in 32-bit words.
    pub ihl: u8,
    /// IP total length.
    pub tot_len: u16,
    /// Whether the IP header checksum is right.
    pub ip_csum_ok: bool,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Data offset (words).
    pub doff: u8,
    /// Flags byte.
    pub flags: u8,
    /// Reserved bits (3 bits) and the AE bit.
    pub res: u8,
    /// Window.
    pub win: u16,
    /// Urgent pointer.
    pub urg: u16,
    /// Raw option bytes.
    pub options: Vec<u8>,
    /// Payload.
    pub payload: Vec<u8>,
}

/// Parses an IPv6+TCP packet (TCP right after the fixed header, as utcp sends it).
fn parse6(b: &[u8]) -> Result<Parsed, String> {
    if b.len() < 60 || b[6] != 6 {
        return Err("outbound packet is not IPv6/TCP".into());
    }
    let plen = u16::from_be_bytes([b[4], b[5]]) as usize;
    let t = &b[40..(40 + plen).min(b.len())];
    let doff = t[12] >> 4;
    let th = doff as usize * 4;
    if th < 20 || t.len() < th {
        return Err("bad TCP header length".into());
    }
    let a = |o: usize| IpAddr::from(<[u8; 16]>::try_from(&b[o..o + 16]).expect("16 bytes"));
    Ok(Parsed {
        tuple: Tuple {
            src: a(8),
            dst: a(24),
            sport: u16::from_be_bytes([t[0], t[1]]),
            dport: u16::from_be_bytes([t[2], t[3]]),
        },
        v6: true,
        tos: (b[0] << 4) | (b[1] >> 4),
        ttl: b[7],
        ihl: 5,
        tot_len: (plen + 20) as u16,
        ip_csum_ok: true,
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
        doff,
        flags: t[13],
        res: t[12] & 0x0f,
        win: u16::from_be_bytes([t[14], t[15]]),
        urg: u16::from_be_bytes([t[18], t[19]]),
        options: t[20..th].to_vec(),
        payload: t[th..].to_vec(),
    })
}

/// Parses an IPv4+TCP (or IPv6+TCP) packet.
pub fn parse(b: &[u8]) -> Result<Parsed, String> {
    if !b.is_empty() && b[0] >> 4 == 6 {
        return parse6(b);
    }
    if b.len() < 40 || b[0] >> 4 != 4 || b[9] != 6 {
        return Err("outbound packet is not IPv4/TCP".into());
    }
    let ihl = b[0] & 0xf;
    let ih = ihl as usize * 4;
    let tot_len = u16::from_be_bytes([b[2], b[3]]);
    let t = &b[ih..];
    let doff = t[12] >> 4;
    let th = doff as usize * 4;
    if th < 20 || t.len() < th {
        return Err("bad TCP header length".into());
    }
    Ok(Parsed {
        tuple: Tuple {
            src: Ipv4Addr::new(b[12], b[13], b[14], b[15]).into(),
            dst: Ipv4Addr::new(b[16], b[17], b[18], b[19]).into(),
            sport: u16::from_be_bytes([t[0], t[1]]),
            dport: u16::from_be_bytes([t[2], t[3]]),
        },
        v6: false,
        tos: b[1],
        ttl: b[8],
        ihl,
        tot_len,
        ip_csum_ok: fold(sum16(0, &b[..ih])) == 0,
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
        doff,
        flags: t[13],
        res: t[12] & 0x0f,
        win: u16::from_be_bytes([t[14], t[15]]),
        urg: u16::from_be_bytes([t[18], t[19]]),
        options: t[20..th].to_vec(),
        payload: t[th..].to_vec(),
    })
}

/// One option as (kind, bytes including kind and length).
fn split_options(mut o: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    while let Some(&k) = o.first() {
        if k == 0 || k == 1 {
            v.push((k, vec![k]));
            o = &o[1..];
            if k == 0 {
                // packetdrill's iterator stops at EOL? It keeps walking padding as EOLs.
                continue;
            }
            continue;
        }
        if o.len() < 2 || (o[1] as usize) < 2 || o.len() < o[1] as usize {
            v.push((k, o.to_vec()));
            break;
        }
        let l = o[1] as usize;
        v.push((k, o[..l].to_vec()));
        o = &o[l..];
    }
    v
}

fn flags_string(f: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [(0x01, 'F'), (0x02, 'S'), (0x04, 'R'), (0x08, 'P'), (0x20, 'U'), (0x40, 'E'), (0x80, 'W')] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    if f & 0x10 != 0 {
        s.push('.');
    }
    s
}

fn options_string(o: &[u8]) -> String {
    let mut parts = Vec::new();
    for (k, b) in split_options(o) {
        parts.push(match k {
            0 => "eol".to_string(),
            1 => "nop".to_string(),
            2 if b.len() == 4 => format!("mss {}", u16::from_be_bytes([b[2], b[3]])),
            3 if b.len() == 3 => format!("wscale {}", b[2]),
            4 => "sackOK".to_string(),
            5 => {
                let blocks: Vec<String> = b[2..]
                    .chunks_exact(8)
                    .map(|c| {
                        format!(
                            "{}:{}",
                            u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                            u32::from_be_bytes([c[4], c[5], c[6], c[7]])
                        )
                    })
                    .collect();
                format!("sack {}", blocks.join(" "))
            }
            8 if b.len() == 10 => format!(
                "TS val {} ecr {}",
                u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
                u32::from_be_bytes([b[6], b[7], b[8], b[9]])
            ),
            k => format!("opt{k}"),
        });
    }
    parts.join(",")
}

/// packetdrill-style one-line dump of a (script-space) packet.
pub fn dump(p: &Parsed) -> String {
    let mut s = format!(
        "{} {}:{}({})",
        flags_string(p.flags),
        p.seq,
        p.seq.wrapping_add(p.payload.len() as u32),
        p.payload.len()
    );
    if p.flags & 0x10 != 0 {
        s.push_str(&format!(" ack {}", p.ack));
    }
    s.push_str(&format!(" win {}", p.win));
    if p.urg != 0 {
        s.push_str(&format!(" urg {}", p.urg));
    }
    if !p.options.is_empty() {
        s.push_str(&format!(" <{}>", options_string(&p.options)));
    }
    s
}

fn check(name: &str, expected: u32, actual: u32) -> Result<(), String> {
    if expected != actual {
        return Err(format!(
            "live packet field {name}: expected: {expected} (0x{expected:x}) vs actual: {actual} (0x{actual:x})"
        ));
    }
    Ok(())
}

/// Matching configuration.
pub struct MatchCfg {
    /// `--tcp_ts_tick_usecs` (0 = don't check TS val).
    pub ts_tick_usecs: u32,
    /// Tolerance for TS val checks, µs.
    pub tolerance_usecs: i64,
}

/// Verifies a live outbound packet against the script's expectation (`verify_outbound_live_packet`
/// minus timing). Updates the TS mappings. On success returns nothing; on failure the
/// packetdrill-style error with script/actual dumps.
pub fn verify_outbound(spec: &TcpSpec, live: &Parsed, map: &mut ConnMap, cfg: &MatchCfg) -> Result<(), String> {
    let (sflags, sae) = flag_bits(&spec.flags)?;
    // Map into script space.
    let mut actual = live.clone();
    let seq_off = map.script_local_isn.wrapping_sub(map.live_local_isn.unwrap_or(map.script_local_isn));
    actual.seq = live.seq.wrapping_add(seq_off);
    // Script option bytes (TS values as written).
    let (script_opts, nocheck) = match &spec.options {
        TcpOptions::Any => (Vec::new(), true),
        TcpOptions::List(l) => {
            let mut b = encode_options(l, 0, Ok, true)?;
            while b.len() % 4 != 0 {
                b.push(0);
            }
            (b, false)
        }
    };
    // TS val mapping.
    let find_ts = |o: &[u8]| {
        split_options(o)
            .into_iter()
            .find(|(k, b)| *k == 8 && b.len() == 10)
            .map(|(_, b)| (u32::from_be_bytes([b[2], b[3], b[4], b[5]]), u32::from_be_bytes([b[6], b[7], b[8], b[9]])))
    };
    let live_ts = find_ts(&live.options);
    let script_ts = if nocheck { None } else { find_ts(&script_opts) };
    let mut mapped_opts = live.options.clone();
    if let (Some((sval, _)), Some((aval, _))) = (script_ts, live_ts) {
        map.ts_val_map.insert(sval, aval);
        if map.first_ts.is_none() {
            map.first_ts = Some((sval, aval));
        }
        let (fs, fa) = map.first_ts.expect("set");
        let v = fs.wrapping_add(aval.wrapping_sub(fa));
        // rewrite in mapped_opts
        let mut i = 0;
        while i < mapped_opts.len() {
            match mapped_opts[i] {
                0 | 1 => i += 1,
                8 if i + 10 <= mapped_opts.len() => {
                    mapped_opts[i + 2..i + 6].copy_from_slice(&v.to_be_bytes());
                    break;
                }
                _ => {
                    let l = mapped_opts.get(i + 1).copied().unwrap_or(1).max(1) as usize;
                    i += l;
                }
            }
        }
    }
    actual.options = mapped_opts;
    let script_dump = {
        let sp = Parsed {
            tuple: live.tuple,
            v6: live.v6,
            tos: 0,
            ttl: 0,
            ihl: 5,
            tot_len: 0,
            ip_csum_ok: true,
            seq: spec.seq_start,
            ack: spec.ack.unwrap_or(0),
            doff: 0,
            flags: sflags,
            res: sae,
            win: spec.win.unwrap_or(u16::MAX),
            urg: spec.urg.unwrap_or(0),
            options: script_opts.clone(),
            payload: vec![0; spec.payload_len as usize],
        };
        let mut d = dump(&sp);
        if spec.win.is_none() {
            d = d.replace(" win 65535", "");
        }
        if nocheck {
            d.push_str(" <...>");
        }
        d
    };
    let res = (|| -> Result<(), String> {
        if !live.ip_csum_ok {
            return Err("bad outbound IP checksum".into());
        }
        let allowance = if nocheck { live.options.len() } else { 0 };
        let script_doff = (20 + script_opts.len()) / 4;
        let script_tot = 20 + 20 + script_opts.len() + spec.payload_len as usize;
        if live.v6 {
            check("ipv6_payload_len", (script_tot - 20 + allowance) as u32, live.tot_len as u32 - 20)?;
        } else {
            check("ipv4_version", 4, 4)?;
            check("ipv4_protocol", 6, 6)?;
            check("ipv4_header_length", 5, live.ihl as u32)?;
            check("ipv4_total_length", (script_tot + allowance) as u32, live.tot_len as u32)?;
        }
        check("tcp_data_offset", (script_doff + allowance / 4) as u32, live.doff as u32)?;
        let bit = |f: u8, b: u8| (f & b != 0) as u32;
        check("tcp_fin", bit(sflags, 0x01), bit(live.flags, 0x01))?;
        check("tcp_syn", bit(sflags, 0x02), bit(live.flags, 0x02))?;
        check("tcp_rst", bit(sflags, 0x04), bit(live.flags, 0x04))?;
        check("tcp_psh", bit(sflags, 0x08), bit(live.flags, 0x08))?;
        check("tcp_ack", bit(sflags, 0x10), bit(live.flags, 0x10))?;
        check("tcp_urg", bit(sflags, 0x20), bit(live.flags, 0x20))?;
        check("tcp_ece", bit(sflags, 0x40), bit(live.flags, 0x40))?;
        check("tcp_cwr", bit(sflags, 0x80), bit(live.flags, 0x80))?;
        check("tcp_ae", sae as u32, (live.res & 1) as u32)?;
        check("tcp_reserved_bits", 0, (live.res >> 1) as u32)?;
        check("tcp_seq", spec.seq_start, actual.seq)?;
        check("tcp_ack_seq", spec.ack.unwrap_or(0), actual.ack)?;
        if let Some(w) = spec.win {
            check("tcp_window", w as u32, live.win as u32)?;
        }
        check("tcp_urg_ptr", spec.urg.unwrap_or(0) as u32, live.urg as u32)?;
        if !nocheck {
            let a = split_options(&live.options);
            let s = split_options(&script_opts);
            if a.len() != s.len() {
                return Err("bad outbound TCP options".into());
            }
            for (i, ((ak, ab), (sk, sb))) in a.iter().zip(s.iter()).enumerate() {
                if ak != sk {
                    return Err("bad outbound TCP options".into());
                }
                match ak {
                    0 | 1 => {}
                    8 => {
                        if cfg.ts_tick_usecs != 0 {
                            let (sv, _) = script_ts.unwrap_or((0, 0));
                            let av = find_ts(&actual.options).map(|x| x.0).unwrap_or(0);
                            let dev = (av.wrapping_sub(sv) as i32).unsigned_abs() as i64;
                            if dev * cfg.ts_tick_usecs as i64 > cfg.tolerance_usecs {
                                return Err(format!(
                                    "bad outbound TCP timestamp value, tolerance {}",
                                    cfg.tolerance_usecs
                                ));
                            }
                        }
                    }
                    _ => {
                        let err = if ab.len() != sb.len() {
                            Some("bad length")
                        } else if ab != sb {
                            Some("bad value")
                        } else {
                            None
                        };
                        if let Some(e) = err {
                            return Err(format!(
                                "{e} in outbound TCP option (kind={sk}): expected: {} actual: {} (option {i})",
                                options_string(sb),
                                options_string(ab)
                            ));
                        }
                    }
                }
            }
        }
        if live.payload.iter().any(|&b| b != 0) {
            return Err("incorrect outbound data payload".into());
        }
        Ok(())
    })();
    res.map_err(|e| format!("{e}\nscript packet: {script_dump}\nactual packet: {}", dump(&actual)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(flags: &str, seq: u32, len: u32, ack: Option<u32>, win: Option<u16>, opts: TcpOptions) -> TcpSpec {
        TcpSpec {
            flags: flags.into(),
            seq_start: seq,
            seq_end: seq + len,
            payload_len: len,
            ack,
            win,
            urg: None,
            options: opts,
        }
    }

    fn tuple() -> Tuple {
        Tuple {
            src: Ipv4Addr::new(192, 0, 2, 1).into(),
            dst: Ipv4Addr::new(192, 168, 0, 1).into(),
            sport: 40000,
            dport: 8080,
        }
    }

    #[test]
    fn build_and_parse_roundtrip() {
        let s = spec(
            "S",
            0,
            0,
            None,
            Some(32792),
            TcpOptions::List(vec![TcpOption::Mss(1000), TcpOption::Nop, TcpOption::WScale(7)]),
        );
        let b = build_inbound(&s, tuple(), &ConnMap::default(), 0, 64).unwrap();
        assert_eq!(b.len(), 20 + 28);
        let p = parse(&b).unwrap();
        assert!(p.ip_csum_ok);
        assert_eq!(p.flags, 0x02);
        assert_eq!(p.win, 32792);
        assert_eq!(p.options, vec![2, 4, 0x03, 0xe8, 1, 3, 3, 7]);
        // TCP checksum verifies to zero over pseudo header + segment.
        let mut ps = sum16(0, &[192, 0, 2, 1]);
        ps = sum16(ps, &[192, 168, 0, 1]);
        ps += 6 + 28;
        assert_eq!(fold(sum16(ps, &b[20..])), 0);
    }

    #[test]
    fn ack_is_mapped_to_live_isn() {
        let map = ConnMap { script_local_isn: 0, live_local_isn: Some(1000), ..Default::default() };
        let s = spec(".", 1, 10, Some(1), Some(257), TcpOptions::List(vec![]));
        let p = parse(&build_inbound(&s, tuple(), &map, 0, 64).unwrap()).unwrap();
        assert_eq!(p.ack, 1001);
        assert_eq!(p.seq, 1);
        assert_eq!(p.payload.len(), 10);
    }

    #[test]
    fn ts_ecr_needs_mapping() {
        let s = spec(
            ".",
            1,
            0,
            Some(1),
            Some(257),
            TcpOptions::List(vec![TcpOption::Nop, TcpOption::Nop, TcpOption::Timestamp { val: 5, ecr: 100 }]),
        );
        let e = build_inbound(&s, tuple(), &ConnMap::default(), 0, 64).unwrap_err();
        assert!(e.contains("unable to infer live TS ecr"), "{e}");
        let mut map = ConnMap::default();
        map.ts_val_map.insert(100, 77777);
        let p = parse(&build_inbound(&s, tuple(), &map, 0, 64).unwrap()).unwrap();
        assert_eq!(&p.options[8..12], &77777u32.to_be_bytes());
    }

    #[test]
    fn outbound_matching() {
        let mut map = ConnMap { script_local_isn: 0, live_local_isn: Some(5000), ..Default::default() };
        let cfg = MatchCfg { ts_tick_usecs: 0, tolerance_usecs: 4000 };
        // Build a "live" packet with the stack's ISN.
        let live = spec(".", 5001, 0, Some(1001), Some(500), TcpOptions::List(vec![]));
        let bytes = build_inbound(&live, tuple(), &ConnMap::default(), 0, 64).unwrap();
        let p = parse(&bytes).unwrap();
        let want = spec(".", 1, 0, Some(1001), None, TcpOptions::List(vec![]));
        verify_outbound(&want, &p, &mut map, &cfg).unwrap();
        let want_win = spec(".", 1, 0, Some(1001), Some(501), TcpOptions::List(vec![]));
        let e = verify_outbound(&want_win, &p, &mut map, &cfg).unwrap_err();
        assert!(e.starts_with("live packet field tcp_window: expected: 501 (0x1f5) vs actual: 500 (0x1f4)"), "{e}");
        let want_ack = spec(".", 1, 0, Some(1002), None, TcpOptions::List(vec![]));
        assert!(verify_outbound(&want_ack, &p, &mut map, &cfg).unwrap_err().contains("tcp_ack_seq"));
        let want_opts = spec(".", 1, 0, Some(1001), None, TcpOptions::List(vec![TcpOption::Nop]));
        assert!(verify_outbound(&want_opts, &p, &mut map, &cfg).is_err());
        let any = spec(".", 1, 0, Some(1001), None, TcpOptions::Any);
        verify_outbound(&any, &p, &mut map, &cfg).unwrap();
        let fin = spec("F.", 1, 0, Some(1001), None, TcpOptions::List(vec![]));
        assert!(verify_outbound(&fin, &p, &mut map, &cfg).unwrap_err().contains("tcp_fin"));
    }
}
