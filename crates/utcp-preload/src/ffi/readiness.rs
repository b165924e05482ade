//! poll, ppoll, select and epoll hooks: the set is split between utcp and the kernel
//! ([`crate::wait`]) when it holds a utcp socket, and forwarded untouched otherwise.

use super::*;

// ---------------------------------------------------------------------- readiness

/// Whether any of `fds` is a utcp placeholder.
fn any_utcp(st: &Preload, fds: &[libc::pollfd]) -> bool {
    fds.iter().any(|p| st.ufd(p.fd).is_some())
}

/// SAFETY (callers): `fds` is NULL or points to `n` pollfds.
unsafe fn poll_common(
    fds: *mut libc::pollfd,
    n: libc::nfds_t,
    timeout: Option<Duration>,
    sigmask: *const libc::sigset_t,
) -> Option<c_int> {
    let st = state::get()?;
    if fds.is_null() || n == 0 {
        return None;
    }
    // SAFETY: per this function's contract.
    let arr = unsafe { std::slice::from_raw_parts_mut(fds, n as usize) };
    if !any_utcp(st, arr) {
        return None;
    }
    // SAFETY: NULL or the caller's sigset.
    let mask = unsafe { sigmask.as_ref() };
    Some(ret_raw(wait::poll_mixed(st, arr, timeout, mask)))
}

/// `poll()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: c_int) -> c_int {
    // SAFETY: the caller's pollfds; forwarded unchanged when none is ours.
    unsafe {
        poll_common(fds, n, timeout_ms(timeout), std::ptr::null()).unwrap_or_else(|| real::poll()(fds, n, timeout))
    }
}

/// `__poll_chk()`.
///
/// # Safety
/// As glibc's.
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: c_int, fdslen: size_t) -> c_int {
    if (fdslen / std::mem::size_of::<libc::pollfd>()) < n as usize {
        chk_fail();
    }
    // SAFETY: as poll's.
    unsafe { poll(fds, n, timeout) }
}

/// `ppoll()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut libc::pollfd,
    n: libc::nfds_t,
    ts: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    // SAFETY: NULL or the caller's timespec.
    let Ok(t) = ts_timeout(unsafe { ts.as_ref() }) else { return ret_raw(Err(libc::EINVAL)) };
    // SAFETY: the caller's pointers; forwarded unchanged when none is ours.
    unsafe { poll_common(fds, n, t, sigmask).unwrap_or_else(|| real::ppoll()(fds, n, ts, sigmask)) }
}

/// `__ppoll_chk()` (`_FORTIFY_SOURCE`): aborts when `fds` is shorter than `n`, then `ppoll()`.
///
/// # Safety
/// As glibc's.
#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut libc::pollfd,
    n: libc::nfds_t,
    ts: *const libc::timespec,
    sigmask: *const libc::sigset_t,
    fdslen: size_t,
) -> c_int {
    if (fdslen / std::mem::size_of::<libc::pollfd>()) < n as usize {
        chk_fail();
    }
    // SAFETY: as ppoll's.
    unsafe { ppoll(fds, n, ts, sigmask) }
}

