//! Backend-agnostic scenario model: steps, outcomes, the [`Backend`] trait and
//! [`compare`].
//!
//! # Topology
//!
//! Every connected scenario has exactly two TCP endpoints on loopback
//! (127.0.0.1):
//!
//! * **local** — the socket under test. It is the *active opener*: it is
//!   created, gets [`Scenario::pre_opts`] applied, then `connect()`s. All
//!   `Recv`/`RecvMsg`/`SetOpt`/`GetOpt`/`Ioctl`/`Poll`/`Shutdown*`/`LocalClose`
//!   steps act on it. Its results are what we compare.
//! * **peer** — the remote end (the kernel backend uses the `accept()`ed
//!   socket). `Peer*` steps act on it. The peer has `TCP_NODELAY` set so that
//!   every peer write is one segment sent immediately. After each peer step the
//!   backend must wait until the effect (data, FIN, RST) has been *processed by
//!   the local socket* before executing the next step, so that results never
//!   depend on timing.
//!
//! The local socket never sends payload data, so the peer's receive queue is
//! always empty (a peer `close()` therefore always produces a FIN, never an
//! RST, unless [`Step::PeerReset`] is used).
//!
//! # Blocking calls
//!
//! A scenario may contain blocking receive calls (socket in blocking mode, no
//! `MSG_DONTWAIT`). A *valid* scenario only issues such a call when it is
//! guaranteed to return: enough data/FIN/RST is already queued, or
//! `SO_RCVTIMEO` is set (the generator keeps such timeouts ≤ 20 ms and rare).
//! [`crate::gen::Model`] decides this; [`crate::gen::validate`] checks a
//! whole scenario. Backends additionally guard every blocking call with a
//! watchdog: if a call has not returned after [`WATCHDOG`], the backend
//! forcibly unblocks it and records [`Outcome::Harness`] ("would hang") for
//! that step; a harness outcome never compares equal (see [`compare`]).
//!
//! # Determinism / normalisation
//!
//! * Timestamp control messages (`SCM_TIMESTAMP`, `SCM_TIMESTAMPNS`) are
//!   compared by level, type and *length* only: [`Cmsg::normalize`] zeroes
//!   their payload. The kernel backend keeps network timestamping globally
//!   enabled for the whole process (so every received skb carries a
//!   timestamp), which makes the *presence* of the cmsg deterministic.
//!   A userspace stack should therefore behave as if every segment had a
//!   receive timestamp.
//! * Receive buffers are pre-filled with [`FILL`] before each call and the
//!   *whole* buffer is recorded afterwards, so writes beyond the returned
//!   length (or writes under `MSG_TRUNC`) are detected.

use std::fmt;
use std::time::Duration;

/// How long a backend lets a blocking call run before declaring that the
/// scenario "would hang" (a harness error, not a semantic result).
pub const WATCHDOG: Duration = Duration::from_millis(1000);

/// Byte used to pre-fill every receive buffer, `msg_name` buffer and control
/// buffer before a call.
pub const FILL: u8 = 0xA5;

/// Size of the `msg_name` buffer handed to `recvmsg()`
/// (`sizeof(struct sockaddr_in)`).
pub const NAME_LEN: usize = 16;

/// Linux (x86_64) constants used by scenarios. Kept here so scenarios and
/// non-kernel backends do not depend on `libc`.
#[allow(missing_docs)]
pub mod consts {
    // recv/send flags
    pub const MSG_OOB: i32 = 0x1;
    pub const MSG_PEEK: i32 = 0x2;
    pub const MSG_CTRUNC: i32 = 0x8;
    pub const MSG_TRUNC: i32 = 0x20;
    pub const MSG_DONTWAIT: i32 = 0x40;
    pub const MSG_EOR: i32 = 0x80;
    pub const MSG_WAITALL: i32 = 0x100;
    pub const MSG_ERRQUEUE: i32 = 0x2000;
    pub const MSG_NOSIGNAL: i32 = 0x4000;
    pub const MSG_CMSG_CLOEXEC: i32 = 0x4000_0000;

