//! The C ABI: every hooked libc entry point, the real libc functions behind them, and all of
//! the crate's `unsafe` (C pointers into slices, errno, `dlsym`).
//!
//! Each hook looks its fd up in the placeholder table ([`crate::state`]); an fd that is not a
//! utcp socket (or any call before the stack exists, or in a forked child) goes to the real
//! libc function, resolved once with `dlsym(RTLD_NEXT)`, with its arguments untouched. The
//! library's own libc calls (Rust's std included) reach these hooks too and pass through the
//! same way: nothing but `socket()` creates the stack, so nothing recurses.
//!
//! Pointers: a non-NULL pointer from the caller is trusted for the length it comes with, as
//! the kernel's `copy_from_user` would find it mapped; NULL becomes `None`, which utcp turns
//! into EFAULT exactly where Linux does.
//!
//! Variadic `fcntl` and `ioctl`: Rust cannot define C-variadic functions, so the optional
//! third argument is read as a fixed `long` / pointer. On the x86-64 System V and AAPCS64
//! Linux ABIs an integer or pointer variadic argument travels in the same register as a fixed
//! one, so this is exact there (and the value is garbage, and unused, when none was passed).

use crate::state::{self, Preload};
use crate::wait;
use libc::{c_int, c_long, c_ulong, c_void, size_t, socklen_t, ssize_t};
use std::time::Duration;
use utcp::errno::{Errno, SysResult};
use utcp::socket::sock::Cancel;
use utcp::syscall::{IoVec, MsgHdr};