/// select/pselect over sets holding a utcp socket: as poll with fs/select.c's event sets.
/// `None` when no utcp socket is in the sets (the caller forwards the call untouched).
///
/// SAFETY (callers): each set is NULL or the caller's fd_set, valid for FD_SETSIZE bits.
unsafe fn select_mixed(
    nfds: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    timeout: Result<Option<Duration>, ()>,
    sigmask: Option<&libc::sigset_t>,
) -> Option<Result<c_int, i32>> {
    use wait::select_sets::*;
    let st = state::get()?;
    if !(0..=libc::FD_SETSIZE as c_int).contains(&nfds) {
        return None;
    }
    // SAFETY: NULL or the caller's fd_set, valid for FD_SETSIZE bits.
    let isset = |s: *mut libc::fd_set, fd: c_int| !s.is_null() && unsafe { libc::FD_ISSET(fd, s) };
    let mut pfds = Vec::new();
    let mut any = false;
    for fd in 0..nfds {
        let mut ev = 0;
        if isset(r, fd) {
            ev |= POLLIN_SET;
        }
        if isset(w, fd) {
            ev |= POLLOUT_SET;
        }
        if isset(e, fd) {
            ev |= POLLEX_SET;
        }
        if ev != 0 {
            any |= st.ufd(fd).is_some();
            pfds.push(libc::pollfd { fd, events: ev, revents: 0 });
        }
    }
    if !any {
        return None;
    }
    let Ok(t) = timeout else { return Some(Err(libc::EINVAL)) };
    if let Err(x) = wait::poll_mixed(st, &mut pfds, t, sigmask) {
        return Some(Err(x));
    }
    if pfds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        return Some(Err(libc::EBADF));
    }
    let mut count = 0;
    // SAFETY: non-NULL sets are the caller's, valid for FD_SETSIZE bits.
    unsafe {
        for s in [r, w, e] {
            if !s.is_null() {
                libc::FD_ZERO(s);
            }
        }
        for p in &pfds {
            let hits = [
                (r, p.events & POLLIN_SET != 0 && p.revents & POLLIN_SET != 0),
                (w, p.events & POLLOUT_SET != 0 && p.revents & POLLOUT_SET != 0),
                (e, p.events & POLLEX_SET != 0 && p.revents & POLLEX_SET != 0),
            ];
            for (s, hit) in hits {
                if hit && !s.is_null() {
                    libc::FD_SET(p.fd, s);
                    count += 1;
                }
            }
        }
    }
    Some(Ok(count))
}

/// A `timespec` timeout: `Err` when negative or out of range (EINVAL).
fn ts_timeout(ts: Option<&libc::timespec>) -> Result<Option<Duration>, ()> {
    match ts {
        None => Ok(None),
        Some(t) if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) => Err(()),
        Some(t) => Ok(Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32))),
    }
}

/// `select()` on sets holding a utcp socket: the timeout left is written back, as Linux does.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    tv: *mut libc::timeval,
) -> c_int {
    // SAFETY: NULL or the caller's timeval.
    let t = match unsafe { tv.as_ref() } {
        None => Ok(None),
        Some(t) if t.tv_sec < 0 || t.tv_usec < 0 => Err(()),
        Some(t) => Ok(Some(Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64))),
    };
    let start = std::time::Instant::now();
    // SAFETY: the caller's sets.
    let Some(res) = (unsafe { select_mixed(nfds, r, w, e, t, None) }) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::select()(nfds, r, w, e, tv) };
    };
    if let (Ok(Some(t)), false, false) = (t, tv.is_null(), res == Err(libc::EINVAL)) {
        let left = t.saturating_sub(start.elapsed());
        // SAFETY: non-NULL, the caller's timeval.
        unsafe {
            (*tv).tv_sec = left.as_secs() as libc::time_t;
            (*tv).tv_usec = left.subsec_micros() as libc::suseconds_t;
        }
    }
    ret_raw(res.map(|n| n as usize))
}

/// `pselect()`: select with a `timespec` (left as it was: glibc's `pselect` hands the kernel
/// a copy) and a signal mask for the wait, as `ppoll` takes it.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    ts: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    // SAFETY: NULL or the caller's timespec and sigset.
    let (t, mask) = unsafe { (ts_timeout(ts.as_ref()), sigmask.as_ref()) };
    // SAFETY: the caller's sets.
    match unsafe { select_mixed(nfds, r, w, e, t, mask) } {
        Some(res) => ret_raw(res.map(|n| n as usize)),
        // SAFETY: forwarded unchanged.
        None => unsafe { real::pselect()(nfds, r, w, e, ts, sigmask) },
    }
}

