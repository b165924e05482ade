//! Abstract syntax tree of a packetdrill script.
//!
//! The shapes follow packetdrill's grammar (`gtests/net/packetdrill/parser.y`)
//! closely, but keep things generic where packetdrill hard-codes structures
//! (syscall argument expressions are a small generic expression language, see
//! [`Expr`]). Every event carries the 1-based source line of its first token.
//!
//! All times are integer microseconds ([`Micros`]). They are converted from the
//! script's seconds the way packetdrill does it: an integer `N` becomes
//! `N * 1_000_000`, a decimal `X.Y` becomes `(X.Y as f64 * 1e6) as i64`
//! (truncating, exactly like packetdrill's `(s64)(atof(s) * 1.0e6)`).

use std::fmt;

/// A time value in microseconds.
pub type Micros = i64;

/// A parsed script.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    /// In-script command-line flags at the very top of the script, e.g.
    /// `--tolerance_usecs=10000` gives `("tolerance_usecs", Some("10000"))`, a
    /// bare `--verbose` gives `("verbose", None)`. The leading `--` is removed.
    /// Values keep their source spelling (strings are unquoted;
    /// `--define=X="y"` keeps the quotes on the right-hand side as packetdrill
    /// does). `--define=NAME=VALUE` options are also applied as defines for
    /// the rest of the script.
    pub options: Vec<(String, Option<String>)>,
    /// Untimed back-quoted shell command before the first event (packetdrill's
    /// "init command", usually `` `./defaults.sh` ``). Run before the script
    /// clock starts.
    pub init_command: Option<Command>,
    /// The timed events, in source order (at least one).
    pub events: Vec<Event>,
    /// Untimed back-quoted shell command after the last event (packetdrill's
    /// "cleanup command"; packetdrill runs it even when the script fails).
    pub cleanup_command: Option<Command>,
}

/// An untimed shell command (init or cleanup command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// 1-based line of the opening back quote.
    pub line: usize,
    /// The text between the back quotes, verbatim (may span lines; escapes are
    /// not processed).
    pub text: String,
}

/// One timed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// 1-based source line of the event's first token (its time spec).
    pub line: usize,
    /// When the event happens.
    pub time: TimeSpec,
    /// What happens.
    pub kind: EventKind,
}

/// A point in time as written in a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Microseconds (never negative).
    pub usecs: Micros,
    /// `true` if the value is relative (to the previous event's time, as
    /// packetdrill's `adjust_relative_event_times` defines it).
    pub relative: bool,
}

impl Time {
    /// An absolute time.
    pub fn absolute(usecs: Micros) -> Self {
        Time { usecs, relative: false }
    }
    /// A relative time.
    pub fn relative(usecs: Micros) -> Self {
        Time { usecs, relative: true }
    }
}

/// The time spec in front of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// `0.100`: absolute time since script start.
    Absolute(Micros),
    /// `+0.1`: relative to the previous event.
    Relative(Micros),
    /// `*`: any time (only allowed on outbound packets).
    Any,
    /// `0.1~0.2` or `+0.1~+0.2`: the event may happen in this window
    /// (only allowed on outbound packets). Both bounds are either absolute or
    /// relative (packetdrill accepts no mix); a relative `end` is relative to
    /// the same base as `start` (not to `start`), so `+0~+0.5` means "between
    /// 0 and 0.5 s after the previous event".
    Range {
        /// Earliest time.
        start: Time,
        /// Latest time (`end.usecs >= start.usecs`).
        end: Time,
    },
    /// `+0...0.5` or `0.1...0.2` (syscalls only): a blocking system call that
    /// starts at `start` and returns at `end`. The end bound is written without
    /// `+` but, as in packetdrill, it is relative iff `start` is, and then
    /// relative to the same base as `start` (`+0.1...0.3` = starts 0.1 s and
    /// returns 0.3 s after the previous event); `end.relative == start.relative`
    /// always.
    Blocking {
        /// When the call is made.
        start: Time,
        /// When the call is expected to return.
        end: Time,
    },
}

/// The action of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// An injected (`<`) or expected (`>`) packet.
    Packet(PacketEvent),
    /// A system call and its expected result.
    Syscall(SyscallEvent),
    /// A timed back-quoted shell command; the text between the back quotes,
    /// verbatim.
    Command(String),
    /// A `%{ ... }%` (Python) code block: the text between the delimiters with
    /// leading/trailing spaces and tabs (not newlines) stripped, as packetdrill
    /// does.
    Code(String),
}

