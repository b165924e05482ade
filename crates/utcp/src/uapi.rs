//! Linux's user-visible constants (include/uapi: asm-generic/socket.h, linux/in.h,
//! linux/tcp.h): socket levels and option names. A leaf module: every layer may use it.

/// `SOL_SOCKET`.
pub const SOL_SOCKET: i32 = 1;
/// `SOL_IP` (`IPPROTO_IP`).
pub const SOL_IP: i32 = 0;
/// `SOL_TCP` (`IPPROTO_TCP`).
pub const SOL_TCP: i32 = 6;

/// `SOL_IPV6` (`IPPROTO_IPV6`).
pub const SOL_IPV6: i32 = 41;

/// `AF_INET`.
pub const AF_INET: i32 = 2;
/// `AF_INET6`.
pub const AF_INET6: i32 = 10;
/// `sizeof(struct sockaddr_in)`.
pub const SOCKADDR_IN_LEN: usize = 16;
/// `sizeof(struct sockaddr_in6)`.
pub const SOCKADDR_IN6_LEN: usize = 28;
/// `SIN6_LEN_RFC2133`: a `sockaddr_in6` without `sin6_scope_id`, the shortest one accepted.
pub const SIN6_LEN_RFC2133: usize = 24;

/// `ipv6_addr_set_v4mapped()`: `::ffff:a.b.c.d`.
pub fn v4mapped(a: std::net::Ipv4Addr) -> std::net::Ipv6Addr {
    a.to_ipv6_mapped()
}

/// `ipv6_addr_v4mapped()`: the IPv4 address an IPv4-mapped one stands for.
pub fn v4mapped_to_v4(a: &std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let o = a.octets();
    (o[..10] == [0; 10] && o[10] == 0xff && o[11] == 0xff).then(|| std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]))
}

/// The address as a socket of `family` shows it (`inet_getname` / `inet6_getname`): an
/// AF_INET6 socket shows an IPv4 address as IPv4-mapped.
pub fn sock_addr(family: i32, addr: std::net::IpAddr, port: u16) -> std::net::SocketAddr {
    use std::net::{IpAddr, SocketAddr, SocketAddrV6};
    match (family, addr) {
        (AF_INET6, IpAddr::V4(a)) => SocketAddr::V6(SocketAddrV6::new(v4mapped(a), port, 0, 0)),
        (_, a) => SocketAddr::new(a, port),
    }
}