/// The real libc functions (`dlsym(RTLD_NEXT, name)`, resolved once each).
mod real {
    use libc::{c_char, c_int, c_long, c_ulong, c_void, size_t, socklen_t, ssize_t};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn resolve(cache: &AtomicUsize, name: &'static [u8]) -> usize {
        let p = cache.load(Ordering::Relaxed);
        if p != 0 {
            return p;
        }
        // SAFETY: `name` is NUL-terminated; dlsym has no other preconditions.
        let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr() as *const c_char) } as usize;
        if p == 0 {
            // No libc function to forward to: nothing sensible can follow.
            // SAFETY: abort has no preconditions.
            unsafe { libc::abort() };
        }
        cache.store(p, Ordering::Relaxed);
        p
    }

    macro_rules! real {
        ($($name:ident($($t:ty),*) -> $r:ty;)*) => {$(
            #[allow(non_snake_case)]
            pub fn $name() -> unsafe extern "C" fn($($t),*) -> $r {
                static CACHE: AtomicUsize = AtomicUsize::new(0);
                let p = resolve(&CACHE, concat!(stringify!($name), "\0").as_bytes());
                // SAFETY: `p` is libc's function of this name, whose C type this is.
                unsafe { std::mem::transmute::<usize, unsafe extern "C" fn($($t),*) -> $r>(p) }
            }
        )*};
    }

    real! {
        socket(c_int, c_int, c_int) -> c_int;
        bind(c_int, *const libc::sockaddr, socklen_t) -> c_int;
        listen(c_int, c_int) -> c_int;
        accept(c_int, *mut libc::sockaddr, *mut socklen_t) -> c_int;
        accept4(c_int, *mut libc::sockaddr, *mut socklen_t, c_int) -> c_int;
        connect(c_int, *const libc::sockaddr, socklen_t) -> c_int;
        shutdown(c_int, c_int) -> c_int;
        close(c_int) -> c_int;
        read(c_int, *mut c_void, size_t) -> ssize_t;
        readv(c_int, *const libc::iovec, c_int) -> ssize_t;
        write(c_int, *const c_void, size_t) -> ssize_t;
        writev(c_int, *const libc::iovec, c_int) -> ssize_t;
        recv(c_int, *mut c_void, size_t, c_int) -> ssize_t;
        recvfrom(c_int, *mut c_void, size_t, c_int, *mut libc::sockaddr, *mut socklen_t) -> ssize_t;
        recvmsg(c_int, *mut libc::msghdr, c_int) -> ssize_t;
        send(c_int, *const c_void, size_t, c_int) -> ssize_t;
        sendto(c_int, *const c_void, size_t, c_int, *const libc::sockaddr, socklen_t) -> ssize_t;
        sendmsg(c_int, *const libc::msghdr, c_int) -> ssize_t;
        getsockopt(c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int;
        setsockopt(c_int, c_int, c_int, *const c_void, socklen_t) -> c_int;
        getsockname(c_int, *mut libc::sockaddr, *mut socklen_t) -> c_int;
        getpeername(c_int, *mut libc::sockaddr, *mut socklen_t) -> c_int;
        ioctl(c_int, c_ulong, *mut c_void) -> c_int;
        fcntl(c_int, c_int, c_long) -> c_int;
        fcntl64(c_int, c_int, c_long) -> c_int;
        poll(*mut libc::pollfd, libc::nfds_t, c_int) -> c_int;
        ppoll(*mut libc::pollfd, libc::nfds_t, *const libc::timespec, *const libc::sigset_t) -> c_int;
        select(c_int, *mut libc::fd_set, *mut libc::fd_set, *mut libc::fd_set, *mut libc::timeval) -> c_int;
        epoll_ctl(c_int, c_int, c_int, *mut libc::epoll_event) -> c_int;
        epoll_wait(c_int, *mut libc::epoll_event, c_int, c_int) -> c_int;
        epoll_pwait(c_int, *mut libc::epoll_event, c_int, c_int, *const libc::sigset_t) -> c_int;
        dup(c_int) -> c_int;
        dup2(c_int, c_int) -> c_int;
        dup3(c_int, c_int, c_int) -> c_int;
        eventfd(libc::c_uint, c_int) -> c_int;
        __read_chk(c_int, *mut c_void, size_t, size_t) -> ssize_t;
        __recv_chk(c_int, *mut c_void, size_t, size_t, c_int) -> ssize_t;
        __recvfrom_chk(c_int, *mut c_void, size_t, size_t, c_int, *mut libc::sockaddr, *mut socklen_t) -> ssize_t;
        __poll_chk(*mut libc::pollfd, libc::nfds_t, c_int, size_t) -> c_int;
        __ppoll_chk(*mut libc::pollfd, libc::nfds_t, *const libc::timespec, *const libc::sigset_t, size_t) -> c_int;
        recvmmsg(c_int, *mut libc::mmsghdr, libc::c_uint, c_int, *mut libc::timespec) -> c_int;
        sendmmsg(c_int, *mut libc::mmsghdr, libc::c_uint, c_int) -> c_int;
        splice(c_int, *mut libc::loff_t, c_int, *mut libc::loff_t, size_t, libc::c_uint) -> ssize_t;
        tee(c_int, c_int, size_t, libc::c_uint) -> ssize_t;
        pselect(c_int, *mut libc::fd_set, *mut libc::fd_set, *mut libc::fd_set, *const libc::timespec, *const libc::sigset_t) -> c_int;
        epoll_pwait2(c_int, *mut libc::epoll_event, c_int, *const libc::timespec, *const libc::sigset_t) -> c_int;
        pread(c_int, *mut c_void, size_t, libc::off_t) -> ssize_t;
        lseek(c_int, libc::off_t, c_int) -> libc::off_t;
        sendfile(c_int, c_int, *mut libc::off_t, size_t) -> ssize_t;
        sendfile64(c_int, c_int, *mut libc::off64_t, size_t) -> ssize_t;
        sigaction(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;
        pipe2(*mut c_int, c_int) -> c_int;
        fstat(c_int, *mut libc::stat) -> c_int;
        fstat64(c_int, *mut libc::stat64) -> c_int;
        __fxstat(c_int, c_int, *mut libc::stat) -> c_int;
        __fxstat64(c_int, c_int, *mut libc::stat64) -> c_int;
    }
}

/// Safe wrappers over the real kernel calls the rest of the crate needs.
pub mod sys {
    use super::*;

    /// The real `ppoll()`; `Err(errno)` on failure.
    pub fn ppoll(
        fds: &mut [libc::pollfd],
        timeout: Option<Duration>,
        sigmask: Option<&libc::sigset_t>,
    ) -> Result<usize, i32> {
        let ts = timeout
            .map(|t| libc::timespec { tv_sec: t.as_secs() as libc::time_t, tv_nsec: t.subsec_nanos() as c_long });
        let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        let smp = sigmask.map_or(std::ptr::null(), |s| s as *const libc::sigset_t);
        // SAFETY: `fds` is a valid slice of pollfds; `tsp`/`smp` are NULL or point to locals.
        let r = unsafe { real::ppoll()(fds.as_mut_ptr(), fds.len() as libc::nfds_t, tsp, smp) };
        if r < 0 {
            Err(errno())
        } else {
            Ok(r as usize)
        }
    }

    /// The real `epoll_wait()` with a zero timeout into `out` (non-empty).
    pub fn epoll_wait_now(epfd: i32, out: &mut [libc::epoll_event]) -> Result<usize, i32> {
        // SAFETY: `out` is a valid, writable slice of epoll_events.
        let r = unsafe { real::epoll_wait()(epfd, out.as_mut_ptr(), out.len() as c_int, 0) };
        if r < 0 {
            Err(errno())
        } else {
            Ok(r as usize)
        }
    }

    /// A fresh non-blocking, close-on-exec eventfd.
    pub fn eventfd_nonblock_cloexec() -> Result<i32, i32> {
        // SAFETY: eventfd has no memory preconditions.
        let fd = unsafe { real::eventfd()(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            Err(errno())
        } else {
            Ok(fd)
        }
    }

    /// Adds 1 to an eventfd's count (readable).
    pub fn eventfd_signal(fd: i32) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local.
        unsafe { real::write()(fd, &one as *const u64 as *const c_void, 8) };
    }

    /// Empties a non-blocking eventfd.
    pub fn eventfd_drain(fd: i32) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a local.
        unsafe { real::read()(fd, &mut v as *mut u64 as *mut c_void, 8) };
    }

    /// Runs `f` with every signal blocked in this thread, so that the threads it starts
    /// inherit a mask that blocks them all: the library's threads never take a signal
    /// meant for the program's (a process-directed signal goes to a thread that does not
    /// block it, and must find the program's threads, as without the library).
    pub fn with_signals_blocked<T>(f: impl FnOnce() -> T) -> T {
        // SAFETY: sigset_t is plain data; sigfillset/pthread_sigmask write only these locals.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            let r = f();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            r
        }
    }

    /// This thread's id.
    pub fn gettid() -> i32 {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    }

    /// Makes the pipe the signal wrapper writes its notes to; returns its read end.
    pub fn open_note_pipe() -> Result<i32, i32> {
        let mut p = [-1 as c_int; 2];
        // SAFETY: `p` holds two ints.
        if unsafe { real::pipe2()(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(errno());
        }
        super::NOTE_FD.store(p[1], std::sync::atomic::Ordering::Release);
        Ok(p[0])
    }

    /// The next note (thread id, SA_RESTART) from the pipe's read end; `None` when it is gone.
    pub fn read_note(fd: i32) -> Option<(i32, bool)> {
        let mut b = [0i32; 2];
        loop {
            // SAFETY: reads 8 bytes into a local.
            let n = unsafe { real::read()(fd, b.as_mut_ptr() as *mut c_void, 8) };
            if n == 8 {
                return Some((b[0], b[1] != 0));
            }
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return None;
        }
    }

    /// The real `close()`.
    pub fn close(fd: i32) {
        // SAFETY: closes an fd the library owns.
        unsafe { real::close()(fd) };
    }
}

// ---------------------------------------------------------------------- helpers

