//! The system calls of packetdrill's table that `do_syscall` does not handle itself — readv,
//! writev, sendmsg, cap_set, open, sendfile — plus dup/dup2/dup3 (not in packetdrill's table,
//! but scripts for utcp use them).

use super::*;

/// One iovec `{base, len}` (positional, as packetdrill writes it, or `iov_base=`/`iov_len=`).
fn iovec(e: &Expr) -> Result<(bool, usize), SysErr> {
    let Expr::Struct(v) = e else { return serr(format!("unsupported iovec {e}")) };
    let (base, len) = match (e.field("iov_base"), e.field("iov_len")) {
        (Some((_, b)), Some((_, l))) => (b, l),
        _ if v.len() == 2 => (&v[0], &v[1]),
        _ => return serr(format!("unsupported iovec {e}")),
    };
    let len = int(len).map_err(SysErr::Script)?;
    Ok((is_null(base), len.max(0) as usize))
}

fn iovecs(e: &Expr) -> Result<Vec<(bool, usize)>, SysErr> {
    match e {
        Expr::List(items) => items.iter().map(iovec).collect(),
        e if is_null(e) => Ok(Vec::new()),
        other => serr(format!("expected an iovec array, got {other}")),
    }
}

/// Checks packetdrill's `iovcnt` against the array, as `syscall_readv` does.
fn check_count(sc: &SyscallEvent, n: usize) -> Result<(), SysErr> {
    let cnt = iarg(sc, 2)?;
    if cnt != n as i64 {
        return serr(format!("iov_count {cnt} does not match {n}-element iovec array"));
    }
    Ok(())
}

