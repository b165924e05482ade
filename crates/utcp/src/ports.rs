//! The bind table (net/ipv4/inet_hashtables.c bind buckets, inet_connection_sock.c): which
//! socket holds which local port.
//!
//! A port is held in one of two ways, as Linux's `inet_bind_bucket` distinguishes them by
//! `fastreuse`:
//! - *bound*: by `bind()` (an explicit port or port 0), by `listen()`'s autobind, and by the
//!   children a listener accepts (`__inet_inherit_port`). A bound port is exclusive: another
//!   `bind()` to it fails with EADDRINUSE unless SO_REUSEADDR is set.
//! - *connected*: by `connect()`'s autobind (`__inet_hash_connect`, `fastreuse = -1`). Such a
//!   port is shared by every connection whose 4-tuple differs, so one local port serves
//!   connections to many destinations.
//!
//! Every holder is recorded by socket id, so releasing is idempotent: a socket that is
//! released twice (its death, then its close) gives its port back once.
//!
//! Each holder covers one or both families (`FAM_V4`, `FAM_V6`), as
//! `inet_rcv_saddr_equal()` / `ipv6_rcv_saddr_equal()` tell them apart: an AF_INET socket, or
//! an AF_INET6 one bound to an IPv4-mapped address, IPv4; an AF_INET6 socket bound to `::`,
//! both unless IPV6_V6ONLY; one bound to an IPv6 address (or V6ONLY), IPv6. Holders of
//! disjoint families never conflict; within a family the rules above apply.
//! DEVIATION(linux): addresses within a family are not compared (the stack has one address
//! per family; two IP_FREEBIND sockets on different foreign addresses conflict).

use crate::errno::Errno;
use std::collections::HashMap;

/// A holder covering IPv4.
pub(crate) const FAM_V4: u8 = 1;
/// A holder covering IPv6.
pub(crate) const FAM_V6: u8 = 2;

/// One family's holders of a port (`u32` counts, as Linux's `inet_bind2_bucket` refcounts:
/// a bucket entry of 28 B instead of 56, one per connect()ed port).
#[derive(Default)]
struct Holders {
    /// Holders that bound the port.
    bound: u32,
    /// Of those, holders without SO_REUSEPORT (`fastreuseport` is off unless this is 0).
    bound_exclusive: u32,
    /// Holders that connect() bound to it.
    connected: u32,
}

/// The holders of a port, per family (a dual-stack holder counts in both).
#[derive(Default)]
struct Bucket {
    fam: [Holders; 2],
}

impl Bucket {
    fn is_empty(&self) -> bool {
        self.fam.iter().all(|h| h.bound == 0 && h.connected == 0)
    }
}

/// The families of mask `fam` as indices into [`Bucket::fam`].
fn fams(fam: u8) -> impl Iterator<Item = usize> {
    (0..2).filter(move |i| fam & (1 << i) != 0)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Bound; with SO_REUSEPORT when true.
    Bound(bool),
    Connected,
}

/// The table.
#[derive(Default)]
pub(crate) struct PortTable {
    buckets: HashMap<u16, Bucket>,
    held: HashMap<u64, (u16, Kind, u8)>,
    next: u32,
}

impl PortTable {
    fn take(&mut self, id: u64, port: u16, kind: Kind, fam: u8) {
        self.put(id);
        let b = self.buckets.entry(port).or_default();
        for i in fams(fam) {
            let h = &mut b.fam[i];
            match kind {
                Kind::Bound(reuseport) => {
                    h.bound += 1;
                    h.bound_exclusive += !reuseport as u32;
                }
                Kind::Connected => h.connected += 1,
            }
        }
        self.held.insert(id, (port, kind, fam));
    }

    /// `inet_csk_get_port()`: binds socket `id` to `port`, or with `port == 0` to a free port
    /// of `range` (one no socket holds at all, as `inet_csk_find_open_port` picks it).
    /// EADDRINUSE when the port is held (and `reuse` is not set) or the range is exhausted.
    /// With `reuseport` (SO_REUSEPORT), a port every holder of which bound it with SO_REUSEPORT
    /// too is shared (`sk_reuseport_match`; all sockets here belong to one user).
    #[cfg(test)]
    pub(crate) fn bind(&mut self, id: u64, port: u16, reuse: bool, range: (u16, u16)) -> Result<u16, Errno> {
        self.bind_opts(id, port, reuse, false, range, FAM_V4)
    }

