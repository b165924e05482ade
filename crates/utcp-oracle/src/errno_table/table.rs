//! The table itself: which calls, with which arguments, in which states.

use super::{Call, Case, Ip, Port, Sa, State};

/// How an option's value is shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptKind {
    /// An int (or a bool).
    Int,
    /// `struct linger`.
    Linger,
    /// `struct timeval` (SO_RCVTIMEO/SO_SNDTIMEO).
    Timeval,
    /// A string (TCP_CONGESTION, TCP_ULP, SO_BINDTODEVICE).
    Str,
    /// A value that is not deterministic on Linux (counters, cookies, cpu numbers): only
    /// the return value and length are compared.
    Volatile,
}

/// One option: level, name, kind and Linux's name.
#[derive(Clone, Copy, Debug)]
pub struct Opt {
    /// `level`.
    pub level: i32,
    /// `optname`.
    pub name: i32,
    /// Its value's shape.
    pub kind: OptKind,
    /// The name in Linux's headers (or "unknown-N").
    pub label: &'static str,
}

const SOL_SOCKET: i32 = 1;
const SOL_IP: i32 = 0;
const SOL_TCP: i32 = 6;
const SOL_IPV6: i32 = 41;

/// SOL_SOCKET names of Linux 6.18 (include/uapi/asm-generic/socket.h), by number.
const SO_NAMES: &[(i32, &str)] = &[
    (1, "SO_DEBUG"),
    (2, "SO_REUSEADDR"),
    (3, "SO_TYPE"),
    (4, "SO_ERROR"),
    (5, "SO_DONTROUTE"),
    (6, "SO_BROADCAST"),
    (7, "SO_SNDBUF"),
    (8, "SO_RCVBUF"),
    (9, "SO_KEEPALIVE"),
    (10, "SO_OOBINLINE"),
    (11, "SO_NO_CHECK"),
    (12, "SO_PRIORITY"),
    (13, "SO_LINGER"),
    (14, "SO_BSDCOMPAT"),
    (15, "SO_REUSEPORT"),
    (16, "SO_PASSCRED"),
    (17, "SO_PEERCRED"),
    (18, "SO_RCVLOWAT"),
    (19, "SO_SNDLOWAT"),
    (20, "SO_RCVTIMEO_OLD"),
    (21, "SO_SNDTIMEO_OLD"),
    (22, "SO_SECURITY_AUTHENTICATION"),
    (23, "SO_SECURITY_ENCRYPTION_TRANSPORT"),
    (24, "SO_SECURITY_ENCRYPTION_NETWORK"),
    (25, "SO_BINDTODEVICE"),
    (26, "SO_ATTACH_FILTER"),
    (27, "SO_DETACH_FILTER"),
    (28, "SO_PEERNAME"),
    (29, "SO_TIMESTAMP_OLD"),
    (30, "SO_ACCEPTCONN"),
    (31, "SO_PEERSEC"),
    (32, "SO_SNDBUFFORCE"),
    (33, "SO_RCVBUFFORCE"),
    (34, "SO_PASSSEC"),
    (35, "SO_TIMESTAMPNS_OLD"),
    (36, "SO_MARK"),
    (37, "SO_TIMESTAMPING_OLD"),
    (38, "SO_PROTOCOL"),
    (39, "SO_DOMAIN"),
    (40, "SO_RXQ_OVFL"),
    (41, "SO_WIFI_STATUS"),
    (42, "SO_PEEK_OFF"),
    (43, "SO_NOFCS"),
    (44, "SO_LOCK_FILTER"),
    (45, "SO_SELECT_ERR_QUEUE"),
    (46, "SO_BUSY_POLL"),
    (47, "SO_MAX_PACING_RATE"),
    (48, "SO_BPF_EXTENSIONS"),
    (49, "SO_INCOMING_CPU"),
    (50, "SO_ATTACH_BPF"),
    (51, "SO_ATTACH_REUSEPORT_CBPF"),
    (52, "SO_ATTACH_REUSEPORT_EBPF"),
    (53, "SO_CNX_ADVICE"),
    (54, "SCM_TIMESTAMPING_OPT_STATS"),
    (55, "SO_MEMINFO"),
    (56, "SO_INCOMING_NAPI_ID"),
    (57, "SO_COOKIE"),
    (58, "SCM_TIMESTAMPING_PKTINFO"),
    (59, "SO_PEERGROUPS"),
    (60, "SO_ZEROCOPY"),
    (61, "SO_TXTIME"),
    (62, "SO_BINDTOIFINDEX"),
    (63, "SO_TIMESTAMP_NEW"),
    (64, "SO_TIMESTAMPNS_NEW"),
    (65, "SO_TIMESTAMPING_NEW"),
    (66, "SO_RCVTIMEO_NEW"),
    (67, "SO_SNDTIMEO_NEW"),
    (68, "SO_DETACH_REUSEPORT_BPF"),
    (69, "SO_PREFER_BUSY_POLL"),
    (70, "SO_BUSY_POLL_BUDGET"),
    (71, "SO_NETNS_COOKIE"),
    (72, "SO_BUF_LOCK"),
    (73, "SO_RESERVE_MEM"),
    (74, "SO_TXREHASH"),
    (75, "SO_RCVMARK"),
    (76, "SO_PASSPIDFD"),
    (77, "SO_PEERPIDFD"),
    (78, "SO_DEVMEM_LINEAR"),
    (79, "SO_DEVMEM_DMABUF"),
    (80, "SO_DEVMEM_DONTNEED"),
    (81, "SCM_TS_OPT_ID"),
    (82, "SO_RCVPRIORITY"),
    (83, "SO_PASSRIGHTS"),
    (84, "SO_INQ"),
    (85, "unknown-85"),
];

