//! The errno table: every socket call, with valid and invalid arguments, in every socket
//! state, run on real kernel sockets ([`kernel::KernelEnv`]) and on utcp
//! ([`utcp::UtcpEnv`]) and compared result by result (return value or errno, plus the
//! output bytes, lengths and flags where Linux's are deterministic).
//!
//! A case is a short sequence of [`Call`]s run on a fresh fixture in one [`State`]
//! (`setsockopt` followed by `getsockopt` reads a value back). Addresses are symbolic
//! ([`Sa`]): each environment resolves "the local address", "a port in use", "the peer's
//! listener" to its own addresses, and addresses written back by the calls are normalised
//! the same way ([`norm_sockaddr`]), so 127.0.0.1 on the kernel and 192.0.2.1 on utcp
//! compare equal.
//!
//! [`cases`] builds the table; [`run_table`] runs it on two environments.

pub mod deviations;
pub mod kernel;
mod table;
pub mod utcp;

pub use table::{cases, options, Opt, OptKind};

use std::fmt;

/// Socket state of the fd under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// `socket()` only.
    Fresh,
    /// Bound to the local address, port 0.
    Bound,
    /// Bound and listening (backlog 8), nothing queued.
    Listening,
    /// Nonblocking `connect()` to a listener whose accept queue is full: SYN_SENT.
    Connecting,
    /// Nonblocking `connect()` to a closed port, refusal processed (SO_ERROR pending).
    Refused,
    /// Established, nothing queued.
    Connected,
    /// Established, the peer sent `"hello"` (5 bytes, unread).
    ConnectedData,
    /// Established, then `shutdown(SHUT_WR)` (FIN acknowledged: FIN_WAIT2).
    ShutWr,
    /// Established, then `shutdown(SHUT_RD)`.
    ShutRd,
    /// Established, then the peer closed (CLOSE_WAIT).
    PeerClosed,
    /// Established, then the peer reset it (SO_LINGER 0 close; ECONNRESET pending).
    Reset,
    /// A socket fd that has been closed.
    ClosedFd,
    /// The read end of a pipe.
    NotSocket,
}

impl State {
    /// Every state.
    pub const ALL: [State; 13] = [
        State::Fresh,
        State::Bound,
        State::Listening,
        State::Connecting,
        State::Refused,
        State::Connected,
        State::ConnectedData,
        State::ShutWr,
        State::ShutRd,
        State::PeerClosed,
        State::Reset,
        State::ClosedFd,
        State::NotSocket,
    ];
}

/// A symbolic IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ip {
    /// INADDR_ANY.
    Any,
    /// The local host's address.
    Local,
    /// The peer host's address (the kernel: also 127.0.0.1).
    Peer,
    /// An address of no local interface (198.51.100.7).
    NonLocal,
    /// 255.255.255.255.
    Broadcast,
    /// 224.0.0.1.
    Multicast,
}

/// A symbolic port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// 0.
    Zero,
    /// A port a local listener holds (bind → EADDRINUSE).
    InUse,
    /// The peer's accepting listener.
    Listener,
    /// A port nothing listens on (connect → ECONNREFUSED).
    Closed,
}

/// A symbolic `sockaddr_in` with its family and `addrlen` as passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sa {
    /// `sin_family`.
    pub family: u16,
    /// `sin_addr`.
    pub ip: Ip,
    /// `sin_port`.
    pub port: Port,
    /// `addrlen`.
    pub len: u32,
}

impl Sa {
    /// An AF_INET address of the usual length.
    pub const fn inet(ip: Ip, port: Port) -> Sa {
        Sa { family: 2, ip, port, len: 16 }
    }

    /// The sockaddr bytes (`len` of them, zero-padded past 16) for concrete `ip`/`port`.
    pub fn bytes(&self, ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = vec![0u8; (self.len as usize).max(16)];
        b[..2].copy_from_slice(&self.family.to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&ip);
        b.truncate(self.len as usize);
        b
    }
}

