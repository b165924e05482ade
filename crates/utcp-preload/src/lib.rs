//! utcp as an `LD_PRELOAD` library: `LD_PRELOAD=libutcp_preload.so program` gives an
//! unmodified program its AF_INET SOCK_STREAM sockets from utcp; everything else (files,
//! pipes, AF_UNIX, UDP, netlink, …) stays the kernel's, untouched.
//!
//! * [`state`]: the process-wide stack (created on the first TCP `socket()`, on an in-process
//!   [`loopback`] device serving 127.0.0.1, with a background timer thread), the table of
//!   kernel placeholder fds, fork and exit handling.
//! * [`wait`]: poll/ppoll/select/epoll over sets that mix utcp sockets and kernel fds.
//! * [`ffi`]: the hooked libc entry points; all of the crate's `unsafe`.
//!
//! Environment: `UTCP_STAT_FILE=PATH` (`%p` becomes the pid) — at exit, the stack's
//! counters in nstat format; `UTCP_TUN=NAME UTCP_ADDR=A.B.C.D/N [UTCP_MTU=M]` — the stack on
//! that TUN device instead of the in-process loopback (see [`state`]).
//!
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
pub mod log;
pub mod loopback;
pub mod signals;
pub mod state;
pub mod wait;
