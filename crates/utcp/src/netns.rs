//! A network namespace's worth of shared state: sysctls, MIB counters, the ISN secret and the
//! routes (local addresses and MTU). Shared by every socket of one [`crate::Stack`].

use crate::mib::Mib;
use crate::sysctl::Sysctls;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The TCP memory accounting of `tcp_prot` (net/ipv4/tcp.c: `tcp_memory_allocated`,
/// `tcp_memory_pressure`, `tcp_sockets_allocated`), limited by `net.ipv4.tcp_mem`. Every socket
/// of the stack holds a reference, so that freeing one returns its pages (and the account
/// reads the limits and bumps the counters without the namespace at hand).
///
/// DEVIATION(linux): per stack, like its `net.ipv4.tcp_mem`: Linux has one global account and
/// one global `tcp_mem` (shown read-only outside the initial namespace). The count is exact:
/// Linux adds pages to the global counter in per-CPU batches of up to `net.core.mem_pcpu_rsv`
/// (256) pages, so its counter lags by up to that much per CPU.
pub struct ProtoMem {
    /// `tcp_memory_allocated`: pages charged by the stack's TCP sockets.
    pub(crate) memory_allocated: AtomicI64,
    /// `tcp_memory_pressure`: 0, or one plus the millisecond (on the stack's clock) the pressure
    /// state was entered (Linux stores the jiffy, never 0).
    pub(crate) memory_pressure: AtomicU64,
    /// `tcp_sockets_allocated`: full TCP sockets alive.
    pub(crate) sockets_allocated: AtomicI64,
    /// The latest millisecond an allocation saw, for TCPMemoryPressuresChrono when a page
    /// release (which runs without a clock) ends the pressure state.
    pub(crate) clock_ms: AtomicU64,
    /// The stack's sysctls (`tcp_mem`, `tcp_rmem[0]`, `tcp_wmem[0]`).
    pub(crate) sysctl: Arc<Sysctls>,
    /// The stack's counters (TCPMemoryPressures, TCPMemoryPressuresChrono).
    pub(crate) mib: Arc<Mib>,
    /// `tcp_orphan_count` and `tcp_orphan_cache` (`tcp/orphan.rs`).
    pub(crate) orphans: crate::sync::Mutex<Orphans>,
}

/// `tcp_orphan_count` (orphaned full sockets: closed by their user, not yet destroyed or
/// turned into timewait socks) and `tcp_orphan_cache`, the count `tcp_orphan_update()` reads
/// every 100 ms (`TCP_ORPHAN_TIMER_PERIOD`), which `tcp_too_many_orphans()` compares.
///
/// DEVIATION(linux): per stack, like `tcp_mem`: Linux keeps one count (per-CPU counters) and
/// one `net.ipv4.tcp_max_orphans` for the host.
#[derive(Debug, Default)]
pub(crate) struct Orphans {
    /// `tcp_orphan_count_sum()`.
    pub(crate) count: i64,
    /// `tcp_orphan_cache`: `count` at the last 100 ms tick of the stack's clock.
    pub(crate) cache: i64,
    /// The tick (milliseconds / 100) `cache` was taken at.
    pub(crate) tick: u64,
}

impl core::fmt::Debug for ProtoMem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ProtoMem")
            .field("memory_allocated", &self.memory_allocated.load(Ordering::Relaxed))
            .field("memory_pressure", &self.memory_pressure.load(Ordering::Relaxed))
            .field("sockets_allocated", &self.sockets_allocated.load(Ordering::Relaxed))
            .finish()
    }
}