    // levels
    pub const SOL_SOCKET: i32 = 1;
    pub const SOL_TCP: i32 = 6;

    // SOL_SOCKET options
    pub const SO_TYPE: i32 = 3;
    pub const SO_ERROR: i32 = 4;
    pub const SO_SNDBUF: i32 = 7;
    pub const SO_RCVBUF: i32 = 8;
    pub const SO_KEEPALIVE: i32 = 9;
    pub const SO_OOBINLINE: i32 = 10;
    pub const SO_LINGER: i32 = 13;
    pub const SO_RCVLOWAT: i32 = 18;
    pub const SO_SNDLOWAT: i32 = 19;
    pub const SO_RCVTIMEO: i32 = 20;
    pub const SO_SNDTIMEO: i32 = 21;
    pub const SO_TIMESTAMP: i32 = 29;
    pub const SO_ACCEPTCONN: i32 = 30;
    pub const SO_TIMESTAMPNS: i32 = 35;
    pub const SO_PEEK_OFF: i32 = 42;
    /// cmsg type of `SO_TIMESTAMP` (struct timeval, 16 bytes).
    pub const SCM_TIMESTAMP: i32 = SO_TIMESTAMP;
    /// cmsg type of `SO_TIMESTAMPNS` (struct timespec, 16 bytes).
    pub const SCM_TIMESTAMPNS: i32 = SO_TIMESTAMPNS;

    // SOL_TCP options
    pub const TCP_NODELAY: i32 = 1;
    pub const TCP_MAXSEG: i32 = 2;
    pub const TCP_INFO: i32 = 11;
    pub const TCP_QUICKACK: i32 = 12;
    pub const TCP_INQ: i32 = 36;
    /// cmsg type carrying the `TCP_INQ` hint (an `int`).
    pub const TCP_CM_INQ: i32 = TCP_INQ;

    // ioctls
    pub const FIONREAD: u64 = 0x541B;
    pub const SIOCINQ: u64 = FIONREAD;
    pub const SIOCOUTQ: u64 = 0x5411;
    pub const SIOCATMARK: u64 = 0x8905;
    pub const SIOCOUTQNSD: u64 = 0x894B;

    // poll
    pub const POLLIN: i16 = 0x1;
    pub const POLLPRI: i16 = 0x2;
    pub const POLLOUT: i16 = 0x4;
    pub const POLLERR: i16 = 0x8;
    pub const POLLHUP: i16 = 0x10;
    pub const POLLNVAL: i16 = 0x20;
    pub const POLLRDNORM: i16 = 0x40;
    pub const POLLRDBAND: i16 = 0x80;
    pub const POLLWRNORM: i16 = 0x100;
    pub const POLLWRBAND: i16 = 0x200;
    pub const POLLRDHUP: i16 = 0x2000;

    // errno
    pub const EPERM: i32 = 1;
    pub const EINTR: i32 = 4;
    pub const EBADF: i32 = 9;
    pub const EAGAIN: i32 = 11;
    pub const EFAULT: i32 = 14;
    pub const EINVAL: i32 = 22;
    pub const EPIPE: i32 = 32;
    pub const ENOPROTOOPT: i32 = 92;
    pub const EOPNOTSUPP: i32 = 95;
    pub const ECONNRESET: i32 = 104;
    pub const ENOTCONN: i32 = 107;
    pub const ESHUTDOWN: i32 = 108;
    pub const ETIMEDOUT: i32 = 110;
}

use consts::*;

/// Symbolic name of an errno value (for reports).
pub fn errno_name(e: i32) -> String {
    let s = match e {
        EPERM => "EPERM",
        EINTR => "EINTR",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        EFAULT => "EFAULT",
        EINVAL => "EINVAL",
        EPIPE => "EPIPE",
        ENOPROTOOPT => "ENOPROTOOPT",
        EOPNOTSUPP => "EOPNOTSUPP",
        ECONNRESET => "ECONNRESET",
        ENOTCONN => "ENOTCONN",
        ESHUTDOWN => "ESHUTDOWN",
        ETIMEDOUT => "ETIMEDOUT",
        _ => return format!("errno{e}"),
    };
    s.to_string()
}