fn errno() -> c_int {
    // SAFETY: `__errno_location` returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

fn set_errno(e: c_int) {
    // SAFETY: `__errno_location` returns this thread's errno slot, always valid to write.
    unsafe { *libc::__errno_location() = e };
}

extern "C" {
    /// glibc's fortify failure: "*** buffer overflow detected ***: terminated", then abort.
    fn __chk_fail() -> !;
}

/// A fortify check failed: glibc's own report and abort, as its `__read_chk` & co give.
fn chk_fail() -> ! {
    // SAFETY: no arguments; never returns.
    unsafe { __chk_fail() }
}

fn ret_int(r: SysResult<i32>) -> c_int {
    match r {
        Ok(v) => v,
        Err(e) => {
            set_errno(e.as_i32());
            -1
        }
    }
}

fn ret_size(r: SysResult<usize>) -> ssize_t {
    match r {
        Ok(v) => v as ssize_t,
        Err(e) => {
            set_errno(e.as_i32());
            -1
        }
    }
}

/// A send-side result: EPIPE raises SIGPIPE on the calling thread unless MSG_NOSIGNAL
/// (`sk_stream_error()` → `send_sig(SIGPIPE, current, 0)`).
fn ret_send(r: SysResult<usize>, flags: c_int) -> ssize_t {
    if r == Err(Errno::EPIPE) && flags & libc::MSG_NOSIGNAL == 0 {
        // SAFETY: raise has no memory preconditions.
        unsafe { libc::raise(libc::SIGPIPE) };
    }
    ret_size(r)
}

fn ret_raw(r: Result<usize, i32>) -> c_int {
    match r {
        Ok(v) => v as c_int,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// The state and utcp fd when `k` is a utcp placeholder.
#[inline]
fn utcp_fd(k: c_int) -> Option<(&'static Preload, i32)> {
    let st = state::get()?;
    Some((st, st.ufd(k)?))
}

/// SAFETY (callers): a non-NULL `p` points to `len` readable bytes for the slice's lifetime.
unsafe fn slice<'a>(p: *const c_void, len: usize) -> Option<&'a [u8]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: per this function's contract.
        Some(unsafe { std::slice::from_raw_parts(p as *const u8, len) })
    }
}

/// SAFETY (callers): a non-NULL `p` points to `len` writable, unaliased bytes.
unsafe fn slice_mut<'a>(p: *mut c_void, len: usize) -> Option<&'a mut [u8]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: per this function's contract.
        Some(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, len) })
    }
}

/// The C iovecs as utcp iovecs.
///
/// SAFETY (callers): `iov` is NULL or points to `cnt` iovecs whose bases are NULL or valid
/// for their lengths.
unsafe fn iovecs_mut<'a>(iov: *const libc::iovec, cnt: usize) -> SysResult<Vec<IoVec<'a>>> {
    if cnt == 0 {
        return Ok(Vec::new());
    }
    if iov.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: per this function's contract.
    let arr = unsafe { std::slice::from_raw_parts(iov, cnt) };
    // SAFETY: per this function's contract.
    Ok(arr.iter().map(|v| IoVec { base: unsafe { slice_mut(v.iov_base, v.iov_len) }, len: v.iov_len }).collect())
}

/// A send-side iovec as utcp takes it: the memory (None = NULL) and `iov_len`.
type SendIov<'a> = (Option<&'a [u8]>, usize);

/// SAFETY (callers): as [`iovecs_mut`], read-only.
unsafe fn iovecs<'a>(iov: *const libc::iovec, cnt: usize) -> SysResult<Vec<SendIov<'a>>> {
    if cnt == 0 {
        return Ok(Vec::new());
    }
    if iov.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: per this function's contract.
    let arr = unsafe { std::slice::from_raw_parts(iov, cnt) };
    // SAFETY: per this function's contract.
    Ok(arr.iter().map(|v| (unsafe { slice(v.iov_base, v.iov_len) }, v.iov_len)).collect())
}

/// The sockaddr buffer `(addr, *lenp)` a call fills (None when either is NULL) and its
/// length; EINVAL for a negative length.
///
/// SAFETY (callers): `lenp` is NULL or valid; `addr` is NULL or valid for `*lenp` bytes.
unsafe fn addr_out<'a>(addr: *mut libc::sockaddr, lenp: *mut socklen_t) -> SysResult<(Option<&'a mut [u8]>, u32)> {
    if lenp.is_null() {
        return Ok((None, 0));
    }
    // SAFETY: per this function's contract.
    let len = unsafe { *lenp };
    if (len as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: per this function's contract.
    Ok((unsafe { slice_mut(addr as *mut c_void, len as usize) }, len))
}

/// A kernel placeholder for a new utcp fd `u`: an eventfd, close-on-exec when asked.
fn placeholder(st: &Preload, u: i32, cloexec: bool) -> SysResult<c_int> {
    let flags = libc::EFD_NONBLOCK | if cloexec { libc::EFD_CLOEXEC } else { 0 };
    // SAFETY: eventfd has no memory preconditions.
    let k = unsafe { real::eventfd()(0, flags) };
    if k < 0 {
        let e = errno();
        let _ = st.stack.close(u);
        return Err(Errno::from_i32(e).unwrap_or(Errno::EMFILE));
    }
    st.insert(k, u);
    Ok(k)
}

fn timeout_ms(t: c_int) -> Option<Duration> {
    (t >= 0).then(|| Duration::from_millis(t as u64))
}

// ---------------------------------------------------------------------- signals

/// The write end of the signal notes pipe ([`crate::signals`]); -1 before the stack exists.
static NOTE_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Highest signal number + 1 (`_NSIG`).
const NSIG: usize = 65;

/// The program's handler and flags per signal, for the signals installed behind [`wrapper`].
static USER_HANDLER: [std::sync::atomic::AtomicUsize; NSIG] = [const { std::sync::atomic::AtomicUsize::new(0) }; NSIG];
static USER_FLAGS: [std::sync::atomic::AtomicI32; NSIG] = [const { std::sync::atomic::AtomicI32::new(0) }; NSIG];
static WRAPPED: [std::sync::atomic::AtomicBool; NSIG] = [const { std::sync::atomic::AtomicBool::new(false) }; NSIG];

/// Every handler runs behind this: when the thread is inside a call that may sleep in utcp,
/// it notes (thread id, SA_RESTART) on the pipe for the watcher (a `write()`, async-signal
/// safe; errno kept), then runs the program's handler as it asked to be called.
extern "C" fn wrapper(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    use std::sync::atomic::Ordering::Acquire;
    let Some(i) = usize::try_from(sig).ok().filter(|&i| i < NSIG) else { return };
    let flags = USER_FLAGS[i].load(Acquire);
    let fd = NOTE_FD.load(Acquire);
    if fd >= 0 && crate::signals::in_call() {
        let saved = errno();
        let note = [sys::gettid(), (flags & libc::SA_RESTART != 0) as i32];
        // SAFETY: writes 8 bytes from a local; write is async-signal-safe.
        unsafe { real::write()(fd, note.as_ptr() as *const c_void, 8) };
        set_errno(saved);
    }
    let h = USER_HANDLER[i].load(Acquire);
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        return;
    }
    crate::signals::note_handler(flags & libc::SA_RESTART != 0);
    // SAFETY: `h` is the handler the program installed, of the type its SA_SIGINFO says.
    unsafe {
        if flags & libc::SA_SIGINFO != 0 {
            std::mem::transmute::<usize, extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void)>(h)(sig, info, ctx);
        } else {
            std::mem::transmute::<usize, extern "C" fn(c_int)>(h)(sig);
        }
    }
}

