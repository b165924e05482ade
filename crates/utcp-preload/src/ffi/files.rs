//! `sendfile()` into a utcp socket and `fstat()` of a placeholder.

use super::*;

// ---------------------------------------------------------------------- sendfile

/// `sendfile()` into a utcp socket (`do_sendfile()` → `do_splice_direct()`): reads `in_fd`
/// (at `*offset`, which advances, or at its file position, which advances by what was sent)
/// and sends on the socket, up to `count` bytes; stops at end of file, at a short send, or at
/// an error after some bytes went (the count is returned then; the error if none went).
/// EPIPE raises SIGPIPE, as the socket write behind it does.
///
/// SAFETY (callers): `offset` is NULL or valid.
unsafe fn sendfile_utcp(st: &Preload, u: i32, in_fd: c_int, offset: *mut libc::off_t, count: size_t) -> ssize_t {
    // do_sendfile(): a negative offset is EINVAL.
    // SAFETY: NULL or valid per the contract.
    let mut pos = match unsafe { offset.as_ref() } {
        Some(&o) if o < 0 => return ret_size(Err(Errno::EINVAL)),
        Some(&o) => Some(o),
        None => None,
    };
    let mut buf = vec![0u8; count.min(1 << 16)];
    let mut total = 0usize;
    let mut err: Option<Errno> = None;
    while total < count {
        let want = buf.len().min(count - total);
        let p = buf.as_mut_ptr() as *mut c_void;
        // SAFETY: `buf` holds `want` writable bytes.
        let n = unsafe {
            match pos {
                Some(o) => real::pread()(in_fd, p, want, o),
                None => real::read()(in_fd, p, want),
            }
        };
        if n < 0 {
            err = Some(Errno::from_i32(errno()).unwrap_or(Errno::EIO));
            break;
        }
        if n == 0 {
            break;
        }
        let n = n as usize;
        let sent = match st.stack.send(u, Some(&buf[..n]), n, 0) {
            Ok(s) => s,
            Err(e) => {
                err = Some(e);
                0
            }
        };
        total += sent;
        match &mut pos {
            Some(o) => *o += sent as libc::off_t,
            None if sent < n => {
                // Give back what was read and not sent.
                // SAFETY: a plain lseek on the caller's fd.
                unsafe { real::lseek()(in_fd, -((n - sent) as libc::off_t), libc::SEEK_CUR) };
            }
            None => {}
        }
        if sent < n {
            break;
        }
    }
    if let (Some(o), false) = (pos, offset.is_null()) {
        // SAFETY: non-NULL and valid per the contract.
        unsafe { *offset = o };
    }
    match err {
        Some(e) if total == 0 => ret_send(Err(e), 0),
        _ => total as ssize_t,
    }
}

/// `sendfile()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn sendfile(out_fd: c_int, in_fd: c_int, offset: *mut libc::off_t, count: size_t) -> ssize_t {
    match utcp_fd(out_fd) {
        // SAFETY: the caller's offset pointer.
        Some((st, u)) => unsafe { sendfile_utcp(st, u, in_fd, offset, count) },
        // SAFETY: forwarded unchanged.
        None => unsafe { real::sendfile()(out_fd, in_fd, offset, count) },
    }
}

/// `sendfile64()` (the same call where `off_t` is 64-bit).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn sendfile64(out_fd: c_int, in_fd: c_int, offset: *mut libc::off64_t, count: size_t) -> ssize_t {
    match utcp_fd(out_fd) {
        // SAFETY: off64_t is off_t on the 64-bit targets this builds for.
        Some((st, u)) => unsafe { sendfile_utcp(st, u, in_fd, offset as *mut libc::off_t, count) },
        // SAFETY: forwarded unchanged.
        None => unsafe { real::sendfile64()(out_fd, in_fd, offset, count) },
    }
}

// ---------------------------------------------------------------------- fstat

// DEVIATION(linux): st_dev, the times and the owner are the placeholder eventfd's
// (anon_inode), not sockfs's.
/// A placeholder's `struct stat` as a socket's (sockfs): `S_IFSOCK | 0777`, size 0, block size
/// a page, and the utcp socket's id as the inode number (distinct per socket, shared by its
/// dups, as a socket inode is). Device, times and owner stay the placeholder's.
fn sock_stat(k: c_int) -> Option<u64> {
    let (st, u) = utcp_fd(k)?;
    st.stack.sockfd_lookup(u).ok().map(|s| s.sk.id)
}

macro_rules! fix_stat {
    ($buf:expr, $ino:expr) => {{
        let b = $buf;
        b.st_mode = libc::S_IFSOCK | 0o777;
        b.st_size = 0;
        b.st_blocks = 0;
        b.st_blksize = 4096;
        b.st_ino = $ino as _;
    }};
}

/// `fstat()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fstat(fd: c_int, buf: *mut libc::stat) -> c_int {
    // SAFETY: forwarded unchanged.
    let r = unsafe { real::fstat()(fd, buf) };
    if r == 0 {
        if let Some(ino) = sock_stat(fd) {
            // SAFETY: the kernel just filled `*buf`.
            fix_stat!(unsafe { &mut *buf }, ino);
        }
    }
    r
}

/// `fstat64()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fstat64(fd: c_int, buf: *mut libc::stat64) -> c_int {
    // SAFETY: forwarded unchanged.
    let r = unsafe { real::fstat64()(fd, buf) };
    if r == 0 {
        if let Some(ino) = sock_stat(fd) {
            // SAFETY: the kernel just filled `*buf`.
            fix_stat!(unsafe { &mut *buf }, ino);
        }
    }
    r
}

/// `__fxstat()` (what binaries built against glibc < 2.33 call for `fstat`).
///
/// # Safety
/// As glibc's.
#[no_mangle]
pub unsafe extern "C" fn __fxstat(ver: c_int, fd: c_int, buf: *mut libc::stat) -> c_int {
    // SAFETY: forwarded unchanged.
    let r = unsafe { real::__fxstat()(ver, fd, buf) };
    if r == 0 {
        if let Some(ino) = sock_stat(fd) {
            // SAFETY: the kernel just filled `*buf`.
            fix_stat!(unsafe { &mut *buf }, ino);
        }
    }
    r
}

/// `__fxstat64()`.
///
/// # Safety
/// As glibc's.
#[no_mangle]
pub unsafe extern "C" fn __fxstat64(ver: c_int, fd: c_int, buf: *mut libc::stat64) -> c_int {
    // SAFETY: forwarded unchanged.
    let r = unsafe { real::__fxstat64()(ver, fd, buf) };
    if r == 0 {
        if let Some(ino) = sock_stat(fd) {
            // SAFETY: the kernel just filled `*buf`.
            fix_stat!(unsafe { &mut *buf }, ino);
        }
    }
    r
}
