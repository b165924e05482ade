//! A network namespace's worth of shared state: sysctls, MIB counters, the ISN secret and the
//! routes (local addresses and MTU). Shared by every socket of one [`crate::Stack`].

use crate::mib::Mib;
use crate::sysctl::Sysctls;
use core::sync::atomic::{AtomicU32, Ordering};
use std::net::Ipv4Addr;

/// Namespace-wide state.
pub struct Netns {
    /// `net.*` sysctls.
    pub sysctl: Sysctls,
    /// SNMP/MIB counters.
    pub mib: Mib,
    /// The interface MTU.
    pub mtu: AtomicU32,
    /// Local address of the (single) interface.
    pub addr: parking_lot::RwLock<Ipv4Addr>,
    /// Secret for ISN and timestamp-offset generation (`net_secret`).
    pub secret: u64,
    /// IP ID counter.
    pub ip_id: AtomicU32,
    /// Use deterministic ISNs (ISN = 0 + offset), for scripts.
    pub fixed_isn: parking_lot::Mutex<Option<u32>>,
}

impl Netns {
    /// A namespace with one interface at `addr` with `mtu`.
    pub fn new(addr: Ipv4Addr, mtu: u32, secret: u64) -> Netns {
        Netns {
            sysctl: Sysctls::default(),
            mib: Mib::default(),
            mtu: AtomicU32::new(mtu),
            addr: parking_lot::RwLock::new(addr),
            secret,
            ip_id: AtomicU32::new(0),
            fixed_isn: parking_lot::Mutex::new(None),
        }
    }

    /// The MTU of the route to `daddr`.
    pub fn mtu(&self) -> u32 {
        self.mtu.load(Ordering::Relaxed)
    }

    /// The local address.
    pub fn local_addr(&self) -> Ipv4Addr {
        *self.addr.read()
    }

    /// `secure_tcp_seq()`: keyed hash of the 4-tuple plus a 4 µs clock (RFC 6528).
    pub fn secure_seq(&self, saddr: Ipv4Addr, daddr: Ipv4Addr, sport: u16, dport: u16, now_ns: u64) -> u32 {
        if let Some(isn) = *self.fixed_isn.lock() {
            return isn;
        }
        let h = self.hash4(saddr, daddr, sport, dport);
        (h as u32).wrapping_add((now_ns >> 6) as u32)
    }

    /// `secure_tcp_ts_off()`: per-connection timestamp offset.
    pub fn ts_offset(&self, saddr: Ipv4Addr, daddr: Ipv4Addr) -> u32 {
        if self.fixed_isn.lock().is_some() {
            return 0;
        }
        (self.hash4(saddr, daddr, 0, 0) >> 32) as u32
    }

    /// The starting offset of the ephemeral port search for a destination
    /// (`secure_ipv4_port_ephemeral`).
    pub fn port_offset(&self, saddr: Ipv4Addr, daddr: Ipv4Addr, dport: u16) -> u32 {
        self.hash4(saddr, daddr, 0, dport) as u32
    }

    fn hash4(&self, saddr: Ipv4Addr, daddr: Ipv4Addr, sport: u16, dport: u16) -> u64 {
        // SipHash-like mixing (splitmix64 rounds); keyed with the namespace secret.
        let mut x = self.secret
            ^ (u32::from(saddr) as u64) << 32
            ^ u32::from(daddr) as u64
            ^ ((sport as u64) << 48)
            ^ ((dport as u64) << 16);
        for _ in 0..3 {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x = z ^ (z >> 31);
        }
        x
    }
}