/// `sigaction()`: a handler is installed behind [`wrapper`] (with SA_SIGINFO added, its
/// other flags and mask the program's); the old action reads back as the program set it.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
    let Some(i) = usize::try_from(sig).ok().filter(|&i| i > 0 && i < NSIG) else {
        // SAFETY: forwarded unchanged (EINVAL).
        return unsafe { real::sigaction()(sig, act, old) };
    };
    let was = (WRAPPED[i].load(Acquire), USER_HANDLER[i].load(Acquire), USER_FLAGS[i].load(Acquire));
    // SAFETY: NULL or the caller's sigaction.
    let r = match unsafe { act.as_ref() } {
        Some(a) if a.sa_sigaction != libc::SIG_DFL && a.sa_sigaction != libc::SIG_IGN => {
            let mut w = *a;
            w.sa_sigaction = wrapper as *const () as usize;
            w.sa_flags |= libc::SA_SIGINFO;
            USER_HANDLER[i].store(a.sa_sigaction, Release);
            USER_FLAGS[i].store(a.sa_flags, Release);
            // SAFETY: a valid sigaction; `old` is the caller's.
            let r = unsafe { real::sigaction()(sig, &w, old) };
            if r == 0 {
                WRAPPED[i].store(true, Release);
            } else {
                USER_HANDLER[i].store(was.1, Release);
                USER_FLAGS[i].store(was.2, Release);
            }
            r
        }
        Some(_) => {
            // SAFETY: forwarded unchanged.
            let r = unsafe { real::sigaction()(sig, act, old) };
            if r == 0 {
                WRAPPED[i].swap(false, AcqRel);
            }
            r
        }
        // SAFETY: forwarded unchanged (a query).
        None => unsafe { real::sigaction()(sig, act, old) },
    };
    if r == 0 && was.0 {
        // SAFETY: NULL or the caller's sigaction, just filled by the kernel.
        if let Some(o) = unsafe { old.as_mut() } {
            if o.sa_sigaction == wrapper as *const () as usize {
                o.sa_sigaction = was.1;
                o.sa_flags = was.2;
            }
        }
    }
    r
}

/// `signal()` (glibc's BSD semantics: SA_RESTART, the signal blocked in its handler).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    // SAFETY: sigaction is plain data; all-zero is a valid value.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: zeroed sigaction is valid.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler;
    act.sa_flags = libc::SA_RESTART;
    // SAFETY: a local sigset.
    unsafe {
        libc::sigemptyset(&mut act.sa_mask);
        if sig > 0 && (sig as usize) < NSIG {
            libc::sigaddset(&mut act.sa_mask, sig);
        }
    }
    // SAFETY: locals.
    if unsafe { sigaction(sig, &act, &mut old) } < 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}

/// Runs `f`, a call on utcp fd `u` that may sleep, with an interruption token registered for
/// this thread (see [`crate::signals`]).
fn interruptible<T>(u: i32, send: bool, f: impl FnOnce(&Cancel) -> SysResult<T>) -> SysResult<T> {
    let cancel = Cancel::new();
    let _g = crate::signals::enter(cancel.clone(), u, send);
    f(&cancel)
}

// ---------------------------------------------------------------------- process hooks

extern "C" fn at_fork_child() {
    state::forked_child();
}

extern "C" fn at_exit() {
    if let Some(st) = state::get() {
        st.write_stats();
    }
}

/// Registers the fork-child and exit handlers (once, when the stack is created).
pub fn register_process_hooks() {
    // SAFETY: both are plain `extern "C" fn()` handlers that live as long as the process.
    unsafe {
        libc::pthread_atfork(None, None, Some(at_fork_child));
        libc::atexit(at_exit);
    }
}

// ---------------------------------------------------------------------- socket calls

/// `socket()`: AF_INET and AF_INET6 SOCK_STREAM (protocol 0 or IPPROTO_TCP) are utcp's; the
/// rest the kernel's.
#[no_mangle]
pub extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let base = ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    let ours = (domain == libc::AF_INET || domain == libc::AF_INET6)
        && base == libc::SOCK_STREAM
        && (protocol == 0 || protocol == libc::IPPROTO_TCP);
    let st = if ours { state::get_or_init() } else { None };
    let Some(st) = st else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::socket()(domain, ty, protocol) };
    };
    ret_int(st.stack.socket(domain, ty, protocol).and_then(|u| placeholder(st, u, ty & libc::SOCK_CLOEXEC != 0)))
}

/// `bind()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const libc::sockaddr, len: socklen_t) -> c_int {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::bind()(fd, addr, len) };
    };
    if (len as i32) < 0 || len as usize > 128 {
        return ret_int(Err(Errno::EINVAL));
    }
    // SAFETY: the caller's address buffer holds `len` bytes.
    let Some(a) = (unsafe { slice(addr as *const c_void, len as usize) }) else {
        return ret_int(Err(Errno::EFAULT));
    };
    ret_int(st.stack.bind_raw(u, a).map(|_| 0))
}

