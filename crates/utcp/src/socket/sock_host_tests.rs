//! A socket driven without a stack: a fake [`SockHost`] records what the socket asks of its
//! stack (frames handed to the device, timers armed, hashing, resets), proving `socket/` and
//! `tcp/` reach the stack only through that interface.

use super::sock::{InSeg, Sock};
use super::sock_host::{FourTuple, SockHost, TakenTw};
use super::SecurityPolicy;
use crate::errno::Errno;
use crate::netdev::NetDevice;
use crate::netns::Netns;
use crate::seq::SeqNum;
use crate::skb::Frame;
use crate::tcp::ipv4::{seg_from, tcp_v4_connect, tcp_v4_rcv};
use crate::tcp::{TcpSock, TcpState, TCP_TIMEOUT_INIT};
use crate::time::{Clock, Instant, VirtualClock};
use crate::wire::{SackBlocks, TcpFlags, TcpRepr};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PORT: u16 = 40_000;

#[derive(Default)]
struct Record {
    xmit: Vec<Frame>,
    flushes: usize,
    timers: Vec<(u64, Instant)>,
    resets: Vec<InSeg>,
    unhashed: Vec<u64>,
    ports: HashMap<u64, u16>,
}

struct FakeHost {
    net: Netns,
    clock: VirtualClock,
    ids: AtomicU64,
    ehash: Mutex<HashMap<FourTuple, Arc<Sock>>>,
    rec: Mutex<Record>,
}

impl FakeHost {
    fn new() -> Arc<FakeHost> {
        Arc::new(FakeHost {
            net: Netns::new(LOCAL, 1500, 7),
            clock: VirtualClock::new(Instant::ZERO + crate::time::Duration::from_secs(100)),
            ids: AtomicU64::new(1),
            ehash: Mutex::new(HashMap::new()),
            rec: Mutex::new(Record::default()),
        })
    }

    /// The frames handed to the device so far, parsed as TCP (by the peer's input path).
    fn sent(&self) -> Vec<(TcpFlags, SeqNum, SeqNum, u16, u16)> {
        let peer = Netns::new(PEER, 1500, 7);
        let rec = self.rec.lock();
        rec.xmit
            .iter()
            .map(|f| {
                let t = crate::ip::ip_rcv_tcp(&peer, f, true).expect("a valid TCP frame").tcp;
                (t.flags, t.seq_number, t.ack_number, t.src_port, t.dst_port)
            })
            .collect()
    }
}

impl SockHost for FakeHost {
    fn net(&self) -> &Netns {
        &self.net
    }
    fn clock(&self) -> &dyn Clock {
        &self.clock
    }
    fn next_sock_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }
    fn spin_before_sleep_us(&self) -> u32 {
        0
    }
    fn security(&self) -> Option<Arc<dyn SecurityPolicy>> {
        None
    }
    fn schedule_timer(&self, sk: &Sock, at: Option<Instant>) {
        if let Some(at) = at {
            self.rec.lock().timers.push((sk.id, at));
        }
    }
    fn dev_queue_xmit(&self, frames: &mut Vec<Frame>) {
        self.rec.lock().xmit.append(frames);
    }
    fn dev_flush(&self) {
        self.rec.lock().flushes += 1;
    }
    fn napi_by_id(&self, _id: u32) -> Option<Arc<dyn NetDevice>> {
        None
    }
    fn send_reset_for(&self, inseg: &InSeg) {
        self.rec.lock().resets.push(inseg.clone());
    }
    fn __inet_lookup_established(&self, key: FourTuple) -> Option<Arc<Sock>> {
        self.ehash.lock().get(&key).cloned()
    }
    fn __inet_lookup_listener(&self, _inseg: &InSeg) -> Option<Arc<Sock>> {
        None
    }
    fn hash(&self, key: FourTuple, sk: Arc<Sock>) -> bool {
        self.ehash.lock().insert(key, sk).is_none()
    }
    fn unhash(&self, sk: &Sock, tp: &TcpSock) {
        self.ehash.lock().remove(&(tp.saddr, tp.sport, tp.daddr, tp.dport));
        self.rec.lock().unhashed.push(sk.id);
    }
    fn unhash_key(&self, key: FourTuple, _id: u64) {
        self.ehash.lock().remove(&key);
    }
    fn unhash_listener(&self, _port: u16, _id: u64) {}
    fn __inet_check_established(&self, key: FourTuple, sk: &Arc<Sock>, _twp: bool) -> Option<Option<TakenTw>> {
        self.hash(key, sk.clone()).then_some(None)
    }
    fn hash_connect(
        &self,
        sk: &Arc<Sock>,
        saddr: std::net::IpAddr,
        daddr: std::net::IpAddr,
        dport: u16,
        _sk_range: u32,
    ) -> Result<(u16, Option<TakenTw>), Errno> {
        if !self.hash((saddr, PORT, daddr, dport), sk.clone()) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        self.rec.lock().ports.insert(sk.id, PORT);
        Ok((PORT, None))
    }
    fn inherit_port(&self, id: u64, port: u16, _reuseport: bool, _fam: u8) {
        self.rec.lock().ports.insert(id, port);
    }
    fn port_held(&self, id: u64) -> Option<u16> {
        self.rec.lock().ports.get(&id).copied()
    }
    fn put_port(&self, id: u64) {
        self.rec.lock().ports.remove(&id);
    }
}

