//! `recvmsg` as packetdrill's `syscall_recvmsg` runs it: the control buffer is as long as the
//! expected control messages need (`cmsg_new`: CMSG_SPACE of an int, a `scm_timestamping`, or a
//! `sock_extended_err` with its `sockaddr_in`), and the messages received are compared as
//! `cmsg_expect_eq` does: level, type and length, then `sock_extended_err`'s fields for
//! IP_RECVERR, the software timestamp of SCM_TIMESTAMPING against the script's time (within
//! the tolerance, checked by the runner), the bytes otherwise.

use super::*;

/// What a script expects of one control message's data.
enum Want {
    /// No `cmsg_data`: level and type only.
    Any,
    /// An int (compared byte for byte).
    Int(i64),
    /// `{scm_sec=S, scm_nsec=N}`: `ts[0]` in script time (0/0: not checked).
    Timestamping(i64),
    /// `{ee_errno=..., ee_origin=..., ee_type=..., ee_code=..., ee_info=..., ee_data=...}`.
    ExtendedErr([i64; 6]),
}

impl Want {
    /// The payload length packetdrill gives the message (`cmsg_new`).
    fn len(&self, level: i64) -> usize {
        match self {
            Want::Any | Want::Int(_) => 4,
            Want::Timestamping(_) => 48,
            // struct sock_extended_err + the sockaddr ip(v6)_recv_error appends.
            Want::ExtendedErr(_) => 16 + if level == 0 { 16 } else { 28 },
        }
    }
}

fn want(data: Option<&Expr>) -> Result<Want, SysErr> {
    let Some(d) = data else { return Ok(Want::Any) };
    let f = |name: &str| -> Result<i64, SysErr> {
        let (_, v) = d.field(name).ok_or_else(|| SysErr::Script(format!("cmsg_data lacks {name}")))?;
        int(v).map_err(SysErr::Script)
    };
    if d.field("scm_sec").is_some() {
        return Ok(Want::Timestamping(f("scm_sec")? * 1_000_000 + f("scm_nsec")? / 1000));
    }
    if d.field("ee_errno").is_some() {
        let names = ["ee_errno", "ee_origin", "ee_type", "ee_code", "ee_info", "ee_data"];
        let mut v = [0; 6];
        for (i, n) in names.iter().enumerate() {
            v[i] = f(n)?;
        }
        return Ok(Want::ExtendedErr(v));
    }
    match d {
        Expr::List(_) => serr("SCM_TIMESTAMPING_OPT_STATS attribute lists are not supported".to_string()),
        other => Ok(Want::Int(int(other).map_err(SysErr::Script)?)),
    }
}