    /// [`PortTable::bind`] with SO_REUSEPORT, for a holder of families `fam`.
    pub(crate) fn bind_opts(
        &mut self,
        id: u64,
        port: u16,
        reuse: bool,
        reuseport: bool,
        range: (u16, u16),
        fam: u8,
    ) -> Result<u16, Errno> {
        if port == 0 {
            let (lo, hi) = (range.0 as u32, range.1 as u32);
            if hi < lo {
                return Err(Errno::EADDRINUSE);
            }
            // inet_csk_find_open_port() scans `remaining &= ~1` ports from `low`: an odd
            // range never offers its last port.
            let mut span = hi - lo + 1;
            if span > 1 {
                span &= !1;
            }
            for _ in 0..span {
                let n = self.next;
                self.next = self.next.wrapping_add(1);
                let cand = (lo + (n.wrapping_mul(2654435761) % span)) as u16;
                if !self.buckets.contains_key(&cand) {
                    self.take(id, cand, Kind::Bound(reuseport), fam);
                    return Ok(cand);
                }
            }
            return Err(Errno::EADDRINUSE);
        }
        let shared = |h: &Holders| reuseport && h.bound_exclusive == 0 && h.connected == 0;
        let held = |h: &Holders| h.bound > 0 || h.connected > 0;
        let conflict = |b: &Bucket| fams(fam).any(|i| held(&b.fam[i]) && !shared(&b.fam[i]));
        if self.buckets.get(&port).is_some_and(|b| !reuse && conflict(b)) {
            return Err(Errno::EADDRINUSE);
        }
        self.take(id, port, Kind::Bound(reuseport), fam);
        Ok(port)
    }