fn flag_names(v: i64, table: &[(i64, &str)]) -> String {
    if v == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    let mut rest = v;
    for &(bit, name) in table {
        if v & bit == bit && bit != 0 {
            out.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    out.join("|")
}

/// Render `MSG_*` flags symbolically, e.g. `MSG_PEEK|MSG_OOB`.
pub fn msg_flags_str(f: i32) -> String {
    flag_names(
        f as i64,
        &[
            (MSG_OOB as i64, "MSG_OOB"),
            (MSG_PEEK as i64, "MSG_PEEK"),
            (MSG_CTRUNC as i64, "MSG_CTRUNC"),
            (MSG_TRUNC as i64, "MSG_TRUNC"),
            (MSG_DONTWAIT as i64, "MSG_DONTWAIT"),
            (MSG_EOR as i64, "MSG_EOR"),
            (MSG_WAITALL as i64, "MSG_WAITALL"),
            (MSG_ERRQUEUE as i64, "MSG_ERRQUEUE"),
            (MSG_NOSIGNAL as i64, "MSG_NOSIGNAL"),
            (MSG_CMSG_CLOEXEC as i64, "MSG_CMSG_CLOEXEC"),
        ],
    )
}

/// Render `POLL*` event bits symbolically.
pub fn poll_str(f: i16) -> String {
    flag_names(
        f as u16 as i64,
        &[
            (POLLIN as i64, "POLLIN"),
            (POLLPRI as i64, "POLLPRI"),
            (POLLOUT as i64, "POLLOUT"),
            (POLLERR as i64, "POLLERR"),
            (POLLHUP as i64, "POLLHUP"),
            (POLLNVAL as i64, "POLLNVAL"),
            (POLLRDNORM as i64, "POLLRDNORM"),
            (POLLRDBAND as i64, "POLLRDBAND"),
            (POLLWRNORM as i64, "POLLWRNORM"),
            (POLLWRBAND as i64, "POLLWRBAND"),
            (POLLRDHUP as i64, "POLLRDHUP"),
        ],
    )
}

fn opt_name(level: i32, name: i32) -> String {
    let s = match (level, name) {
        (SOL_SOCKET, SO_TYPE) => "SO_TYPE",
        (SOL_SOCKET, SO_ERROR) => "SO_ERROR",
        (SOL_SOCKET, SO_SNDBUF) => "SO_SNDBUF",
        (SOL_SOCKET, SO_RCVBUF) => "SO_RCVBUF",
        (SOL_SOCKET, SO_KEEPALIVE) => "SO_KEEPALIVE",
        (SOL_SOCKET, SO_OOBINLINE) => "SO_OOBINLINE",
        (SOL_SOCKET, SO_LINGER) => "SO_LINGER",
        (SOL_SOCKET, SO_RCVLOWAT) => "SO_RCVLOWAT",
        (SOL_SOCKET, SO_SNDLOWAT) => "SO_SNDLOWAT",
        (SOL_SOCKET, SO_RCVTIMEO) => "SO_RCVTIMEO",
        (SOL_SOCKET, SO_SNDTIMEO) => "SO_SNDTIMEO",
        (SOL_SOCKET, SO_TIMESTAMP) => "SO_TIMESTAMP",
        (SOL_SOCKET, SO_ACCEPTCONN) => "SO_ACCEPTCONN",
        (SOL_SOCKET, SO_TIMESTAMPNS) => "SO_TIMESTAMPNS",
        (SOL_SOCKET, SO_PEEK_OFF) => "SO_PEEK_OFF",
        (SOL_TCP, TCP_NODELAY) => "TCP_NODELAY",
        (SOL_TCP, TCP_MAXSEG) => "TCP_MAXSEG",
        (SOL_TCP, TCP_QUICKACK) => "TCP_QUICKACK",
        (SOL_TCP, TCP_INQ) => "TCP_INQ",
        _ => return format!("({level},{name})"),
    };
    s.to_string()
}

/// An ioctl request issued on the local socket. All of them return an `int`
/// through their argument pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoctlReq {
    /// `FIONREAD` == `SIOCINQ`: bytes readable (see `tcp_inq()`).
    Fionread,
    /// `SIOCATMARK`: 1 if the read pointer is at the urgent mark.
    Siocatmark,
    /// `SIOCOUTQ`: unacknowledged + unsent bytes in the send queue.
    Siocoutq,
    /// `SIOCOUTQNSD`: not-yet-sent bytes in the send queue.
    Siocoutqnsd,
}

impl IoctlReq {
    /// The numeric ioctl request.
    pub fn request(self) -> u64 {
        match self {
            IoctlReq::Fionread => FIONREAD,
            IoctlReq::Siocatmark => SIOCATMARK,
            IoctlReq::Siocoutq => SIOCOUTQ,
            IoctlReq::Siocoutqnsd => SIOCOUTQNSD,
        }
    }
}

/// How the local socket is set up before the steps run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Setup {
    /// Local socket connected to a peer (the normal case).
    #[default]
    Connected,
    /// Local socket is a *listening* socket bound to 127.0.0.1:0; there is no
    /// peer (peer steps produce [`Outcome::Harness`]).
    Listening,
    /// Local socket is a fresh, never-connected `SOCK_STREAM` socket; no peer.
    Fresh,
}

