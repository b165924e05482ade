//! The C ABI: `packetdrill_interface_init` and the callbacks of packetdrill's
//! `struct packetdrill_interface` (packetdrill.h). All of the crate's `unsafe` is here: turning
//! packetdrill's pointers into slices, writing results back, and `errno`.
//!
//! packetdrill passes buffers it allocated itself with the lengths it passes (or NULL), so a
//! non-NULL pointer is trusted for its length; NULL becomes `None`, which utcp faults on
//! (EFAULT) exactly when Linux would.

use crate::instance::{Config, Instance};
use libc::{c_char, c_int, c_long, c_uint, c_ulong, c_void, size_t, socklen_t, ssize_t};
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use utcp::errno::{Errno, SysResult};
use utcp::syscall::{IoVec, MsgHdr, PollFd};
use utcp::time::Duration;

/// `struct packetdrill_interface`, field for field.
#[repr(C)]
pub struct PacketdrillInterface {
    userdata: *mut c_void,
    free: Option<unsafe extern "C" fn(*mut c_void)>,
    socket: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int) -> c_int>,
    bind: Option<unsafe extern "C" fn(*mut c_void, c_int, *const libc::sockaddr, socklen_t) -> c_int>,
    listen: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int>,
    accept: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut libc::sockaddr, *mut socklen_t) -> c_int>,
    connect: Option<unsafe extern "C" fn(*mut c_void, c_int, *const libc::sockaddr, socklen_t) -> c_int>,
    read: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, size_t) -> ssize_t>,
    readv: Option<unsafe extern "C" fn(*mut c_void, c_int, *const libc::iovec, c_int) -> ssize_t>,
    recv: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, size_t, c_int) -> ssize_t>,
    recvfrom: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            *mut c_void,
            size_t,
            c_int,
            *mut libc::sockaddr,
            *mut socklen_t,
        ) -> ssize_t,
    >,
    recvmsg: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut libc::msghdr, c_int) -> ssize_t>,
    write: Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_void, size_t) -> ssize_t>,
    writev: Option<unsafe extern "C" fn(*mut c_void, c_int, *const libc::iovec, c_int) -> ssize_t>,
    send: Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_void, size_t, c_int) -> ssize_t>,
    sendto: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            *const c_void,
            size_t,
            c_int,
            *const libc::sockaddr,
            socklen_t,
        ) -> ssize_t,
    >,
    sendmsg: Option<unsafe extern "C" fn(*mut c_void, c_int, *const libc::msghdr, c_int) -> ssize_t>,
    /// Variadic in C (`int (*)(void *, int, int, ...)`): see [`pd_fcntl`].
    fcntl: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, c_long) -> c_int>,
    /// Variadic in C (`int (*)(void *, int, unsigned long, ...)`): see [`pd_ioctl`].
    ioctl: Option<unsafe extern "C" fn(*mut c_void, c_int, c_ulong, *mut c_void) -> c_int>,
    close: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    shutdown: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int>,
    getsockopt: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int>,
    setsockopt: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int, *const c_void, socklen_t) -> c_int>,
    poll: Option<unsafe extern "C" fn(*mut c_void, *mut libc::pollfd, libc::nfds_t, c_int) -> c_int>,
    netdev_send: Option<unsafe extern "C" fn(*mut c_void, *const c_void, size_t) -> c_int>,
    netdev_receive: Option<unsafe extern "C" fn(*mut c_void, *mut c_void, *mut size_t, *mut libc::c_longlong) -> c_int>,
    usleep: Option<unsafe extern "C" fn(*mut c_void, libc::useconds_t) -> c_int>,
    gettimeofday: Option<unsafe extern "C" fn(*mut c_void, *mut libc::timeval, *mut c_void) -> c_int>,
    epoll_create: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    epoll_ctl: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int, *mut libc::epoll_event) -> c_int>,
    epoll_wait: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut libc::epoll_event, c_int, c_int) -> c_int>,
    pipe: Option<unsafe extern "C" fn(*mut c_void, *mut c_int) -> c_int>,
    splice: Option<
        unsafe extern "C" fn(*mut c_void, c_int, *mut libc::loff_t, c_int, *mut libc::loff_t, size_t, c_uint) -> c_int,
    >,
}