/// Symbolic addresses resolved per environment.
pub fn ip_bytes(ip: Ip, local: [u8; 4], peer: [u8; 4]) -> [u8; 4] {
    match ip {
        Ip::Any => [0; 4],
        Ip::Local => local,
        Ip::Peer => peer,
        Ip::NonLocal => [198, 51, 100, 7],
        Ip::Broadcast => [255; 4],
        Ip::Multicast => [224, 0, 0, 1],
    }
}

/// Normalises a sockaddr written back by a call (possibly truncated): the port becomes
/// `0x0000` when zero and `0xffff` otherwise, the address `0.0.0.0`, `1.1.1.1` for either
/// host's own address, or stays as it is.
pub fn norm_sockaddr(b: &[u8], local: [u8; 4], peer: [u8; 4]) -> Vec<u8> {
    let mut full = [0xAAu8; 16];
    full[..b.len().min(16)].copy_from_slice(&b[..b.len().min(16)]);
    if b.len() >= 4 && full[2..4] != [0, 0] {
        full[2..4].copy_from_slice(&[0xff, 0xff]);
    }
    if b.len() >= 8 {
        let ip: [u8; 4] = full[4..8].try_into().expect("4");
        if ip == local || ip == peer {
            full[4..8].copy_from_slice(&[1, 1, 1, 1]);
        }
    }
    let mut out = full[..b.len().min(16)].to_vec();
    out.extend_from_slice(&b[b.len().min(16)..]);
    out
}

/// One call. Buffers are prefilled with [`FILL`]; lengths are what the caller passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `socket(domain, type, protocol)` (the fd is closed again; success reads as 0).
    Socket(i32, i32, i32),
    /// `bind(fd, addr, len)`.
    Bind(Sa),
    /// `listen(fd, backlog)`.
    Listen(i32),
    /// `accept4(fd, NULL, NULL, flags)` (success reads as 0).
    Accept4(i32),
    /// `connect(fd, addr, len)`.
    Connect(Sa),
    /// `send(fd, "hello"[..len], len, flags)`.
    Send(usize, i32),
    /// `sendto(fd, "hello"[..len], len, flags, addr, addrlen)`.
    SendTo(usize, i32, Sa),
    /// `sendmsg(fd, {iov: ["hel", "lo"][..]}, flags)` of `len` bytes in two iovecs.
    SendMsg(usize, i32),
    /// `recv(fd, buf, len, flags)`: return value and the buffer.
    Recv(usize, i32),
    /// `recvfrom(fd, buf, len, flags, name, &namelen)`.
    RecvFrom(usize, i32, u32),
    /// `recvmsg(fd, {iov: [len], control: controllen, name: 16}, flags)`.
    RecvMsg(usize, i32, usize),
    /// `shutdown(fd, how)`.
    Shutdown(i32),
    /// `getsockname(fd, buf, &len)`.
    GetSockName(u32),
    /// `getpeername(fd, buf, &len)`.
    GetPeerName(u32),
    /// `ioctl(fd, req, &int)`: the int as the value.
    Ioctl(u64),
    /// `fcntl(fd, cmd, arg)`.
    Fcntl(i32, i32),
    /// `getsockopt(fd, level, name, buf, &len)`.
    GetOpt(i32, i32, u32),
    /// `setsockopt(fd, level, name, val, len(val))`.
    SetOpt(i32, i32, Vec<u8>),
    /// `read(fd, buf, len)`.
    Read(usize),
    /// `write(fd, "hello"[..len], len)`.
    Write(usize),
    /// `close(fd)`.
    Close,
}

/// The payload sent by `Send`/`Write` and by the peer in [`State::ConnectedData`].
pub const HELLO: &[u8] = b"hello";
/// Fill byte of output buffers.
pub const FILL: u8 = 0xAA;

/// The result of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Res {
    /// Return value, or errno.
    pub ret: Result<i64, i32>,
    /// Output bytes (buffer, name or option value), normalised.
    pub out: Vec<u8>,
    /// Output length (`optlen`, `addrlen`, `msg_namelen`, `msg_controllen`).
    pub len: Option<u64>,
    /// `msg_flags`.
    pub flags: Option<i32>,
}