/// `listen()`.
#[no_mangle]
pub extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::listen()(fd, backlog) };
    };
    let r = st.stack.listen(u, backlog);
    if r.is_ok() {
        if let Ok(a) = st.stack.getsockname_addr(u) {
            st.listeners.add(fd, a.port());
        }
    }
    ret_int(r.map(|_| 0))
}

/// SAFETY (callers): `addr`/`lenp` as libc's accept4.
unsafe fn accept_utcp(st: &Preload, u: i32, addr: *mut libc::sockaddr, lenp: *mut socklen_t, flags: c_int) -> c_int {
    // SAFETY: per this function's contract.
    let out = unsafe { addr_out(addr, lenp) };
    let r = out.and_then(|(buf, _)| {
        let (nu, peer) = interruptible(u, false, |c| st.stack.accept4_addr_cancellable(u, flags, Some(c)))?;
        if !lenp.is_null() {
            // A sockaddr_in, or an AF_INET6 listener's sockaddr_in6 (`::ffff:a.b.c.d` for an
            // IPv4 peer); truncated to the caller's length, the full length written back.
            let (b, blen) = utcp::uapi::sockaddr_bytes(&peer);
            if let Some(buf) = buf {
                let n = buf.len().min(blen);
                buf[..n].copy_from_slice(&b[..n]);
            }
            // SAFETY: non-NULL and valid per the contract.
            unsafe { *lenp = blen as socklen_t };
        }
        placeholder(st, nu, flags & libc::SOCK_CLOEXEC != 0)
    });
    ret_int(r)
}

/// `accept()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut libc::sockaddr, lenp: *mut socklen_t) -> c_int {
    match utcp_fd(fd) {
        // SAFETY: the caller's pointers, as accept's.
        Some((st, u)) => unsafe { accept_utcp(st, u, addr, lenp, 0) },
        // SAFETY: forwarded unchanged.
        None => unsafe { real::accept()(fd, addr, lenp) },
    }
}

/// `accept4()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn accept4(fd: c_int, addr: *mut libc::sockaddr, lenp: *mut socklen_t, flags: c_int) -> c_int {
    match utcp_fd(fd) {
        // SAFETY: the caller's pointers, as accept4's.
        Some((st, u)) => unsafe { accept_utcp(st, u, addr, lenp, flags) },
        // SAFETY: forwarded unchanged.
        None => unsafe { real::accept4()(fd, addr, lenp, flags) },
    }
}

/// `connect()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const libc::sockaddr, len: socklen_t) -> c_int {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::connect()(fd, addr, len) };
    };
    if (len as i32) < 0 || len as usize > 128 {
        return ret_int(Err(Errno::EINVAL));
    }
    // SAFETY: the caller's address buffer holds `len` bytes.
    let Some(a) = (unsafe { slice(addr as *const c_void, len as usize) }) else {
        return ret_int(Err(Errno::EFAULT));
    };
    if !st.mode.routable(a) {
        // `ip_route_connect()` finds no route: the in-process host has only its loopback, or
        // only the TUN subnet (utcp has no gateway).
        // DEVIATION(linux): the real host may have a route; this process's TCP reaches
        // 127.0.0.0/8 (or the TUN subnet) only.
        tracing::debug!(target: "utcp_preload", fd, "connect: no route (ENETUNREACH)");
        return ret_int(Err(Errno::ENETUNREACH));
    }
    if let Some((ip, port)) = loopback_dst(st, a) {
        if !st.listeners.has(port)
            && crate::handover::kernel_listener(ip, port)
            && handover::to_kernel(st, fd, u).is_ok()
        {
            // SAFETY: `fd` is a kernel socket now; the caller's address.
            return unsafe { real::connect()(fd, addr, len) };
        }
    }
    ret_int(interruptible(u, true, |c| st.stack.connect_raw_cancellable(u, a, Some(c))).map(|_| 0))
}

/// The destination of a connect on the in-process loopback (AF_INET, 16 bytes at least;
/// AF_INET6, 24 bytes at least, an IPv4-mapped one as its IPv4 address).
fn loopback_dst(st: &Preload, a: &[u8]) -> Option<(std::net::IpAddr, u16)> {
    if st.mode != state::Mode::Loopback {
        return None;
    }
    Some((state::connect_ip(a)?, u16::from_be_bytes([a[2], a[3]])))
}

/// `shutdown()`.
#[no_mangle]
pub extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::shutdown()(fd, how) };
    };
    ret_int(st.stack.shutdown(u, how).map(|_| 0))
}

/// `close()`: a placeholder's utcp fd (or an epoll fd's utcp half) goes first, then the
/// kernel fd, so the number cannot be reused while the table still names it.
#[no_mangle]
pub extern "C" fn close(fd: c_int) -> c_int {
    if let Some(st) = state::get() {
        st.forget(fd);
    }
    // SAFETY: forwarded unchanged.
    unsafe { real::close()(fd) }
}

/// `read()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::read()(fd, buf, n) };
    };
    // SAFETY: the caller's buffer holds `n` bytes.
    ret_size(match unsafe { slice_mut(buf, n) } {
        Some(b) => interruptible(u, false, |c| st.stack.recv_cancellable(u, b, 0, c)),
        None => st.stack.read(u, None, n),
    })
}

/// `__read_chk()` (`_FORTIFY_SOURCE`): aborts when `n` exceeds the buffer, then `read()`.
///
/// # Safety
/// As glibc's.
#[no_mangle]
pub unsafe extern "C" fn __read_chk(fd: c_int, buf: *mut c_void, n: size_t, buflen: size_t) -> ssize_t {
    if utcp_fd(fd).is_none() {
        // SAFETY: forwarded unchanged.
        return unsafe { real::__read_chk()(fd, buf, n, buflen) };
    }
    if n > buflen {
        chk_fail();
    }
    // SAFETY: as read's.
    unsafe { read(fd, buf, n) }
}