/// packetdrill's entry point: fills `ifc` with callbacks over a fresh utcp stack.
///
/// # Safety
/// `ifc` must point to a writable `struct packetdrill_interface`; `flags` is NULL or a
/// NUL-terminated string (`--so_flags`).
#[no_mangle]
pub unsafe extern "C" fn packetdrill_interface_init(flags: *const c_char, ifc: *mut PacketdrillInterface) {
    let flags = if flags.is_null() {
        String::new()
    } else {
        // SAFETY: packetdrill passes `config->so_flags`, NULL (handled above) or a C string.
        unsafe { CStr::from_ptr(flags) }.to_string_lossy().into_owned()
    };
    let inst = Arc::new(Instance::new(Config::parse(&flags)));
    let table = PacketdrillInterface {
        userdata: Arc::into_raw(inst) as *mut c_void,
        free: Some(pd_free),
        socket: Some(pd_socket),
        bind: Some(pd_bind),
        listen: Some(pd_listen),
        accept: Some(pd_accept),
        connect: Some(pd_connect),
        read: Some(pd_read),
        readv: Some(pd_readv),
        recv: Some(pd_recv),
        recvfrom: Some(pd_recvfrom),
        recvmsg: Some(pd_recvmsg),
        write: Some(pd_write),
        writev: Some(pd_writev),
        send: Some(pd_send),
        sendto: Some(pd_sendto),
        sendmsg: Some(pd_sendmsg),
        fcntl: Some(pd_fcntl),
        ioctl: Some(pd_ioctl),
        close: Some(pd_close),
        shutdown: Some(pd_shutdown),
        getsockopt: Some(pd_getsockopt),
        setsockopt: Some(pd_setsockopt),
        poll: Some(pd_poll),
        netdev_send: Some(pd_netdev_send),
        netdev_receive: Some(pd_netdev_receive),
        usleep: Some(pd_usleep),
        gettimeofday: Some(pd_gettimeofday),
        epoll_create: Some(pd_epoll_create),
        epoll_ctl: Some(pd_epoll_ctl),
        epoll_wait: Some(pd_epoll_wait),
        pipe: Some(pd_pipe),
        splice: Some(pd_splice),
    };
    // SAFETY: the caller guarantees `ifc` points to a writable interface struct.
    unsafe { ifc.write(table) };
}

// ---------------------------------------------------------------------- helpers

/// A strong reference to the instance behind `userdata` (kept for the whole call, so that
/// `free` on the main thread cannot pull it from under a call sleeping on another thread).
fn instance(ud: *mut c_void) -> Arc<Instance> {
    let p = ud as *const Instance;
    // SAFETY: `ud` is the `Arc::into_raw` pointer made in `packetdrill_interface_init`; its
    // reference is only given up by `pd_free`, after which packetdrill makes no more calls.
    unsafe {
        Arc::increment_strong_count(p);
        Arc::from_raw(p)
    }
}

fn set_errno(e: Errno) {
    set_errno_raw(e.as_i32());
}

fn set_errno_raw(e: c_int) {
    // SAFETY: `__errno_location` returns this thread's errno slot, always valid to write.
    unsafe { *libc::__errno_location() = e };
}

fn ret_int(r: SysResult<i32>) -> c_int {
    match r {
        Ok(v) => v,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

fn ret_size(r: SysResult<usize>) -> ssize_t {
    match r {
        Ok(v) => v as ssize_t,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// A byte slice for a C buffer, or `None` for NULL.
///
/// SAFETY (callers): a non-NULL `p` points to `len` readable bytes for the slice's lifetime.
unsafe fn slice<'a>(p: *const c_void, len: usize) -> Option<&'a [u8]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-NULL, and the caller guarantees `len` readable bytes.
        Some(unsafe { std::slice::from_raw_parts(p as *const u8, len) })
    }
}

/// A mutable byte slice for a C buffer, or `None` for NULL.
///
/// SAFETY (callers): a non-NULL `p` points to `len` writable bytes, not aliased by any other
/// slice, for the slice's lifetime.
unsafe fn slice_mut<'a>(p: *mut c_void, len: usize) -> Option<&'a mut [u8]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-NULL, and the caller guarantees `len` writable, unaliased bytes.
        Some(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, len) })
    }
}

