//! `splice()` between a utcp socket and a kernel pipe (fs/splice.c `do_splice()`;
//! `splice_file_to_pipe()` → `tcp_splice_read()` one way, `splice_to_socket()` the other).
//!
//! A utcp socket is not a kernel file, so the bytes are copied through the library: socket →
//! pipe peeks at the socket, writes what the pipe has room for and then takes exactly that off
//! the socket; pipe → socket copies the pipe's bytes with `tee()` into a private pipe (the
//! caller's pipe keeps them), sends, then takes off the pipe exactly what the socket accepted.
//! Nothing is lost when the other side takes less than was offered.
// DEVIATION(linux): not atomic against another thread reading the same socket (or pipe)
// between the peek (or tee) and the take; Linux holds the socket and pipe locks throughout.
// The byte counts one call moves follow the pipe's room in bytes, not Linux's pipe buffers
// (one per skb fragment), so a call may move more or less than Linux's would; the bytes and
// their order are the same.

use super::*;

/// A result with a raw errno (ESPIPE is not one of utcp's).
type KResult<T> = Result<T, c_int>;

fn ret_raw_size(r: KResult<usize>) -> ssize_t {
    match r {
        Ok(v) => v as ssize_t,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// `SPLICE_F_NONBLOCK`.
const SPLICE_F_NONBLOCK: libc::c_uint = 2;
/// `SPLICE_F_MORE`.
const SPLICE_F_MORE: libc::c_uint = 4;
/// `SPLICE_F_ALL`.
const SPLICE_F_ALL: libc::c_uint = 0xf;

/// What the kernel says of a kernel fd: open, a pipe (or FIFO), its `F_GETFL` flags.
struct KFile {
    pipe: bool,
    fl: c_int,
}

fn kfile(fd: c_int) -> Option<KFile> {
    // SAFETY: stat is plain data; all-zero is valid.
    let mut sb: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `sb` is a local the kernel fills.
    if unsafe { real::fstat()(fd, &mut sb) } < 0 {
        return None;
    }
    // SAFETY: F_GETFL takes no argument.
    let fl = unsafe { real::fcntl()(fd, libc::F_GETFL, 0) };
    Some(KFile { pipe: sb.st_mode & libc::S_IFMT == libc::S_IFIFO, fl })
}

/// `splice()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn splice(
    fd_in: c_int,
    off_in: *mut libc::loff_t,
    fd_out: c_int,
    off_out: *mut libc::loff_t,
    len: size_t,
    flags: libc::c_uint,
) -> ssize_t {
    let (uin, uout) = (utcp_fd(fd_in), utcp_fd(fd_out));
    let st = match (uin, uout) {
        (Some((st, _)), _) | (_, Some((st, _))) => st,
        // SAFETY: forwarded unchanged.
        (None, None) => return unsafe { real::splice()(fd_in, off_in, fd_out, off_out, len, flags) },
    };
    ret_raw_size(splice_utcp(
        st,
        fd_in,
        uin.map(|x| x.1),
        off_in.is_null(),
        fd_out,
        uout.map(|x| x.1),
        off_out.is_null(),
        len,
        flags,
    ))
}

/// The syscall's checks in Linux's order (`SYSCALL_DEFINE6(splice)`, `__do_splice()`,
/// `do_splice()`), then the copy. `uin`/`uout`: the utcp fd when that side is a utcp socket.
#[allow(clippy::too_many_arguments)]
fn splice_utcp(
    st: &Preload,
    fd_in: c_int,
    uin: Option<i32>,
    no_off_in: bool,
    fd_out: c_int,
    uout: Option<i32>,
    no_off_out: bool,
    len: usize,
    flags: libc::c_uint,
) -> KResult<usize> {
    if len == 0 {
        return Ok(0);
    }
    if flags & !SPLICE_F_ALL != 0 {
        return Err(libc::EINVAL);
    }
    // A utcp socket is O_RDWR and no pipe; a kernel fd must be open (EBADF).
    let kin = match uin {
        Some(_) => None,
        None => Some(kfile(fd_in).ok_or(libc::EBADF)?),
    };
    let kout = match uout {
        Some(_) => None,
        None => Some(kfile(fd_out).ok_or(libc::EBADF)?),
    };
    let in_pipe = kin.as_ref().is_some_and(|k| k.pipe);
    let out_pipe = kout.as_ref().is_some_and(|k| k.pipe);
    if (in_pipe && !no_off_in) || (out_pipe && !no_off_out) {
        return Err(libc::ESPIPE);
    }
    // do_splice(): FMODE_READ on the input, FMODE_WRITE on the output.
    if kin.as_ref().is_some_and(|k| k.fl & libc::O_ACCMODE == libc::O_WRONLY)
        || kout.as_ref().is_some_and(|k| k.fl & libc::O_ACCMODE == libc::O_RDONLY)
    {
        return Err(libc::EBADF);
    }
    match (uin, uout) {
        (None, Some(u)) if in_pipe => {
            // A socket has no FMODE_PWRITE: an output offset is EINVAL.
            if !no_off_out {
                return Err(libc::EINVAL);
            }
            let nonblock = flags & SPLICE_F_NONBLOCK != 0 || kin.is_some_and(|k| k.fl & libc::O_NONBLOCK != 0);
            pipe_to_socket(st, fd_in, u, len, nonblock, flags & SPLICE_F_MORE != 0)
        }
        (Some(u), None) if out_pipe => {
            if !no_off_in {
                return Err(libc::EINVAL);
            }
            let nonblock = flags & SPLICE_F_NONBLOCK != 0 || kout.is_some_and(|k| k.fl & libc::O_NONBLOCK != 0);
            socket_to_pipe(st, u, fd_out, len, nonblock)
        }
        // Neither side is a pipe (socket to socket, socket to a file or device).
        _ => Err(libc::EINVAL),
    }
}

/// One real `poll()` of `fd` for `events`; `None` waits forever. A signal whose handler has
/// SA_RESTART restarts the wait, any other is EINTR: Linux's pipe waits return -ERESTARTSYS
/// (`pipe_wait_readable`, `wait_for_space`).
fn poll1(fd: c_int, events: i16, timeout: Option<Duration>) -> KResult<i16> {
    let mut p = [libc::pollfd { fd, events, revents: 0 }];
    loop {
        crate::signals::take_last_handler();
        match sys::ppoll(&mut p, timeout, None) {
            Err(libc::EINTR) if timeout.is_none() && crate::signals::take_last_handler() == Some(true) => continue,
            r => return r.map(|_| p[0].revents),
        }
    }
}

/// Bytes queued in a kernel pipe (FIONREAD).
fn pipe_bytes(fd: c_int) -> usize {
    let mut n: c_int = 0;
    // SAFETY: FIONREAD fills an int.
    if unsafe { real::ioctl()(fd, libc::FIONREAD, &mut n as *mut c_int as *mut c_void) } < 0 {
        return 0;
    }
    n.max(0) as usize
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// `splice_file_to_pipe()`: `wait_for_space()` (EPIPE and SIGPIPE without readers; EAGAIN
/// when full and non-blocking), then `tcp_splice_read()`: what the socket holds, up to `len`
/// and the pipe's room, waiting for data as a blocking read does (the socket's O_NONBLOCK and
/// SO_RCVTIMEO, not SPLICE_F_NONBLOCK); 0 at end of stream.
fn socket_to_pipe(st: &Preload, u: i32, pipe: c_int, len: usize, nonblock: bool) -> KResult<usize> {
    loop {
        let rev = poll1(pipe, libc::POLLOUT, Some(Duration::ZERO))?;
        if rev & libc::POLLERR != 0 {
            // SAFETY: raise has no memory preconditions.
            unsafe { libc::raise(libc::SIGPIPE) };
            return Err(libc::EPIPE);
        }
        if rev & libc::POLLOUT != 0 {
            break;
        }
        if nonblock {
            return Err(libc::EAGAIN);
        }
        poll1(pipe, libc::POLLOUT, None)?;
    }
    // The room a write is sure to find: every free buffer is a page, and a pipe not full has
    // one at least (each queued byte may hold a buffer of its own).
    let page = page_size();
    // SAFETY: F_GETPIPE_SZ takes no argument.
    let cap = unsafe { real::fcntl()(pipe, libc::F_GETPIPE_SZ, 0) }.max(page as c_int) as usize;
    let slots = cap / page;
    let room = (slots - pipe_bytes(pipe).min(slots - 1)) * page;
    let mut buf = vec![0u8; len.min(room)];
    let n = interruptible(u, false, |c| st.stack.recv_cancellable(u, &mut buf, utcp::tcp::recvmsg::MSG_PEEK, c))
        .map_err(|e| e.as_i32())?;
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: `buf` holds `n` initialised bytes.
    let w = unsafe { real::write()(pipe, buf.as_ptr() as *const c_void, n) };
    if w < 0 {
        let e = errno();
        if e == libc::EPIPE {
            // SAFETY: raise has no memory preconditions.
            unsafe { libc::raise(libc::SIGPIPE) };
        }
        return Err(e);
    }
    let w = w as usize;
    // The peeked bytes are queued: this takes them without waiting.
    st.stack.recv(u, Some(&mut buf[..w]), w, utcp::tcp::recvmsg::MSG_DONTWAIT).map_err(|e| e.as_i32())?;
    Ok(w)
}

/// A private non-blocking pipe for `tee()`; both ends closed on drop.
struct TeePipe([c_int; 2]);

impl TeePipe {
    fn new() -> KResult<TeePipe> {
        let mut p = [-1 as c_int; 2];
        // SAFETY: `p` holds two ints.
        if unsafe { real::pipe2()(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
            return Err(errno());
        }
        Ok(TeePipe(p))
    }
}

impl Drop for TeePipe {
    fn drop(&mut self) {
        sys::close(self.0[0]);
        sys::close(self.0[1]);
    }
}

/// Reads exactly `buf.len()` bytes that are known to be queued in `fd`.
fn read_queued(fd: c_int, buf: &mut [u8]) -> KResult<()> {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: the rest of `buf` is writable.
        let n = unsafe { real::read()(fd, buf[got..].as_mut_ptr() as *mut c_void, buf.len() - got) };
        if n <= 0 {
            return Err(if n < 0 { errno() } else { libc::EIO });
        }
        got += n as usize;
    }
    Ok(())
}

/// `splice_to_socket()`: waits for the pipe to hold data (0 when it is empty and has no
/// writers, EAGAIN when non-blocking), sends what it holds up to `len` (MSG_MORE with
/// SPLICE_F_MORE, or while more is asked for and queued), and goes on until `len` is done,
/// the pipe is empty or the socket takes less; EPIPE raises SIGPIPE (no MSG_NOSIGNAL).
fn pipe_to_socket(st: &Preload, pipe: c_int, u: i32, mut len: usize, nonblock: bool, more: bool) -> KResult<usize> {
    let mut spliced = 0usize;
    let mut tee: Option<TeePipe> = None;
    while len > 0 {
        let avail = pipe_bytes(pipe);
        if avail == 0 {
            if spliced > 0 {
                break;
            }
            let rev = poll1(pipe, libc::POLLIN, Some(Duration::ZERO))?;
            if rev & libc::POLLIN == 0 && rev & libc::POLLHUP != 0 {
                return Ok(0);
            }
            if rev & libc::POLLIN == 0 {
                if nonblock {
                    return Err(libc::EAGAIN);
                }
                poll1(pipe, libc::POLLIN, None)?;
            }
            continue;
        }
        let t = match &tee {
            Some(t) => t,
            None => tee.insert(TeePipe::new()?),
        };
        // SAFETY: integer arguments on the caller's pipe and ours.
        let n = unsafe { real::tee()(pipe, t.0[1], len.min(avail), SPLICE_F_NONBLOCK) };
        if n <= 0 {
            if spliced > 0 {
                break;
            }
            return Err(if n < 0 { errno() } else { libc::EAGAIN });
        }
        let n = n as usize;
        let mut buf = vec![0u8; n];
        read_queued(t.0[0], &mut buf)?;
        let flags = if more || (len > n && avail > n) { utcp::tcp::output::MSG_MORE } else { 0 };
        match interruptible(u, true, |c| st.stack.send_cancellable(u, &buf, flags, c)).map_err(|e| e.as_i32()) {
            Ok(s) => {
                read_queued(pipe, &mut buf[..s])?;
                spliced += s;
                len -= s;
                if s < n {
                    break;
                }
            }
            Err(e) => {
                if e == libc::EPIPE {
                    // SAFETY: raise has no memory preconditions.
                    unsafe { libc::raise(libc::SIGPIPE) };
                }
                if spliced > 0 {
                    break;
                }
                return Err(e);
            }
        }
    }
    Ok(spliced)
}