    /// `__inet_hash_connect()`: picks a port of `range` for a connecting socket `id`. A port
    /// that some socket bound is skipped; any other is taken when `tuple_free(port)` says the
    /// 4-tuple through it is unused (it is asked once per candidate, and the port is taken
    /// whenever it answers true, so it may hash the connection itself). EADDRNOTAVAIL when no port
    /// is left. `local`: the range is the socket's own (IP_LOCAL_PORT_RANGE), every port of
    /// which is tried; the sysctl's range loses its last port when its length is odd
    /// (`remaining &= ~1U`).
    /// `fam`: the connection's family ([`FAM_V4`] or [`FAM_V6`]); a port bound in the other
    /// family only is free for it.
    pub(crate) fn connect(
        &mut self,
        id: u64,
        range: (u16, u16),
        local: bool,
        offset: u32,
        fam: u8,
        mut tuple_free: impl FnMut(u16) -> bool,
    ) -> Result<u16, Errno> {
        let (lo, hi) = (range.0 as u32, range.1 as u32);
        if hi < lo {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let mut span = hi - lo + 1;
        if !local && span > 1 {
            span &= !1;
        }
        let start = offset.wrapping_add(self.next) % span;
        self.next = self.next.wrapping_add(1);
        for i in 0..span {
            let cand = (lo + (start + i) % span) as u16;
            if self.buckets.get(&cand).is_some_and(|b| fams(fam).any(|i| b.fam[i].bound > 0)) || !tuple_free(cand) {
                continue;
            }
            self.take(id, cand, Kind::Connected, fam);
            return Ok(cand);
        }
        Err(Errno::EADDRNOTAVAIL)
    }

    /// `__inet_inherit_port()`: an accepted child holds its listener's port.
    /// The child has its listener's SO_REUSEPORT (`sk_reuseport` is copied at clone).
    /// `fam`: the child's family on the wire.
    pub(crate) fn inherit(&mut self, id: u64, port: u16, reuseport: bool, fam: u8) {
        self.take(id, port, Kind::Bound(reuseport), fam);
    }

    /// `inet_put_port()`: socket `id` gives its port back (no-op when it holds none).
    pub(crate) fn put(&mut self, id: u64) {
        let Some((port, kind, fam)) = self.held.remove(&id) else { return };
        if let Some(b) = self.buckets.get_mut(&port) {
            for i in fams(fam) {
                let h = &mut b.fam[i];
                match kind {
                    Kind::Bound(reuseport) => {
                        h.bound -= 1;
                        h.bound_exclusive -= !reuseport as u32;
                    }
                    Kind::Connected => h.connected -= 1,
                }
            }
            if b.is_empty() {
                self.buckets.remove(&port);
                crate::skb_queue::shrink_emptied(&mut self.buckets);
            }
        }
        crate::skb_queue::shrink_emptied(&mut self.held);
    }

    /// The port socket `id` holds.
    pub(crate) fn held_by(&self, id: u64) -> Option<u16> {
        self.held.get(&id).map(|h| h.0)
    }

    /// Sockets holding a port, and ports in use (`inet_bind_bucket`s).
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.held.len(), self.buckets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_ports_are_exclusive_connected_ports_shared() {
        let mut t = PortTable::default();
        assert_eq!(t.bind(1, 80, false, (10, 13)), Ok(80));
        assert_eq!(t.bind(2, 80, false, (10, 13)), Err(Errno::EADDRINUSE));
        assert_eq!(t.bind(2, 80, true, (10, 13)), Ok(80));
        t.put(1);
        t.put(1);
        assert_eq!(t.bind(3, 80, false, (10, 13)), Err(Errno::EADDRINUSE));
        t.put(2);
        assert_eq!(t.bind(3, 80, false, (10, 13)), Ok(80));
        // Four connect()s to one destination take the four ports; a fifth finds none.
        let mut used = Vec::new();
        for id in 10..14 {
            let p = t.connect(id, (10, 13), false, 0, FAM_V4, |p| !used.contains(&p)).unwrap();
            used.push(p);
        }
        assert_eq!(t.connect(20, (10, 13), false, 0, FAM_V4, |p| !used.contains(&p)), Err(Errno::EADDRNOTAVAIL));
        // Another destination reuses them; bind() cannot take them.
        assert!(t.connect(21, (10, 13), false, 0, FAM_V4, |_| true).is_ok());
        assert_eq!(t.bind(22, 0, false, (10, 13)), Err(Errno::EADDRINUSE));
        assert_eq!(t.bind(22, used[0], false, (10, 13)), Err(Errno::EADDRINUSE));
        // A port someone bound is not used by connect().
        let mut t = PortTable::default();
        assert_eq!(t.bind(1, 0, false, (10, 10)), Ok(10));
        assert_eq!(t.connect(2, (10, 10), false, 0, FAM_V4, |_| true), Err(Errno::EADDRNOTAVAIL));
    }

    #[test]
    fn families_that_do_not_overlap_share_a_port() {
        const DUAL: u8 = FAM_V4 | FAM_V6;
        let r = (10, 13);
        // Linux 6.18: an AF_INET6 socket on [::]:p (dual-stack) and an AF_INET one on
        // 0.0.0.0:p conflict ("v4 bind same port as v6 :: EADDRINUSE"); with IPV6_V6ONLY they
        // do not ("v4 bind same port as v6only :: 0").
        let mut t = PortTable::default();
        assert_eq!(t.bind_opts(1, 80, false, false, r, DUAL), Ok(80));
        assert_eq!(t.bind_opts(2, 80, false, false, r, FAM_V4), Err(Errno::EADDRINUSE));
        assert_eq!(t.bind_opts(2, 80, false, false, r, FAM_V6), Err(Errno::EADDRINUSE));
        let mut t = PortTable::default();
        assert_eq!(t.bind_opts(1, 80, false, false, r, FAM_V6), Ok(80));
        assert_eq!(t.bind_opts(2, 80, false, false, r, FAM_V4), Ok(80));
        assert_eq!(t.bind_opts(3, 80, false, false, r, DUAL), Err(Errno::EADDRINUSE));
        t.put(1);
        assert_eq!(t.bind_opts(3, 80, false, false, r, FAM_V6), Ok(80));
        // connect() skips a port bound in its own family only.
        let mut t = PortTable::default();
        assert_eq!(t.bind_opts(1, 10, false, false, (10, 10), FAM_V6), Ok(10));
        assert_eq!(t.connect(2, (10, 10), true, 0, FAM_V6, |_| true), Err(Errno::EADDRNOTAVAIL));
        assert_eq!(t.connect(3, (10, 10), true, 0, FAM_V4, |_| true), Ok(10));
    }

    #[test]
    fn odd_ranges_lose_their_last_port_except_a_sockets_own_for_connect() {
        // bind(port 0): [10, 12] offers 10 and 11 only (inet_csk_find_open_port).
        let mut t = PortTable::default();
        let mut got = vec![t.bind(1, 0, false, (10, 12)).unwrap(), t.bind(2, 0, false, (10, 12)).unwrap()];
        got.sort();
        assert_eq!(got, [10, 11]);
        assert_eq!(t.bind(3, 0, false, (10, 12)), Err(Errno::EADDRINUSE));
        // connect() over the sysctl's odd range: two ports; over the socket's own: three.
        let mut t = PortTable::default();
        let mut used = Vec::new();
        for id in 1..3 {
            used.push(t.connect(id, (10, 12), false, 0, FAM_V4, |p| !used.contains(&p)).unwrap());
        }
        assert_eq!(t.connect(3, (10, 12), false, 0, FAM_V4, |p| !used.contains(&p)), Err(Errno::EADDRNOTAVAIL));
        let p = t.connect(3, (10, 12), true, 0, FAM_V4, |p| !used.contains(&p)).unwrap();
        assert_eq!(p, 12);
    }
}