/// `readv()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const libc::iovec, cnt: c_int) -> ssize_t {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::readv()(fd, iov, cnt) };
    };
    if cnt < 0 {
        return ret_size(Err(Errno::EINVAL));
    }
    // SAFETY: the caller's iovecs.
    ret_size(unsafe { iovecs_mut(iov, cnt as usize) }.and_then(|mut v| st.stack.readv(u, &mut v)))
}

/// `write()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::write()(fd, buf, n) };
    };
    // SAFETY: the caller's buffer holds `n` bytes.
    ret_send(
        match unsafe { slice(buf, n) } {
            Some(b) => interruptible(u, true, |c| st.stack.send_cancellable(u, b, 0, c)),
            None => st.stack.write(u, None, n),
        },
        0,
    )
}

/// `writev()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const libc::iovec, cnt: c_int) -> ssize_t {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::writev()(fd, iov, cnt) };
    };
    if cnt < 0 {
        return ret_size(Err(Errno::EINVAL));
    }
    // SAFETY: the caller's iovecs.
    ret_send(unsafe { iovecs(iov, cnt as usize) }.and_then(|v| st.stack.writev(u, &v)), 0)
}

// DEVIATION(linux): readv, writev and a recvfrom that asks for the peer address sleep in utcp
// without an interruption token: a signal does not end them (they carry on after the handler,
// as with SA_RESTART). The other blocking calls are interruptible (crate::signals).

/// SAFETY (callers): as recvfrom's arguments.
unsafe fn recvfrom_utcp(
    st: &Preload,
    u: i32,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut libc::sockaddr,
    lenp: *mut socklen_t,
) -> ssize_t {
    // SAFETY: per this function's contract.
    let (a, mut alen) = match unsafe { addr_out(addr, lenp) } {
        Ok(x) => x,
        Err(e) => return ret_size(Err(e)),
    };
    // SAFETY: the caller's buffer holds `n` bytes.
    let b = unsafe { slice_mut(buf, n) };
    let has_len = !lenp.is_null();
    let r = match (b, a, has_len) {
        (Some(b), None, false) => interruptible(u, false, |c| st.stack.recv_cancellable(u, b, flags, c)),
        (b, a, _) => st.stack.recvfrom(u, b, n, flags, a, has_len.then_some(&mut alen)),
    };
    if has_len && r.is_ok() {
        // SAFETY: non-NULL and valid per the contract.
        unsafe { *lenp = alen };
    }
    ret_size(r)
}

/// `recv()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
    match utcp_fd(fd) {
        // SAFETY: the caller's buffer; no address.
        Some((st, u)) => unsafe { recvfrom_utcp(st, u, buf, n, flags, std::ptr::null_mut(), std::ptr::null_mut()) },
        // SAFETY: forwarded unchanged.
        None => unsafe { real::recv()(fd, buf, n, flags) },
    }
}

/// `__recv_chk()`.
///
/// # Safety
/// As glibc's.
#[no_mangle]
pub unsafe extern "C" fn __recv_chk(fd: c_int, buf: *mut c_void, n: size_t, buflen: size_t, flags: c_int) -> ssize_t {
    if utcp_fd(fd).is_none() {
        // SAFETY: forwarded unchanged.
        return unsafe { real::__recv_chk()(fd, buf, n, buflen, flags) };
    }
    if n > buflen {
        chk_fail();
    }
    // SAFETY: as recv's.
    unsafe { recv(fd, buf, n, flags) }
}

/// `recvfrom()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut libc::sockaddr,
    lenp: *mut socklen_t,
) -> ssize_t {
    match utcp_fd(fd) {
        // SAFETY: the caller's pointers.
        Some((st, u)) => unsafe { recvfrom_utcp(st, u, buf, n, flags, addr, lenp) },
        // SAFETY: forwarded unchanged.
        None => unsafe { real::recvfrom()(fd, buf, n, flags, addr, lenp) },
    }
}

/// `__recvfrom_chk()`.
///
/// # Safety
/// As glibc's.
#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut libc::sockaddr,
    lenp: *mut socklen_t,
) -> ssize_t {
    if utcp_fd(fd).is_none() {
        // SAFETY: forwarded unchanged.
        return unsafe { real::__recvfrom_chk()(fd, buf, n, buflen, flags, addr, lenp) };
    }
    if n > buflen {
        chk_fail();
    }
    // SAFETY: as recvfrom's.
    unsafe { recvfrom(fd, buf, n, flags, addr, lenp) }
}

/// `recvmsg()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> ssize_t {
    match utcp_fd(fd) {
        // SAFETY: the caller's msghdr.
        Some((st, u)) => ret_size(unsafe { recvmsg_utcp(st, u, msg, flags) }),
        // SAFETY: forwarded unchanged.
        None => unsafe { real::recvmsg()(fd, msg, flags) },
    }
}

/// `___sys_recvmsg()` on utcp fd `u`: the msghdr's name length, control length and flags
/// are written back on success.
///
/// SAFETY (callers): `msg` is NULL or the caller's msghdr, its buffers valid for their lengths.
unsafe fn recvmsg_utcp(st: &Preload, u: i32, msg: *mut libc::msghdr, flags: c_int) -> SysResult<usize> {
    if msg.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-NULL; the caller's msghdr.
    let m = unsafe { &mut *msg };
    // SAFETY: the msghdr's buffers are valid for their lengths.
    let mut hdr = unsafe {
        iovecs_mut(m.msg_iov, m.msg_iovlen).map(|iov| MsgHdr {
            name: slice_mut(m.msg_name, m.msg_namelen as usize),
            namelen: m.msg_namelen,
            iov,
            control: slice_mut(m.msg_control, m.msg_controllen),
            controllen: m.msg_controllen,
            flags: 0,
        })
    }?;
    let r = interruptible(u, false, |c| st.stack.recvmsg_cancellable(u, &mut hdr, flags, Some(c)));
    let (namelen, controllen, oflags) = (hdr.namelen, hdr.controllen, hdr.flags);
    drop(hdr);
    if r.is_ok() {
        m.msg_namelen = namelen;
        m.msg_controllen = controllen;
        m.msg_flags = oflags;
    }
    r
}