/// Namespace-wide state.
pub struct Netns {
    /// `net.*` sysctls.
    pub sysctl: Arc<Sysctls>,
    /// SNMP/MIB counters.
    pub mib: Arc<Mib>,
    /// The interface MTU.
    pub(crate) mtu: AtomicU32,
    /// The interface's `gso_max_size` (bytes): the largest TCP super-segment it takes, cut
    /// into MSS-sized packets on its wire (TSO, or GSO before it); 0 = no TSO/GSO
    /// ([`crate::netdev::NetDevice::gso_max_size`]).
    pub(crate) gso_max_size: AtomicU32,
    /// Some socket of this namespace has set TCP_SAVE_SYN: only then does input keep a SYN's
    /// headers (`TcpIn::syn_hdr`), so a SYN costs no allocation otherwise (Linux copies them
    /// from the skb in tcp_conn_request(); utcp's frame is gone by then). Never cleared.
    pub(crate) save_syn_used: std::sync::atomic::AtomicBool,
    /// Timewait socks alive in the namespace (`tcp_death_row.tw_refcount` less its base
    /// reference), bounded by `net.ipv4.tcp_max_tw_buckets`.
    pub(crate) tw_count: AtomicU32,
    /// The softnet counters of this stack's receive path.
    pub softnet: crate::netdev::SoftnetStat,
    /// The second of the last challenge ACK budget, plus one (0: none yet)
    /// (`net->ipv4.tcp_challenge_timestamp`).
    pub(crate) challenge_timestamp: AtomicU64,
    /// Challenge ACKs left in this second (`net->ipv4.tcp_challenge_count`).
    pub(crate) challenge_count: AtomicU32,
    /// The draws of [`Netns::get_random_u32_below`].
    pub(crate) rand_ctr: AtomicU64,
    /// Local address of the (single) interface.
    pub(crate) addr: crate::sync::RwLock<Ipv4Addr>,
    /// The interface's IPv6 address and the length of its on-link prefix, if it has one
    /// (`inet6_ifaddr`); none: IPv6 input is discarded as on a device with `disable_ipv6`.
    pub addr6: crate::sync::RwLock<Option<(Ipv6Addr, u8)>>,
    /// Secret for ISN and timestamp-offset generation (`net_secret`).
    pub(crate) secret: u64,
    /// IP ID counter.
    pub(crate) ip_id: AtomicU32,
    /// Use deterministic ISNs (ISN = 0 + offset), for scripts.
    pub fixed_isn: crate::sync::Mutex<Option<u32>>,
    /// `net->net_cookie` (SO_NETNS_COOKIE): distinct for every namespace of the process.
    pub(crate) cookie: u64,
    /// The name of the interface ([`DEV_IFINDEX`]), for SO_BINDTODEVICE.
    pub(crate) ifname: crate::sync::RwLock<String>,
    /// TCP memory accounting against `net.ipv4.tcp_mem`.
    pub tcp_mem: Arc<ProtoMem>,
    /// `dev->flags & IFF_LOOPBACK`: the device is a loopback one (an in-process loopback),
    /// so `::1` may arrive on it (`ip6_rcv_core()` drops it from any other device).
    pub iff_loopback: std::sync::atomic::AtomicBool,
}

/// `LOOPBACK_IFINDEX`: `lo`, which every namespace has.
pub(crate) const LOOPBACK_IFINDEX: i32 = 1;
/// The index of the namespace's one interface (the stack's device).
pub(crate) const DEV_IFINDEX: i32 = 2;