/// One action in a scenario.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// The peer writes these bytes (one `send()`, `TCP_NODELAY`). Outcome:
    /// [`Outcome::Unit`] when fully written.
    PeerSend(Vec<u8>),
    /// The peer writes these bytes with `MSG_OOB`: the *last* byte becomes
    /// the urgent byte. Outcome: [`Outcome::Unit`].
    PeerSendOob(Vec<u8>),
    /// Peer `shutdown(SHUT_WR)` → FIN. Outcome: [`Outcome::Unit`].
    PeerShutdownWr,
    /// Peer `close()` with `SO_LINGER {1,0}` → RST. Outcome: [`Outcome::Unit`].
    PeerReset,
    /// Peer `close()` normally → FIN (its receive queue is always empty).
    /// Outcome: [`Outcome::Unit`].
    PeerClose,
    /// Local `recv(fd, buf, len, flags)`. Outcome: `Ret { ret, data: whole
    /// buffer, msg_flags: None, .. }` or `Err(errno)`.
    Recv {
        /// Buffer length.
        len: usize,
        /// `MSG_*` flags.
        flags: i32,
    },
    /// Local `recvmsg()` with one buffer per `iov` entry, a control buffer of
    /// `control_len` bytes (`msg_control = NULL` when 0) and a `msg_name`
    /// buffer of [`NAME_LEN`] bytes. Outcome: `Ret` with `data` = all iov
    /// buffers concatenated, `msg_flags`, parsed `cmsgs`, `controllen` (the
    /// returned `msg_controllen`), `namelen` and `name` (the whole name buffer).
    RecvMsg {
        /// Lengths of the iovec buffers.
        iov: Vec<usize>,
        /// Size of the control buffer.
        control_len: usize,
        /// `MSG_*` flags.
        flags: i32,
    },
    /// Local `setsockopt(level, name, &val, sizeof(int))`.
    /// Outcome: `Ret { ret: 0 }` or `Err`.
    SetOpt {
        /// `SOL_SOCKET` / `SOL_TCP`.
        level: i32,
        /// Option name.
        name: i32,
        /// `int` value.
        val: i32,
    },
    /// Local `setsockopt(SOL_SOCKET, SO_RCVTIMEO, timeval)`; `usec == 0`
    /// clears the timeout.
    SetRcvTimeo {
        /// Timeout in microseconds.
        usec: u64,
    },
    /// Local `fcntl(F_SETFL, O_NONBLOCK on/off)`. Outcome: `Ret { ret: 0 }`.
    SetNonblocking(bool),
    /// Local `ioctl(req, &int)`. Outcome: `Ret { ret: 0, data: int as 4
    /// native-endian bytes }` or `Err`.
    Ioctl {
        /// Which ioctl.
        req: IoctlReq,
    },
    /// Local `getsockopt(level, name, buf[64], &len=64)`. Outcome:
    /// `Ret { ret: 0, data: buf[..len] }` or `Err`.
    GetOpt {
        /// Level.
        level: i32,
        /// Option name.
        name: i32,
    },
    /// Local `poll({fd, events}, 1, 0)`. Outcome: `Ret { ret: poll's return,
    /// data: revents as 2 native-endian bytes }`.
    Poll {
        /// Requested events.
        events: i16,
    },
    /// Local `shutdown(SHUT_RD)`. Outcome: `Ret { ret: 0 }` or `Err`.
    ShutdownRd,
    /// Local `shutdown(SHUT_WR)` (sends FIN; the backend waits until the
    /// peer has acknowledged it, if the peer is still open).
    ShutdownWr,
    /// Local `close()`. Afterwards the local descriptor is invalid and every
    /// local call fails with `EBADF` (backends must emulate this; the kernel
    /// backend really calls with fd -1). Outcome: `Ret { ret: 0 }`.
    LocalClose,
}