/// `struct sockaddr_in` / `struct sockaddr_in6` bytes of `a` (`sin6_flowinfo` and
/// `sin6_scope_id` as the address carries them).
pub fn sockaddr_bytes(a: &std::net::SocketAddr) -> ([u8; SOCKADDR_IN6_LEN], usize) {
    let mut b = [0u8; SOCKADDR_IN6_LEN];
    match a {
        std::net::SocketAddr::V4(a) => {
            b[0..2].copy_from_slice(&(AF_INET as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.ip().octets());
            (b, SOCKADDR_IN_LEN)
        }
        std::net::SocketAddr::V6(a) => {
            b[0..2].copy_from_slice(&(AF_INET6 as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
            b[8..24].copy_from_slice(&a.ip().octets());
            b[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
            (b, SOCKADDR_IN6_LEN)
        }
    }
}
/// `O_NONBLOCK`.
pub const O_NONBLOCK: i32 = 0o4000;

/// `FIONREAD` / `SIOCINQ`.
pub const FIONREAD: u64 = 0x541B;
/// `SIOCATMARK`.
pub const SIOCATMARK: u64 = 0x8905;
/// `SIOCOUTQ` / `TIOCOUTQ`.
pub const SIOCOUTQ: u64 = 0x5411;
/// `FIONBIO`: set or clear O_NONBLOCK.
pub const FIONBIO: u64 = 0x5421;
/// `FIOCLEX`: set close-on-exec.
pub const FIOCLEX: u64 = 0x5451;
/// `FIONCLEX`: clear close-on-exec.
pub const FIONCLEX: u64 = 0x5450;
/// `SIOCGSTAMP_OLD`: the last packet's receive time (`struct timeval`).
pub const SIOCGSTAMP: u64 = 0x8906;
/// `SIOCGSTAMPNS_OLD`.
pub const SIOCGSTAMPNS: u64 = 0x8907;
/// `SIOCOUTQNSD`.
pub const SIOCOUTQNSD: u64 = 0x894B;

/// `send`/`recv` flags (`include/linux/socket.h`).
/// `MSG_OOB`.
pub const MSG_OOB: i32 = 0x1;
/// `MSG_PEEK`.
pub const MSG_PEEK: i32 = 0x2;
/// `MSG_CTRUNC`.
pub const MSG_CTRUNC: i32 = 0x8;
/// `MSG_TRUNC`.
pub const MSG_TRUNC: i32 = 0x20;
/// `MSG_DONTWAIT`.
pub const MSG_DONTWAIT: i32 = 0x40;
/// `MSG_EOR`.
pub const MSG_EOR: i32 = 0x80;
/// `MSG_WAITALL`.
pub const MSG_WAITALL: i32 = 0x100;
/// `MSG_ERRQUEUE`.
pub const MSG_ERRQUEUE: i32 = 0x2000;
/// `MSG_NOSIGNAL`.
pub const MSG_NOSIGNAL: i32 = 0x4000;
/// `MSG_MORE`.
pub const MSG_MORE: i32 = 0x8000;
/// `MSG_ZEROCOPY` (send): report completion on the error queue (SO_ZEROCOPY).
pub const MSG_ZEROCOPY: i32 = 0x400_0000;

/// `SO_TIMESTAMPING` flags (`include/uapi/linux/net_tstamp.h`).
/// `SOF_TIMESTAMPING_TX_HARDWARE`.
pub const SOF_TIMESTAMPING_TX_HARDWARE: u32 = 1 << 0;
/// `SOF_TIMESTAMPING_TX_SOFTWARE`: a report when the device sends the segment (SCM_TSTAMP_SND).
pub const SOF_TIMESTAMPING_TX_SOFTWARE: u32 = 1 << 1;
/// `SOF_TIMESTAMPING_RX_HARDWARE`.
pub const SOF_TIMESTAMPING_RX_HARDWARE: u32 = 1 << 2;
/// `SOF_TIMESTAMPING_RX_SOFTWARE`: stamp received data with its arrival time.
pub const SOF_TIMESTAMPING_RX_SOFTWARE: u32 = 1 << 3;
/// `SOF_TIMESTAMPING_SOFTWARE`: report software timestamps (the first of the three slots).
pub const SOF_TIMESTAMPING_SOFTWARE: u32 = 1 << 4;
/// `SOF_TIMESTAMPING_SYS_HARDWARE` (obsolete, accepted, ignored by Linux too).
pub const SOF_TIMESTAMPING_SYS_HARDWARE: u32 = 1 << 5;
/// `SOF_TIMESTAMPING_RAW_HARDWARE`: report hardware timestamps (the third slot).
pub const SOF_TIMESTAMPING_RAW_HARDWARE: u32 = 1 << 6;
/// `SOF_TIMESTAMPING_OPT_ID`: each report carries the key of the byte it is about.
pub const SOF_TIMESTAMPING_OPT_ID: u32 = 1 << 7;
/// `SOF_TIMESTAMPING_TX_SCHED`: a report when the segment enters the device queue.
pub const SOF_TIMESTAMPING_TX_SCHED: u32 = 1 << 8;
/// `SOF_TIMESTAMPING_TX_ACK`: a report when the peer acknowledges the byte.
pub const SOF_TIMESTAMPING_TX_ACK: u32 = 1 << 9;
/// `SOF_TIMESTAMPING_OPT_CMSG`: reports carry IP_PKTINFO.
pub const SOF_TIMESTAMPING_OPT_CMSG: u32 = 1 << 10;
/// `SOF_TIMESTAMPING_OPT_TSONLY`: reports carry no copy of the packet.
pub const SOF_TIMESTAMPING_OPT_TSONLY: u32 = 1 << 11;
/// `SOF_TIMESTAMPING_OPT_STATS`: reports carry SCM_TIMESTAMPING_OPT_STATS.
pub const SOF_TIMESTAMPING_OPT_STATS: u32 = 1 << 12;
/// `SOF_TIMESTAMPING_OPT_PKTINFO`: received data carries SCM_TIMESTAMPING_PKTINFO. Linux
/// adds that cmsg only beside a raw hardware stamp (`__sock_recv_timestamp`), so with utcp's
/// software-only devices it changes nothing, as on a kernel device without hardware stamps.
pub const SOF_TIMESTAMPING_OPT_PKTINFO: u32 = 1 << 13;
/// `SOF_TIMESTAMPING_OPT_TX_SWHW`: software and hardware TX reports both. Only a device with
/// hardware TX stamps reads it (`skb_tstamp_tx`); utcp has none, so it changes nothing, as on
/// the kernel's loopback.
pub const SOF_TIMESTAMPING_OPT_TX_SWHW: u32 = 1 << 14;
/// `SOF_TIMESTAMPING_BIND_PHC`: bind to a PHC virtual clock of the bound device.
pub const SOF_TIMESTAMPING_BIND_PHC: u32 = 1 << 15;
/// `SOF_TIMESTAMPING_OPT_ID_TCP`: the key counts from write_seq, not snd_una.
pub const SOF_TIMESTAMPING_OPT_ID_TCP: u32 = 1 << 16;
/// `SOF_TIMESTAMPING_OPT_RX_FILTER`.
pub const SOF_TIMESTAMPING_OPT_RX_FILTER: u32 = 1 << 17;
/// `SOF_TIMESTAMPING_TX_COMPLETION` (a hardware completion report).
pub const SOF_TIMESTAMPING_TX_COMPLETION: u32 = 1 << 18;

/// What a `SO_TIMESTAMPING` report is about (`ee_info` of `SO_EE_ORIGIN_TIMESTAMPING`).
/// `SCM_TSTAMP_SND`.
pub const SCM_TSTAMP_SND: u32 = 0;
/// `SCM_TSTAMP_SCHED`.
pub const SCM_TSTAMP_SCHED: u32 = 1;
/// `SCM_TSTAMP_ACK`.
pub const SCM_TSTAMP_ACK: u32 = 2;

/// Socket option names (Linux 6.18).
#[allow(missing_docs)]
pub mod opt {
    pub const SO_DEBUG: i32 = 1;
    pub const SO_REUSEADDR: i32 = 2;
    pub const SO_TYPE: i32 = 3;
    pub const SO_ERROR: i32 = 4;
    pub const SO_DONTROUTE: i32 = 5;
    pub const SO_BROADCAST: i32 = 6;
    pub const SO_SNDBUF: i32 = 7;
    pub const SO_RCVBUF: i32 = 8;
    pub const SO_KEEPALIVE: i32 = 9;
    pub const SO_OOBINLINE: i32 = 10;
    pub const SO_NO_CHECK: i32 = 11;
    pub const SO_PRIORITY: i32 = 12;
    pub const SO_LINGER: i32 = 13;
    pub const SO_BSDCOMPAT: i32 = 14;
    pub const SO_REUSEPORT: i32 = 15;
    pub const SO_PASSCRED: i32 = 16;
    pub const SO_PEERCRED: i32 = 17;
    pub const SO_RCVLOWAT: i32 = 18;
    pub const SO_SNDLOWAT: i32 = 19;
    pub const SO_RCVTIMEO: i32 = 20;
    pub const SO_SNDTIMEO: i32 = 21;
    pub const SO_SECURITY_AUTHENTICATION: i32 = 22;
    pub const SO_SECURITY_ENCRYPTION_TRANSPORT: i32 = 23;
    pub const SO_SECURITY_ENCRYPTION_NETWORK: i32 = 24;
    pub const SO_BINDTODEVICE: i32 = 25;
    pub const SO_ATTACH_FILTER: i32 = 26;
    pub const SO_DETACH_FILTER: i32 = 27;
    pub const SO_PEERNAME: i32 = 28;
    pub const SO_TIMESTAMP: i32 = 29;
    pub const SO_ACCEPTCONN: i32 = 30;
    pub const SO_PEERSEC: i32 = 31;
    pub const SO_SNDBUFFORCE: i32 = 32;
    pub const SO_RCVBUFFORCE: i32 = 33;
    pub const SO_PASSSEC: i32 = 34;
    pub const SO_TIMESTAMPNS: i32 = 35;
    pub const SO_MARK: i32 = 36;
    pub const SO_TIMESTAMPING: i32 = 37;
    pub const SO_PROTOCOL: i32 = 38;
    pub const SO_DOMAIN: i32 = 39;
    pub const SO_RXQ_OVFL: i32 = 40;
    pub const SO_WIFI_STATUS: i32 = 41;
    pub const SO_PEEK_OFF: i32 = 42;
    pub const SO_NOFCS: i32 = 43;
    pub const SO_LOCK_FILTER: i32 = 44;
    pub const SO_SELECT_ERR_QUEUE: i32 = 45;
    pub const SO_BUSY_POLL: i32 = 46;
    pub const SO_MAX_PACING_RATE: i32 = 47;
    pub const SO_BPF_EXTENSIONS: i32 = 48;
    pub const SO_INCOMING_CPU: i32 = 49;
    pub const SO_ATTACH_BPF: i32 = 50;
    pub const SO_ATTACH_REUSEPORT_CBPF: i32 = 51;
    pub const SO_ATTACH_REUSEPORT_EBPF: i32 = 52;
    pub const SO_CNX_ADVICE: i32 = 53;
    pub const SCM_TIMESTAMPING_OPT_STATS: i32 = 54;
    pub const SO_MEMINFO: i32 = 55;
    pub const SO_INCOMING_NAPI_ID: i32 = 56;
    pub const SO_COOKIE: i32 = 57;
    pub const SCM_TIMESTAMPING_PKTINFO: i32 = 58;
    pub const SO_PEERGROUPS: i32 = 59;
    pub const SO_ZEROCOPY: i32 = 60;
    pub const SO_TXTIME: i32 = 61;
    pub const SO_BINDTOIFINDEX: i32 = 62;
    pub const SO_TIMESTAMP_NEW: i32 = 63;
    pub const SO_TIMESTAMPNS_NEW: i32 = 64;
    pub const SO_TIMESTAMPING_NEW: i32 = 65;
    pub const SO_RCVTIMEO_NEW: i32 = 66;
    pub const SO_SNDTIMEO_NEW: i32 = 67;
    pub const SO_DETACH_REUSEPORT_BPF: i32 = 68;
    pub const SO_PREFER_BUSY_POLL: i32 = 69;
    pub const SO_BUSY_POLL_BUDGET: i32 = 70;
    pub const SO_NETNS_COOKIE: i32 = 71;
    pub const SO_BUF_LOCK: i32 = 72;
    pub const SO_RESERVE_MEM: i32 = 73;
    pub const SO_TXREHASH: i32 = 74;
    pub const SO_RCVMARK: i32 = 75;
    pub const SO_PASSPIDFD: i32 = 76;
    pub const SO_PEERPIDFD: i32 = 77;
    pub const SO_DEVMEM_LINEAR: i32 = 78;
    pub const SO_DEVMEM_DMABUF: i32 = 79;
    pub const SO_DEVMEM_DONTNEED: i32 = 80;
    pub const SCM_TS_OPT_ID: i32 = 81;
    pub const SO_RCVPRIORITY: i32 = 82;
    pub const SO_PASSRIGHTS: i32 = 83;
    pub const SO_INQ: i32 = 84;
    pub const IP_TOS: i32 = 1;
    pub const IP_TTL: i32 = 2;
    pub const IP_HDRINCL: i32 = 3;
    pub const IP_OPTIONS: i32 = 4;
    pub const IP_ROUTER_ALERT: i32 = 5;
    pub const IP_RECVOPTS: i32 = 6;
    pub const IP_RETOPTS: i32 = 7;
    pub const IP_PKTINFO: i32 = 8;
    pub const IP_PKTOPTIONS: i32 = 9;
    pub const IP_MTU_DISCOVER: i32 = 10;
    pub const IP_RECVERR: i32 = 11;
    pub const IP_RECVTTL: i32 = 12;
    pub const IP_RECVTOS: i32 = 13;
    pub const IP_MTU: i32 = 14;
    pub const IP_FREEBIND: i32 = 15;
    pub const IP_IPSEC_POLICY: i32 = 16;
    pub const IP_XFRM_POLICY: i32 = 17;
    pub const IP_PASSSEC: i32 = 18;
    pub const IP_TRANSPARENT: i32 = 19;
    pub const IP_ORIGDSTADDR: i32 = 20;
    pub const IP_MINTTL: i32 = 21;
    pub const IP_NODEFRAG: i32 = 22;
    pub const IP_CHECKSUM: i32 = 23;
    pub const IP_BIND_ADDRESS_NO_PORT: i32 = 24;
    pub const IP_RECVFRAGSIZE: i32 = 25;
    pub const IP_RECVERR_RFC4884: i32 = 26;
    pub const IP_MULTICAST_IF: i32 = 32;
    pub const IP_MULTICAST_TTL: i32 = 33;
    pub const IP_MULTICAST_LOOP: i32 = 34;
    pub const IP_ADD_MEMBERSHIP: i32 = 35;
    pub const IP_DROP_MEMBERSHIP: i32 = 36;
    pub const IP_UNBLOCK_SOURCE: i32 = 37;
    pub const IP_BLOCK_SOURCE: i32 = 38;
    pub const IP_ADD_SOURCE_MEMBERSHIP: i32 = 39;
    pub const IP_DROP_SOURCE_MEMBERSHIP: i32 = 40;
    pub const IP_MSFILTER: i32 = 41;
    pub const MCAST_JOIN_GROUP: i32 = 42;
    pub const MCAST_BLOCK_SOURCE: i32 = 43;
    pub const MCAST_UNBLOCK_SOURCE: i32 = 44;
    pub const MCAST_LEAVE_GROUP: i32 = 45;
    pub const MCAST_JOIN_SOURCE_GROUP: i32 = 46;
    pub const MCAST_LEAVE_SOURCE_GROUP: i32 = 47;
    pub const MCAST_MSFILTER: i32 = 48;
    pub const IP_MULTICAST_ALL: i32 = 49;
    pub const IP_UNICAST_IF: i32 = 50;
    pub const IP_LOCAL_PORT_RANGE: i32 = 51;
    pub const IP_PROTOCOL: i32 = 52;
    pub const TCP_NODELAY: i32 = 1;
    pub const TCP_MAXSEG: i32 = 2;
    pub const TCP_CORK: i32 = 3;
    pub const TCP_KEEPIDLE: i32 = 4;
    pub const TCP_KEEPINTVL: i32 = 5;
    pub const TCP_KEEPCNT: i32 = 6;
    pub const TCP_SYNCNT: i32 = 7;
    pub const TCP_LINGER2: i32 = 8;
    pub const TCP_DEFER_ACCEPT: i32 = 9;
    pub const TCP_WINDOW_CLAMP: i32 = 10;
    pub const TCP_INFO: i32 = 11;
    pub const TCP_QUICKACK: i32 = 12;
    pub const TCP_CONGESTION: i32 = 13;
    pub const TCP_MD5SIG: i32 = 14;
    pub const TCP_THIN_LINEAR_TIMEOUTS: i32 = 16;
    pub const TCP_THIN_DUPACK: i32 = 17;
    pub const TCP_USER_TIMEOUT: i32 = 18;
    pub const TCP_REPAIR: i32 = 19;
    pub const TCP_REPAIR_QUEUE: i32 = 20;
    pub const TCP_QUEUE_SEQ: i32 = 21;
    pub const TCP_REPAIR_OPTIONS: i32 = 22;
    pub const TCP_FASTOPEN: i32 = 23;
    pub const TCP_TIMESTAMP: i32 = 24;
    pub const TCP_NOTSENT_LOWAT: i32 = 25;
    pub const TCP_CC_INFO: i32 = 26;
    pub const TCP_SAVE_SYN: i32 = 27;
    pub const TCP_SAVED_SYN: i32 = 28;
    pub const TCP_REPAIR_WINDOW: i32 = 29;
    pub const TCP_FASTOPEN_CONNECT: i32 = 30;
    pub const TCP_ULP: i32 = 31;
    pub const TCP_MD5SIG_EXT: i32 = 32;
    pub const TCP_FASTOPEN_KEY: i32 = 33;
    pub const TCP_FASTOPEN_NO_COOKIE: i32 = 34;
    pub const TCP_ZEROCOPY_RECEIVE: i32 = 35;
    pub const TCP_INQ: i32 = 36;
    pub const TCP_TX_DELAY: i32 = 37;
    pub const TCP_AO_ADD_KEY: i32 = 38;
    pub const TCP_AO_DEL_KEY: i32 = 39;
    pub const TCP_AO_INFO: i32 = 40;
    pub const TCP_AO_GET_KEYS: i32 = 41;
    pub const TCP_AO_REPAIR: i32 = 42;
    pub const TCP_IS_MPTCP: i32 = 43;
    pub const TCP_RTO_MAX_MS: i32 = 44;
    pub const TCP_RTO_MIN_US: i32 = 45;
    pub const TCP_DELACK_MAX_US: i32 = 46;
    pub const IPV6_UNICAST_HOPS: i32 = 16;
    pub const IPV6_MTU_DISCOVER: i32 = 23;
    pub const IPV6_MTU: i32 = 24;
    pub const IPV6_RECVERR: i32 = 25;
    pub const IPV6_V6ONLY: i32 = 26;
    pub const IPV6_DONTFRAG: i32 = 62;
    pub const IPV6_TCLASS: i32 = 67;
    pub const IPV6_AUTOFLOWLABEL: i32 = 70;
    pub const IPV6_MINHOPCOUNT: i32 = 73;
}

/// The int an option value starts with (`copy_from_sockptr` of an int): EINVAL when shorter.
pub fn optval_int(v: &[u8]) -> Result<i32, crate::errno::Errno> {
    if v.len() < 4 {
        return Err(crate::errno::Errno::EINVAL);
    }
    Ok(i32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
}

/// `v` if it lies in `lo..=hi`, else EINVAL (the range checks of `do_tcp_setsockopt`).
pub fn in_range(v: i32, lo: i32, hi: i32) -> Result<i32, crate::errno::Errno> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(crate::errno::Errno::EINVAL)
    }
}