impl Netns {
    /// A namespace with one interface at `addr` with `mtu`.
    pub fn new(addr: Ipv4Addr, mtu: u32, secret: u64) -> Netns {
        let sysctl = Arc::new(Sysctls::default());
        let mib = Arc::new(Mib::default());
        let tcp_mem = Arc::new(ProtoMem {
            memory_allocated: AtomicI64::new(0),
            memory_pressure: AtomicU64::new(0),
            sockets_allocated: AtomicI64::new(0),
            clock_ms: AtomicU64::new(0),
            sysctl: sysctl.clone(),
            mib: mib.clone(),
            orphans: crate::sync::Mutex::new(Orphans::default()),
        });
        Netns {
            sysctl,
            mib,
            mtu: AtomicU32::new(mtu),
            gso_max_size: AtomicU32::new(0),
            save_syn_used: std::sync::atomic::AtomicBool::new(false),
            tw_count: AtomicU32::new(0),
            softnet: crate::netdev::SoftnetStat::default(),
            challenge_timestamp: AtomicU64::new(0),
            challenge_count: AtomicU32::new(0),
            rand_ctr: AtomicU64::new(0),
            addr: crate::sync::RwLock::new(addr),
            addr6: crate::sync::RwLock::new(None),
            secret,
            ip_id: AtomicU32::new(0),
            fixed_isn: crate::sync::Mutex::new(None),
            ifname: crate::sync::RwLock::new("eth0".to_string()),
            tcp_mem,
            iff_loopback: std::sync::atomic::AtomicBool::new(false),
            cookie: {
                static NEXT: AtomicU64 = AtomicU64::new(1);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
        }
    }

    /// The MTU of the route to `daddr`: the device's, at most `IP_MAX_MTU` (65535) as
    /// `ipv4_mtu()` bounds it (a 64 KiB loopback reads 65535).
    pub(crate) fn mtu(&self) -> u32 {
        self.mtu.load(Ordering::Relaxed).min(0xffff)
    }

    /// The interface's `gso_max_size`: 0 when it takes no super-segments (no TSO), and TCP's
    /// packets are cut and checksummed in software.
    pub(crate) fn dev_gso_max_size(&self) -> u32 {
        self.gso_max_size.load(Ordering::Relaxed)
    }

    /// The local address.
    pub(crate) fn local_addr(&self) -> Ipv4Addr {
        *self.addr.read()
    }

    /// The local IPv6 address, if the interface has one.
    pub fn local_addr6(&self) -> Option<Ipv6Addr> {
        self.addr6.read().map(|(a, _)| a)
    }

    /// `ip -6 addr add addr/prefix_len dev eth0` (replacing any address it had).
    pub fn set_addr6(&self, addr: Ipv6Addr, prefix_len: u8) {
        *self.addr6.write() = Some((addr, prefix_len.min(128)));
    }

    /// `dev_get_by_name()`: the index of the device called `name`.
    pub(crate) fn dev_get_by_name(&self, name: &[u8]) -> Option<i32> {
        if name == b"lo" {
            Some(LOOPBACK_IFINDEX)
        } else if name == self.ifname.read().as_bytes() {
            Some(DEV_IFINDEX)
        } else {
            None
        }
    }

    /// `netdev_get_name()`: the name of device `ifindex`.
    pub(crate) fn netdev_get_name(&self, ifindex: i32) -> Option<String> {
        match ifindex {
            LOOPBACK_IFINDEX => Some("lo".to_string()),
            DEV_IFINDEX => Some(self.ifname.read().clone()),
            _ => None,
        }
    }

    /// The 128-bit SipHash keys derived from the namespace secret: (`net_secret`,
    /// `ts_secret`), as Linux draws them at boot.
    fn keys(&self) -> [(u64, u64); 5] {
        let mut x = self.secret;
        let mut next = || {
            // splitmix64: expands the seed into independent key words.
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        [(next(), next()), (next(), next()), (next(), next()), (next(), next()), (next(), next())]
    }

    /// The key of the flow dissector's hash (`hashrnd`, drawn at boot), for
    /// `ip6_make_flowlabel()`'s automatic flow labels.
    pub(crate) fn flow_hash_key(&self) -> (u64, u64) {
        self.keys()[4]
    }

    /// `get_random_u32()`: a draw over all of u32.
    // DEVIATION(linux): SipHash of a per-stack counter under the namespace secret (as
    // `get_random_u32_below`), not the kernel's RNG.
    pub(crate) fn get_random_u32(&self) -> u32 {
        let n = self.rand_ctr.fetch_add(1, Ordering::Relaxed);
        let (k0, k1) = self.keys()[1];
        crate::siphash::siphash24(k0 ^ 0x7a4d, k1, &n.to_le_bytes()) as u32
    }

    /// `net_tx_rndhash()`: a random flow hash for `sk_txhash` / `tcp_rsk(req)->txhash`,
    /// never 0 (0 means "no hash").
    pub(crate) fn net_tx_rndhash(&self) -> u32 {
        loop {
            let v = self.get_random_u32();
            if v != 0 {
                return v;
            }
        }
    }

    /// `get_random_u32_below(ceil)` (0 when `ceil` is 0).
    // DEVIATION(linux): SipHash of a per-stack counter under the namespace secret, not the
    // kernel's RNG: as unpredictable without the secret.
    pub(crate) fn get_random_u32_below(&self, ceil: u32) -> u32 {
        let r = self.get_random_u32();
        if ceil == 0 {
            0
        } else {
            ((r as u64 * ceil as u64) >> 32) as u32
        }
    }

    /// `tcp_send_challenge_ack()`'s namespace-wide budget: whether one more challenge ACK
    /// may go out at `now` under `tcp_challenge_ack_limit` = `ack_limit`. Each second starts
    /// with a random count in [half, ack_limit + half - 1], half = (ack_limit + 1) / 2 (u32
    /// arithmetic, as Linux computes it), so the limit cannot be read off the wire; the draw
    /// is keyed by the namespace secret.
    // DEVIATION(linux): the per-second count is SipHash of the second under the namespace
    // secret, not get_random_u32_inclusive(): as unpredictable without the secret, but the
    // same for one stack and second.
    pub(crate) fn challenge_ack_budget(&self, now: crate::time::Instant, ack_limit: u32) -> bool {
        let sec = now.nanos() / 1_000_000_000 + 1;
        if self.challenge_timestamp.load(Ordering::Relaxed) != sec {
            let half = ack_limit.wrapping_add(1) >> 1;
            // The range holds ack_limit values (0: all of u32, as get_random_u32_below(0)).
            let span = ack_limit;
            let (k0, k1) = self.keys()[1];
            let r = crate::siphash::siphash24(k0 ^ 0xc4a1, k1, &sec.to_le_bytes()) as u32;
            // get_random_u32_inclusive(half, ack_limit + half - 1): span values from half.
            let count = if span == 0 { r } else { half.wrapping_add(r % span) };
            self.challenge_timestamp.store(sec, Ordering::Relaxed);
            self.challenge_count.store(count, Ordering::Relaxed);
        }
        let count = self.challenge_count.load(Ordering::Relaxed);
        if count == 0 {
            return false;
        }
        self.challenge_count.store(count - 1, Ordering::Relaxed);
        true
    }

    /// The two SipHash keys of SYN cookies (`syncookie_secret`).
    // DEVIATION(linux): Linux draws one syncookie_secret for the whole host; each utcp stack
    // is a host of its own and derives it from its namespace secret.
    pub(crate) fn syncookie_keys(&self) -> [(u64, u64); 2] {
        let k = self.keys();
        [k[2], k[3]]
    }

    /// `secure_tcp_seq()` (RFC 6528) / `secure_tcpv6_seq()`: SipHash-2-4 of the 4-tuple under
    /// the secret key, plus the clock in 64 ns units (`seq_scale`). Both families share the key
    /// (Linux's `net_secret`); an IPv6 tuple hashes its 16-byte addresses.
    pub(crate) fn secure_seq(&self, saddr: IpAddr, daddr: IpAddr, sport: u16, dport: u16, now_ns: u64) -> u32 {
        if let Some(isn) = *self.fixed_isn.lock() {
            return isn;
        }
        let (k0, k1) = self.keys()[0];
        let mut m = AddrMsg::default();
        m.addr(saddr).addr(daddr).put(&(((sport as u32) << 16) | dport as u32).to_le_bytes());
        let h = crate::siphash::siphash24(k0, k1, m.bytes());
        (h as u32).wrapping_add((now_ns >> 6) as u32)
    }

    /// `secure_tcp_ts_off()` / `secure_tcpv6_ts_off()`: per-connection timestamp offset.
    pub(crate) fn ts_offset(&self, saddr: IpAddr, daddr: IpAddr) -> u32 {
        if self.fixed_isn.lock().is_some() {
            return 0;
        }
        let (k0, k1) = self.keys()[1];
        let mut m = AddrMsg::default();
        m.addr(saddr).addr(daddr);
        crate::siphash::siphash24(k0, k1, m.bytes()) as u32
    }

    /// The starting offset of the ephemeral port search for a destination
    /// (`secure_ipv4_port_ephemeral` / `secure_ipv6_port_ephemeral`).
    pub(crate) fn port_offset(&self, saddr: IpAddr, daddr: IpAddr, dport: u16) -> u32 {
        let (k0, k1) = self.keys()[0];
        let mut m = AddrMsg::default();
        m.addr(saddr).addr(daddr).put(&(dport as u32).to_le_bytes());
        crate::siphash::siphash24(k0, k1, m.bytes()) as u32
    }
}

/// The message a keyed hash of addresses reads: an IPv4 address as its 4 bytes (what the
/// IPv4 functions always hashed), an IPv6 one as its 16.
pub(crate) struct AddrMsg {
    buf: [u8; 48],
    len: usize,
}

impl Default for AddrMsg {
    fn default() -> AddrMsg {
        AddrMsg { buf: [0; 48], len: 0 }
    }
}

impl AddrMsg {
    /// Appends an address.
    pub(crate) fn addr(&mut self, a: IpAddr) -> &mut Self {
        match a {
            IpAddr::V4(a) => self.put(&a.octets()),
            IpAddr::V6(a) => self.put(&a.octets()),
        }
    }
    /// Appends bytes.
    pub(crate) fn put(&mut self, b: &[u8]) -> &mut Self {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
        self
    }
    /// The message so far.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
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
        let (a, b) = (IpAddr::V4(a), IpAddr::V4(b));
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
        // secure_tcpv6_seq(): the same PRF over the 16-byte addresses.
        let (a6, b6): (IpAddr, IpAddr) = ("fd00::a".parse().unwrap(), "fd00::b".parse().unwrap());
        let mut m6 = [0u8; 36];
        m6[..16].copy_from_slice(&"fd00::a".parse::<Ipv6Addr>().unwrap().octets());
        m6[16..32].copy_from_slice(&"fd00::b".parse::<Ipv6Addr>().unwrap().octets());
        m6[32..].copy_from_slice(&((1u32 << 16) | 2).to_le_bytes());
        assert_eq!(n1.secure_seq(a6, b6, 1, 2, 0), crate::siphash::siphash24(k0, k1, &m6) as u32);
        assert_ne!(n1.port_offset(a6, b6, 2), n1.port_offset(b6, a6, 2));
        *n1.fixed_isn.lock() = Some(5);
        assert_eq!(n1.secure_seq(a, b, 1, 2, 99), 5);
    }

    #[test]
    fn challenge_ack_budget_is_a_random_count_per_second() {
        let n = Netns::new(Ipv4Addr::new(192, 0, 2, 1), 1500, 9);
        let per_second = |limit: u32, sec: u64| {
            let t = crate::time::Instant::from_millis(sec * 1000 + 3);
            (0..100).take_while(|_| n.challenge_ack_budget(t, limit)).count()
        };
        // (limit + 1) / 2 ..= limit + (limit + 1) / 2 - 1: exactly 1 for a limit of 1.
        assert!((1..20).all(|s| per_second(1, s) == 1));
        let counts: Vec<usize> = (20..60).map(|s| per_second(10, s)).collect();
        assert!(counts.iter().all(|c| (5..=14).contains(c)), "{counts:?}");
        assert!(counts.iter().any(|&c| c != counts[0]), "random: {counts:?}");
        // 0 (and values past INT_MAX) draw from all of u32: no practical limit.
        assert_eq!(per_second(0, 70), 100);
    }
}