fn short_bytes(b: &[u8]) -> String {
    const MAX: usize = 24;
    let mut s = String::new();
    for &c in b.iter().take(MAX) {
        if c.is_ascii_graphic() || c == b' ' {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    if b.len() > MAX {
        s.push_str(&format!("...({} bytes)", b.len()));
    }
    s
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::PeerSend(d) => write!(f, "PeerSend({} bytes \"{}\")", d.len(), short_bytes(d)),
            Step::PeerSendOob(d) => {
                write!(f, "PeerSendOob({} bytes \"{}\")", d.len(), short_bytes(d))
            }
            Step::PeerShutdownWr => write!(f, "PeerShutdownWr"),
            Step::PeerReset => write!(f, "PeerReset"),
            Step::PeerClose => write!(f, "PeerClose"),
            Step::Recv { len, flags } => write!(f, "recv(len={len}, {})", msg_flags_str(*flags)),
            Step::RecvMsg { iov, control_len, flags } => {
                write!(f, "recvmsg(iov={iov:?}, control_len={control_len}, {})", msg_flags_str(*flags))
            }
            Step::SetOpt { level, name, val } => {
                write!(f, "setsockopt({}, {val})", opt_name(*level, *name))
            }
            Step::SetRcvTimeo { usec } => write!(f, "setsockopt(SO_RCVTIMEO, {usec}us)"),
            Step::SetNonblocking(b) => write!(f, "fcntl(O_NONBLOCK={b})"),
            Step::Ioctl { req } => write!(f, "ioctl({req:?})"),
            Step::GetOpt { level, name } => write!(f, "getsockopt({})", opt_name(*level, *name)),
            Step::Poll { events } => write!(f, "poll({}, 0)", poll_str(*events)),
            Step::ShutdownRd => write!(f, "shutdown(SHUT_RD)"),
            Step::ShutdownWr => write!(f, "shutdown(SHUT_WR)"),
            Step::LocalClose => write!(f, "close()"),
        }
    }
}

impl Step {
    /// True for steps performed by the peer.
    pub fn is_peer(&self) -> bool {
        matches!(
            self,
            Step::PeerSend(_) | Step::PeerSendOob(_) | Step::PeerShutdownWr | Step::PeerReset | Step::PeerClose
        )
    }
}

/// An `int` option applied to the local socket after `socket()` and before
/// `connect()` (or `listen()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PreOpt {
    /// Level.
    pub level: i32,
    /// Name.
    pub name: i32,
    /// Value.
    pub val: i32,
}

/// A complete test scenario.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Scenario {
    /// How the local socket is set up.
    pub setup: Setup,
    /// Options set on the local socket before it connects/listens
    /// (e.g. `SO_RCVBUF`, which influences window scaling). A failing
    /// pre-option is a harness error for every step.
    pub pre_opts: Vec<PreOpt>,
    /// The steps; one [`Outcome`] is produced per step.
    pub steps: Vec<Step>,
}