/// `move_addr_to_kernel`: the sockaddr bytes (at most 128: a longer `len` is EINVAL), which
/// utcp's raw calls then check as `inet_bind`/`inet6_bind` and `__inet_stream_connect` do
/// (either family).
///
/// SAFETY (callers): a non-NULL `addr` points to `len` readable bytes.
unsafe fn sockaddr_from(addr: *const libc::sockaddr, len: socklen_t) -> SysResult<Vec<u8>> {
    if len as i32 > 128 || (len as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: per this function's contract.
    let b = unsafe { slice(addr as *const c_void, len as usize) }.ok_or(Errno::EFAULT)?;
    Ok(b.to_vec())
}

/// `move_addr_to_user`: copies `addr` (a `sockaddr_in` or `sockaddr_in6`) into (`buf`,
/// `*lenp`), truncated, and sets `*lenp`.
///
/// SAFETY (callers): `buf`/`lenp` are NULL or valid, `buf` for `*lenp` bytes.
unsafe fn sockaddr_out(addr: SocketAddr, buf: *mut libc::sockaddr, lenp: *mut socklen_t) -> SysResult<()> {
    if buf.is_null() || lenp.is_null() {
        return Ok(());
    }
    // SAFETY: `lenp` is non-NULL and valid per the contract.
    let len = unsafe { *lenp } as i32;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let (bytes, blen) = utcp::uapi::sockaddr_bytes(&addr);
    let n = (len as usize).min(blen);
    // SAFETY: `buf` is valid for `*lenp` bytes per the contract; we write `n <= *lenp`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf as *mut u8, n);
        *lenp = blen as socklen_t;
    }
    Ok(())
}

/// The iovecs of a C array as utcp iovecs.
///
/// SAFETY (callers): `iov` points to `cnt` iovecs whose bases are NULL or valid, unaliased
/// buffers of their lengths.
unsafe fn iovecs<'a>(iov: *const libc::iovec, cnt: usize) -> SysResult<Vec<IoVec<'a>>> {
    if cnt == 0 {
        return Ok(Vec::new());
    }
    if iov.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: per this function's contract.
    let arr = unsafe { std::slice::from_raw_parts(iov, cnt) };
    Ok(arr
        .iter()
        .map(|v| IoVec {
            // SAFETY: per this function's contract.
            base: unsafe { slice_mut(v.iov_base, v.iov_len) },
            len: v.iov_len,
        })
        .collect())
}

/// The fds packetdrill sees: each utcp fd is exported as a kernel fd of this process (a
/// close-on-exec `/dev/null`) that stands for it.
///
/// packetdrill, even with `--so_filename`, uses the live fd of a socket with the real kernel in
/// two places: it ends a script with the real `close()` on every socket still open (and dies
/// when that fails), and a `%{ }%` code event reads `TCP_INFO`, `TCP_CC_INFO` and `SO_MEMINFO`
/// with the real `getsockopt()`. Handing out utcp's own numbers would make both hit whatever
/// this process has open under that number (packetdrill itself holds a socket as fd 3). A
/// placeholder makes the final `close()` harmless, and lets the `getsockopt` below (effective
/// when this library is also `LD_PRELOAD`ed) recognise the fd and answer from utcp.
struct Exported {
    owner: Weak<Instance>,
    ufd: c_int,
}

static FDS: Mutex<BTreeMap<c_int, Exported>> = Mutex::new(BTreeMap::new());

fn fds() -> std::sync::MutexGuard<'static, BTreeMap<c_int, Exported>> {
    FDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// An fd number utcp never hands out (so an unknown fd is EBADF there too).
const NO_FD: c_int = c_int::MAX - 1;

/// Exports utcp fd `ufd` as a fresh kernel fd.
fn export_fd(inst: &Arc<Instance>, ufd: c_int) -> SysResult<c_int> {
    // SAFETY: a NUL-terminated path; open has no other preconditions.
    let k = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if k < 0 {
        let _ = inst.stack().close(ufd);
        return Err(Errno::EMFILE);
    }
    fds().insert(k, Exported { owner: Arc::downgrade(inst), ufd });
    Ok(k)
}

/// The utcp fd behind kernel fd `k` of `inst` ([`NO_FD`] if none; negative fds unchanged).
fn ufd(inst: &Arc<Instance>, k: c_int) -> c_int {
    if k < 0 {
        return k;
    }
    match fds().get(&k) {
        Some(e) if std::ptr::eq(e.owner.as_ptr(), Arc::as_ptr(inst)) => e.ufd,
        _ => NO_FD,
    }
}

/// The instance and utcp fd behind kernel fd `k`, from any instance.
fn exported(k: c_int) -> Option<(Arc<Instance>, c_int)> {
    let f = fds();
    let e = f.get(&k)?;
    Some((e.owner.upgrade()?, e.ufd))
}

// ---------------------------------------------------------------------- callbacks

