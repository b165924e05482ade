//! A loopback `connect()` that only a kernel listener can answer (a dual-stack server on
//! `[::]`, or another process's server on 127.0.0.1): the socket is handed over to the kernel.
//!
//! The in-process stack serves 127.0.0.0/8 and `::1` for this process alone. A program whose
//! server is the kernel's (another process's, or one made before the library took sockets)
//! would be refused by utcp. So when no utcp listener has the port and the kernel lists one
//! that takes the address (`/proc/net/tcp` and `/proc/net/tcp6`, state LISTEN: for an IPv4
//! destination (or its IPv4-mapped form) on the address, on INADDR_ANY, on `::` or on the
//! v4-mapped address; for `::1` on `::1` or `::`), [`crate::ffi`] replaces the placeholder
//! with a kernel socket of the same family (same fd number, close-on-exec and O_NONBLOCK
//! kept, the options set so far copied, IPV6_V6ONLY and the bound address kept) and connects
//! it there. Without a kernel listener the connect stays utcp's (refused by
//! utcp's RST, as Linux's `lo` would refuse it).
// DEVIATION(linux): a handed-over socket's epoll registrations made before connect() are
// lost (asyncio and most event loops register after connect), and so is a `dup` of it made
// before connect (it stays a utcp socket that never connects). Kernel clients still cannot
// reach this process's utcp listeners.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The LISTEN sockets of `/proc/net/tcp` (`v6`: `/proc/net/tcp6`) text that take a
/// connection to `dst:port` (an IPv4 destination, or an IPv6 one).
// DEVIATION(linux): a `[::]` listener with IPV6_V6ONLY set looks the same as one without in
// /proc/net/tcp6, so an IPv4 client is handed over to it (and refused by the kernel).
pub fn kernel_listens(table: &str, v6: bool, dst: IpAddr, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let mut f = line.split_whitespace();
        let (Some(_sl), Some(local), Some(_rem), Some(st)) = (f.next(), f.next(), f.next(), f.next()) else {
            return false;
        };
        if st != "0A" {
            return false;
        }
        let Some((addr, p)) = local.split_once(':') else { return false };
        if u16::from_str_radix(p, 16).ok() != Some(port) {
            return false;
        }
        if v6 {
            // Four 32-bit words, each printed as the host-order value of its network bytes.
            let words: Vec<u32> = (0..4)
                .filter_map(|i| addr.get(i * 8..i * 8 + 8))
                .filter_map(|w| u32::from_str_radix(w, 16).ok())
                .collect();
            if words.len() != 4 {
                return false;
            }
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
            let Ok(b) = <[u8; 16]>::try_from(bytes) else { return false };
            let a = Ipv6Addr::from(b);
            match dst {
                IpAddr::V4(d) => a.is_unspecified() || a == d.to_ipv6_mapped(),
                IpAddr::V6(d) => a.is_unspecified() || a == d,
            }
        } else {
            let IpAddr::V4(dst) = dst else { return false };
            let Ok(w) = u32::from_str_radix(addr, 16) else { return false };
            let a = Ipv4Addr::from(w.to_ne_bytes());
            a.is_unspecified() || a == dst
        }
    })
}

/// Whether a kernel listener in this network namespace takes a connection to `dst:port`
/// (an unspecified destination is the loopback address of its family, as `connect()` takes
/// it; an IPv4-mapped one is its IPv4 address).
pub fn kernel_listener(dst: IpAddr, port: u16) -> bool {
    let dst = match dst {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        a => a,
    };
    [("/proc/net/tcp", false), ("/proc/net/tcp6", true)]
        .iter()
        .any(|(p, v6)| std::fs::read_to_string(p).is_ok_and(|t| kernel_listens(&t, *v6, dst, port)))
}

/// The ports utcp sockets listen on, by kernel fd (a port may have several listeners:
/// SO_REUSEPORT, or dups of one listener).
#[derive(Default)]
pub struct Listeners(parking_lot::Mutex<HashMap<i32, u16>>);

impl Listeners {
    /// Kernel fd `k` listens on `port`.
    pub fn add(&self, k: i32, port: u16) {
        self.0.lock().insert(k, port);
    }
    /// Kernel fd `k` is gone.
    pub fn remove(&self, k: i32) {
        self.0.lock().remove(&k);
    }
    /// Whether some utcp socket listens on `port`.
    pub fn has(&self, port: u16) -> bool {
        self.0.lock().values().any(|&p| p == port)
    }
}

/// The options copied onto the kernel socket, (level, name): integer-valued ones; the
/// buffer sizes, SO_LINGER and the timeouts are handled apart.
pub const INT_OPTIONS: &[(i32, i32)] = &[
    (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    (libc::SOL_SOCKET, libc::SO_REUSEPORT),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::SOL_SOCKET, libc::SO_OOBINLINE),
    (libc::SOL_SOCKET, libc::SO_PRIORITY),
    (libc::SOL_SOCKET, libc::SO_RCVLOWAT),
    (libc::SOL_SOCKET, libc::SO_MARK),
    (libc::IPPROTO_IP, libc::IP_TOS),
    (libc::IPPROTO_IP, libc::IP_TTL),
    (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
    (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
    (libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
    (libc::IPPROTO_TCP, libc::TCP_NODELAY),
    (libc::IPPROTO_TCP, libc::TCP_CORK),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
    (libc::IPPROTO_TCP, libc::TCP_MAXSEG),
    (libc::IPPROTO_TCP, libc::TCP_WINDOW_CLAMP),
    (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT),
];

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0100007F:0016 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0 100 0 0 10 0
   2: 00000000000000000000000001000000:1F93 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6 1 0 100 0 0 10 0
";

    #[test]
    fn listeners_from_proc_net_tcp() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let lo2 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(kernel_listens(TCP, false, lo, 8080));
        assert!(!kernel_listens(TCP, false, lo2, 8080), "bound to 127.0.0.1 only");
        assert!(kernel_listens(TCP, false, lo2, 80), "INADDR_ANY");
        assert!(!kernel_listens(TCP, false, lo, 22), "established, not listening");
        assert!(!kernel_listens(TCP, false, lo, 9), "no such port");
        assert!(!kernel_listens(TCP, false, lo6, 80), "an IPv4 listener takes no IPv6");
        assert!(kernel_listens(TCP6, true, lo, 8081), "[::]");
        assert!(kernel_listens(TCP6, true, lo6, 8081), "[::] takes ::1");
        assert!(kernel_listens(TCP6, true, lo, 8082), "[::ffff:127.0.0.1]");
        assert!(!kernel_listens(TCP6, true, lo6, 8082), "a mapped listener takes no IPv6");
        assert!(!kernel_listens(TCP6, true, lo2, 8082));
        assert!(!kernel_listens(TCP6, true, lo, 8083), "[::1] takes no IPv4");
        assert!(kernel_listens(TCP6, true, lo6, 8083), "[::1]");
        assert!(!kernel_listens("", false, lo, 80));
        assert!(!kernel_listens("h\n garbage\n", true, lo, 80));
    }

    #[test]
    fn utcp_listener_ports_by_fd() {
        let l = Listeners::default();
        l.add(5, 80);
        l.add(6, 80);
        assert!(l.has(80));
        l.remove(5);
        assert!(l.has(80));
        l.remove(6);
        assert!(!l.has(80));
    }
}
