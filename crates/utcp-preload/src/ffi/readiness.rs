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
        // SAFETY: `__chk_fail` semantics.
        unsafe { libc::abort() };
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
    let t = match unsafe { ts.as_ref() } {
        None => None,
        Some(t) if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) => return ret_raw(Err(libc::EINVAL)),
        Some(t) => Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32)),
    };
    // SAFETY: the caller's pointers; forwarded unchanged when none is ours.
    unsafe { poll_common(fds, n, t, sigmask).unwrap_or_else(|| real::ppoll()(fds, n, ts, sigmask)) }
}

/// `select()` on sets holding a utcp socket: as poll with fs/select.c's event sets; the
/// timeout left is written back, as Linux does.
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
    use wait::select_sets::*;
    let fallback = || {
        // SAFETY: forwarded unchanged.
        unsafe { real::select()(nfds, r, w, e, tv) }
    };
    let Some(st) = state::get() else { return fallback() };
    if !(0..=libc::FD_SETSIZE as c_int).contains(&nfds) {
        return fallback();
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
        return fallback();
    }
    // SAFETY: NULL or the caller's timeval.
    let t = match unsafe { tv.as_ref() } {
        None => None,
        Some(t) if t.tv_sec < 0 || t.tv_usec < 0 => return ret_raw(Err(libc::EINVAL)),
        Some(t) => Some(Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)),
    };
    let start = std::time::Instant::now();
    let res = wait::poll_mixed(st, &mut pfds, t, None);
    if let (Some(t), false) = (t, tv.is_null()) {
        let left = t.saturating_sub(start.elapsed());
        // SAFETY: non-NULL, the caller's timeval.
        unsafe {
            (*tv).tv_sec = left.as_secs() as libc::time_t;
            (*tv).tv_usec = left.subsec_micros() as libc::suseconds_t;
        }
    }
    if let Err(x) = res {
        return ret_raw(Err(x));
    }
    if pfds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        return ret_raw(Err(libc::EBADF));
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
    count
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
    timeout: c_int,
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
    Some(ret_raw(wait::epoll_wait_mixed(st, epfd, &shadow, arr, timeout_ms(timeout), mask)))
}

/// `epoll_wait()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn epoll_wait(epfd: c_int, out: *mut libc::epoll_event, max: c_int, timeout: c_int) -> c_int {
    // SAFETY: the caller's buffer; forwarded unchanged when the set has no utcp socket.
    unsafe {
        epoll_common(epfd, out, max, timeout, std::ptr::null())
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
        epoll_common(epfd, out, max, timeout, sigmask)
            .unwrap_or_else(|| real::epoll_pwait()(epfd, out, max, timeout, sigmask))
    }
}
