//! utcp as an `LD_PRELOAD` library: `LD_PRELOAD=libutcp_preload.so program` gives an
//! unmodified program its AF_INET and AF_INET6 SOCK_STREAM sockets from utcp; everything else (files,
//! pipes, AF_UNIX, UDP, netlink, …) stays the kernel's, untouched.
//!
//! * [`state`]: the process-wide stack (created on the first TCP `socket()`, on an in-process
//!   [`loopback`] device serving 127.0.0.1, with a background timer thread), the table of
//!   kernel placeholder fds, fork and exit handling.
//! * [`wait`]: poll/ppoll/select/epoll over sets that mix utcp sockets and kernel fds.
//! * [`ffi`]: the hooked libc entry points; all of the crate's `unsafe`.
//!
//! Environment: `UTCP_STAT_FILE=PATH` (`%p` becomes the pid) — at exit, the stack's
//! counters in nstat format; `UTCP_TUN=NAME UTCP_ADDR=A.B.C.D/N [UTCP_ADDR6=X::Y/N]
//! [UTCP_MTU=M]` — the stack on that TUN device instead of the in-process loopback (127.0.0.1
//! and `::1`), with an IPv6 address when `UTCP_ADDR6` gives one (see [`state`]); `UTCP_LOG=FILTER
//! [UTCP_LOG_FILE=PATH]` — tracing output (see [`log`]).
//!
//! Hooked: socket, bind, listen, accept, accept4, connect, shutdown, close, read, readv,
//! write, writev, recv, recvfrom, recvmsg, recvmmsg, send, sendto, sendmsg, sendmmsg,
//! sendfile(64), splice (utcp socket ↔ kernel pipe), getsockopt, setsockopt, getsockname,
//! getpeername, ioctl, fcntl(64), select, pselect, poll, ppoll, epoll_ctl, epoll_wait,
//! epoll_pwait, epoll_pwait2, dup, dup2, dup3, fstat(64), `__fxstat(64)`, sigaction, signal,
//! and the fortify variants `__read_chk`, `__recv_chk`, `__recvfrom_chk`, `__poll_chk`,
//! `__ppoll_chk`. Not hooked: socketpair (the kernel's anyway), io_uring, vmsplice, tee and
//! copy_file_range on a utcp socket.
//!
//! * [`handover`]: a loopback connect (`127.x`, `::1`, `::ffff:127.x`) only a kernel listener
//!   takes (another process's) is handed to the kernel, in a socket of the same family.
//! * [`log`]: `UTCP_LOG=FILTER [UTCP_LOG_FILE=PATH]`, tracing output (EnvFilter syntax).
//! * [`signals`]: a signal ends a call asleep in utcp with EINTR, or restarts it, as Linux does.
//!
//! Signals: accept, connect, read, recv, recvfrom, recvmsg, write, send, sendto and sendmsg
//! return EINTR (or their partial count) when a handler without SA_RESTART runs, or when the
//! socket has a timeout; they sleep on otherwise (restart). readv/writev and a recvfrom that
//! asks for the address sleep on whatever the signal. poll, select and epoll_wait sleep in
//! the kernel and return EINTR, as Linux does.
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[allow(unsafe_code)]
pub mod ffi;
pub mod handover;
pub mod log;
pub mod loopback;
pub mod signals;
pub mod state;
pub mod wait;