/// IPPROTO_IP names (include/uapi/linux/in.h).
const IP_NAMES: &[(i32, &str)] = &[
    (1, "IP_TOS"),
    (2, "IP_TTL"),
    (3, "IP_HDRINCL"),
    (4, "IP_OPTIONS"),
    (5, "IP_ROUTER_ALERT"),
    (6, "IP_RECVOPTS"),
    (7, "IP_RETOPTS"),
    (8, "IP_PKTINFO"),
    (9, "IP_PKTOPTIONS"),
    (10, "IP_MTU_DISCOVER"),
    (11, "IP_RECVERR"),
    (12, "IP_RECVTTL"),
    (13, "IP_RECVTOS"),
    (14, "IP_MTU"),
    (15, "IP_FREEBIND"),
    (16, "IP_IPSEC_POLICY"),
    (17, "IP_XFRM_POLICY"),
    (18, "IP_PASSSEC"),
    (19, "IP_TRANSPARENT"),
    (20, "IP_ORIGDSTADDR"),
    (21, "IP_MINTTL"),
    (22, "IP_NODEFRAG"),
    (23, "IP_CHECKSUM"),
    (24, "IP_BIND_ADDRESS_NO_PORT"),
    (25, "IP_RECVFRAGSIZE"),
    (26, "IP_RECVERR_RFC4884"),
    (27, "unknown-27"),
    (32, "IP_MULTICAST_IF"),
    (33, "IP_MULTICAST_TTL"),
    (34, "IP_MULTICAST_LOOP"),
    (35, "IP_ADD_MEMBERSHIP"),
    (36, "IP_DROP_MEMBERSHIP"),
    (37, "IP_UNBLOCK_SOURCE"),
    (38, "IP_BLOCK_SOURCE"),
    (39, "IP_ADD_SOURCE_MEMBERSHIP"),
    (40, "IP_DROP_SOURCE_MEMBERSHIP"),
    (41, "IP_MSFILTER"),
    (42, "MCAST_JOIN_GROUP"),
    (43, "MCAST_BLOCK_SOURCE"),
    (44, "MCAST_UNBLOCK_SOURCE"),
    (45, "MCAST_LEAVE_GROUP"),
    (46, "MCAST_JOIN_SOURCE_GROUP"),
    (47, "MCAST_LEAVE_SOURCE_GROUP"),
    (48, "MCAST_MSFILTER"),
    (49, "IP_MULTICAST_ALL"),
    (50, "IP_UNICAST_IF"),
    (51, "IP_LOCAL_PORT_RANGE"),
    (52, "IP_PROTOCOL"),
    (53, "unknown-53"),
];