pub(super) fn recvmsg(stack: &Stack, sc: &SyscallEvent, f: i32, out: &mut SysOut) -> Result<i64, SysErr> {
    let m = arg(sc, 1)?;
    let flags = iarg(sc, 2)? as i32;
    let mut name = [0u8; 128];
    let has_name = m.field("msg_name").is_some_and(|(_, v)| !is_null(v));
    let mut iov_bufs: Vec<Vec<u8>> = Vec::new();
    let mut iov_null: Vec<bool> = Vec::new();
    if let Some((_, Expr::List(items))) = m.field("msg_iov") {
        for it in items {
            let (base, len) = match it {
                Expr::Struct(v) if v.len() == 2 => (&v[0], int(&v[1]).map_err(SysErr::Script)?),
                other => return serr(format!("recvmsg: unsupported iovec {other}")),
            };
            iov_null.push(is_null(base));
            iov_bufs.push(vec![0u8; len as usize]);
        }
    }
    let want_flags = m.field("msg_flags").map(|x| int(x.1)).transpose().map_err(SysErr::Script)?;
    let mut want_cmsgs = Vec::new();
    if let Some((_, Expr::List(items))) = m.field("msg_control") {
        for it in items {
            let lvl = it.field("cmsg_level").map(|x| int(x.1)).transpose().map_err(SysErr::Script)?.unwrap_or(0);
            let ty = it.field("cmsg_type").map(|x| int(x.1)).transpose().map_err(SysErr::Script)?.unwrap_or(0);
            want_cmsgs.push((lvl, ty, want(it.field("cmsg_data").map(|x| x.1))?));
        }
    }
    const HDR: usize = 16;
    let ctl_len: usize = want_cmsgs.iter().map(|(l, _, w)| HDR + w.len(*l).div_ceil(8) * 8).sum();
    let mut control = vec![0u8; ctl_len];
    let lens: Vec<usize> = iov_bufs.iter().map(|b| b.len()).collect();
    let mut hdr = MsgHdr {
        name: if has_name { Some(&mut name[..]) } else { None },
        namelen: if has_name { 128 } else { 0 },
        iov: iov_bufs
            .iter_mut()
            .zip(&iov_null)
            .zip(lens)
            .map(|((b, null), len)| IoVec { base: if *null { None } else { Some(&mut b[..]) }, len })
            .collect(),
        control: if ctl_len > 0 { Some(&mut control[..]) } else { None },
        controllen: ctl_len,
        flags: 0,
    };
    let n = stack.recvmsg(f, &mut hdr, flags)?;
    let got_flags = hdr.flags;
    let used = hdr.controllen;
    drop(hdr);
    if let Some(w) = want_flags {
        if w != got_flags as i64 {
            out.post = Err(format!("Expected msg_flags 0x{w:x} but got 0x{got_flags:x}"));
            return Ok(n as i64);
        }
    }
    if want_cmsgs.is_empty() {
        return Ok(n as i64);
    }
    let got = utcp::syscall::parse_cmsgs(&control[..used]);
    for (i, (g, (lvl, ty, w))) in got.iter().zip(&want_cmsgs).enumerate() {
        if g.level as i64 != *lvl || g.ty as i64 != *ty {
            out.post =
                Err(format!("Bad cmsg {i}: expected level {lvl} type {ty}, got level {} type {}", g.level, g.ty));
            return Ok(n as i64);
        }
        if g.len != HDR + w.len(*lvl) && !matches!(w, Want::Any) {
            out.post = Err(format!("Bad len in cmsg {i}: expected={} actual={}", HDR + w.len(*lvl), g.len));
            return Ok(n as i64);
        }
        let u32_at =
            |o: usize| g.data.get(o..o + 4).map_or(-1, |b| u32::from_ne_bytes(b.try_into().expect("4")) as i64);
        match w {
            Want::Any => {}
            Want::Int(v) => {
                let gv = g.data.get(..4).map_or(-1, |b| i32::from_ne_bytes(b.try_into().expect("4")) as i64);
                if gv != *v {
                    out.post = Err(format!("Bad cmsg_data: expected: {v} actual: {gv}"));
                    return Ok(n as i64);
                }
            }
            Want::ExtendedErr(v) => {
                let b = |o: usize| g.data.get(o).map_or(-1, |&x| x as i64);
                let got = [u32_at(0), b(4), b(5), b(6), u32_at(8), u32_at(12)];
                let names = ["errno", "origin", "type", "code", "info", "data"];
                if let Some(k) = (0..6).find(|&k| got[k] != v[k]) {
                    out.post =
                        Err(format!("Bad {} in extended err {i}: expected={} actual={}", names[k], v[k], got[k]));
                    return Ok(n as i64);
                }
            }
            Want::Timestamping(t) => {
                if *t != 0 {
                    let sec = i64::from_ne_bytes(g.data[..8].try_into().expect("8"));
                    let nsec = i64::from_ne_bytes(g.data[8..16].try_into().expect("8"));
                    let mono_us = (sec * 1_000_000_000 + nsec - stack.realtime_offset_ns) / 1000;
                    out.scm_times.push((i, *t, mono_us - EPOCH.micros() as i64));
                }
            }
        }
    }
    if got.len() != want_cmsgs.len() {
        let k = got.len().min(want_cmsgs.len());
        out.post = Err(if got.len() > k {
            format!("received more than {k} cmsgs")
        } else {
            format!("received only {k} cmsgs")
        });
    }
    Ok(n as i64)
}