unsafe extern "C" fn pd_free(ud: *mut c_void) {
    // packetdrill has already closed the placeholders of open sockets with the real close();
    // forget them all without closing anything.
    fds().retain(|_, e| !std::ptr::eq(e.owner.as_ptr(), ud as *const Instance));
    // SAFETY: gives up the reference made by `Arc::into_raw` in `packetdrill_interface_init`;
    // packetdrill calls `free` once, last.
    drop(unsafe { Arc::from_raw(ud as *const Instance) });
}

unsafe extern "C" fn pd_socket(ud: *mut c_void, domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let inst = instance(ud);
    ret_int(inst.call(|s| s.socket(domain, ty, protocol)).and_then(|u| export_fd(&inst, u)))
}

unsafe extern "C" fn pd_bind(ud: *mut c_void, fd: c_int, addr: *const libc::sockaddr, len: socklen_t) -> c_int {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    // SAFETY: packetdrill passes a sockaddr buffer of `len` bytes.
    let a = unsafe { sockaddr_from(addr, len) };
    ret_int(inst.call(|s| s.bind_raw(fd, &a?).map(|_| 0)))
}

unsafe extern "C" fn pd_listen(ud: *mut c_void, fd: c_int, backlog: c_int) -> c_int {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    ret_int(inst.call(|s| s.listen(fd, backlog).map(|_| 0)))
}

unsafe extern "C" fn pd_accept(ud: *mut c_void, fd: c_int, addr: *mut libc::sockaddr, lenp: *mut socklen_t) -> c_int {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    let r = inst.blocking(fd, |s, c| s.accept4_addr_cancellable(fd, 0, Some(c)));
    ret_int(r.and_then(|(nfd, peer)| {
        // SAFETY: packetdrill passes a sockaddr buffer and its length (or NULLs).
        unsafe { sockaddr_out(peer, addr, lenp) }?;
        export_fd(&inst, nfd)
    }))
}

unsafe extern "C" fn pd_connect(ud: *mut c_void, fd: c_int, addr: *const libc::sockaddr, len: socklen_t) -> c_int {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    // SAFETY: packetdrill passes a sockaddr buffer of `len` bytes.
    let a = unsafe { sockaddr_from(addr, len) };
    ret_int(inst.blocking(fd, |s, c| s.connect_raw_cancellable(fd, &a?, Some(c)).map(|_| 0)))
}

unsafe extern "C" fn pd_read(ud: *mut c_void, fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    // SAFETY: packetdrill passes a buffer of `n` bytes, or NULL.
    let b = unsafe { slice_mut(buf, n) };
    let is_sock = inst.stack().sockfd_lookup(fd).is_ok();
    ret_size(inst.blocking(fd, |s, c| match b {
        Some(b) if is_sock => s.recv_cancellable(fd, b, 0, c),
        b => s.read(fd, b, n),
    }))
}

unsafe extern "C" fn pd_recv(ud: *mut c_void, fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    // SAFETY: packetdrill passes a buffer of `n` bytes, or NULL.
    let b = unsafe { slice_mut(buf, n) };
    ret_size(inst.blocking(fd, |s, c| match b {
        Some(b) => s.recv_cancellable(fd, b, flags, c),
        None => s.recv(fd, None, n, flags),
    }))
}

unsafe extern "C" fn pd_recvfrom(
    ud: *mut c_void,
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut libc::sockaddr,
    lenp: *mut socklen_t,
) -> ssize_t {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    // SAFETY: packetdrill passes a buffer of `n` bytes, or NULL.
    let b = unsafe { slice_mut(buf, n) };
    // SAFETY: `lenp` is NULL or packetdrill's socklen_t.
    let mut alen = if lenp.is_null() { None } else { Some(unsafe { *lenp }) };
    let a = match alen {
        // SAFETY: packetdrill's address buffer holds `*lenp` bytes.
        Some(l) if (l as i32) >= 0 => unsafe { slice_mut(addr as *mut c_void, l as usize) },
        _ => None,
    };
    let r = inst.blocking(fd, |s, _| s.recvfrom(fd, b, n, flags, a, alen.as_mut()));
    if let (Some(l), false) = (alen, lenp.is_null()) {
        // SAFETY: `lenp` is non-NULL and valid.
        unsafe { *lenp = l };
    }
    ret_size(r)
}