/// Packet direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `<`: the script injects the packet into the stack under test.
    Inbound,
    /// `>`: the stack under test is expected to send the packet.
    Outbound,
}

/// A packet event: `< S 0:0(0) win 1000 <mss 1460>` etc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketEvent {
    /// `<` or `>`.
    pub direction: Direction,
    /// Outer (tunnel) IP headers given with
    /// `ipv4 1.2.3.4 > 5.6.7.8: ` / `ipv6 a::1 > b::2: ` prefixes, outermost
    /// first. Usually empty.
    pub encap: Vec<IpEncap>,
    /// IP-level annotations of the (inner) packet: `[ect0]`, `(ce)`,
    /// `[tos 0x2]`, `[flowlabel 0x1]`, `[ttl 64]`, `[ect0, flowlabel 0x3]`.
    pub ip: Option<IpInfo>,
    /// Explicit `SPORT>DPORT` before the flags/protocol, if given.
    pub ports: Option<(u16, u16)>,
    /// The transport part.
    pub body: PacketBody,
}

impl PacketEvent {
    /// The TCP part, if this is a TCP packet.
    pub fn tcp(&self) -> Option<&TcpSpec> {
        match &self.body {
            PacketBody::Tcp(t) => Some(t),
            _ => None,
        }
    }
}

/// Transport part of a packet event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketBody {
    /// A TCP segment.
    Tcp(TcpSpec),
    /// `udp (LEN)`.
    Udp(UdpSpec),
    /// `icmp TYPE [CODE] [mtu N] [id N] [[ECHOED]]`.
    Icmp(IcmpSpec),
}

/// An outer IP header prefix (`ipv4 SRC > DST:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpEncap {
    /// IP version of the outer header.
    pub version: IpVersion,
    /// Optional TOS/ECN/TTL annotation of the outer header.
    pub ip: Option<IpInfo>,
    /// Source address, as written.
    pub src: String,
    /// Destination address, as written.
    pub dst: String,
}

/// IP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// IP header annotations (`[ect0]`, `[tos 0x10]`, ...). Unset parts are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpInfo {
    /// TOS / ECN check or value.
    pub tos: Option<TosSpec>,
    /// IPv6 flow label (20 bits).
    pub flow_label: Option<u32>,
    /// TTL / hop limit.
    pub ttl: Option<u8>,
}

/// TOS byte annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TosSpec {
    /// `noecn`, `ect0`, `ect1`, `ce`: the ECN field.
    Ecn(IpEcn),
    /// `ect01`: either ECT(0) or ECT(1) (outbound only).
    Ect01,
    /// `tos 0xNN`: the whole TOS byte.
    Tos(u8),
}

/// ECN codepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpEcn {
    /// Not-ECT (`noecn`).
    NotEct,
    /// ECT(0) (`ect0`).
    Ect0,
    /// ECT(1) (`ect1`).
    Ect1,
    /// CE (`ce`).
    Ce,
}

/// TCP segment description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSpec {
    /// Flag characters as written, from `.FSRPEWAU01234567` (`-` in the script
    /// means "no flags" and is represented as the empty string). `.` is ACK.
    pub flags: String,
    /// Start sequence number (relative to the initial sequence number, as in
    /// the script).
    pub seq_start: u32,
    /// End sequence number; always `seq_start + payload_len` (checked without
    /// wrap-around, like packetdrill).
    pub seq_end: u32,
    /// Payload length (at most 65535).
    pub payload_len: u32,
    /// `ack N`, if given (packetdrill uses 0 when absent).
    pub ack: Option<u32>,
    /// `win N`, if given.
    pub win: Option<u16>,
    /// `urg N`, if given.
    pub urg: Option<u16>,
    /// TCP options clause.
    pub options: TcpOptions,
}

/// The `<...>` TCP options clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOptions {
    /// `<...>`: don't check the options (outbound packets only).
    Any,
    /// An explicit list. No clause at all is `List(vec![])`, which means the
    /// segment carries no options (packetdrill semantics).
    List(Vec<TcpOption>),
}