/// IPPROTO_TCP names (include/uapi/linux/tcp.h).
const TCP_NAMES: &[(i32, &str)] = &[
    (1, "TCP_NODELAY"),
    (2, "TCP_MAXSEG"),
    (3, "TCP_CORK"),
    (4, "TCP_KEEPIDLE"),
    (5, "TCP_KEEPINTVL"),
    (6, "TCP_KEEPCNT"),
    (7, "TCP_SYNCNT"),
    (8, "TCP_LINGER2"),
    (9, "TCP_DEFER_ACCEPT"),
    (10, "TCP_WINDOW_CLAMP"),
    (11, "TCP_INFO"),
    (12, "TCP_QUICKACK"),
    (13, "TCP_CONGESTION"),
    (14, "TCP_MD5SIG"),
    (15, "unknown-15"),
    (16, "TCP_THIN_LINEAR_TIMEOUTS"),
    (17, "TCP_THIN_DUPACK"),
    (18, "TCP_USER_TIMEOUT"),
    (19, "TCP_REPAIR"),
    (20, "TCP_REPAIR_QUEUE"),
    (21, "TCP_QUEUE_SEQ"),
    (22, "TCP_REPAIR_OPTIONS"),
    (23, "TCP_FASTOPEN"),
    (24, "TCP_TIMESTAMP"),
    (25, "TCP_NOTSENT_LOWAT"),
    (26, "TCP_CC_INFO"),
    (27, "TCP_SAVE_SYN"),
    (28, "TCP_SAVED_SYN"),
    (29, "TCP_REPAIR_WINDOW"),
    (30, "TCP_FASTOPEN_CONNECT"),
    (31, "TCP_ULP"),
    (32, "TCP_MD5SIG_EXT"),
    (33, "TCP_FASTOPEN_KEY"),
    (34, "TCP_FASTOPEN_NO_COOKIE"),
    (35, "TCP_ZEROCOPY_RECEIVE"),
    (36, "TCP_INQ"),
    (37, "TCP_TX_DELAY"),
    (38, "TCP_AO_ADD_KEY"),
    (39, "TCP_AO_DEL_KEY"),
    (40, "TCP_AO_INFO"),
    (41, "TCP_AO_GET_KEYS"),
    (42, "TCP_AO_REPAIR"),
    (43, "TCP_IS_MPTCP"),
    (44, "TCP_RTO_MAX_MS"),
    (45, "TCP_RTO_MIN_US"),
    (46, "TCP_DELACK_MAX_US"),
    (47, "unknown-47"),
];

/// Every option the table exercises: all of Linux 6.18's SOL_SOCKET, IPPROTO_IP and
/// IPPROTO_TCP names, a few IPPROTO_IPV6 ones (on an AF_INET socket) and an unknown level.
pub fn options() -> Vec<Opt> {
    let mut v = Vec::new();
    for &(name, label) in SO_NAMES {
        let kind = match name {
            13 => OptKind::Linger,
            20 | 21 | 66 | 67 => OptKind::Timeval,
            25 => OptKind::Str,
            // pid/uid/gid, cpu, memory counters, cookies, napi id.
            17 | 49 | 55 | 56 | 57 | 59 | 71 => OptKind::Volatile,
            _ => OptKind::Int,
        };
        v.push(Opt { level: SOL_SOCKET, name, kind, label });
    }
    for &(name, label) in IP_NAMES {
        // 52 reads back the bound port on 6.18.
        let kind = if name == 52 { OptKind::Volatile } else { OptKind::Int };
        v.push(Opt { level: SOL_IP, name, kind, label });
    }
    for &(name, label) in TCP_NAMES {
        let kind = match name {
            13 | 31 => OptKind::Str,
            // TCP_TIMESTAMP is the clock.
            11 | 24 | 26 | 40 | 41 => OptKind::Volatile,
            _ => OptKind::Int,
        };
        v.push(Opt { level: SOL_TCP, name, kind, label });
    }
    for (name, label) in [(1, "IPV6_ADDRFORM"), (16, "IPV6_UNICAST_HOPS"), (26, "IPV6_V6ONLY"), (67, "IPV6_TCLASS")] {
        v.push(Opt { level: SOL_IPV6, name, kind: OptKind::Int, label });
    }
    for (level, label) in [(99, "level-99"), (-1, "level--1"), (263, "level-263")] {
        v.push(Opt { level, name: 1, kind: OptKind::Int, label });
    }
    v
}