/// `epoll_ctl()`: a utcp socket joins the instance's utcp half; anything else the kernel's.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, ev: *mut libc::epoll_event) -> c_int {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::epoll_ctl()(epfd, op, fd, ev) };
    };
    // The epoll fd must be a kernel epoll instance (EBADF / EINVAL as ep_ctl checks it); one
    // with a utcp half already is (its close drops the half).
    let known = st.epoll_shadow(epfd, false).is_ok_and(|s| s.is_some());
    if !known && !is_kernel_epoll(epfd) {
        return ret_raw(Err(if st.ufd(epfd).is_some() || fd_open(epfd) { libc::EINVAL } else { libc::EBADF }));
    }
    let (events, data) = if op == libc::EPOLL_CTL_DEL {
        (0, 0)
    } else {
        // SAFETY: NULL or the caller's event.
        match unsafe { ev.as_ref() } {
            Some(e) => (e.events, e.u64),
            None => return ret_raw(Err(libc::EFAULT)),
        }
    };
    ret_raw(wait::epoll_ctl_utcp(st, epfd, op, u, events, data).map(|_| 0))
}

fn fd_open(fd: c_int) -> bool {
    // SAFETY: F_GETFD has no argument.
    unsafe { real::fcntl()(fd, libc::F_GETFD, 0) >= 0 }
}

/// Whether `fd` is a kernel epoll instance (`/proc/self/fd/N` → `anon_inode:[eventpoll]`).
fn is_kernel_epoll(fd: c_int) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.as_os_str() == "anon_inode:[eventpoll]")
        .unwrap_or(false)
}

/// SAFETY (callers): `out` points to `max` writable epoll_events when `max > 0`.
unsafe fn epoll_common(
    epfd: c_int,
    out: *mut libc::epoll_event,
    max: c_int,
    timeout: Option<Duration>,
    sigmask: *const libc::sigset_t,
) -> Option<c_int> {
    let st = state::get()?;
    let shadow = st.epoll_shadow(epfd, false).ok()??;
    if max <= 0 || out.is_null() {
        return Some(ret_raw(Err(if max <= 0 { libc::EINVAL } else { libc::EFAULT })));
    }
    // SAFETY: per this function's contract.
    let arr = unsafe { std::slice::from_raw_parts_mut(out, max as usize) };
    // SAFETY: NULL or the caller's sigset.
    let mask = unsafe { sigmask.as_ref() };
    Some(ret_raw(wait::epoll_wait_mixed(st, epfd, &shadow, arr, timeout, mask)))
}

/// `epoll_wait()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn epoll_wait(epfd: c_int, out: *mut libc::epoll_event, max: c_int, timeout: c_int) -> c_int {
    // SAFETY: the caller's buffer; forwarded unchanged when the set has no utcp socket.
    unsafe {
        epoll_common(epfd, out, max, timeout_ms(timeout), std::ptr::null())
            .unwrap_or_else(|| real::epoll_wait()(epfd, out, max, timeout))
    }
}

/// `epoll_pwait()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    out: *mut libc::epoll_event,
    max: c_int,
    timeout: c_int,
    sigmask: *const libc::sigset_t,
) -> c_int {
    // SAFETY: the caller's pointers; forwarded unchanged when the set has no utcp socket.
    unsafe {
        epoll_common(epfd, out, max, timeout_ms(timeout), sigmask)
            .unwrap_or_else(|| real::epoll_pwait()(epfd, out, max, timeout, sigmask))
    }
}

/// `epoll_pwait2()`: epoll_pwait with a `timespec` timeout (NULL: none; EINVAL when out of
/// range, as `poll_select_set_timeout` says).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn epoll_pwait2(
    epfd: c_int,
    out: *mut libc::epoll_event,
    max: c_int,
    ts: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    let fallback = || {
        // SAFETY: forwarded unchanged.
        unsafe { real::epoll_pwait2()(epfd, out, max, ts, sigmask) }
    };
    let has_utcp_half = state::get().is_some_and(|st| st.epoll_shadow(epfd, false).is_ok_and(|s| s.is_some()));
    if !has_utcp_half {
        return fallback();
    }
    // SAFETY: NULL or the caller's timespec.
    let Ok(t) = ts_timeout(unsafe { ts.as_ref() }) else { return ret_raw(Err(libc::EINVAL)) };
    // SAFETY: the caller's pointers.
    unsafe { epoll_common(epfd, out, max, t, sigmask) }.unwrap_or_else(fallback)
}