impl Res {
    /// A plain return value.
    pub fn ret(r: Result<i64, i32>) -> Res {
        Res { ret: r, out: Vec::new(), len: None, flags: None }
    }
}

impl fmt::Display for Res {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ret {
            Ok(v) => write!(f, "= {v}")?,
            Err(e) => write!(f, "-1 {}", errno_name(e))?,
        }
        if !self.out.is_empty() {
            write!(f, " out={:02x?}", self.out)?;
        }
        if let Some(l) = self.len {
            write!(f, " len={l}")?;
        }
        if let Some(fl) = self.flags {
            write!(f, " flags={fl:#x}")?;
        }
        Ok(())
    }
}

/// The errno's name (as `strerror` would not give it).
pub fn errno_name(e: i32) -> String {
    let n = match e {
        1 => "EPERM",
        2 => "ENOENT",
        9 => "EBADF",
        11 => "EAGAIN",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        22 => "EINVAL",
        25 => "ENOTTY",
        29 => "ESPIPE",
        32 => "EPIPE",
        33 => "EDOM",
        34 => "ERANGE",
        61 => "ENODATA",
        71 => "EPROTO",
        88 => "ENOTSOCK",
        89 => "EDESTADDRREQ",
        90 => "EMSGSIZE",
        92 => "ENOPROTOOPT",
        93 => "EPROTONOSUPPORT",
        94 => "ESOCKTNOSUPPORT",
        95 => "EOPNOTSUPP",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        101 => "ENETUNREACH",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        106 => "EISCONN",
        107 => "ENOTCONN",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        114 => "EALREADY",
        115 => "EINPROGRESS",
        _ => return format!("errno {e}"),
    };
    n.to_string()
}

/// A table row: calls run in order on one fresh fixture in `state`.
#[derive(Clone, Debug)]
pub struct Case {
    /// The fixture.
    pub state: State,
    /// The calls.
    pub calls: Vec<Call>,
    /// Compare only the return value and output length of the last call (values that
    /// are not deterministic on Linux, e.g. TCP_INFO's counters, SO_COOKIE).
    pub len_only: bool,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:?}]", self.state)?;
        for c in &self.calls {
            write!(f, " {c:?};")?;
        }
        Ok(())
    }
}

/// An environment that can build fixtures and run calls.
pub trait Env {
    /// Runs `case` on a fresh fixture; one result per call, or why the fixture failed.
    fn run(&mut self, case: &Case) -> Result<Vec<Res>, String>;
}

/// A difference between two environments on one case.
#[derive(Debug)]
pub struct Diff {
    /// The case.
    pub case: Case,
    /// Results on the first environment (the kernel).
    pub a: Result<Vec<Res>, String>,
    /// Results on the second.
    pub b: Result<Vec<Res>, String>,
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.case)?;
        for (name, r) in [("kernel", &self.a), ("utcp  ", &self.b)] {
            match r {
                Ok(v) => {
                    let s: Vec<String> = v.iter().map(|r| r.to_string()).collect();
                    writeln!(f, "  {name}: {}", s.join(" ; "))?;
                }
                Err(e) => writeln!(f, "  {name}: fixture failed: {e}")?,
            }
        }
        Ok(())
    }
}

fn strip(case: &Case, r: Result<Vec<Res>, String>) -> Result<Vec<Res>, String> {
    r.map(|mut v| {
        if case.len_only {
            if let Some(last) = v.last_mut() {
                last.out.clear();
            }
        }
        v
    })
}

/// Runs every case on `a` and `b` and returns the differences.
pub fn run_table(cases: &[Case], a: &mut dyn Env, b: &mut dyn Env) -> Vec<Diff> {
    let mut diffs = Vec::new();
    for c in cases {
        let ra = strip(c, a.run(c));
        let rb = strip(c, b.run(c));
        if ra != rb {
            diffs.push(Diff { case: c.clone(), a: ra, b: rb });
        }
    }
    diffs
}