impl Scenario {
    /// A connected scenario with no pre-options.
    pub fn new(steps: Vec<Step>) -> Self {
        Scenario { setup: Setup::Connected, pre_opts: Vec::new(), steps }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Scenario ({:?})", self.setup)?;
        for o in &self.pre_opts {
            writeln!(f, "  pre: setsockopt({}, {})", opt_name(o.level, o.name), o.val)?;
        }
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "  #{i:<3} {s}")?;
        }
        Ok(())
    }
}

/// A parsed control message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cmsg {
    /// `cmsg_level`.
    pub level: i32,
    /// `cmsg_type`.
    pub ty: i32,
    /// Raw `cmsg_len` as written by the kernel (may exceed what fits in the
    /// buffer when `MSG_CTRUNC` is set).
    pub cmsg_len: u64,
    /// Payload (`cmsg_len - CMSG_LEN(0)` bytes, clipped to what fits in the
    /// returned control length).
    pub data: Vec<u8>,
}

impl Cmsg {
    /// True for receive-timestamp cmsgs, whose payload varies run to run.
    pub fn is_timestamp(&self) -> bool {
        self.level == SOL_SOCKET && (self.ty == SCM_TIMESTAMP || self.ty == SCM_TIMESTAMPNS)
    }

    /// Zero the payload of timestamp cmsgs (keeps the length).
    pub fn normalize(&mut self) {
        if self.is_timestamp() {
            self.data.iter_mut().for_each(|b| *b = 0);
        }
    }
}

impl fmt::Display for Cmsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ty = match (self.level, self.ty) {
            (SOL_TCP, TCP_CM_INQ) => "TCP_CM_INQ".to_string(),
            (SOL_SOCKET, SCM_TIMESTAMP) => "SCM_TIMESTAMP".to_string(),
            (SOL_SOCKET, SCM_TIMESTAMPNS) => "SCM_TIMESTAMPNS".to_string(),
            (l, t) => format!("({l},{t})"),
        };
        if self.cmsg_len != 16 + self.data.len() as u64 {
            write!(f, "{ty}[cmsg_len={}, {} bytes present]", self.cmsg_len, self.data.len())
        } else if self.data.len() == 4 && !self.is_timestamp() {
            let v = i32::from_ne_bytes(self.data[..4].try_into().unwrap());
            write!(f, "{ty}={v}")
        } else if self.is_timestamp() {
            write!(f, "{ty}[{} bytes]", self.data.len())
        } else {
            write!(f, "{ty}[{}]", short_bytes(&self.data))
        }
    }
}

/// The observable result of one step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded.
    Ret {
        /// Return value of the call.
        ret: i64,
        /// Buffer contents after the call (see each [`Step`] for meaning).
        data: Vec<u8>,
        /// `msg_flags` after `recvmsg()`; `None` for other calls.
        msg_flags: Option<i32>,
        /// Parsed control messages (normalised, see [`Cmsg::normalize`]).
        cmsgs: Vec<Cmsg>,
        /// Returned `msg_controllen` for `recvmsg()`.
        controllen: Option<usize>,
        /// Returned `msg_namelen` for `recvmsg()`.
        namelen: Option<u32>,
        /// Whole `msg_name` buffer after `recvmsg()` (pre-filled with
        /// [`FILL`]).
        name: Option<Vec<u8>>,
    },
    /// The call failed with this errno.
    Err(i32),
    /// Peer actions and other steps without a result.
    Unit,
    /// The harness itself failed (setup error, wait timeout, would-hang,
    /// invalid step for the setup). Never equal to anything in [`compare`].
    Harness(String),
}

impl Outcome {
    /// A plain `Ret` with the given return value and data, all optional
    /// fields `None`/empty.
    pub fn ret(ret: i64, data: Vec<u8>) -> Self {
        Outcome::Ret { ret, data, msg_flags: None, cmsgs: Vec::new(), controllen: None, namelen: None, name: None }
    }

    /// The return value, if `Ret`.
    pub fn ret_val(&self) -> Option<i64> {
        match self {
            Outcome::Ret { ret, .. } => Some(*ret),
            _ => None,
        }
    }

    /// The data, if `Ret`.
    pub fn data(&self) -> Option<&[u8]> {
        match self {
            Outcome::Ret { data, .. } => Some(data),
            _ => None,
        }
    }

