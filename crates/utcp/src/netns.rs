//! A network namespace's worth of shared state: sysctls, MIB counters, the ISN secret and the
//! routes (local addresses and MTU). Shared by every socket of one [`crate::Stack`].

use crate::mib::Mib;
use crate::sysctl::Sysctls;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::net::Ipv4Addr;

/// Namespace-wide state.
pub struct Netns {
    /// `net.*` sysctls.
    pub sysctl: Sysctls,
    /// SNMP/MIB counters.
    pub mib: Mib,
    /// The interface MTU.
    pub mtu: AtomicU32,
    /// The interface's `gso_max_size` (bytes): the largest TCP super-segment it takes, cut
    /// into MSS-sized packets on its wire (TSO, or GSO before it); 0 = no TSO/GSO
    /// ([`crate::netdev::NetDevice::gso_max_size`]).
    pub gso_max_size: AtomicU32,
    /// Some socket of this namespace has set TCP_SAVE_SYN: only then does input keep a SYN's
    /// headers (`TcpIn::syn_hdr`), so a SYN costs no allocation otherwise (Linux copies them
    /// from the skb in tcp_conn_request(); utcp's frame is gone by then). Never cleared.
    pub save_syn_used: std::sync::atomic::AtomicBool,
    /// Local address of the (single) interface.
    pub addr: parking_lot::RwLock<Ipv4Addr>,
    /// Secret for ISN and timestamp-offset generation (`net_secret`).
    pub secret: u64,
    /// IP ID counter.
    pub ip_id: AtomicU32,
    /// Use deterministic ISNs (ISN = 0 + offset), for scripts.
    pub fixed_isn: parking_lot::Mutex<Option<u32>>,
    /// `net->net_cookie` (SO_NETNS_COOKIE): distinct for every namespace of the process.
    pub cookie: u64,
    /// The name of the interface ([`DEV_IFINDEX`]), for SO_BINDTODEVICE.
    pub ifname: parking_lot::RwLock<String>,
}

/// `LOOPBACK_IFINDEX`: `lo`, which every namespace has.
pub const LOOPBACK_IFINDEX: i32 = 1;
/// The index of the namespace's one interface (the stack's device).
pub const DEV_IFINDEX: i32 = 2;