/// Runs `recvmsg` on a C `msghdr`, writing back its out fields.
///
/// SAFETY (callers): `msg` is NULL or a valid msghdr whose buffers are valid for their lengths.
unsafe fn recvmsg_c(inst: &Instance, fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> SysResult<usize> {
    if msg.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-NULL and valid per the contract.
    let m = unsafe { &mut *msg };
    // SAFETY: the msghdr's buffers are valid for their lengths per the contract.
    let mut hdr = unsafe {
        MsgHdr {
            name: slice_mut(m.msg_name, m.msg_namelen as usize),
            namelen: m.msg_namelen,
            iov: iovecs(m.msg_iov, m.msg_iovlen)?,
            control: slice_mut(m.msg_control, m.msg_controllen),
            controllen: m.msg_controllen,
            flags: 0,
        }
    };
    let r = inst.blocking(fd, |s, c| s.recvmsg_cancellable(fd, &mut hdr, flags, Some(c)));
    let (namelen, controllen, oflags) = (hdr.namelen, hdr.controllen, hdr.flags);
    drop(hdr);
    if r.is_ok() {
        m.msg_namelen = namelen;
        m.msg_controllen = controllen;
        m.msg_flags = oflags;
    }
    r
}

unsafe extern "C" fn pd_recvmsg(ud: *mut c_void, fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> ssize_t {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    // SAFETY: packetdrill builds the msghdr and its buffers.
    ret_size(unsafe { recvmsg_c(&inst, fd, msg, flags) })
}

unsafe extern "C" fn pd_readv(ud: *mut c_void, fd: c_int, iov: *const libc::iovec, cnt: c_int) -> ssize_t {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    if cnt < 0 {
        set_errno(Errno::EINVAL);
        return -1;
    }
    let mut m: libc::msghdr =
        // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
        unsafe { std::mem::zeroed() };
    m.msg_iov = iov as *mut libc::iovec;
    m.msg_iovlen = cnt as usize;
    // SAFETY: the iovecs are packetdrill's, valid for their lengths; no name or control.
    ret_size(unsafe { recvmsg_c(&inst, fd, &mut m, 0) })
}

unsafe extern "C" fn pd_write(ud: *mut c_void, fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    // SAFETY: packetdrill passes a buffer of `n` bytes, or NULL.
    let b = unsafe { slice(buf, n) };
    let is_sock = inst.stack().sockfd_lookup(fd).is_ok();
    ret_size(inst.blocking(fd, |s, c| match b {
        Some(b) if is_sock => s.send_cancellable(fd, b, 0, c),
        b => s.write(fd, b, n),
    }))
}

unsafe extern "C" fn pd_send(ud: *mut c_void, fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    // SAFETY: packetdrill passes a buffer of `n` bytes, or NULL.
    let b = unsafe { slice(buf, n) };
    ret_size(inst.blocking(fd, |s, c| match b {
        Some(b) => s.send_cancellable(fd, b, flags, c),
        None => s.send(fd, None, n, flags),
    }))
}

unsafe extern "C" fn pd_sendto(
    ud: *mut c_void,
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    _addr: *const libc::sockaddr,
    _len: socklen_t,
) -> ssize_t {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    // SAFETY: packetdrill passes a buffer of `n` bytes, or NULL.
    let b = unsafe { slice(buf, n) };
    // The address is ignored on a connected TCP socket (utcp's sendto does the same).
    ret_size(inst.blocking(fd, |s, _| s.sendto(fd, b, n, flags, None)))
}

/// Runs `sendmsg` over C iovecs.
///
/// SAFETY (callers): `iov` points to `cnt` iovecs valid for their lengths (bases may be NULL).
unsafe fn sendmsg_c(inst: &Instance, fd: c_int, iov: *const libc::iovec, cnt: usize, flags: c_int) -> SysResult<usize> {
    if cnt > 0 && iov.is_null() {
        return Err(Errno::EFAULT);
    }
    let arr: &[libc::iovec] = if cnt == 0 {
        &[]
    } else {
        // SAFETY: per this function's contract.
        unsafe { std::slice::from_raw_parts(iov, cnt) }
    };
    // SAFETY: per this function's contract.
    let v: Vec<(Option<&[u8]>, usize)> =
        arr.iter().map(|x| (unsafe { slice(x.iov_base, x.iov_len) }, x.iov_len)).collect();
    inst.blocking(fd, |s, _| s.sendmsg(fd, &v, flags))
}

unsafe extern "C" fn pd_writev(ud: *mut c_void, fd: c_int, iov: *const libc::iovec, cnt: c_int) -> ssize_t {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    if cnt < 0 {
        set_errno(Errno::EINVAL);
        return -1;
    }
    // SAFETY: packetdrill's iovecs.
    ret_size(unsafe { sendmsg_c(&inst, fd, iov, cnt as usize, 0) })
}

unsafe extern "C" fn pd_sendmsg(ud: *mut c_void, fd: c_int, msg: *const libc::msghdr, flags: c_int) -> ssize_t {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    if msg.is_null() {
        set_errno(Errno::EFAULT);
        return -1;
    }
    // SAFETY: non-NULL msghdr built by packetdrill.
    let m = unsafe { &*msg };
    // SAFETY: its iovecs are packetdrill's.
    ret_size(unsafe { sendmsg_c(&inst, fd, m.msg_iov, m.msg_iovlen, flags) })
}

/// `fcntl(fd, cmd, ...)`. C declares it variadic; on the System V x86-64 and AAPCS64 Linux
/// ABIs an integer variadic argument travels in the same register as a fixed one, so the
/// optional `arg` is read as a fixed `long` (garbage, and unused, when the caller passed none).
unsafe extern "C" fn pd_fcntl(ud: *mut c_void, fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    ret_int(inst.call(|s| s.fcntl(fd, cmd, arg as i32)))
}

/// `ioctl(fd, request, argp)`; variadic in C, read as a fixed pointer (see [`pd_fcntl`]).
unsafe extern "C" fn pd_ioctl(ud: *mut c_void, fd: c_int, req: c_ulong, argp: *mut c_void) -> c_int {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    if req == libc::FIONBIO as c_ulong {
        // fs/ioctl.c: FIONBIO sets or clears O_NONBLOCK from `*(int *)argp`.
        if argp.is_null() {
            set_errno(Errno::EFAULT);
            return -1;
        }
        // SAFETY: packetdrill passes a pointer to an int.
        let on = unsafe { *(argp as *const c_int) } != 0;
        return ret_int(inst.call(|s| {
            let fl = s.fcntl(fd, libc::F_GETFL, 0)?;
            let fl = if on { fl | libc::O_NONBLOCK } else { fl & !libc::O_NONBLOCK };
            s.fcntl(fd, libc::F_SETFL, fl)
        }));
    }
    #[allow(clippy::unnecessary_cast)] // c_ulong is u32 on 32-bit targets
    let req = req as u64;
    let r = inst.call(|s| s.ioctl(fd, req));
    ret_int(r.and_then(|v| {
        if argp.is_null() {
            return Err(Errno::EFAULT);
        }
        // SAFETY: these ioctls take a pointer to an int.
        unsafe { *(argp as *mut c_int) = v };
        Ok(0)
    }))
}

unsafe extern "C" fn pd_close(ud: *mut c_void, fd: c_int) -> c_int {
    let inst = instance(ud);
    let u = ufd(&inst, fd);
    let r = inst.call(|s| s.close(u));
    if r.is_ok() {
        fds().remove(&fd);
        // SAFETY: `fd` is the placeholder this library opened for `u` (`ufd` found it).
        unsafe { libc::close(fd) };
    }
    ret_int(r.map(|_| 0))
}

unsafe extern "C" fn pd_shutdown(ud: *mut c_void, fd: c_int, how: c_int) -> c_int {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    ret_int(inst.call(|s| s.shutdown(fd, how).map(|_| 0)))
}

unsafe extern "C" fn pd_getsockopt(
    ud: *mut c_void,
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    lenp: *mut socklen_t,
) -> c_int {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    if lenp.is_null() {
        set_errno(Errno::EFAULT);
        return -1;
    }
    // SAFETY: non-NULL `optlen` from packetdrill.
    let len = unsafe { *lenp } as i32;
    if len < 0 {
        set_errno(Errno::EINVAL);
        return -1;
    }
    let mut scratch = [0u8; 0];
    // SAFETY: packetdrill's option buffer holds `*optlen` bytes (or is NULL).
    let out = match unsafe { slice_mut(val, len as usize) } {
        Some(b) => b,
        None if len == 0 => &mut scratch[..],
        None => {
            set_errno(Errno::EFAULT);
            return -1;
        }
    };
    let r = inst.call(|s| s.getsockopt(fd, level, name, out));
    ret_int(r.map(|n| {
        // SAFETY: non-NULL `optlen` from packetdrill.
        unsafe { *lenp = n as socklen_t };
        0
    }))
}

unsafe extern "C" fn pd_setsockopt(
    ud: *mut c_void,
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    if (len as i32) < 0 {
        set_errno(Errno::EINVAL);
        return -1;
    }
    // SAFETY: packetdrill's option value holds `optlen` bytes (or is NULL).
    let v = match unsafe { slice(val, len as usize) } {
        Some(v) => v,
        None if len == 0 => &[][..],
        None => {
            set_errno(Errno::EFAULT);
            return -1;
        }
    };
    ret_int(inst.call(|s| s.setsockopt(fd, level, name, v).map(|_| 0)))
}

fn timeout_ms(t: c_int) -> Option<Duration> {
    (t >= 0).then(|| Duration::from_millis(t as u64))
}

unsafe extern "C" fn pd_poll(ud: *mut c_void, fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: c_int) -> c_int {
    let n = nfds as usize;
    if n > 0 && fds.is_null() {
        set_errno(Errno::EFAULT);
        return -1;
    }
    let arr: &mut [libc::pollfd] = if n == 0 {
        &mut []
    } else {
        // SAFETY: packetdrill passes `nfds` pollfds.
        unsafe { std::slice::from_raw_parts_mut(fds, n) }
    };
    let inst = instance(ud);
    let mut p: Vec<PollFd> =
        arr.iter().map(|x| PollFd { fd: ufd(&inst, x.fd), events: x.events, revents: 0 }).collect();
    let r = inst.wait_ready(timeout_ms(timeout), |s| {
        let k = s.poll(&mut p, Some(Duration::ZERO))?;
        Ok((k, k > 0))
    });
    for (c, r) in arr.iter_mut().zip(&p) {
        c.revents = r.revents;
    }
    ret_int(r.map(|k| k as i32))
}

unsafe extern "C" fn pd_netdev_send(ud: *mut c_void, buf: *const c_void, n: size_t) -> c_int {
    // SAFETY: packetdrill passes its packet buffer of `n` bytes.
    match unsafe { slice(buf, n) } {
        Some(b) => {
            instance(ud).netdev_send(b);
            0
        }
        None => -1,
    }
}

unsafe extern "C" fn pd_netdev_receive(
    ud: *mut c_void,
    buf: *mut c_void,
    count: *mut size_t,
    time_usecs: *mut libc::c_longlong,
) -> c_int {
    if count.is_null() {
        return -1;
    }
    // SAFETY: packetdrill passes its packet buffer and its size in `*count`.
    let b = unsafe { slice_mut(buf, *count) };
    let Some(b) = b else { return -1 };
    match instance(ud).netdev_receive(b) {
        Some((n, t)) => {
            // SAFETY: valid out pointers from packetdrill (time_usecs checked for NULL).
            unsafe {
                *count = n;
                if !time_usecs.is_null() {
                    *time_usecs = t.micros() as libc::c_longlong;
                }
            }
            0
        }
        None => {
            // "Set @count to 0 if received nothing": packetdrill fails to parse an empty
            // packet and stops the script with an error.
            // SAFETY: valid out pointer from packetdrill.
            unsafe { *count = 0 };
            0
        }
    }
}

unsafe extern "C" fn pd_usleep(ud: *mut c_void, us: libc::useconds_t) -> c_int {
    instance(ud).usleep(us as u64);
    0
}

unsafe extern "C" fn pd_gettimeofday(ud: *mut c_void, tv: *mut libc::timeval, _tz: *mut c_void) -> c_int {
    let t = instance(ud).gettimeofday();
    if !tv.is_null() {
        let us = t.micros();
        // SAFETY: non-NULL timeval from packetdrill.
        unsafe {
            (*tv).tv_sec = (us / 1_000_000) as libc::time_t;
            (*tv).tv_usec = (us % 1_000_000) as libc::suseconds_t;
        }
    }
    0
}

unsafe extern "C" fn pd_epoll_create(ud: *mut c_void, size: c_int) -> c_int {
    let inst = instance(ud);
    ret_int(inst.call(|s| s.epoll_create(size)).and_then(|u| export_fd(&inst, u)))
}

unsafe extern "C" fn pd_epoll_ctl(
    ud: *mut c_void,
    epfd: c_int,
    op: c_int,
    fd: c_int,
    ev: *mut libc::epoll_event,
) -> c_int {
    let inst = instance(ud);
    let fd = ufd(&inst, fd);
    let epfd = ufd(&inst, epfd);
    let (events, data) = if ev.is_null() {
        if op != libc::EPOLL_CTL_DEL {
            set_errno(Errno::EFAULT);
            return -1;
        }
        (0, 0)
    } else {
        // SAFETY: packetdrill's epoll_event; read unaligned (the struct is packed on x86-64).
        let e = unsafe { std::ptr::read_unaligned(ev) };
        (e.events, e.u64)
    };
    ret_int(inst.call(|s| s.epoll_ctl(epfd, op, fd, events, data).map(|_| 0)))
}

unsafe extern "C" fn pd_epoll_wait(
    ud: *mut c_void,
    epfd: c_int,
    events: *mut libc::epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    let inst = instance(ud);
    let epfd = ufd(&inst, epfd);
    if max > 0 && events.is_null() {
        set_errno(Errno::EFAULT);
        return -1;
    }
    let r = inst.wait_ready(timeout_ms(timeout), |s| {
        let v = s.epoll_wait(epfd, max, Some(Duration::ZERO))?;
        let ready = !v.is_empty();
        Ok((v, ready))
    });
    ret_int(r.map(|v| {
        for (i, (ev, data)) in v.iter().enumerate().take(max.max(0) as usize) {
            let e = libc::epoll_event { events: *ev, u64: *data };
            // SAFETY: packetdrill's array holds `max` events; unaligned write (packed struct).
            unsafe { std::ptr::write_unaligned(events.add(i), e) };
        }
        v.len() as i32
    }))
}

unsafe extern "C" fn pd_pipe(ud: *mut c_void, fds: *mut c_int) -> c_int {
    if fds.is_null() {
        set_errno(Errno::EFAULT);
        return -1;
    }
    let inst = instance(ud);
    let r = inst.call(|s| s.pipe()).and_then(|(r, w)| Ok((export_fd(&inst, r)?, export_fd(&inst, w)?)));
    ret_int(r.map(|(r, w)| {
        // SAFETY: packetdrill passes `int[2]`.
        unsafe {
            *fds = r;
            *fds.add(1) = w;
        }
        0
    }))
}

unsafe extern "C" fn pd_splice(
    ud: *mut c_void,
    fd_in: c_int,
    off_in: *mut libc::loff_t,
    fd_out: c_int,
    off_out: *mut libc::loff_t,
    len: size_t,
    flags: c_uint,
) -> c_int {
    let inst = instance(ud);
    let fd_in = ufd(&inst, fd_in);
    let fd_out = ufd(&inst, fd_out);
    // packetdrill's so path passes the address of each script offset, where its kernel path
    // passes the script value itself as the pointer (`splice(fd, NULL, ...)` is a NULL
    // pointer there): follow the kernel path, so a script NULL (0) is no offset.
    // SAFETY: non-NULL pointers to packetdrill's s64 locals.
    let given = |p: *mut libc::loff_t| !p.is_null() && unsafe { *p } != 0;
    if given(off_in) || given(off_out) {
        // Sockets and pipes have no offset.
        set_errno_raw(libc::ESPIPE);
        return -1;
    }
    ret_int(inst.blocking(fd_in, |s, _| s.splice(fd_in, fd_out, len, flags as i32)).map(|n| n as i32))
}

// ---------------------------------------------------------------------- interposition

/// `getsockopt(2)` for the whole process, effective when this library is `LD_PRELOAD`ed: on a
/// placeholder of a utcp socket it answers from utcp, anything else goes to the kernel.
///
/// packetdrill's `%{ }%` code events read `TCP_INFO`, `TCP_CC_INFO` and `SO_MEMINFO` of the
/// socket under test with the real `getsockopt` even with `--so_filename` (code.c); without the
/// preload they fail with "can't find getsockopt to get TCP info".
///
/// # Safety
/// As `getsockopt(2)`: `val` holds `*lenp` bytes (or is NULL), `lenp` is valid (or NULL).
#[export_name = "getsockopt"]
pub unsafe extern "C" fn interposed_getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    lenp: *mut socklen_t,
) -> c_int {
    let Some((inst, u)) = exported(fd) else {
        // SAFETY: the caller's arguments, passed on unchanged to the kernel.
        return unsafe { libc::syscall(libc::SYS_getsockopt, fd, level, name, val, lenp) } as c_int;
    };
    if lenp.is_null() {
        set_errno(Errno::EFAULT);
        return -1;
    }
    // SAFETY: non-NULL optlen from the caller.
    let len = unsafe { *lenp } as i32;
    if len < 0 {
        set_errno(Errno::EINVAL);
        return -1;
    }
    let mut scratch = [0u8; 0];
    // SAFETY: the caller's buffer holds `*optlen` bytes (or is NULL).
    let out = match unsafe { slice_mut(val, len as usize) } {
        Some(b) => b,
        None if len == 0 => &mut scratch[..],
        None => {
            set_errno(Errno::EFAULT);
            return -1;
        }
    };
    let r = inst.call(|s| crate::code::getsockopt(s, u, level, name, out));
    ret_int(r.map(|n| {
        // SAFETY: non-NULL optlen from the caller.
        unsafe { *lenp = n as socklen_t };
        0
    }))
}