/// One TCP option in a `<...>` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOption {
    /// `nop`
    Nop,
    /// `eol`
    Eol,
    /// `mss N`
    Mss(u16),
    /// `wscale N`
    WScale(u8),
    /// `sackOK`
    SackOk,
    /// `sack L:R L:R ...` (one or more blocks).
    Sack(Vec<(u32, u32)>),
    /// `TS val N ecr N`
    Timestamp {
        /// TSval.
        val: u32,
        /// TSecr.
        ecr: u32,
    },
    /// `md5 HEX` (digest as a hex string, as written).
    Md5(String),
    /// `FO [HEX]`: RFC 7413 fast open cookie (hex string, may be empty).
    FastOpen(String),
    /// `FOEXP [HEX]`: experimental (0xF989) fast open cookie.
    FastOpenExp(String),
    /// `ECN e0b N ceb N e1b N` (AccECN option): counters in the order written.
    AccEcn(Vec<(AccEcnField, u32)>),
}

/// An AccECN option counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccEcnField {
    /// ECT(0) bytes (`e0b`).
    E0b,
    /// CE bytes (`ceb`).
    Ceb,
    /// ECT(1) bytes (`e1b`).
    E1b,
}

/// `udp (LEN)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpSpec {
    /// Payload length.
    pub payload_len: u16,
}

/// `icmp TYPE [CODE] [mtu N] [id N] [[ECHOED]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpSpec {
    /// ICMP type name (e.g. `unreachable`).
    pub icmp_type: String,
    /// ICMP code name (e.g. `frag_needed`), if given.
    pub code: Option<String>,
    /// `mtu N`, if given.
    pub mtu: Option<i64>,
    /// `id N` (echo id), if given.
    pub echo_id: Option<i64>,
    /// Description of the packet quoted in the ICMP payload, if given.
    pub echoed: Option<IcmpEchoed>,
}

/// The packet quoted inside an ICMP error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpEchoed {
    /// `[S:E(L)]`: a TCP segment.
    Tcp {
        /// Start sequence.
        seq_start: u32,
        /// End sequence.
        seq_end: u32,
        /// Payload length.
        payload_len: u32,
    },
    /// `[udp (L)]`
    Udp {
        /// Payload length.
        payload_len: i64,
    },
    /// `[raw (L)]`
    Raw {
        /// Payload length.
        payload_len: i64,
    },
}

/// A system call event: `name(args) = result [ERRNO (strerror)] [(note)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallEvent {
    /// System call name (`socket`, `read`, ...).
    pub name: String,
    /// Arguments (empty for `name()`).
    pub args: Vec<Expr>,
    /// The expected return value expression (usually [`Expr::Int`], e.g. `-1`,
    /// `0x2`; may be [`Expr::Ellipsis`] or a symbol).
    pub result: Expr,
    /// Expected errno, e.g. `-1 EPIPE (Broken pipe)`.
    pub errno: Option<Errno>,
    /// A trailing parenthesised note not attached to an errno, e.g. the
    /// `(flags O_RDWR)` in `fcntl(3, F_GETFL) = 0x2 (flags O_RDWR)`; words
    /// joined by single spaces.
    pub note: Option<String>,
}

impl SyscallEvent {
    /// The expected result in a simplified form.
    pub fn expected(&self) -> SyscallResult {
        match (&self.result, &self.errno) {
            (Expr::Ellipsis, None) => SyscallResult::Ellipsis,
            (Expr::Int(v), None) => SyscallResult::Int(*v),
            (Expr::Int(v), Some(e)) => SyscallResult::Errno { value: *v, name: e.name.clone() },
            (other, _) => SyscallResult::Other(other.clone()),
        }
    }
}

/// Simplified view of a syscall's expected result (see
/// [`SyscallEvent::expected`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyscallResult {
    /// `= N` with no errno.
    Int(i64),
    /// `= N ERRNO (...)`; `value` is normally -1.
    Errno {
        /// The return value written (normally -1).
        value: i64,
        /// Errno macro name, e.g. `EPIPE`.
        name: String,
    },
    /// `= ...`: any result accepted.
    Ellipsis,
    /// Anything else (symbol, expression).
    Other(Expr),
}

/// `ERRNO (strerror text)` after a syscall result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errno {
    /// The errno macro name, e.g. `EWOULDBLOCK`.
    pub name: String,
    /// The text in parentheses (words joined by single spaces), e.g.
    /// `Broken pipe`. packetdrill requires it; we accept its absence (`None`).
    pub strerror: Option<String>,
}