impl Netns {
    /// A namespace with one interface at `addr` with `mtu`.
    pub fn new(addr: Ipv4Addr, mtu: u32, secret: u64) -> Netns {
        Netns {
            sysctl: Sysctls::default(),
            mib: Mib::default(),
            mtu: AtomicU32::new(mtu),
            gso_max_size: AtomicU32::new(0),
            save_syn_used: std::sync::atomic::AtomicBool::new(false),
            addr: parking_lot::RwLock::new(addr),
            secret,
            ip_id: AtomicU32::new(0),
            fixed_isn: parking_lot::Mutex::new(None),
            ifname: parking_lot::RwLock::new("eth0".to_string()),
            cookie: {
                static NEXT: AtomicU64 = AtomicU64::new(1);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
        }
    }

    /// The MTU of the route to `daddr`: the device's, at most `IP_MAX_MTU` (65535) as
    /// `ipv4_mtu()` bounds it (a 64 KiB loopback reads 65535).
    pub fn mtu(&self) -> u32 {
        self.mtu.load(Ordering::Relaxed).min(0xffff)
    }

    /// The local address.
    pub fn local_addr(&self) -> Ipv4Addr {
        *self.addr.read()
    }

    /// `dev_get_by_name()`: the index of the device called `name`.
    pub fn dev_get_by_name(&self, name: &[u8]) -> Option<i32> {
        if name == b"lo" {
            Some(LOOPBACK_IFINDEX)
        } else if name == self.ifname.read().as_bytes() {
            Some(DEV_IFINDEX)
        } else {
            None
        }
    }

    /// `netdev_get_name()`: the name of device `ifindex`.
    pub fn netdev_get_name(&self, ifindex: i32) -> Option<String> {
        match ifindex {
            LOOPBACK_IFINDEX => Some("lo".to_string()),
            DEV_IFINDEX => Some(self.ifname.read().clone()),
            _ => None,
        }
    }

    /// The 128-bit SipHash keys derived from the namespace secret: (`net_secret`,
    /// `ts_secret`), as Linux draws them at boot.
    fn keys(&self) -> [(u64, u64); 2] {
        let mut x = self.secret;
        let mut next = || {
            // splitmix64: expands the seed into independent key words.
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        [(next(), next()), (next(), next())]
    }

    /// `secure_tcp_seq()` (RFC 6528): SipHash-2-4 of the 4-tuple under the secret key, plus
    /// the clock in 64 ns units (`seq_scale`).
    pub fn secure_seq(&self, saddr: Ipv4Addr, daddr: Ipv4Addr, sport: u16, dport: u16, now_ns: u64) -> u32 {
        if let Some(isn) = *self.fixed_isn.lock() {
            return isn;
        }
        let (k0, k1) = self.keys()[0];
        let mut m = [0u8; 12];
        m[..4].copy_from_slice(&saddr.octets());
        m[4..8].copy_from_slice(&daddr.octets());
        m[8..].copy_from_slice(&(((sport as u32) << 16) | dport as u32).to_le_bytes());
        let h = crate::siphash::siphash24(k0, k1, &m);
        (h as u32).wrapping_add((now_ns >> 6) as u32)
    }

    /// `secure_tcp_ts_off()`: per-connection timestamp offset.
    pub fn ts_offset(&self, saddr: Ipv4Addr, daddr: Ipv4Addr) -> u32 {
        if self.fixed_isn.lock().is_some() {
            return 0;
        }
        let (k0, k1) = self.keys()[1];
        let mut m = [0u8; 8];
        m[..4].copy_from_slice(&saddr.octets());
        m[4..].copy_from_slice(&daddr.octets());
        crate::siphash::siphash24(k0, k1, &m) as u32
    }

    /// The starting offset of the ephemeral port search for a destination
    /// (`secure_ipv4_port_ephemeral`).
    pub fn port_offset(&self, saddr: Ipv4Addr, daddr: Ipv4Addr, dport: u16) -> u32 {
        let (k0, k1) = self.keys()[0];
        let mut m = [0u8; 12];
        m[..4].copy_from_slice(&saddr.octets());
        m[4..8].copy_from_slice(&daddr.octets());
        m[8..].copy_from_slice(&(dport as u32).to_le_bytes());
        crate::siphash::siphash24(k0, k1, &m) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isn_is_a_keyed_prf_of_the_tuple() {
        let a = Ipv4Addr::new(192, 0, 2, 1);
        let b = Ipv4Addr::new(192, 0, 2, 2);
        let n1 = Netns::new(a, 1500, 1);
        let n2 = Netns::new(a, 1500, 2);
        // Deterministic for one key, different under another key and for another tuple.
        assert_eq!(n1.secure_seq(a, b, 1, 2, 0), n1.secure_seq(a, b, 1, 2, 0));
        assert_ne!(n1.secure_seq(a, b, 1, 2, 0), n2.secure_seq(a, b, 1, 2, 0));
        assert_ne!(n1.secure_seq(a, b, 1, 2, 0), n1.secure_seq(a, b, 1, 3, 0));
        assert_ne!(n1.secure_seq(a, b, 1, 2, 0), n1.secure_seq(a, b, 2, 2, 0));
        // The clock advances it by one per 64 ns.
        assert_eq!(n1.secure_seq(a, b, 1, 2, 640).wrapping_sub(n1.secure_seq(a, b, 1, 2, 0)), 10);
        // It is SipHash-2-4 of (saddr, daddr, sport << 16 | dport), as Linux computes it.
        let (k0, k1) = n1.keys()[0];
        let mut m = [192, 0, 2, 1, 192, 0, 2, 2, 0, 0, 0, 0];
        m[8..].copy_from_slice(&((1u32 << 16) | 2).to_le_bytes());
        assert_eq!(n1.secure_seq(a, b, 1, 2, 0), crate::siphash::siphash24(k0, k1, &m) as u32);
        // fixed_isn (for scripts) overrides it.
        *n1.fixed_isn.lock() = Some(5);
        assert_eq!(n1.secure_seq(a, b, 1, 2, 99), 5);
    }
}