/// `send()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::send()(fd, buf, n, flags) };
    };
    // SAFETY: the caller's buffer holds `n` bytes.
    let r = match unsafe { slice(buf, n) } {
        Some(b) => interruptible(u, true, |c| st.stack.send_cancellable(u, b, flags, c)),
        None => st.stack.send(u, None, n, flags),
    };
    ret_send(r, flags)
}

/// `sendto()` (the address is ignored on a TCP socket, as Linux's `tcp_sendmsg` does).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    addr: *const libc::sockaddr,
    len: socklen_t,
) -> ssize_t {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::sendto()(fd, buf, n, flags, addr, len) };
    };
    // __sys_sendto() → move_addr_to_kernel(): an address longer than sockaddr_storage (or a
    // negative length) is EINVAL before the protocol ignores it.
    if !addr.is_null() && len as usize > 128 {
        return ret_send(Err(Errno::EINVAL), flags);
    }
    // SAFETY: the caller's buffer holds `n` bytes.
    let r = match unsafe { slice(buf, n) } {
        Some(b) => interruptible(u, true, |c| st.stack.send_cancellable(u, b, flags, c)),
        None => st.stack.sendto(u, None, n, flags, None),
    };
    ret_send(r, flags)
}

/// `sendmsg()` (iovecs and control messages; the name is ignored as on TCP).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> ssize_t {
    match utcp_fd(fd) {
        // SAFETY: the caller's msghdr.
        Some((st, u)) => ret_send(unsafe { sendmsg_utcp(st, u, msg, flags) }, flags),
        // SAFETY: forwarded unchanged.
        None => unsafe { real::sendmsg()(fd, msg, flags) },
    }
}

/// `___sys_sendmsg()` on utcp fd `u` (the caller raises SIGPIPE, see [`ret_send`]).
///
/// SAFETY (callers): `msg` is NULL or the caller's msghdr, its buffers valid for their lengths.
unsafe fn sendmsg_utcp(st: &Preload, u: i32, msg: *const libc::msghdr, flags: c_int) -> SysResult<usize> {
    if msg.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-NULL; the caller's msghdr.
    let m = unsafe { &*msg };
    // SAFETY: the msghdr's iovecs and control buffer are valid for their lengths.
    let (iov, control) = unsafe { (iovecs(m.msg_iov, m.msg_iovlen), slice(m.msg_control, m.msg_controllen)) };
    let control = control.unwrap_or(&[]);
    iov.and_then(|v| interruptible(u, true, |c| st.stack.sendmsg_cancellable(u, &v, control, flags, Some(c))))
}

/// `getsockopt()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    lenp: *mut socklen_t,
) -> c_int {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::getsockopt()(fd, level, name, val, lenp) };
    };
    if lenp.is_null() {
        return ret_int(Err(Errno::EFAULT));
    }
    // SAFETY: non-NULL, the caller's optlen.
    let len = unsafe { *lenp } as i32;
    if len < 0 {
        return ret_int(Err(Errno::EINVAL));
    }
    let mut scratch = [0u8; 0];
    // SAFETY: the caller's option buffer holds `*optlen` bytes (or is NULL).
    let out = match unsafe { slice_mut(val, len as usize) } {
        Some(b) => b,
        None if len == 0 => &mut scratch[..],
        None => return ret_int(Err(Errno::EFAULT)),
    };
    ret_int(st.stack.getsockopt(u, level, name, out).map(|n| {
        // SAFETY: non-NULL, the caller's optlen.
        unsafe { *lenp = n as socklen_t };
        0
    }))
}

/// `setsockopt()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::setsockopt()(fd, level, name, val, len) };
    };
    if (len as i32) < 0 {
        return ret_int(Err(Errno::EINVAL));
    }
    // SAFETY: the caller's option value holds `len` bytes (or is NULL).
    let v = match unsafe { slice(val, len as usize) } {
        Some(v) => v,
        None if len == 0 => &[][..],
        None => return ret_int(Err(Errno::EFAULT)),
    };
    ret_int(st.stack.setsockopt(u, level, name, v).map(|_| 0))
}

/// SAFETY (callers): as getsockname's arguments.
unsafe fn sockname(fd: c_int, addr: *mut libc::sockaddr, lenp: *mut socklen_t, peer: bool) -> Option<c_int> {
    let (st, u) = utcp_fd(fd)?;
    if lenp.is_null() {
        return Some(ret_int(Err(Errno::EFAULT)));
    }
    // SAFETY: per this function's contract.
    let (buf, mut len) = match unsafe { addr_out(addr, lenp) } {
        Ok(x) => x,
        Err(e) => return Some(ret_int(Err(e))),
    };
    let r = if peer { st.stack.getpeername_raw(u, buf, &mut len) } else { st.stack.getsockname_raw(u, buf, &mut len) };
    if r.is_ok() {
        // SAFETY: non-NULL per the check above.
        unsafe { *lenp = len };
    }
    Some(ret_int(r.map(|_| 0)))
}

/// `getsockname()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn getsockname(fd: c_int, addr: *mut libc::sockaddr, lenp: *mut socklen_t) -> c_int {
    // SAFETY: the caller's pointers; forwarded unchanged when not ours.
    unsafe { sockname(fd, addr, lenp, false).unwrap_or_else(|| real::getsockname()(fd, addr, lenp)) }
}

/// `getpeername()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut libc::sockaddr, lenp: *mut socklen_t) -> c_int {
    // SAFETY: the caller's pointers; forwarded unchanged when not ours.
    unsafe { sockname(fd, addr, lenp, true).unwrap_or_else(|| real::getpeername()(fd, addr, lenp)) }
}