/// A syscall argument / result expression.
///
/// Generic form of packetdrill's expressions: struct literals such as
/// sockaddr, msghdr, iovec, cmsg, pollfd, epoll_event, linger all parse to
/// [`Expr::Struct`] whose elements are usually [`Expr::Named`] fields, e.g.
/// `{msg_name(...)=..., msg_iov(1)=[{..., 10}], msg_flags=0}` is
/// `Struct([Named{msg_name, arg: Some(Ellipsis), value: Ellipsis},
/// Named{msg_iov, arg: Some(Int(1)), value: List([Struct([Ellipsis,
/// Int(10)])])}, Named{msg_flags, arg: None, value: Int(0)}])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A decimal or hex integer (`-1`, `1000`, `0x2`), or a `-D` define whose
    /// value is an integer.
    Int(i64),
    /// `...`: don't care / unspecified (e.g. a buffer pointer).
    Ellipsis,
    /// A symbolic name such as `SOCK_STREAM`, `MSG_PEEK`, `NULL`, or the value
    /// of a `-D` define that is not an integer.
    Symbol(String),
    /// A string literal (adjacent literals are concatenated). Backslash escapes
    /// are kept verbatim, as packetdrill does.
    Str(String),
    /// `"prefix"...`: a string literal followed by an ellipsis.
    StrEllipsis(String),
    /// `[a, b, ...]` array (may be empty).
    List(Vec<Expr>),
    /// `{a, b, ...}` brace list / struct literal. Elements are arbitrary
    /// expressions; named fields are [`Expr::Named`].
    Struct(Vec<Expr>),
    /// `name=value` or `name(arg)=value` (a struct field, or packetdrill's
    /// "symbol = value" binary expression). `arg` is the parenthesised part,
    /// e.g. the `1` of `msg_iov(1)=[...]` or the `...` of `msg_name(...)=...`.
    Named {
        /// Field name as written (e.g. `msg_iov`, `cmsg_level`, `fd`).
        name: String,
        /// Parenthesised argument after the name, if any.
        arg: Option<Box<Expr>>,
        /// The value.
        value: Box<Expr>,
    },
    /// `a | b` bitwise OR.
    Or(Box<Expr>, Box<Expr>),
    /// `name(args)` in value position: `htons(8080)`, `inet_addr("1.2.3.4")`,
    /// `inet6_addr("::1")`.
    Call {
        /// Function name.
        name: String,
        /// Arguments.
        args: Vec<Expr>,
    },
}

impl Expr {
    /// The integer value, if this is an [`Expr::Int`].
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Expr::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The symbol name, if this is an [`Expr::Symbol`].
    pub fn as_symbol(&self) -> Option<&str> {
        match self {
            Expr::Symbol(s) => Some(s),
            _ => None,
        }
    }

    /// For a [`Expr::Struct`], the first [`Expr::Named`] element called `name`,
    /// as `(arg, value)`.
    pub fn field(&self, name: &str) -> Option<(Option<&Expr>, &Expr)> {
        match self {
            Expr::Struct(items) => items.iter().find_map(|e| match e {
                Expr::Named { name: n, arg, value } if n == name => Some((arg.as_deref(), &**value)),
                _ => None,
            }),
            _ => None,
        }
    }

    /// The operands of a chain of `|`, flattened left to right (a single
    /// non-`Or` expression yields itself).
    pub fn or_terms(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
            match e {
                Expr::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                other => out.push(other),
            }
        }
        walk(self, &mut out);
        out
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{e}")?;
            }
            Ok(())
        }
        match self {
            Expr::Int(v) => write!(f, "{v}"),
            Expr::Ellipsis => f.write_str("..."),
            Expr::Symbol(s) => f.write_str(s),
            Expr::Str(s) => write!(f, "\"{s}\""),
            Expr::StrEllipsis(s) => write!(f, "\"{s}\"..."),
            Expr::List(items) => {
                f.write_str("[")?;
                list(f, items)?;
                f.write_str("]")
            }
            Expr::Struct(items) => {
                f.write_str("{")?;
                list(f, items)?;
                f.write_str("}")
            }
            Expr::Named { name, arg, value } => {
                f.write_str(name)?;
                if let Some(a) = arg {
                    write!(f, "({a})")?;
                }
                write!(f, "={value}")
            }
            Expr::Or(a, b) => write!(f, "{a}|{b}"),
            Expr::Call { name, args } => {
                write!(f, "{name}(")?;
                list(f, args)?;
                f.write_str(")")
            }
        }
    }
}