    /// The 4-byte `int` in `data` (ioctl/getsockopt results), if any.
    pub fn int_val(&self) -> Option<i32> {
        match self {
            Outcome::Ret { data, .. } if data.len() >= 4 => Some(i32::from_ne_bytes(data[..4].try_into().unwrap())),
            _ => None,
        }
    }

    /// The errno, if `Err`.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Outcome::Err(e) => Some(*e),
            _ => None,
        }
    }

    /// `msg_flags`, if a recvmsg `Ret`.
    pub fn msg_flags(&self) -> Option<i32> {
        match self {
            Outcome::Ret { msg_flags, .. } => *msg_flags,
            _ => None,
        }
    }

    /// Apply [`Cmsg::normalize`] to every cmsg.
    pub fn normalize(&mut self) {
        if let Outcome::Ret { cmsgs, .. } = self {
            cmsgs.iter_mut().for_each(Cmsg::normalize);
        }
    }

    /// True for [`Outcome::Harness`].
    pub fn is_harness(&self) -> bool {
        matches!(self, Outcome::Harness(_))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ret { ret, data, msg_flags, cmsgs, controllen, namelen, name } => {
                write!(f, "Ret({ret})")?;
                // Show the meaningful prefix of the data; the remainder is
                // usually fill.
                let meaningful = data.iter().rposition(|&b| b != FILL).map_or(0, |p| p + 1);
                if !data.is_empty() {
                    write!(f, " data[{}]=\"{}\"", data.len(), short_bytes(&data[..meaningful]))?;
                    if meaningful < data.len() {
                        write!(f, "+fill")?;
                    }
                }
                if let Some(fl) = msg_flags {
                    write!(f, " msg_flags={}", msg_flags_str(*fl))?;
                }
                if let Some(c) = controllen {
                    write!(f, " controllen={c}")?;
                }
                if !cmsgs.is_empty() {
                    let v: Vec<String> = cmsgs.iter().map(|c| c.to_string()).collect();
                    write!(f, " cmsgs=[{}]", v.join(", "))?;
                }
                if let Some(n) = namelen {
                    write!(f, " namelen={n}")?;
                }
                if let Some(n) = name {
                    if n.iter().any(|&b| b != FILL) {
                        write!(f, " name={n:02x?}")?;
                    }
                }
                Ok(())
            }
            Outcome::Err(e) => write!(f, "Err({})", errno_name(*e)),
            Outcome::Unit => write!(f, "()"),
            Outcome::Harness(s) => write!(f, "HARNESS ERROR: {s}"),
        }
    }
}

/// Render `o` as the result of `step`: ioctl/getsockopt ints and poll
/// `revents` are decoded, everything else uses [`Outcome`]'s `Display`.
pub fn describe(step: &Step, o: &Outcome) -> String {
    match (step, o) {
        (Step::Ioctl { .. } | Step::GetOpt { .. }, Outcome::Ret { ret, data, .. }) if data.len() == 4 => {
            let v = i32::from_ne_bytes(data[..4].try_into().unwrap());
            format!("Ret({ret}) int={v}")
        }
        (Step::Poll { .. }, Outcome::Ret { ret, data, .. }) if data.len() == 2 => {
            let v = i16::from_ne_bytes(data[..2].try_into().unwrap());
            format!("Ret({ret}) revents={}", poll_str(v))
        }
        _ => o.to_string(),
    }
}

/// Something that can execute scenarios: the kernel, utcp, ...
pub trait Backend {
    /// Run the scenario from scratch and return exactly one outcome per step.
    /// Must not panic on semantic errors; harness failures are reported as
    /// [`Outcome::Harness`].
    fn run(&mut self, scenario: &Scenario) -> Vec<Outcome>;
    /// Short name for reports ("kernel", "utcp", ...).
    fn name(&self) -> &str;
}

