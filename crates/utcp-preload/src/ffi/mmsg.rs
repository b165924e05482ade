//! `recvmmsg()` and `sendmmsg()` on a utcp socket (net/socket.c `do_recvmmsg()`,
//! `__sys_sendmmsg()`): one `recvmsg`/`sendmsg` per `mmsghdr`, as the kernel loops.

use super::*;

/// `UIO_MAXIOV`: both calls handle at most this many messages.
const UIO_MAXIOV: u32 = 1024;

/// `do_recvmmsg()`: a bad timeout is EINVAL before anything else; then one `recvmsg` per
/// entry (each with `flags` less MSG_WAITFORONE, which turns on MSG_DONTWAIT after the first),
/// stopping at an error, at out-of-band data, or when the timeout (checked after each message,
/// as Linux does: it never bounds a wait) has run out, which is written back. The count is
/// returned if any message came, the error otherwise.
// DEVIATION(linux): an error after the first message is dropped; Linux keeps it in
// `sk->sk_err` for the next call (unless EAGAIN).
///
/// SAFETY (callers): `vec` points to `vlen` mmsghdrs (when `vlen > 0`); `timeout` is NULL or valid.
unsafe fn recvmmsg_utcp(
    st: &Preload,
    u: i32,
    vec: *mut libc::mmsghdr,
    vlen: u32,
    mut flags: c_int,
    timeout: *mut libc::timespec,
) -> SysResult<usize> {
    // SAFETY: NULL or valid per the contract.
    let end = match unsafe { timeout.as_ref() } {
        None => None,
        Some(t) if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) => return Err(Errno::EINVAL),
        Some(t) => Some(std::time::Instant::now() + Duration::new(t.tv_sec as u64, t.tv_nsec as u32)),
    };
    let vlen = vlen.min(UIO_MAXIOV) as usize;
    let mut got = 0usize;
    let mut err = None;
    while got < vlen {
        // SAFETY: `vec` holds `vlen` entries per the contract.
        let e = unsafe { &mut *vec.add(got) };
        // SAFETY: the caller's msghdr.
        match unsafe { recvmsg_utcp(st, u, &mut e.msg_hdr, flags & !libc::MSG_WAITFORONE) } {
            Ok(n) => e.msg_len = n as libc::c_uint,
            Err(x) => {
                err = Some(x);
                break;
            }
        }
        got += 1;
        if flags & libc::MSG_WAITFORONE != 0 {
            flags |= libc::MSG_DONTWAIT;
        }
        if let Some(end) = end {
            let left = end.saturating_duration_since(std::time::Instant::now());
            // SAFETY: non-NULL (an end time exists) and valid per the contract.
            let t = unsafe { &mut *timeout };
            t.tv_sec = left.as_secs() as libc::time_t;
            t.tv_nsec = left.subsec_nanos() as c_long;
            if left.is_zero() {
                break;
            }
        }
        if e.msg_hdr.msg_flags & libc::MSG_OOB != 0 {
            break;
        }
    }
    match err {
        Some(x) if got == 0 => Err(x),
        _ => Ok(got),
    }
}

/// `recvmmsg()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    vec: *mut libc::mmsghdr,
    vlen: libc::c_uint,
    flags: c_int,
    timeout: *mut libc::timespec,
) -> c_int {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::recvmmsg()(fd, vec, vlen, flags, timeout) };
    };
    if vlen > 0 && vec.is_null() {
        return ret_int(Err(Errno::EFAULT));
    }
    // SAFETY: the caller's vector and timeout.
    ret_int(unsafe { recvmmsg_utcp(st, u, vec, vlen, flags, timeout) }.map(|n| n as i32))
}

/// `__sys_sendmmsg()`: one `sendmsg` per entry (MSG_EOR taken from each header's
/// `msg_flags`, as `___sys_sendmsg` allows it), stopping at an error or at a message sent
/// only in part; the count is returned if any message went, the error otherwise. EPIPE raises
/// SIGPIPE as the `sendmsg` behind it does.
///
/// SAFETY (callers): `vec` points to `vlen` mmsghdrs (when `vlen > 0`).
unsafe fn sendmmsg_utcp(st: &Preload, u: i32, vec: *mut libc::mmsghdr, vlen: u32, flags: c_int) -> c_int {
    let vlen = vlen.min(UIO_MAXIOV) as usize;
    let mut sent = 0usize;
    while sent < vlen {
        // SAFETY: `vec` holds `vlen` entries per the contract.
        let e = unsafe { &mut *vec.add(sent) };
        let want: usize = if e.msg_hdr.msg_iov.is_null() {
            0
        } else {
            // SAFETY: the caller's iovecs.
            unsafe { std::slice::from_raw_parts(e.msg_hdr.msg_iov, e.msg_hdr.msg_iovlen) }
                .iter()
                .map(|v| v.iov_len)
                .fold(0usize, usize::saturating_add)
        };
        let f = flags | (e.msg_hdr.msg_flags & libc::MSG_EOR);
        // SAFETY: the caller's msghdr.
        match unsafe { sendmsg_utcp(st, u, &e.msg_hdr, f) } {
            Ok(n) => {
                e.msg_len = n as libc::c_uint;
                sent += 1;
                if n < want {
                    break;
                }
            }
            Err(x) if sent == 0 => return ret_send(Err(x), f) as c_int,
            Err(x) => {
                // The count goes back; SIGPIPE is raised all the same.
                let _ = ret_send(Err(x), f);
                break;
            }
        }
    }
    sent as c_int
}

/// `sendmmsg()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn sendmmsg(fd: c_int, vec: *mut libc::mmsghdr, vlen: libc::c_uint, flags: c_int) -> c_int {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::sendmmsg()(fd, vec, vlen, flags) };
    };
    if vlen > 0 && vec.is_null() {
        return ret_int(Err(Errno::EFAULT));
    }
    // SAFETY: the caller's vector.
    unsafe { sendmmsg_utcp(st, u, vec, vlen, flags) }
}