/// A segment from the peer to the local port, as `netif_receive` hands it to `tcp_v4_rcv`.
fn from_peer(host: &FakeHost, flags: TcpFlags, seq: u32, ack: SeqNum) -> InSeg {
    let repr = TcpRepr {
        src_port: 80,
        dst_port: PORT,
        flags,
        seq_number: SeqNum(seq),
        ack_number: ack,
        window_len: 65535,
        urgent_pointer: 0,
        max_seg_size: flags.syn().then_some(1460),
        window_scale: None,
        sack_permitted: false,
        sack_ranges: SackBlocks::new(),
        timestamp: None,
        payload: &[],
    };
    let frame = crate::ip::build_tcp_frame(&host.net, PEER, LOCAL, &repr, bytes::Bytes::new());
    let tin = crate::ip::ip_rcv_tcp(&host.net, &frame, true).expect("valid");
    InSeg { seg: seg_from(&tin), saddr: tin.saddr, daddr: tin.daddr, sport: tin.tcp.src_port, dport: tin.tcp.dst_port }
}

/// A connected socket on a fake host, after its handshake with PEER:80.
fn connected() -> (Arc<FakeHost>, Arc<Sock>, SeqNum) {
    let host = FakeHost::new();
    let tp = TcpSock::new(&host.net, host.clock.now());
    let sk = Sock::new(host.clone(), tp);
    {
        let mut g = sk.lock_sock();
        tcp_v4_connect(&sk, &mut g, SocketAddrV4::new(PEER, 80)).expect("connect");
    }
    let iss = sk.peek_tp(|tp| tp.iss);
    tcp_v4_rcv(&*host, from_peer(&host, TcpFlags::SYN | TcpFlags::ACK, 5000, iss + 1), 0);
    (host, sk, iss)
}

#[test]
fn connect_transmits_the_syn_and_arms_the_rto_through_the_host() {
    let host = FakeHost::new();
    let now = host.clock.now();
    let sk = Sock::new(host.clone(), TcpSock::new(&host.net, now));
    {
        let mut g = sk.lock_sock();
        tcp_v4_connect(&sk, &mut g, SocketAddrV4::new(PEER, 80)).expect("connect");
    }
    let iss = sk.peek_tp(|tp| tp.iss);
    assert_eq!(host.sent(), vec![(TcpFlags::SYN, iss, SeqNum(0), PORT, 80)]);
    let rec = host.rec.lock();
    assert!(rec.flushes >= 1, "frames queued under the lock are flushed after it");
    assert_eq!(rec.timers.last(), Some(&(sk.id, now + TCP_TIMEOUT_INIT)), "SYN retransmit timer");
    assert_eq!(rec.ports.get(&sk.id), Some(&PORT));
    drop(rec);
    assert!(host.ehash.lock().contains_key(&(LOCAL.into(), PORT, PEER.into(), 80)));
    assert_eq!(sk.peek_tp(|tp| tp.state), TcpState::SynSent);
}

#[test]
fn tcp_v4_rcv_finds_the_socket_through_the_host_and_completes_the_handshake() {
    let (host, sk, iss) = connected();
    assert_eq!(sk.peek_tp(|tp| tp.state), TcpState::Established);
    let sent = host.sent();
    assert_eq!(sent.len(), 2, "SYN, then the handshake's ACK: {sent:?}");
    assert_eq!(sent[1], (TcpFlags::ACK, iss + 1, SeqNum(5001), PORT, 80));
}

#[test]
fn a_reset_destroys_the_socket_and_unhashes_it_through_the_host() {
    let (host, sk, iss) = connected();
    tcp_v4_rcv(&*host, from_peer(&host, TcpFlags::RST, 5001, iss + 1), 0);
    assert_eq!(sk.peek_tp(|tp| tp.state), TcpState::Close);
    assert_eq!(host.rec.lock().unhashed, vec![sk.id]);
    assert!(!host.ehash.lock().contains_key(&(LOCAL.into(), PORT, PEER.into(), 80)));
    assert!(host.rec.lock().resets.is_empty(), "a RST is never answered");
}

#[test]
fn a_segment_for_no_socket_is_answered_with_a_reset_by_the_host() {
    let host = FakeHost::new();
    tcp_v4_rcv(&*host, from_peer(&host, TcpFlags::ACK, 1, SeqNum(77)), 0);
    let rec = host.rec.lock();
    assert_eq!(rec.resets.len(), 1);
    assert_eq!((rec.resets[0].sport, rec.resets[0].dport), (80, PORT));
    assert!(rec.xmit.is_empty(), "the reset is the host's to build");
}