/// A difference between two runs of the same scenario.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// Index of the first differing step (or of the first harness error).
    pub index: usize,
    /// The step at that index (`None` if the outcome vectors have a length
    /// different from the scenario).
    pub step: Option<Step>,
    /// Outcome on the left side.
    pub left: Option<Outcome>,
    /// Outcome on the right side.
    pub right: Option<Outcome>,
    /// Label of the left side.
    pub left_name: String,
    /// Label of the right side.
    pub right_name: String,
    /// The whole scenario with both outcome columns (for context).
    pub transcript: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |o: &Option<Outcome>| match (o, &self.step) {
            (None, _) => "<missing>".to_string(),
            (Some(o), Some(s)) => describe(s, o),
            (Some(o), None) => o.to_string(),
        };
        writeln!(f, "mismatch at step #{}", self.index)?;
        match &self.step {
            Some(s) => writeln!(f, "  step : {s}")?,
            None => writeln!(f, "  step : <none>")?,
        }
        writeln!(f, "  {:<6}: {}", self.left_name, show(&self.left))?;
        writeln!(f, "  {:<6}: {}", self.right_name, show(&self.right))?;
        write!(f, "transcript:\n{}", self.transcript)
    }
}

impl std::error::Error for Mismatch {}

/// Render a scenario with one or two outcome columns.
pub fn transcript(scenario: &Scenario, a: &[Outcome], b: Option<&[Outcome]>) -> String {
    let mut s = String::new();
    for o in &scenario.pre_opts {
        s.push_str(&format!("  pre: setsockopt({}, {})\n", opt_name(o.level, o.name), o.val));
    }
    for (i, st) in scenario.steps.iter().enumerate() {
        let oa = a.get(i).map_or("<missing>".into(), |o| describe(st, o));
        s.push_str(&format!("  #{i:<3} {st}\n         => {oa}\n"));
        if let Some(b) = b {
            let ob = b.get(i).map_or("<missing>".into(), |o| describe(st, o));
            if ob != oa {
                s.push_str(&format!("      !! => {ob}\n"));
            }
        }
    }
    s
}

/// Compare two outcome vectors for `scenario` (labels "left"/"right").
/// See [`compare_named`].
// A mismatch is the cold path of a test tool; keep the plain signature.
#[allow(clippy::result_large_err)]
pub fn compare(scenario: &Scenario, a: &[Outcome], b: &[Outcome]) -> Result<(), Mismatch> {
    compare_named(scenario, ("left", a), ("right", b))
}

/// Compare two outcome vectors step by step after normalisation. The first
/// step where they differ — or where either side has a harness error — is
/// reported. Length differences are reported too.
// A mismatch is the cold path of a test tool; keep the plain signature.
#[allow(clippy::result_large_err)]
pub fn compare_named(
    scenario: &Scenario,
    (an, a): (&str, &[Outcome]),
    (bn, b): (&str, &[Outcome]),
) -> Result<(), Mismatch> {
    let n = a.len().max(b.len()).max(scenario.steps.len());
    for i in 0..n {
        let mut oa = a.get(i).cloned();
        let mut ob = b.get(i).cloned();
        if let Some(o) = oa.as_mut() {
            o.normalize();
        }
        if let Some(o) = ob.as_mut() {
            o.normalize();
        }
        let harness = oa.as_ref().is_some_and(Outcome::is_harness) || ob.as_ref().is_some_and(Outcome::is_harness);
        if harness || oa != ob {
            return Err(Mismatch {
                index: i,
                step: scenario.steps.get(i).cloned(),
                left: oa,
                right: ob,
                left_name: an.to_string(),
                right_name: bn.to_string(),
                transcript: transcript(scenario, a, Some(b)),
            });
        }
    }
    Ok(())
}

/// Run `scenario` on two backends and compare.
// A mismatch is the cold path of a test tool; keep the plain signature.
#[allow(clippy::result_large_err)]
pub fn differential(scenario: &Scenario, a: &mut dyn Backend, b: &mut dyn Backend) -> Result<(), Mismatch> {
    let oa = a.run(scenario);
    let ob = b.run(scenario);
    let (an, bn) = (a.name().to_string(), b.name().to_string());
    compare_named(scenario, (&an, &oa), (&bn, &ob))
}