fn int(v: i32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn pair(a: i32, b: i32) -> Vec<u8> {
    let mut v = int(a);
    v.extend(int(b));
    v
}

fn timeval(sec: i64, usec: i64) -> Vec<u8> {
    let mut v = sec.to_ne_bytes().to_vec();
    v.extend(usec.to_ne_bytes());
    v
}

/// Values to set for an option of `kind` (each is followed by a read-back).
fn set_values(kind: OptKind) -> Vec<Vec<u8>> {
    let mut v = vec![vec![], vec![1u8], vec![1, 0], int(0), int(1), int(-1), int(i32::MAX), int(1 << 20), int(100)];
    match kind {
        OptKind::Linger => v.extend([pair(1, 0), pair(1, 5), pair(0, 7), pair(1, -1), pair(1, i32::MAX)]),
        OptKind::Timeval => v.extend([
            timeval(0, 0),
            timeval(1, 500_000),
            timeval(0, 1_000_000),
            timeval(0, -1),
            timeval(-1, 0),
            timeval(0, 1),
            pair(1, 0),
        ]),
        OptKind::Str => {
            for s in [&b"cubic"[..], b"reno", b"cubic\0", b"bogus", b"", b"lo", b"tls", b"0123456789abcdefX"] {
                v.push(s.to_vec());
            }
        }
        _ => v.extend([int(88), int(536), int(65535), int(-100), int(2)]),
    }
    v
}

const GET_LENS: [u32; 7] = [0, 1, 2, 4, 8, 16, 300];

fn case(state: State, calls: Vec<Call>, len_only: bool) -> Case {
    Case { state, calls, len_only }
}

fn option_cases(out: &mut Vec<Case>, state: State, full: bool) {
    for o in options() {
        let vol = o.kind == OptKind::Volatile;
        let lens: &[u32] = if full { &GET_LENS } else { &[4, 16] };
        for &l in lens {
            out.push(case(state, vec![Call::GetOpt(o.level, o.name, l)], vol));
        }
        let vals = if full { set_values(o.kind) } else { vec![int(1), vec![]] };
        for v in vals {
            let back = Call::GetOpt(o.level, o.name, 16);
            out.push(case(state, vec![Call::SetOpt(o.level, o.name, v), back], vol));
        }
    }
}

const RECV_FLAGS: [i32; 14] = [
    0,
    0x2,         // MSG_PEEK
    0x1,         // MSG_OOB
    0x20,        // MSG_TRUNC
    0x22,        // MSG_PEEK|MSG_TRUNC
    0x100,       // MSG_WAITALL
    0x2000,      // MSG_ERRQUEUE
    0x40,        // MSG_DONTWAIT
    0x40000000,  // MSG_CMSG_CLOEXEC
    0x4000,      // MSG_NOSIGNAL
    0x8000,      // MSG_MORE (meaningless here)
    0x10000,     // MSG_WAITFORONE
    0x3,         // MSG_OOB|MSG_PEEK
    -0x80000000, // MSG_CMSG_COMPAT
];

const SEND_FLAGS: [i32; 12] = [
    0,
    0x1,         // MSG_OOB
    0x8000,      // MSG_MORE
    0x40,        // MSG_DONTWAIT
    0x4000,      // MSG_NOSIGNAL
    0x80,        // MSG_EOR
    0x800,       // MSG_CONFIRM
    0x4000000,   // MSG_ZEROCOPY
    0x2,         // MSG_PEEK (ignored on send)
    0x2000,      // MSG_ERRQUEUE (ignored on send)
    0x8000000,   // MSG_SPLICE_PAGES (internal: stripped)
    -0x80000000, // MSG_CMSG_COMPAT
];

fn call_cases(out: &mut Vec<Case>, st: State) {
    let sa = Sa::inet;
    let mut calls: Vec<Call> = vec![
        Call::Bind(sa(Ip::Local, Port::Zero)),
        Call::Bind(sa(Ip::Any, Port::Zero)),
        Call::Bind(sa(Ip::Local, Port::InUse)),
        Call::Bind(sa(Ip::NonLocal, Port::Zero)),
        Call::Bind(sa(Ip::Broadcast, Port::Zero)),
        Call::Bind(sa(Ip::Multicast, Port::Zero)),
        Call::Bind(Sa { family: 10, ..sa(Ip::Local, Port::Zero) }),
        Call::Bind(Sa { family: 0, ..sa(Ip::Any, Port::Zero) }),
        Call::Bind(Sa { family: 0, ..sa(Ip::Local, Port::Zero) }),
        Call::Bind(Sa { family: 1, ..sa(Ip::Local, Port::Zero) }),
        Call::Bind(Sa { len: 15, ..sa(Ip::Local, Port::Zero) }),
        Call::Bind(Sa { len: 0, ..sa(Ip::Local, Port::Zero) }),
        Call::Bind(Sa { len: 128, ..sa(Ip::Local, Port::Zero) }),
        Call::Bind(Sa { len: 129, ..sa(Ip::Local, Port::Zero) }),
        Call::Listen(8),
        Call::Listen(0),
        Call::Listen(-1),
        Call::Listen(i32::MAX),
        Call::Accept4(0),
        Call::Accept4(0o4000),
        Call::Accept4(0o2000000),
        Call::Accept4(1),
        Call::Accept4(-1),
        Call::Connect(sa(Ip::Peer, Port::Listener)),
        Call::Connect(sa(Ip::Peer, Port::Closed)),
        Call::Connect(sa(Ip::Broadcast, Port::Listener)),
        Call::Connect(sa(Ip::Multicast, Port::Listener)),
        Call::Connect(Sa { family: 10, ..sa(Ip::Peer, Port::Listener) }),
        Call::Connect(Sa { family: 0, ..sa(Ip::Peer, Port::Listener) }),
        Call::Connect(Sa { family: 0, len: 2, ..sa(Ip::Any, Port::Zero) }),
        Call::Connect(Sa { len: 15, ..sa(Ip::Peer, Port::Listener) }),
        Call::Connect(Sa { len: 1, ..sa(Ip::Peer, Port::Listener) }),
        Call::Connect(Sa { len: 129, ..sa(Ip::Peer, Port::Listener) }),
        Call::Shutdown(0),
        Call::Shutdown(1),
        Call::Shutdown(2),
        Call::Shutdown(3),
        Call::Shutdown(-1),
        Call::GetSockName(16),
        Call::GetSockName(0),
        Call::GetSockName(4),
        Call::GetSockName(32),
        Call::GetSockName(u32::MAX),
        Call::GetPeerName(16),
        Call::GetPeerName(0),
        Call::GetPeerName(8),
        Call::GetPeerName(u32::MAX),
        Call::Ioctl(0x541B),     // FIONREAD / SIOCINQ
        Call::Ioctl(0x5411),     // SIOCOUTQ
        Call::Ioctl(0x894B),     // SIOCOUTQNSD
        Call::Ioctl(0x8905),     // SIOCATMARK
        Call::Ioctl(0x5421),     // FIONBIO
        Call::Ioctl(0x8906),     // SIOCGSTAMP_OLD
        Call::Ioctl(0x12345678), // unknown
        Call::Ioctl(0x5401),     // TCGETS
        Call::Fcntl(3, 0),       // F_GETFL
        Call::Fcntl(4, 0),       // F_SETFL 0
        Call::Fcntl(4, 0o4000),  // F_SETFL O_NONBLOCK
        Call::Fcntl(1, 0),       // F_GETFD
        Call::Fcntl(9999, 0),    // bad cmd
        Call::Read(4),
        Call::Read(0),
        Call::Write(5),
        Call::Write(0),
        Call::Close,
    ];
    for f in RECV_FLAGS {
        calls.push(Call::Recv(4, f));
        calls.push(Call::RecvMsg(4, f, 64));
    }
    calls.push(Call::Recv(0, 0));
    calls.push(Call::Recv(16, 0));
    calls.push(Call::RecvFrom(4, 0, 16));
    calls.push(Call::RecvFrom(4, 0, 0));
    calls.push(Call::RecvMsg(4, 0, 0));
    calls.push(Call::RecvMsg(0, 0x20, 0));
    for f in SEND_FLAGS {
        calls.push(Call::Send(5, f));
        calls.push(Call::SendMsg(5, f));
    }
    calls.push(Call::Send(0, 0));
    calls.push(Call::SendTo(5, 0, sa(Ip::Peer, Port::Listener)));
    calls.push(Call::SendTo(5, 0, Sa { family: 10, len: 8, ..sa(Ip::Peer, Port::Closed) }));
    calls.push(Call::SendTo(5, 0, Sa { len: 129, ..sa(Ip::Peer, Port::Listener) }));
    for c in calls {
        // Each call, then a probe of what it left behind.
        let probe = match c {
            Call::Recv(..) | Call::RecvMsg(..) | Call::Read(..) => Call::Ioctl(0x541B),
            Call::Fcntl(4, _) => Call::Fcntl(3, 0),
            // After close() the number may be reused (by another thread, on the kernel).
            Call::Close => {
                out.push(case(st, vec![c], false));
                continue;
            }
            _ => Call::GetOpt(SOL_SOCKET, 4, 4),
        };
        out.push(case(st, vec![c, probe], false));
    }
}

/// The whole table: `socket()` arguments, every call in every state, and every option
/// (all value shapes in the fresh, listening and connected states; a get and a set
/// elsewhere).
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (d, t, p) in [
        (2, 1, 0),
        (2, 1, 6),
        (2, 1 | 0o4000 | 0o2000000, 0),
        (2, 1 | 0x100, 0),
        (2, 1, 17),
        (2, 1, -1),
        (2, 1, 263),
        (2, 1, 255),
        (2, 0, 0),
        (2, 5, 0),
        (2, 11, 0),
        (2, -1, 0),
        (-1, 1, 0),
        (46, 1, 0),
        (1000, 1, 0),
    ] {
        out.push(case(State::Fresh, vec![Call::Socket(d, t, p)], false));
    }
    for st in State::ALL {
        call_cases(&mut out, st);
        let full = matches!(st, State::Fresh | State::Listening | State::Connected);
        option_cases(&mut out, st, full);
    }
    out
}