/// Runs `sc` if it is one of the calls of this module.
pub(super) fn extra(
    stack: &Stack,
    fd: &dyn Fn(usize) -> Result<i32, SysErr>,
    sc: &SyscallEvent,
    script_result: Option<i64>,
    out: &mut SysOut,
) -> Option<Result<i64, SysErr>> {
    let r = match sc.name.as_str() {
        "readv" => (|| {
            let f = fd(0)?;
            let v = iovecs(arg(sc, 1)?)?;
            check_count(sc, v.len())?;
            let mut bufs: Vec<Vec<u8>> = v.iter().map(|(_, l)| vec![0u8; *l]).collect();
            let mut iov: Vec<IoVec> = bufs
                .iter_mut()
                .zip(&v)
                .map(|(b, (null, l))| IoVec { base: if *null { None } else { Some(&mut b[..]) }, len: *l })
                .collect();
            Ok(stack.readv(f, &mut iov)? as i64)
        })(),
        "writev" => (|| {
            let f = fd(0)?;
            let v = iovecs(arg(sc, 1)?)?;
            check_count(sc, v.len())?;
            let bufs: Vec<Vec<u8>> = v.iter().map(|(_, l)| vec![0u8; *l]).collect();
            let iov: Vec<(Option<&[u8]>, usize)> =
                bufs.iter().zip(&v).map(|(b, (null, l))| (if *null { None } else { Some(&b[..]) }, *l)).collect();
            Ok(stack.writev(f, &iov)? as i64)
        })(),
        "sendmsg" => (|| {
            let f = fd(0)?;
            let m = arg(sc, 1)?;
            let flags = iarg(sc, 2)? as i32;
            // cmsg_new(): each message's int payload in a CMSG_SPACE(4) slot.
            let mut control = Vec::new();
            match m.field("msg_control") {
                Some((_, Expr::List(items))) => {
                    for it in items {
                        let field = |n: &str| -> Result<i64, SysErr> {
                            let (_, v) = it.field(n).ok_or_else(|| SysErr::Script(format!("cmsg lacks {n}")))?;
                            int(v).map_err(SysErr::Script)
                        };
                        control.extend(20u64.to_ne_bytes());
                        control.extend((field("cmsg_level")? as i32).to_ne_bytes());
                        control.extend((field("cmsg_type")? as i32).to_ne_bytes());
                        control.extend((field("cmsg_data")? as i32).to_ne_bytes());
                        control.extend([0u8; 4]);
                    }
                }
                Some((_, v)) if !is_null(v) => return serr(format!("sendmsg: unsupported msg_control {v}")),
                _ => {}
            }
            let v = match m.field("msg_iov") {
                Some((_, e)) => iovecs(e)?,
                None => Vec::new(),
            };
            let bufs: Vec<Vec<u8>> = v.iter().map(|(_, l)| vec![0u8; *l]).collect();
            let iov: Vec<(Option<&[u8]>, usize)> =
                bufs.iter().zip(&v).map(|(b, (null, l))| (if *null { None } else { Some(&b[..]) }, *l)).collect();
            Ok(stack.sendmsg_control(f, &iov, &control, flags)? as i64)
        })(),
        // The run already has every capability utcp models.
        "cap_set" => Ok(0),
        "open" | "sendfile" => serr(format!("{}: utcp has no file system (files are not modelled)", sc.name)),
        "dup" | "dup2" | "dup3" => (|| {
            let old = fd(0)?;
            let r = match sc.name.as_str() {
                "dup" => stack.dup(old)?,
                "dup2" => stack.dup2(old, iarg(sc, 1)? as i32)?,
                _ => stack.dup3(old, iarg(sc, 1)? as i32, iarg(sc, 2)? as i32)?,
            };
            if let Some(s) = script_result {
                out.effects.push(Effect::NewFd { script: s, live: r, socket: false });
            }
            Ok(r as i64)
        })(),
        _ => return None,
    };
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(text: &str) -> SyscallEvent {
        let script = crate::parser::parse_script(&format!("0 {text}\n"), &HashMap::new()).expect("parses");
        match &script.events[0].kind {
            EventKind::Syscall(sc) => sc.clone(),
            other => panic!("not a syscall: {other:?}"),
        }
    }

    fn run(stack: &Stack, fds: &HashMap<i64, i32>, text: &str) -> (i64, Option<Errno>, SysOut) {
        let clock = VirtualClock::new(Instant::from_millis(1000));
        let sc = call(text);
        let mut out = SysOut {
            ret: 0,
            errno: None,
            effects: Vec::new(),
            post: Ok(()),
            end: Instant::ZERO,
            scm_times: Vec::new(),
        };
        let net = ScriptNet {
            local: SocketAddr::new(Ipv4Addr::new(192, 168, 0, 1).into(), 8080),
            remote: SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).into(), 8080),
            domain: 2,
        };
        match do_syscall(stack, &clock, fds, &sc, &net, &mut out) {
            Ok(v) => (v, None, out),
            Err(SysErr::Errno(e)) => (-1, Some(e), out),
            Err(SysErr::Script(s)) => panic!("{text}: {s}"),
        }
    }

    #[test]
    fn pipe_readv_writev_dup_fcntl_splice_poll_dispatch() {
        let net = utcp::sim::SimNet::new(utcp::netdev::memlink::LinkConfig::default());
        let st = &net.a.stack;
        let mut fds = HashMap::new();
        let (r, _, out) = run(st, &fds, "pipe([3, 4]) = 0");
        assert_eq!(r, 0);
        assert_eq!(out.effects.len(), 2);
        fds.insert(3, 3);
        fds.insert(4, 4);
        assert_eq!(run(st, &fds, "writev(4, [{..., 2}, {..., 3}], 2) = 5").0, 5);
        assert_eq!(run(st, &fds, "fcntl(3, F_SETFL, O_RDONLY|O_NONBLOCK) = 0").0, 0);
        assert_eq!(run(st, &fds, "readv(3, [{..., 1}, {..., 10}], 2) = 5").0, 5);
        assert_eq!(
            run(st, &fds, "read(3, ..., 10) = -1 EAGAIN (Resource temporarily unavailable)").1,
            Some(Errno::EAGAIN)
        );
        assert_eq!(run(st, &fds, "dup(4) = 5").0, 5);
        assert_eq!(run(st, &fds, "dup2(4, 9) = 9").0, 9);
        assert_eq!(run(st, &fds, "dup3(4, 4, 0) = -1 EINVAL (Invalid argument)").1, Some(Errno::EINVAL));
        assert_eq!(run(st, &fds, "fcntl(4, F_GETFD) = 0").0, 0);
        let (_, _, out) = run(st, &fds, "poll([{fd=3, events=POLLIN, revents=0}], 1, 0) = 0");
        assert!(out.post.is_ok());
        assert_eq!(run(st, &fds, "write(4, ..., 3) = 3").0, 3);
        let (n, _, out) = run(st, &fds, "poll([{fd=3, events=POLLIN, revents=POLLIN}], 1, 100) = 1");
        assert_eq!(n, 1);
        assert!(out.post.is_ok(), "{:?}", out.post);
        assert_eq!(run(st, &fds, "cap_set(...) = 0").0, 0);
        // splice from a socket that is not connected.
        let (s, _, _) = run(st, &fds, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 6");
        fds.insert(6, s as i32);
        assert_eq!(
            run(st, &fds, "splice(6, NULL, 4, NULL, 10, 0) = -1 ENOTCONN (Transport endpoint is not connected)").1,
            Some(Errno::ENOTCONN)
        );
        assert_eq!(
            run(
                st,
                &fds,
                "sendmsg(6, {msg_name(...)=..., msg_iov(1)=[{..., 10}], msg_flags=0}, 0) = -1 EPIPE (Broken pipe)"
            )
            .1,
            Some(Errno::EPIPE)
        );
    }
}
