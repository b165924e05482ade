//! The placeholder becomes a kernel socket for a loopback connect only the kernel can answer
//! (see [`crate::handover`]).

use super::*;
use crate::handover::INT_OPTIONS;
use std::sync::OnceLock;

/// A fresh utcp socket's value of each option in [`INT_OPTIONS`], SO_RCVBUF and SO_SNDBUF
/// (only what a program changed is copied).
fn defaults(st: &Preload) -> &'static [Option<i32>] {
    static D: OnceLock<Vec<Option<i32>>> = OnceLock::new();
    D.get_or_init(|| {
        let Ok(u) = st.stack.socket(libc::AF_INET, libc::SOCK_STREAM, 0) else { return Vec::new() };
        let v = all_opts().map(|(l, n)| int_opt(st, u, l, n)).collect();
        let _ = st.stack.close(u);
        v
    })
}

fn all_opts() -> impl Iterator<Item = (i32, i32)> {
    INT_OPTIONS.iter().copied().chain([(libc::SOL_SOCKET, libc::SO_RCVBUF), (libc::SOL_SOCKET, libc::SO_SNDBUF)])
}

fn int_opt(st: &Preload, u: i32, level: i32, name: i32) -> Option<i32> {
    let mut b = [0u8; 4];
    st.stack.getsockopt(u, level, name, &mut b).ok().filter(|&n| n == 4).map(|_| i32::from_ne_bytes(b))
}

/// Sets option `(level, name)` on kernel socket `ks` to the bytes `v`.
fn kset(ks: c_int, level: i32, name: i32, v: &[u8]) {
    // SAFETY: `v` holds the option's bytes.
    unsafe { real::setsockopt()(ks, level, name, v.as_ptr() as *const c_void, v.len() as socklen_t) };
}

/// Copies what the program set on utcp socket `u` onto kernel socket `ks`: the integer
/// options that differ from a fresh socket's, the buffer sizes (halved: both kernels double
/// what is set), SO_LINGER and the timeouts when set.
fn copy_options(st: &Preload, u: i32, ks: c_int) {
    let defaults = defaults(st);
    for (i, (level, name)) in all_opts().enumerate() {
        let Some(v) = int_opt(st, u, level, name) else { continue };
        if defaults.get(i).copied().flatten() == Some(v) {
            continue;
        }
        let v =
            if level == libc::SOL_SOCKET && (name == libc::SO_RCVBUF || name == libc::SO_SNDBUF) { v / 2 } else { v };
        kset(ks, level, name, &v.to_ne_bytes());
    }
    for name in [libc::SO_LINGER, libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        let mut b = [0u8; 16];
        if let Ok(n) = st.stack.getsockopt(u, libc::SOL_SOCKET, name, &mut b) {
            if b[..n].iter().any(|&x| x != 0) {
                kset(ks, libc::SOL_SOCKET, name, &b[..n]);
            }
        }
    }
}

/// Replaces placeholder `fd` (utcp fd `u`) with a kernel TCP socket: O_NONBLOCK, close-on-exec,
/// the options and the bound address carried over, the utcp socket closed. `Err` (and nothing
/// changed) when the kernel socket cannot be made or bound as the utcp one was.
pub(super) fn to_kernel(st: &Preload, fd: c_int, u: i32) -> Result<(), c_int> {
    let nonblock = st.stack.fcntl(u, libc::F_GETFL, 0).is_ok_and(|f| f & libc::O_NONBLOCK != 0);
    let ty = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | if nonblock { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: no memory arguments.
    let family = int_opt(st, u, libc::SOL_SOCKET, libc::SO_DOMAIN).unwrap_or(libc::AF_INET);
    // SAFETY: no memory arguments.
    let ks = unsafe { real::socket()(family, ty, 0) };
    if ks < 0 {
        return Err(errno());
    }
    copy_options(st, u, ks);
    let mut a = [0u8; 28];
    let mut alen = 28u32;
    if st.stack.getsockname_raw(u, Some(&mut a), &mut alen).is_ok() && a[2..4] != [0, 0] {
        // SAFETY: `a` holds a sockaddr_in or sockaddr_in6 of `alen` bytes.
        let mut r = unsafe { real::bind()(ks, a.as_ptr() as *const libc::sockaddr, alen) };
        if r < 0 && errno() == libc::EADDRINUSE {
            // utcp's port space is not the kernel's: the port utcp gave may be taken there.
            // DEVIATION(linux): the socket then gets another port from the kernel (the address
            // stays), so a getsockname() made before connect() no longer holds.
            tracing::debug!(target: "utcp_preload", fd, "connect: the bound port is the kernel's already; another one");
            a[2..4].copy_from_slice(&[0, 0]);
            // SAFETY: as above.
            r = unsafe { real::bind()(ks, a.as_ptr() as *const libc::sockaddr, alen) };
        }
        if r < 0 {
            let e = errno();
            sys::close(ks);
            return Err(e);
        }
    }
    // SAFETY: F_GETFD takes no argument.
    let cloexec = unsafe { real::fcntl()(fd, libc::F_GETFD, 0) } & libc::FD_CLOEXEC != 0;
    st.remove(fd);
    // SAFETY: integer arguments; `fd` is replaced atomically.
    if unsafe { real::dup3()(ks, fd, if cloexec { libc::O_CLOEXEC } else { 0 }) } < 0 {
        let e = errno();
        st.insert(fd, u);
        sys::close(ks);
        return Err(e);
    }
    sys::close(ks);
    st.listeners.remove(fd);
    let _ = st.stack.close(u);
    tracing::debug!(target: "utcp_preload", fd, "connect: only a kernel listener has the port; the socket is the kernel's now");
    Ok(())
}