/// `ioctl()`: FIOCLEX/FIONCLEX act on the kernel fd (close-on-exec is the kernel's), the
/// interface ioctls (`SIOCGIFCONF` … 0x8910–0x89ff, `dev_ioctl()`) go to a kernel UDP socket
/// (they ask about the host's interfaces, not this socket), the rest to utcp
/// (`do_vfs_ioctl` FIONBIO, then `tcp_ioctl`: FIONREAD, SIOCOUTQ, SIOCOUTQNSD, SIOCATMARK).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, req: c_ulong, argp: *mut c_void) -> c_int {
    let Some((st, u)) = utcp_fd(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::ioctl()(fd, req, argp) };
    };
    #[allow(clippy::unnecessary_cast)] // c_ulong is u32 on 32-bit targets
    let r64 = req as u64;
    if r64 == libc::FIOCLEX || r64 == libc::FIONCLEX {
        // SAFETY: these take no argument.
        return unsafe { real::ioctl()(fd, req, argp) };
    }
    if (0x8910..=0x89ff).contains(&r64) {
        // SAFETY: a fresh kernel socket; the caller's argument as for any socket.
        unsafe {
            let s = real::socket()(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if s < 0 {
                return -1;
            }
            let r = real::ioctl()(s, req, argp);
            let e = errno();
            real::close()(s);
            set_errno(e);
            return r;
        }
    }
    if argp.is_null() {
        return ret_int(Err(Errno::EFAULT));
    }
    let mut v: i32 = if r64 == libc::FIONBIO {
        // SAFETY: FIONBIO takes a pointer to an int.
        unsafe { *(argp as *const c_int) }
    } else {
        0
    };
    let r = st.stack.ioctl_arg(u, r64, &mut v);
    if r.is_ok() && r64 != libc::FIONBIO {
        // SAFETY: the remaining ioctls take a pointer to an int they fill.
        unsafe { *(argp as *mut c_int) = v };
    }
    ret_int(r.map(|_| 0))
}

/// `fcntl()` on a placeholder: F_GETFD/F_SETFD are the kernel fd's, F_DUPFD(_CLOEXEC) makes a
/// kernel fd and a utcp `dup` for it, F_GETFL/F_SETFL are utcp's (O_NONBLOCK); anything else
/// is utcp's answer (EINVAL).
fn fcntl_utcp(
    st: &Preload,
    fd: c_int,
    u: i32,
    cmd: c_int,
    arg: c_long,
    f: unsafe extern "C" fn(c_int, c_int, c_long) -> c_int,
) -> c_int {
    match cmd {
        // SAFETY: integer commands on the kernel fd.
        libc::F_GETFD | libc::F_SETFD => unsafe { f(fd, cmd, arg) },
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            // SAFETY: integer command on the kernel fd.
            let k2 = unsafe { f(fd, cmd, arg) };
            if k2 < 0 {
                return k2;
            }
            match st.dup_into(fd, k2) {
                Ok(()) => k2,
                Err(e) => {
                    sys::close(k2);
                    ret_int(Err(e))
                }
            }
        }
        _ => ret_int(st.stack.fcntl(u, cmd, arg as i32)),
    }
}

/// `fcntl()` (variadic: the argument is read as a `long`, see the module docs).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    match utcp_fd(fd) {
        Some((st, u)) => fcntl_utcp(st, fd, u, cmd, arg, real::fcntl()),
        // SAFETY: forwarded unchanged.
        None => unsafe { real::fcntl()(fd, cmd, arg) },
    }
}

/// `fcntl64()` (glibc ≥ 2.28 builds with 64-bit `off_t` call it).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    match utcp_fd(fd) {
        Some((st, u)) => fcntl_utcp(st, fd, u, cmd, arg, real::fcntl64()),
        // SAFETY: forwarded unchanged.
        None => unsafe { real::fcntl64()(fd, cmd, arg) },
    }
}

/// `dup()`.
#[no_mangle]
pub extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: forwarded unchanged.
    let k2 = unsafe { real::dup()(fd) };
    if k2 >= 0 && utcp_fd(fd).is_some() {
        if let Some(st) = state::get() {
            if let Err(e) = st.dup_into(fd, k2) {
                sys::close(k2);
                return ret_int(Err(e));
            }
        }
    }
    k2
}

/// `dup2()`/`dup3()`: the kernel replaces `newfd` atomically; the table follows (the old
/// meaning of `newfd` forgotten, the new one a utcp `dup` when `oldfd` is a placeholder).
fn dup_to(oldfd: c_int, newfd: c_int, call: impl FnOnce() -> c_int) -> c_int {
    let st = state::get();
    let src = utcp_fd(oldfd);
    if oldfd == newfd {
        return call();
    }
    // Take the utcp fd for the copy before the kernel call: `oldfd` may be closed meanwhile.
    let copy = match src {
        Some((st, u)) => match st.stack.dup(u) {
            Ok(u2) => Some(u2),
            Err(e) => return ret_int(Err(e)),
        },
        None => None,
    };
    let r = call();
    if let Some(st) = st {
        if r >= 0 {
            st.forget(newfd);
            if let Some(u2) = copy {
                st.insert(newfd, u2);
                st.note_listener(newfd, u2);
            }
        } else if let Some(u2) = copy {
            let _ = st.stack.close(u2);
        }
    }
    r
}

/// `dup2()`.
#[no_mangle]
pub extern "C" fn dup2(oldfd: c_int, newfd: c_int) -> c_int {
    // SAFETY: forwarded unchanged.
    dup_to(oldfd, newfd, || unsafe { real::dup2()(oldfd, newfd) })
}

/// `dup3()`.
#[no_mangle]
pub extern "C" fn dup3(oldfd: c_int, newfd: c_int, flags: c_int) -> c_int {
    if oldfd == newfd {
        // SAFETY: forwarded unchanged (EINVAL).
        return unsafe { real::dup3()(oldfd, newfd, flags) };
    }
    // SAFETY: forwarded unchanged.
    dup_to(oldfd, newfd, || unsafe { real::dup3()(oldfd, newfd, flags) })
}

mod files;
mod handover;
mod mmsg;
mod readiness;
mod splice;
