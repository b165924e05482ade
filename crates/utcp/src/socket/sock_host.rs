//! What a `struct sock` reaches outside itself, as one narrow interface: `sock_net(sk)` (the
//! namespace: sysctls, counters), the host's clock, `sk->sk_prot->h.hashinfo` (the
//! established and listening hash tables and the bind table of `inet_hashtables.c`), the
//! timer wheel (`sk_reset_timer`), and the device layer (`dev_queue_xmit`, `qdisc_run`,
//! `napi_by_id`). A socket holds its stack only as an `Arc<dyn SockHost>`; the stack
//! (`stack::StackCore`) implements it, and tests drive a socket with a fake one. This module
//! imports nothing above `socket/`, so the layers stay one way: syscall → stack → socket →
//! tcp → ip → netdev → wire.

use crate::errno::Errno;
use crate::netdev::NetDevice;
use crate::netns::Netns;
use crate::skb::Frame;
use crate::socket::sock::{InSeg, Sock};
use crate::socket::SecurityPolicy;
use crate::tcp::ipv4::TwReuse;
use crate::tcp::TcpSock;
use crate::time::{Clock, Instant};
use std::net::IpAddr;
use std::sync::Arc;

/// Connection key: (local addr, local port, remote addr, remote port), the addresses of the
/// family on the wire: an AF_INET6 socket talking to an IPv4 peer (`::ffff:a.b.c.d`) is hashed
/// under IPv4 addresses, as Linux hashes it by `inet_daddr`/`inet_rcv_saddr` (the v4 lookup),
/// and an IPv6 connection under `sk_v6_daddr`/`sk_v6_rcv_saddr`.
pub(crate) type FourTuple = (IpAddr, u16, IpAddr, u16);

/// A timewait sock a connect() took the 4-tuple of, with what it takes over from it.
pub(crate) type TakenTw = (Arc<Sock>, TwReuse);

/// The stack as a socket sees it.
pub trait SockHost: Send + Sync {
    /// `sock_net(sk)`: the namespace (sysctls, counters, routes).
    fn net(&self) -> &Netns;
    /// The host's clock.
    fn clock(&self) -> &dyn Clock;
    /// A fresh socket id.
    fn next_sock_id(&self) -> u64;
    /// How long a reader spins before sleeping in `sk_wait_data` (µs; real clocks only).
    fn spin_before_sleep_us(&self) -> u32;
    /// The `security_socket_recvmsg()` policy, if one is installed.
    fn security(&self) -> Option<Arc<dyn SecurityPolicy>>;

    /// `sk_reset_timer()`: arms (or moves) `sk`'s entry in the stack's timer wheel.
    fn schedule_timer(&self, sk: &Sock, at: Option<Instant>);
    /// `dev_queue_xmit()`: hands every frame of `frames` to the device, in order, and leaves
    /// `frames` empty. Called while the socket that built them is still locked.
    fn dev_queue_xmit(&self, frames: &mut Vec<Frame>);
    /// `qdisc_run()`: lets the device deliver what was queued. Called with no socket lock held.
    fn dev_flush(&self);
    /// The device with NAPI id `id` (`napi_by_id`).
    fn napi_by_id(&self, id: u32) -> Option<Arc<dyn NetDevice>>;
    /// Sends the RST answering `inseg` (`tcp_v4_send_reset`, when it is not itself a RST).
    fn send_reset_for(&self, inseg: &InSeg);

    /// `__inet_lookup_established()`: the socket hashed under `key` (local, remote), unless it
    /// is bound to another device (`INET_MATCH`).
    fn __inet_lookup_established(&self, key: FourTuple) -> Option<Arc<Sock>>;
    /// `__inet_lookup_listener()`: the listener (of a SO_REUSEPORT group, the chosen one) for
    /// `inseg`.
    fn __inet_lookup_listener(&self, inseg: &InSeg) -> Option<Arc<Sock>>;
    /// `inet_ehash_insert()`: hashes `sk` under `key`; false when the 4-tuple is taken.
    fn hash(&self, key: FourTuple, sk: Arc<Sock>) -> bool;
    /// `inet_unhash()` of a dead socket; gives the port back when `tp` is CLOSE.
    fn unhash(&self, sk: &Sock, tp: &TcpSock);
    /// Removes socket `id` from the connection table under `key`.
    fn unhash_key(&self, key: FourTuple, id: u64);
    /// Removes listener `id` of `port` (`reuseport_detach_sock`).
    fn unhash_listener(&self, port: u16, id: u64);
    /// `__inet_check_established()`: hashes `sk` under `key` unless a socket has that
    /// 4-tuple; a timewait sock that `tcp_twsk_unique()` lets go is replaced and returned.
    /// `None`: the 4-tuple is taken.
    fn __inet_check_established(&self, key: FourTuple, sk: &Arc<Sock>, twp: bool) -> Option<Option<TakenTw>>;
    /// `__inet_hash_connect()`: picks and binds a local port for `saddr` → `daddr:dport` and
    /// hashes `sk` under the 4-tuple (`sk_range`: IP_LOCAL_PORT_RANGE).
    fn hash_connect(
        &self,
        sk: &Arc<Sock>,
        saddr: IpAddr,
        daddr: IpAddr,
        dport: u16,
        sk_range: u32,
    ) -> Result<(u16, Option<TakenTw>), Errno>;
    /// `__inet_inherit_port()`: child `id` shares its listener's bound `port`; `fam`: the
    /// child's family on the wire (`sock::RCV_V4` / `RCV_V6`, the bind table's `FAM_V4` / `FAM_V6`).
    fn inherit_port(&self, id: u64, port: u16, reuseport: bool, fam: u8);
    /// The port socket `id` holds, if any.
    fn port_held(&self, id: u64) -> Option<u16>;
    /// `inet_put_port()`: socket `id` gives its port back (idempotent).
    fn put_port(&self, id: u64);
}
