//! TCP: the protocol core (net/ipv4/tcp*.c).
//!
//! [`TcpSock`] is `struct tcp_sock` (with the `struct sock` and `inet_connection_sock` fields
//! TCP uses). It is plain data: whoever holds the socket lock (see `socket::sock`) calls the
//! functions of the submodules on it, each named after the Linux function it mirrors and handed
//! a `Ctx` carrying `now`, the namespace (sysctls, counters) and an output queue. Nothing here
//! reads a clock, sleeps, or touches a device.

pub mod bbr;
pub(crate) mod close;
pub(crate) mod cong;
pub(crate) mod connect;
pub(crate) mod data_queue;
pub mod info;
pub(crate) mod input;
pub(crate) mod ioctl;
pub(crate) mod ipv4;
pub mod ipv6;
pub(crate) mod listen;
pub(crate) mod loss;
pub(crate) mod mtu;
pub(crate) mod ofo_queue;
pub(crate) mod orphan;
pub mod output;
pub(crate) mod pacing;
pub(crate) mod poll;
pub(crate) mod prr;
pub(crate) mod prune;
pub(crate) mod rack;
pub(crate) mod rate;
pub mod recvmsg;
pub(crate) mod rtt;
pub(crate) mod sk_mem;
pub(crate) mod sndbuf;
pub(crate) mod sockopt;
pub mod syncookies;
pub(crate) mod timer;
pub(crate) mod timestamping;
pub(crate) mod timestamping_stats;
pub(crate) mod tso;
pub(crate) mod tx_csum;
pub(crate) mod undo;
pub(crate) mod urgent;
pub(crate) mod window;
pub(crate) mod zerocopy;

use crate::errno::Errno;
use crate::mib::{LinuxMib, TcpMib};
use crate::netns::Netns;
use crate::seq::SeqNum;
use crate::skb::{Frame, Skb};
use crate::time::{Duration, Instant};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

pub(crate) use cong::Cubic;
pub(crate) use timer::TcpTimer;

/// `enum tcp_state` with Linux's numbers (include/net/tcp_states.h).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
}

impl TcpState {
    /// `TCPF_*` bit of this state.
    pub fn flag(self) -> u32 {
        1 << (self as u32)
    }
    /// Linux's name (`TCP_ESTABLISHED`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            TcpState::Established => "TCP_ESTABLISHED",
            TcpState::SynSent => "TCP_SYN_SENT",
            TcpState::SynRecv => "TCP_SYN_RECV",
            TcpState::FinWait1 => "TCP_FIN_WAIT1",
            TcpState::FinWait2 => "TCP_FIN_WAIT2",
            TcpState::TimeWait => "TCP_TIME_WAIT",
            TcpState::Close => "TCP_CLOSE",
            TcpState::CloseWait => "TCP_CLOSE_WAIT",
            TcpState::LastAck => "TCP_LAST_ACK",
            TcpState::Listen => "TCP_LISTEN",
            TcpState::Closing => "TCP_CLOSING",
        }
    }
}

/// `sk->sk_shutdown` bits.
pub(crate) const RCV_SHUTDOWN: u8 = 1;
/// `sk->sk_shutdown` bits.
pub(crate) const SEND_SHUTDOWN: u8 = 2;
/// `sk->sk_userlocks`: SO_SNDBUF was set.
pub(crate) const SOCK_SNDBUF_LOCK: u8 = 1;
/// `sk->sk_userlocks`: SO_RCVBUF was set.
pub(crate) const SOCK_RCVBUF_LOCK: u8 = 2;

/// `SOCK_TXREHASH_ENABLED`: `sk_txrehash` when SO_TXREHASH (or `net.core.txrehash`) is on.
pub(crate) const SOCK_TXREHASH_ENABLED: u8 = 1;
/// `TCP_RTO_MIN` (200 ms).
pub(crate) const TCP_RTO_MIN: Duration = Duration::from_millis(200);
/// `TCP_RTO_MAX` (120 s).
pub(crate) const TCP_RTO_MAX: Duration = Duration::from_secs(120);
/// `TCP_TIMEOUT_INIT` (1 s, RFC 6298).
pub(crate) const TCP_TIMEOUT_INIT: Duration = Duration::from_secs(1);
/// One jiffy at the HZ=250 Linux keeps its TCP timers in.
pub const JIFFY: Duration = Duration::from_millis(4);
/// `TCP_TIMEOUT_MIN` (2 jiffies): the least TCP_RTO_MIN_US and TCP_DELACK_MAX_US accept.
pub(crate) const TCP_TIMEOUT_MIN: Duration = Duration::from_millis(8);
/// `TCP_FIN_TIMEOUT_MAX` (120 s): the largest TCP_LINGER2.
pub(crate) const TCP_FIN_TIMEOUT_MAX: i32 = 120;

/// `usecs_to_jiffies()` as a duration: rounded up to whole jiffies.
pub(crate) fn jiffies_from_us(us: i64) -> Duration {
    let j = (us.max(0) as u64).div_ceil(4000);
    Duration::from_micros(j * 4000)
}

/// `TCP_DELACK_MAX` (200 ms).
pub(crate) const TCP_DELACK_MAX: Duration = Duration::from_millis(200);
/// `TCP_DELACK_MIN` (40 ms).
pub(crate) const TCP_DELACK_MIN: Duration = Duration::from_millis(40);
/// `TCP_ATO_MIN` (40 ms).
pub(crate) const TCP_ATO_MIN: Duration = Duration::from_millis(40);
/// `TCP_TIMEWAIT_LEN` (60 s).
pub(crate) const TCP_TIMEWAIT_LEN: Duration = Duration::from_secs(60);
/// `TCP_MSS_DEFAULT` (RFC 1122: 536).
pub(crate) const TCP_MSS_DEFAULT: u32 = 536;
/// `TCP_MIN_MSS`.
pub(crate) const TCP_MIN_MSS: u32 = 88;
/// `TCP_INIT_CWND`.
pub(crate) const TCP_INIT_CWND: u32 = 10;
/// `TCP_MAX_WSCALE`.
pub(crate) const TCP_MAX_WSCALE: u8 = 14;
/// `TCP_RMEM_TO_WIN_SCALE`.
pub const TCP_RMEM_TO_WIN_SCALE: u32 = 8;
/// `TCP_DEFAULT_SCALING_RATIO`: 50% of the buffer is payload until measured.
pub(crate) const TCP_DEFAULT_SCALING_RATIO: u32 = 1 << (TCP_RMEM_TO_WIN_SCALE - 1);
/// `TCPOLEN_TSTAMP_ALIGNED`.
pub(crate) const TCPOLEN_TSTAMP_ALIGNED: u32 = 12;
/// `SOCK_MIN_RCVBUF` (= `TCP_SKB_MIN_TRUESIZE`: 2K + `SKB_DATA_ALIGN(sizeof(struct sk_buff))`).
pub(crate) const SOCK_MIN_RCVBUF: u32 = 2048 + 256;
/// `SOCK_MIN_SNDBUF`.
pub(crate) const SOCK_MIN_SNDBUF: u32 = 2 * (2048 + 256);
/// `TCP_SKB_MIN_TRUESIZE` (2048 + SKB_DATA_ALIGN(sizeof(struct sk_buff))).
pub const TCP_SKB_MIN_TRUESIZE: u32 = 2048 + 256;
/// What a write-queue skb costs against `sk_sndbuf` beyond its payload (`struct sk_buff`).
pub(crate) const TX_SKB_OVERHEAD: u32 = 256;
/// `MAX_TCP_WINDOW`.
pub(crate) const MAX_TCP_WINDOW: u32 = 32767;

/// `tp->urg_data` flags.
pub(crate) const TCP_URG_VALID: u16 = 0x0100;
/// Urgent pointer seen, byte not yet arrived.
pub const TCP_URG_NOTYET: u16 = 0x0200;
/// Urgent byte already read.
pub(crate) const TCP_URG_READ: u16 = 0x0400;

/// `icsk->icsk_ack.pending` bits.
pub(crate) mod ack_flags {
    /// ACK is scheduled.
    pub(crate) const ICSK_ACK_SCHED: u8 = 1;
    /// Delayed-ACK timer is armed.
    pub(crate) const ICSK_ACK_TIMER: u8 = 2;
    /// A segment was received with PSH.
    pub(crate) const ICSK_ACK_PUSHED: u8 = 4;
    /// Two PSH segments in a row.
    pub(crate) const ICSK_ACK_PUSHED2: u8 = 8;
    /// Send the next ACK at once (once).
    pub(crate) const ICSK_ACK_NOW: u8 = 16;
    /// ACK due because the window opened after a read.
    pub(crate) const ICSK_ACK_NOMEM: u8 = 32;
}

/// `struct inet_connection_sock::icsk_ack`.
#[derive(Clone, Debug, Default)]
pub(crate) struct IcskAck {
    /// ACK pending bits (`ack_flags`).
    pub(crate) pending: u8,
    /// Quick-ACK segments left.
    pub(crate) quick: u8,
    /// Interactive (ping-pong) session counter.
    pub(crate) pingpong: u8,
    /// Delayed-ACK timeout estimate.
    pub(crate) ato: Duration,
    /// When the delayed ACK fires.
    pub(crate) timeout: Instant,
    /// Time of the last received data segment.
    pub(crate) lrcvtime: Instant,
    /// Size of the last received segment.
    pub(crate) last_seg_size: u32,
    /// MSS estimate of the peer's segments.
    pub(crate) rcv_mss: u32,
}

/// A segment on the write or retransmit queue.
#[derive(Clone, Debug)]
pub struct TxSkb {
    /// First sequence number.
    pub(crate) seq: SeqNum,
    /// Sequence after the last (includes SYN/FIN).
    pub(crate) end_seq: SeqNum,
    /// TCP flags to send (`TCP_SKB_CB(skb)->tcp_flags`).
    pub(crate) flags: crate::wire::TcpFlags,
    /// Payload while the segment can still grow (unsent tail).
    pub(crate) building: Option<BytesMut>,
    /// Payload once frozen (sent at least once).
    pub(crate) data: Bytes,
    /// Bytes `tcp_grow_skb()` took from the next skb while `data` was already shared with
    /// packets sent (`skb_shift()` moving the next skb's page frags): they follow `data`
    /// without being copied next to it. Empty unless this is the write queue's head; packets
    /// are built from both parts, and [`TxSkb::freeze`] joins them for any other use.
    pub(crate) frag: Bytes,
    /// `TCPCB_SACKED_ACKED` etc.
    pub(crate) sacked: u8,
    /// Time of the last transmission.
    pub(crate) tx_time: Instant,
    /// Place of the last transmission in the socket's send order (what Linux's
    /// `tsorted_sent_queue` orders by): later transmissions have larger numbers.
    pub(crate) tx_order: u64,
    /// Times retransmitted.
    pub(crate) retrans: u8,
    /// Send with PSH (`TCPHDR_PSH` marked by `tcp_mark_push`).
    pub(crate) urg: bool,
    /// `TCP_SKB_CB(skb)->tx`: the delivery state at the last transmission (tcp/rate.rs).
    pub(crate) tx: rate::TxRate,
}

crate::skb_queue::queue_cache!(TxSkb);

/// `TCPCB_SACKED_ACKED`.
pub(crate) const TCPCB_SACKED_ACKED: u8 = 0x01;
/// `TCPCB_SACKED_RETRANS`.
pub(crate) const TCPCB_SACKED_RETRANS: u8 = 0x02;
/// `TCPCB_LOST`.
pub(crate) const TCPCB_LOST: u8 = 0x04;
/// `TCPCB_EVER_RETRANS`.
pub(crate) const TCPCB_EVER_RETRANS: u8 = 0x80;

impl TxSkb {
    /// Payload bytes.
    pub fn len(&self) -> u32 {
        match &self.building {
            Some(b) => b.len() as u32,
            None => (self.data.len() + self.frag.len()) as u32,
        }
    }
    /// No payload bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Freezes a growing payload so that it can be shared with frames, and joins a second
    /// part into one buffer (`__skb_linearize()`: a copy, for the uses that need one).
    pub(crate) fn freeze(&mut self) -> &Bytes {
        if let Some(b) = self.building.take() {
            self.data = b.freeze();
        }
        if !self.frag.is_empty() {
            let mut b = crate::page_frag::alloc(self.data.len() + self.frag.len());
            b.extend_from_slice(&self.data);
            b.extend_from_slice(&self.frag);
            self.data = b.freeze();
            self.frag = Bytes::new();
        }
        &self.data
    }

    /// Freezes a growing payload, keeping a second part apart: the payload as its parts.
    pub(crate) fn freeze_parts(&mut self) -> [Bytes; 2] {
        if let Some(b) = self.building.take() {
            self.data = b.freeze();
        }
        [self.data.clone(), self.frag.clone()]
    }

    /// Takes the first `n` payload bytes (at most the length) off a frozen skb, a slice of
    /// one part, or a copy of the two parts' bytes when they straddle the boundary.
    pub(crate) fn take_front(&mut self, n: usize) -> Bytes {
        let dl = self.data.len();
        if n <= dl {
            let front = self.data.slice(..n);
            self.data = self.data.slice(n..);
            if self.data.is_empty() {
                self.data = core::mem::take(&mut self.frag);
            }
            return front;
        }
        let n = n.min(dl + self.frag.len());
        let mut b = crate::page_frag::alloc(n);
        b.extend_from_slice(&self.data);
        b.extend_from_slice(&self.frag[..n - dl]);
        self.data = self.frag.slice(n - dl..);
        self.frag = Bytes::new();
        b.freeze()
    }
}

/// `tp->rcvq_space` (dynamic right-sizing state).
#[derive(Clone, Debug, Default)]
pub(crate) struct RcvqSpace {
    /// Bytes copied in the last measurement window.
    pub(crate) space: u32,
    /// `copied_seq` at the start of the window.
    pub(crate) seq: SeqNum,
    /// Start of the window.
    pub(crate) time: Instant,
}

/// `tp->rcv_rtt_est`.
#[derive(Clone, Debug, Default)]
pub(crate) struct RcvRttEst {
    /// Receiver-side RTT estimate in µs << 3.
    pub(crate) rtt_us: u32,
    /// Sequence that ends the measurement.
    pub(crate) seq: SeqNum,
    /// Start of the measurement.
    pub(crate) time: Instant,
}

/// What packet processing asks the socket layer to do once the state lock is dropped.
#[derive(Default, Debug)]
pub(crate) struct Events {
    /// `sk_data_ready`: readable data, FIN, or an error for readers.
    pub(crate) data_ready: bool,
    /// `sk_write_space`: writers may continue.
    pub(crate) write_space: bool,
    /// `sk_state_change`: connected, closed, reset.
    pub(crate) state_change: bool,
    /// The socket became fully dead and can be unhashed and freed.
    pub(crate) destroy: bool,
    /// The socket's hash identity changed (connect, child created).
    pub(crate) rehash: bool,
    /// New readable data arrived (`EPOLLET` edge).
    pub(crate) new_data: bool,
}

/// Per-call context handed to everything in this module.
pub(crate) struct Ctx<'a> {
    /// The current time.
    pub(crate) now: Instant,
    /// Sysctls and counters of the namespace.
    pub(crate) net: &'a Netns,
    /// Packets to transmit once locks are dropped (in order).
    pub(crate) out: &'a mut Vec<Frame>,
    /// Wakeups and state changes to deliver.
    pub(crate) ev: Events,
    /// A reader installed through `tp->ucopy` that packet processing may copy into directly.
    pub(crate) ucopy: Option<&'a mut dyn recvmsg::UserSink>,
    /// A child socket completed by a listener, with the segment it must process.
    pub(crate) ev_child: Option<Box<TcpSock>>,
}

impl<'a> Ctx<'a> {
    /// A context for `now`.
    pub(crate) fn new(now: Instant, net: &'a Netns, out: &'a mut Vec<Frame>) -> Ctx<'a> {
        Ctx { now, net, out, ev: Events::default(), ucopy: None, ev_child: None }
    }
    /// Bumps a TcpExt counter.
    #[inline]
    pub(crate) fn inc(&self, c: LinuxMib) {
        self.net.mib.inc(c)
    }
    /// Bumps a Tcp counter.
    #[inline]
    pub(crate) fn tcp_inc(&self, c: TcpMib) {
        self.net.mib.tcp_inc(c)
    }
}

/// The TCP part of a socket (`struct tcp_sock` with its `sock` and `inet_connection_sock`).
#[derive(Debug)]
pub struct TcpSock {
    /// `sk->sk_state`.
    pub state: TcpState,
    /// `sk->sk_family`: AF_INET, or AF_INET6 (whose IPv4 peers are IPv4-mapped).
    pub(crate) family: i32,
    /// `np` (`struct ipv6_pinfo`): an AF_INET6 socket's IPv6 options.
    pub(crate) inet6: crate::ip::ipv6_sockglue::Ipv6Pinfo,
    /// `sk->sk_txhash`: the flow's hash, from which an IPv6 connection's flow label is made
    /// (set at connect, or from the request for a child).
    pub(crate) txhash: u32,
    /// `tp->timeout_rehash`: how often an RTO re-drew `txhash`.
    pub(crate) timeout_rehash: u16,
    /// Local address (`inet_saddr`, or `sk_v6_rcv_saddr` on an IPv6 connection: the family
    /// on the wire; see [`TcpSock::family`] for the socket's own).
    pub(crate) saddr: IpAddr,
    /// Local port.
    pub sport: u16,
    /// Remote address (`inet_daddr` / `sk_v6_daddr`).
    pub(crate) daddr: IpAddr,
    /// Remote port.
    pub dport: u16,

    // ---- struct sock ----
    /// `sk_rcvbuf`.
    pub rcvbuf: u32,
    /// `sk_sndbuf`.
    pub sndbuf: u32,
    /// `sk_userlocks`.
    pub(crate) userlocks: u8,
    /// `sk_rmem_alloc`: truesize of the receive and out-of-order queues.
    pub rmem_alloc: u32,
    /// Bytes charged in whole pages for the queues (`sk_forward_alloc` plus what they use;
    /// see `sk_mem.rs`).
    pub mem_charged: i64,
    /// The stack's TCP memory account (`sk->sk_prot`'s `memory_allocated` and pressure),
    /// which `mem_charged` is part of.
    pub(crate) proto_mem: std::sync::Arc<crate::netns::ProtoMem>,
    /// `sk_wmem_queued`.
    pub wmem_queued: u32,
    /// `sk_err` (pending hard error).
    pub(crate) err: Option<Errno>,
    /// `sk_err_soft`.
    pub(crate) err_soft: Option<Errno>,
    /// `sk_shutdown`.
    pub(crate) shutdown: u8,
    /// `SOCK_DONE`: the peer closed (FIN or RST processed).
    pub done: bool,
    /// `sk_rcvlowat`.
    pub(crate) rcvlowat: i32,
    /// `sk->sk_mark` (SO_MARK): carried on every frame the socket sends (`skb->mark`).
    pub(crate) mark: u32,
    /// `sock_gen_cookie()`: a number no other socket of this process has (SO_COOKIE).
    pub(crate) cookie: u64,
    /// `sk->sk_txrehash` (SO_TXREHASH): 0 or 1.
    pub(crate) txrehash: u8,
    /// `SOCK_FILTER_LOCKED` (SO_LOCK_FILTER): the (absent) filter may not be changed.
    pub(crate) filter_locked: bool,
    /// `SOCK_TSTAMP_NEW`: SO_TIMESTAMP(NS)_NEW chose the y2038-safe control message types.
    pub(crate) tstamp_new: bool,
    /// `sk->sk_tsflags`: the SO_TIMESTAMPING flags (socket/timestamping.rs).
    pub(crate) tsflags: u32,
    /// `sk->sk_tskey`: the sequence number OPT_ID keys count from.
    pub(crate) tskey: u32,
    /// `sk->sk_bound_dev_if` (SO_BINDTODEVICE / SO_BINDTOIFINDEX), 0 = any device.
    pub(crate) bound_dev_if: i32,
    /// `sk->sk_pacing_rate`, bytes/s (`tcp_update_pacing_rate`); `u64::MAX` until computed.
    pub(crate) pacing_rate: u64,
    /// `sk_pacing_status == SK_PACING_NEEDED`: TCP paces its own transmissions.
    pub pacing_needed: bool,
    /// `tp->tcp_wstamp_ns`: the earliest departure time of the next segment.
    pub(crate) wstamp: Instant,
    /// `SOCK_ZEROCOPY` (SO_ZEROCOPY): MSG_ZEROCOPY sends report their completion.
    pub(crate) zerocopy: bool,
    /// `sk->sk_zckey`: the id of the next MSG_ZEROCOPY send.
    pub(crate) zckey: u32,
    /// `SOCK_URGINLINE`.
    pub(crate) urginline: bool,
    /// `sk_peek_off` (-1 = off).
    pub(crate) peek_off: i32,
    /// SO_TIMESTAMP (1) / SO_TIMESTAMPNS (2) / off (0).
    pub(crate) rx_tstamp_opt: u8,
    /// SO_BUSY_POLL in µs (`sk_ll_usec`).
    pub(crate) ll_usec: u32,
    /// SO_PREFER_BUSY_POLL.
    pub(crate) prefer_busy_poll: bool,
    /// SO_REUSEADDR.
    pub(crate) reuseaddr: bool,
    /// SO_KEEPALIVE.
    pub(crate) keepalive: bool,
    /// The user closed the socket; it lives on to finish the protocol (`SOCK_DEAD`).
    pub(crate) orphan: bool,
    /// `sk->sk_socket != NULL`: a `struct socket` is attached. `None` for a socket that has
    /// had one from the start (socket()) or since accept() grafted one and dropped the flag;
    /// a passive child holds a flag, false until accept() grafts a socket, whose other end
    /// the listener's accept queue holds and sets (see [`listen::AcceptQueue`]). So only a
    /// child not yet accepted spends an allocation on it (issue 9 goal 4).
    pub(crate) sk_socket: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Bound explicitly (`inet->inet_num` set by bind).
    pub(crate) bound: bool,
    /// `inet->inet_freebind`/misc.
    pub(crate) listen_backlog: u32,
    /// What only some sockets use (timestamping, MSG_ZEROCOPY, the error queue, rare
    /// options, a saved SYN, a TCP_FASTOPEN_KEY): out of line, allocated on first write
    /// (`TcpSock::ext_mut`), so that an idle socket does not carry it (issue 9 goal 4).
    pub ext: Option<Box<TcpSockExt>>,

    // ---- tcp_sock: receive ----
    /// `tp->rcv_nxt`.
    pub rcv_nxt: SeqNum,
    /// `tp->copied_seq`: head of yet unread data.
    pub copied_seq: SeqNum,
    /// `tp->rcv_wup`: rcv_nxt at the last window update.
    pub(crate) rcv_wup: SeqNum,
    /// `tp->rcv_wnd`: current advertised window.
    pub rcv_wnd: u32,
    /// `tp->rcv_ssthresh`: current window clamp.
    pub(crate) rcv_ssthresh: u32,
    /// `tp->window_clamp`.
    pub(crate) window_clamp: u32,
    /// `tp->rx_opt.rcv_wscale`.
    pub rcv_wscale: u8,
    /// `tp->scaling_ratio`.
    pub(crate) scaling_ratio: u32,
    /// Initial receive sequence (`tp->rcv_isn`... irs).
    pub irs: SeqNum,
    /// `tp->rcvq_space`.
    pub(crate) rcvq_space: RcvqSpace,
    /// `tp->rcv_rtt_est`.
    pub(crate) rcv_rtt_est: RcvRttEst,
    /// `sk_receive_queue`.
    pub receive_queue: crate::skb_queue::SkbQueue<Skb>,
    /// `tp->out_of_order_queue`, sorted by sequence.
    pub ofo_queue: ofo_queue::OfoQueue,
    /// `tp->selective_acks` (up to 4 blocks, most recent first).
    pub(crate) selective_acks: Vec<(SeqNum, SeqNum)>,
    /// `tp->duplicate_sack` pending.
    pub(crate) dsack: Option<(SeqNum, SeqNum)>,
    /// `tp->duplicate_sack[0].start_seq`: where the last DSACK block began (kept after it
    /// was sent, for `tcp_rcv_spurious_retrans()`).
    pub(crate) dsack_start: Option<SeqNum>,
    /// `tp->urg_data`.
    pub urg_data: u16,
    /// `tp->urg_seq`.
    pub(crate) urg_seq: SeqNum,
    /// `icsk->icsk_ack`.
    pub(crate) ack: IcskAck,
    /// TCP_INQ.
    pub(crate) recvmsg_inq: bool,
    /// `tp->compressed_ack` counter.
    pub(crate) compressed_ack: u32,

    // ---- send ----
    /// `tp->snd_una`.
    pub snd_una: SeqNum,
    /// `tp->snd_nxt`.
    pub snd_nxt: SeqNum,
    /// `tp->snd_wnd` (already scaled).
    pub snd_wnd: u32,
    /// `tp->snd_wl1`.
    pub(crate) snd_wl1: SeqNum,
    /// `tp->max_window`.
    pub(crate) max_window: u32,
    /// `tp->rx_opt.snd_wscale`.
    pub(crate) snd_wscale: u8,
    /// `tp->write_seq`: end of data queued by the user.
    pub write_seq: SeqNum,
    /// `tp->snd_sml`: end of the last small segment sent (Minshall's Nagle).
    pub(crate) snd_sml: SeqNum,
    /// TSval of our SYN (PAWS check of the SYN-ACK).
    pub(crate) syn_tsval: u32,
    /// `tp->last_oow_ack_time`.
    pub(crate) last_oow_ack_time: Option<Instant>,
    /// `tp->compressed_ack_rcv_nxt`.
    pub(crate) compressed_ack_rcv_nxt: SeqNum,
    /// `tp->dup_ack_counter`.
    pub(crate) dup_ack_counter: u8,
    /// Highest SACKed sequence (`tp->highest_sack`).
    pub(crate) highest_sack: SeqNum,
    /// `tp->rack.mstamp`: send time of the most recently delivered segment.
    pub(crate) rack_xmit: Instant,
    /// Send order of that segment (see [`TxSkb::tx_order`]; Linux keeps its `end_seq`).
    pub(crate) rack_tx_order: u64,
    /// The next [`TxSkb::tx_order`].
    pub(crate) tx_order_next: u64,
    /// `tp->rack.rtt_us`.
    pub(crate) rack_rtt_us: u32,
    /// `tp->rack.advanced`: `rack_xmit` moved since the last loss marking.
    pub(crate) rack_advanced: bool,
    /// `tp->tlp_high_seq`: a loss probe is outstanding up to here.
    pub(crate) tlp_high_seq: Option<SeqNum>,
    /// `tp->pushed_seq`.
    pub(crate) pushed_seq: SeqNum,
    /// `tp->snd_up`.
    pub(crate) snd_up: SeqNum,
    /// Initial send sequence.
    pub iss: SeqNum,
    /// Sent, unacknowledged segments (`tcp_rtx_queue`).
    pub rtx_queue: crate::skb_queue::SkbQueue<TxSkb>,
    /// Not yet sent (`sk_write_queue`).
    pub write_queue: crate::skb_queue::SkbQueue<TxSkb>,
    /// The payload sums of the unsent data, taken while `tcp_sendmsg` copied it
    /// (`skb->csum`; tcp/tx_csum.rs).
    pub(crate) tx_csum: tx_csum::TxCsum,
    /// `tp->mss_cache`: current effective send MSS (without options).
    pub(crate) mss_cache: u32,
    /// The route's path MTU learnt from ICMP frag-needed (0: the device MTU).
    pub(crate) pmtu: u32,
    /// `tp->advmss`.
    pub advmss: u32,
    /// `tp->rx_opt.mss_clamp`: MSS the peer accepts.
    pub(crate) mss_clamp: u32,
    /// TCP_MAXSEG set by the user.
    pub(crate) user_mss: u32,
    /// `tp->tcp_header_len`: 0 until `tcp_connect_init()` or the child's creation sets it.
    pub(crate) tcp_header_len: u32,
    /// Nagle off (TCP_NODELAY).
    pub(crate) nodelay: bool,
    /// TCP_CORK.
    pub(crate) cork: bool,
    /// TCP_QUICKACK was set.
    pub(crate) quickack_opt: bool,

    // ---- options ----
    /// Timestamps negotiated.
    pub(crate) tstamp_ok: bool,
    /// SACK negotiated.
    pub sack_ok: bool,
    /// Window scaling negotiated.
    pub(crate) wscale_ok: bool,
    /// `tp->rx_opt.ts_recent`.
    pub ts_recent: u32,
    /// `tp->rx_opt.ts_recent_stamp` (seconds).
    pub(crate) ts_recent_stamp: Instant,
    /// `tp->tsoffset`.
    pub(crate) tsoffset: u32,
    /// The last segment carried a timestamp (`saw_tstamp`), with its values.
    pub(crate) rcv_tsval: u32,
    /// `rx_opt.rcv_tsecr`.
    pub(crate) rcv_tsecr: u32,
    /// `rx_opt.saw_tstamp`.
    pub(crate) saw_tstamp: bool,

    // ---- RTT, RTO, congestion ----
    /// `tp->srtt_us` (<< 3).
    pub(crate) srtt_us: u32,
    /// `tp->mdev_us` (<< 2).
    pub(crate) mdev_us: u32,
    /// `tp->mdev_max_us`.
    pub(crate) mdev_max_us: u32,
    /// `tp->rttvar_us`.
    pub(crate) rttvar_us: u32,
    /// `tp->rtt_seq`.
    pub(crate) rtt_seq: SeqNum,
    /// `icsk->icsk_rto`.
    pub(crate) rto: Duration,
    /// `icsk->icsk_backoff`.
    pub backoff: u8,
    /// `icsk->icsk_retransmits`.
    pub retransmits: u8,
    /// `icsk->icsk_probes_out`.
    pub(crate) probes_out: u8,
    /// First retransmission time of the current episode (`retrans_stamp`).
    pub(crate) retrans_stamp: Option<Instant>,
    /// `tp->snd_cwnd`.
    pub snd_cwnd: u32,
    /// `tp->snd_ssthresh`.
    pub snd_ssthresh: u32,
    /// `tp->snd_cwnd_cnt`.
    pub(crate) snd_cwnd_cnt: u32,
    /// `tp->prior_cwnd`.
    pub(crate) prior_cwnd: u32,
    /// `tp->prr_delivered`: packets delivered since the cwnd reduction began (PRR).
    pub(crate) prr_delivered: u32,
    /// `tp->prr_out`: packets sent since the cwnd reduction began (PRR).
    pub(crate) prr_out: u32,
    /// `tp->packets_out`.
    pub packets_out: u32,
    /// `tp->retrans_out`.
    pub(crate) retrans_out: u32,
    /// `tp->sacked_out`.
    pub(crate) sacked_out: u32,
    /// `tp->lost_out`.
    pub(crate) lost_out: u32,
    /// `icsk->icsk_ca_state`.
    pub(crate) ca_state: cong::CaState,
    /// `tp->high_seq`.
    pub(crate) high_seq: SeqNum,
    /// Duplicate ACK counter for non-SACK recovery.
    pub(crate) dupacks: u32,
    /// `tp->frto`: F-RTO (RFC 5682) is probing whether the current RTO was spurious.
    pub(crate) frto: bool,
    /// `tp->reordering`.
    pub(crate) reordering: u32,
    /// The IP-level options (`inet_sock`: IP_TOS, IP_TTL, IP_FREEBIND, ...).
    pub(crate) inet: crate::ip::sockglue::InetOpts,
    /// `sk->sk_priority` (SO_PRIORITY; IP_TOS sets it from the TOS as `rt_tos2priority`).
    pub(crate) priority: u32,
    /// `SOCK_NOSPACE` (in `sk_socket->flags`): a writer or poller found the send buffer full,
    /// so freed space is announced (`tcp_check_space()`). Set by `tcp_poll` under a shared
    /// borrow, hence atomic.
    pub(crate) nospace: core::sync::atomic::AtomicBool,
    /// `icsk_accept_queue.rskq_defer_accept` (TCP_DEFER_ACCEPT), in SYN-ACK retransmissions.
    pub(crate) defer_accept: u8,
    /// `sk->sk_reuseport` (SO_REUSEPORT).
    pub(crate) reuseport: bool,
    /// `SOCK_LOCALROUTE` (SO_DONTROUTE): only directly reachable destinations.
    pub(crate) dontroute: bool,
    /// Congestion control (TCP_CONGESTION).
    pub(crate) ca_algo: cong::CongAlgo,
    /// `tp->reord_seen`: reordering events seen (RACK's window is 0 until one is).
    pub reord_seen: u32,
    /// `tp->undo_marker`: `snd_una` when the current recovery or loss episode began (`None`:
    /// nothing to undo).
    pub(crate) undo_marker: Option<SeqNum>,
    /// `tp->undo_retrans`: retransmissions of the episode not yet shown spurious by a DSACK
    /// (-1: none made).
    pub(crate) undo_retrans: i32,
    /// When the episode's first retransmission left (the Eifel check of `tcp_packet_delayed`).
    pub(crate) undo_stamp: Option<Instant>,
    /// `tp->prior_ssthresh`: ssthresh to restore on undo (0: none).
    pub(crate) prior_ssthresh: u32,
    /// `tp->rack.reo_wnd_steps`: the reordering window in quarters of min_rtt.
    pub rack_reo_wnd_steps: u32,
    /// `tp->rack.reo_wnd_persist`: recoveries left before the window shrinks back.
    pub(crate) rack_reo_wnd_persist: u32,
    /// `tp->rack.dsack_seen`.
    pub(crate) rack_dsack_seen: bool,
    /// `tp->rack.last_delivered`.
    pub(crate) rack_last_delivered: u32,
    /// `tp->dsack_dups`.
    pub dsack_dups: u32,
    /// Windowed minimum RTT (`tcp_min_rtt()`), µs; 0 until the first sample.
    pub(crate) min_rtt_us: u32,
    /// When `min_rtt_us` was sampled.
    pub(crate) min_rtt_stamp: Instant,
    /// CUBIC state.
    pub(crate) cubic: Cubic,
    /// BBR's state (tcp/bbr.rs) while BBR is the algorithm, from its `init`.
    pub bbr: Option<Box<bbr::Bbr>>,
    /// `tp->lsndtime`.
    pub(crate) lsndtime: Instant,
    /// `tp->rcv_tstamp`: time of the last ACK received.
    pub(crate) rcv_tstamp: Instant,

    // ---- timers ----
    /// Timer table: deadlines by `TcpTimer`.
    pub timers: timer::Timers,
    /// `tp->thin_lto` (TCP_THIN_LINEAR_TIMEOUTS): a thin stream's RTO is not backed off for
    /// its first `TCP_THIN_LINEAR_RETRIES` retransmissions.
    pub(crate) thin_lto: bool,
    /// The socket is a timewait sock (TIME_WAIT, or FIN_WAIT2 after tcp_time_wait()) counted in
    /// [`crate::netns::Netns::tw_count`] until it leaves that state.
    pub(crate) tw_counted: bool,
    /// The socket is an orphan counted in the stack's `tcp_orphan_count` (`tcp/orphan.rs`):
    /// from `tcp_close()` until it is destroyed or becomes a timewait sock.
    pub(crate) orphan_counted: bool,
    /// `tw->tw_entry_stamp`: when the socket became a timewait sock (`tcp_time_wait()`).
    pub tw_entry_stamp: Instant,
    /// `icsk->icsk_rto_min` (TCP_RTO_MIN_US; `net.ipv4.tcp_rto_min_us`), in jiffies' grain.
    pub(crate) rto_min: Duration,
    /// `tp->save_syn` (TCP_SAVE_SYN): 0 off, 1 the network header on, 2 from the MAC header.
    pub(crate) save_syn: u8,

    // ---- stats (tcp_info) ----
    /// `tp->bytes_received`.
    pub bytes_received: u64,
    /// `tp->bytes_acked`.
    pub(crate) bytes_acked: u64,
    /// `tp->segs_in`.
    pub(crate) segs_in: u32,
    /// `tp->segs_out`.
    pub(crate) segs_out: u32,
    /// `tp->data_segs_in`.
    pub(crate) data_segs_in: u32,
    /// `tp->data_segs_out`.
    pub(crate) data_segs_out: u32,
    /// `tp->total_retrans`.
    pub(crate) total_retrans: u32,
    /// `tp->bytes_sent`: payload bytes transmitted, retransmissions included.
    pub(crate) bytes_sent: u64,
    /// `tp->bytes_retrans`: payload bytes retransmitted.
    pub(crate) bytes_retrans: u64,
    /// `tp->rcv_ooopack`: segments received out of order.
    pub(crate) rcv_ooopack: u32,
    /// `tp->total_rto`: RTOs fired.
    pub(crate) total_rto: u16,
    /// `tp->total_rto_recoveries`: RTO episodes (the first RTO of each).
    pub(crate) total_rto_recoveries: u16,
    /// `tp->delivered`.
    pub delivered: u32,
    /// The delivery-rate estimator's state (tcp/rate.rs).
    pub(crate) rate: rate::TcpRate,
    /// `icsk->icsk_ack.lrcvtime` of data (tcpi_last_data_recv).
    pub(crate) last_data_recv: Instant,
    /// Connection start.
    pub(crate) start: Instant,

    // ---- listener ----
    /// State of a listening socket.
    pub listen: Option<Box<listen::ListenState>>,
    /// The listener that created this child (for accept-queue bookkeeping).
    pub(crate) napi_id: u32,
}

/// The rarely used part of a [`TcpSock`], boxed so that a socket that never uses it pays
/// one pointer (Linux spreads these over `struct sock`, `inet_connection_sock` and
/// `tcp_sock`; its per-socket slab pays for them always).
#[derive(Debug)]
pub struct TcpSockExt {
    /// SO_LINGER: `Some(secs)` when on; [`LINGER_FOREVER`] is `MAX_SCHEDULE_TIMEOUT`.
    pub(crate) linger: Option<u32>,
    /// `sk->sk_bind_phc`: the PHC index SOF_TIMESTAMPING_BIND_PHC bound.
    pub(crate) bind_phc: i32,
    /// `sk->sk_incoming_cpu` (SO_INCOMING_CPU), -1 = unset.
    pub(crate) incoming_cpu: i32,
    /// `sk->sk_max_pacing_rate` (SO_MAX_PACING_RATE), bytes/s; `u64::MAX` = none.
    pub(crate) max_pacing_rate: u64,
    /// SO_BUSY_POLL_BUDGET.
    pub(crate) busy_poll_budget: u16,
    /// `icsk->icsk_user_timeout` (TCP_USER_TIMEOUT), ms; 0 = none.
    pub(crate) user_timeout_ms: u32,
    /// Keepalive settings (TCP_KEEPIDLE, KEEPINTVL, KEEPCNT), 0 = sysctl.
    pub(crate) keepalive_time: u32,
    /// TCP_KEEPINTVL.
    pub(crate) keepalive_intvl: u32,
    /// TCP_KEEPCNT.
    pub(crate) keepalive_probes: u8,
    /// `tp->linger2` (TCP_LINGER2) in seconds: 0 = `net.ipv4.tcp_fin_timeout`, -1 = a
    /// negative value (an orphan in FIN_WAIT2 is reset at once), at most
    /// `TCP_FIN_TIMEOUT_MAX` (120 s).
    pub(crate) linger2: i32,
    /// `tp->notsent_lowat` (TCP_NOTSENT_LOWAT); 0 = `net.ipv4.tcp_notsent_lowat`.
    pub(crate) notsent_lowat: u32,
    /// `icsk_accept_queue.fastopenq.max_qlen` (TCP_FASTOPEN).
    pub(crate) fastopen_max_qlen: i32,
    /// `tp->fastopen_no_cookie` (TCP_FASTOPEN_NO_COOKIE).
    pub(crate) fastopen_no_cookie: bool,
    /// SYN retries (TCP_SYNCNT).
    pub(crate) syn_retries: u8,
    /// `sk_rcvtimeo` (None = forever).
    pub(crate) rcvtimeo: Option<Duration>,
    /// `sk_sndtimeo`.
    pub(crate) sndtimeo: Option<Duration>,
    /// `icsk->icsk_rto_max` (TCP_RTO_MAX_MS; 120 s).
    pub(crate) rto_max: Duration,
    /// `icsk->icsk_delack_max` (TCP_DELACK_MAX_US; `TCP_DELACK_MAX` at tcp_init_sock(): Linux 6.18
    /// has no sysctl for it).
    pub(crate) delack_max: Duration,
    /// TX timestamp requests on queued skbs (tcp/timestamping.rs).
    pub(crate) ts_reqs: VecDeque<timestamping::TsReq>,
    /// SO_TXTIME's (clockid, flags), when set.
    pub(crate) txtime: Option<(i32, u32)>,
    /// MSG_ZEROCOPY sends not yet completed: (id, end of their bytes).
    pub(crate) zc_pending: VecDeque<(u32, SeqNum)>,
    /// SO_OOBINLINE, SO_DEBUG ... other boolean socket options stored for getsockopt.
    pub(crate) sockopt_misc: std::collections::BTreeMap<(i32, i32), i32>,
    /// `sk_error_queue`: IP_RECVERR reports and MSG_ZEROCOPY completions, read with
    /// `recvmsg(MSG_ERRQUEUE)`.
    pub(crate) error_queue: std::collections::VecDeque<crate::ip::recverr::SockExterr>,
    /// `tp->saved_syn`: the SYN's headers, for one TCP_SAVED_SYN read on the child.
    pub(crate) saved_syn: Option<Bytes>,
    /// The socket's TCP_FASTOPEN_KEY (`icsk_accept_queue.fastopenq.ctx`): 16 or 32 bytes.
    pub(crate) fastopen_key: Option<Vec<u8>>,
}

/// What [`TcpSock::ext`] reads on a socket that never wrote its [`TcpSockExt`].
static EMPTY_EXT: TcpSockExt = TcpSockExt::new();

impl TcpSockExt {
    /// `tcp_init_sock()`'s values.
    pub(crate) const fn new() -> TcpSockExt {
        TcpSockExt {
            linger: None,
            bind_phc: 0,
            incoming_cpu: -1,
            max_pacing_rate: u64::MAX,
            busy_poll_budget: 0,
            user_timeout_ms: 0,
            keepalive_time: 0,
            keepalive_intvl: 0,
            keepalive_probes: 0,
            linger2: 0,
            notsent_lowat: 0,
            fastopen_max_qlen: 0,
            fastopen_no_cookie: false,
            syn_retries: 0,
            rcvtimeo: None,
            sndtimeo: None,
            rto_max: TCP_RTO_MAX,
            delack_max: TCP_DELACK_MAX,
            ts_reqs: VecDeque::new(),
            txtime: None,
            zc_pending: VecDeque::new(),
            sockopt_misc: std::collections::BTreeMap::new(),
            error_queue: VecDeque::new(),
            saved_syn: None,
            fastopen_key: None,
        }
    }
}

impl Default for TcpSockExt {
    fn default() -> TcpSockExt {
        TcpSockExt::new()
    }
}

/// SO_LINGER's `MAX_SCHEDULE_TIMEOUT` (an `l_linger` of `LONG_MAX / HZ` seconds or more,
/// negative ones included, as the kernel reads `l_linger` as unsigned long).
pub(crate) const LINGER_FOREVER: u32 = u32::MAX;

/// `sock_gen_cookie()`: cookies come from one process-wide counter (Linux: one per boot).
fn next_sock_cookie() -> u64 {
    static NEXT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed)
}

impl TcpSock {
    /// The receive side's memory and window state in one line, for a diagnostic report (what
    /// `utcp soak` prints for a socket that never finished).
    pub fn rx_summary(&self) -> String {
        format!(
            "rcvbuf {} rmem_alloc {} rcv_queue {} ofo {} rcv_ssthresh {} window_clamp {} ack_pending {:#x} \
             sndbuf {} wmem_queued {} tcp_mem {} pages{}",
            self.rcvbuf,
            self.rmem_alloc,
            self.receive_queue.len(),
            self.ofo_queue.len(),
            self.rcv_ssthresh,
            self.window_clamp,
            self.ack.pending,
            self.sndbuf,
            self.wmem_queued,
            self.proto_mem.allocated(),
            if self.tcp_under_memory_pressure() { " (pressure)" } else { "" },
        )
    }

    /// The rarely used state, empty until a write made it ([`TcpSock::ext_mut`]).
    #[inline]
    pub(crate) fn ext(&self) -> &TcpSockExt {
        self.ext.as_deref().unwrap_or(&EMPTY_EXT)
    }
    /// The rarely used state, allocated here on first use.
    #[inline]
    pub(crate) fn ext_mut(&mut self) -> &mut TcpSockExt {
        self.ext.get_or_insert_with(Default::default)
    }
    /// The options of the rarely used state that a child (`sk_clone_lock()`) or a listener's
    /// queue copy ([`TcpSock::sync_listener_opts`]) takes from `from`: allocates nothing when
    /// neither has any.
    pub(crate) fn inherit_ext_opts(&mut self, from: &TcpSock) {
        if from.ext.is_none() && self.ext.is_none() {
            return;
        }
        let f = from.ext();
        let e = self.ext_mut();
        e.sockopt_misc = f.sockopt_misc.clone();
        e.linger = f.linger;
        e.bind_phc = f.bind_phc;
        e.incoming_cpu = f.incoming_cpu;
        e.max_pacing_rate = f.max_pacing_rate;
        e.busy_poll_budget = f.busy_poll_budget;
        e.user_timeout_ms = f.user_timeout_ms;
        e.keepalive_time = f.keepalive_time;
        e.keepalive_intvl = f.keepalive_intvl;
        e.keepalive_probes = f.keepalive_probes;
        e.linger2 = f.linger2;
        e.notsent_lowat = f.notsent_lowat;
        e.rcvtimeo = f.rcvtimeo;
        e.sndtimeo = f.sndtimeo;
        e.rto_max = f.rto_max;
        e.delack_max = f.delack_max;
    }
    /// The rarely used state if it exists (to clear or drain it without allocating it).
    #[inline]
    pub(crate) fn ext_if_any(&mut self) -> Option<&mut TcpSockExt> {
        self.ext.as_deref_mut()
    }
    /// A fresh socket in `TCP_CLOSE` (`tcp_init_sock`).
    pub fn new(net: &Netns, now: Instant) -> TcpSock {
        let s = &net.sysctl;
        // sk_sockets_allocated_inc() of tcp_init_sock().
        net.tcp_mem.sockets_allocated.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        TcpSock {
            state: TcpState::Close,
            family: crate::uapi::AF_INET,
            inet6: crate::ip::ipv6_sockglue::Ipv6Pinfo::new(net),
            txhash: 0,
            timeout_rehash: 0,
            saddr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            sport: 0,
            daddr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dport: 0,
            rcvbuf: s.tcp_rmem.idx(1) as u32,
            sndbuf: s.tcp_wmem.idx(1) as u32,
            userlocks: 0,
            rmem_alloc: 0,
            mem_charged: 0,
            proto_mem: net.tcp_mem.clone(),
            wmem_queued: 0,
            err: None,
            err_soft: None,
            shutdown: 0,
            done: false,
            rcvlowat: 1,
            mark: 0,
            cookie: next_sock_cookie(),
            txrehash: s.txrehash.get() as u8,
            filter_locked: false,
            tstamp_new: false,
            tsflags: 0,
            tskey: 0,
            bound_dev_if: 0,
            pacing_rate: u64::MAX,
            pacing_needed: false,
            wstamp: Instant::ZERO,
            zerocopy: false,
            zckey: 0,
            urginline: false,
            peek_off: -1,
            rx_tstamp_opt: 0,
            ll_usec: s.busy_read.get() as u32,
            prefer_busy_poll: false,
            reuseaddr: false,
            keepalive: false,
            orphan: false,
            sk_socket: None,
            bound: false,
            listen_backlog: 0,
            ext: None,
            rcv_nxt: SeqNum(0),
            copied_seq: SeqNum(0),
            rcv_wup: SeqNum(0),
            rcv_wnd: 0,
            rcv_ssthresh: 0,
            window_clamp: 0,
            rcv_wscale: 0,
            scaling_ratio: TCP_DEFAULT_SCALING_RATIO,
            irs: SeqNum(0),
            rcvq_space: RcvqSpace::default(),
            rcv_rtt_est: RcvRttEst::default(),
            receive_queue: Default::default(),
            ofo_queue: Default::default(),
            selective_acks: Vec::new(),
            dsack: None,
            dsack_start: None,
            urg_data: 0,
            urg_seq: SeqNum(0),
            ack: IcskAck { ato: Duration::ZERO, rcv_mss: TCP_MSS_DEFAULT, ..Default::default() },
            recvmsg_inq: false,
            compressed_ack: 0,
            snd_una: SeqNum(0),
            snd_nxt: SeqNum(0),
            snd_wnd: 0,
            snd_wl1: SeqNum(0),
            max_window: 0,
            snd_wscale: 0,
            write_seq: SeqNum(0),
            pushed_seq: SeqNum(0),
            rack_xmit: Instant::ZERO,
            rack_tx_order: 0,
            tx_order_next: 1,
            rack_rtt_us: 0,
            rack_advanced: false,
            tlp_high_seq: None,
            snd_sml: SeqNum(0),
            syn_tsval: 0,
            last_oow_ack_time: None,
            compressed_ack_rcv_nxt: SeqNum(0),
            dup_ack_counter: 0,
            highest_sack: SeqNum(0),
            snd_up: SeqNum(0),
            iss: SeqNum(0),
            rtx_queue: Default::default(),
            write_queue: Default::default(),
            tx_csum: Default::default(),
            mss_cache: TCP_MSS_DEFAULT,
            pmtu: 0,
            advmss: 0,
            // tcp_init_sock(): RFC 1122's default until a SYN says otherwise.
            mss_clamp: TCP_MSS_DEFAULT,
            user_mss: 0,
            tcp_header_len: 0,
            nodelay: false,
            cork: false,
            quickack_opt: false,
            tstamp_ok: false,
            sack_ok: false,
            wscale_ok: false,
            ts_recent: 0,
            ts_recent_stamp: Instant::ZERO,
            tsoffset: 0,
            rcv_tsval: 0,
            rcv_tsecr: 0,
            saw_tstamp: false,
            srtt_us: 0,
            mdev_us: (TCP_TIMEOUT_INIT.as_micros() as u32),
            mdev_max_us: 0,
            rttvar_us: (TCP_TIMEOUT_INIT.as_micros() as u32),
            rtt_seq: SeqNum(0),
            rto: TCP_TIMEOUT_INIT,
            backoff: 0,
            retransmits: 0,
            probes_out: 0,
            retrans_stamp: None,
            snd_cwnd: TCP_INIT_CWND,
            snd_ssthresh: u32::MAX >> 1,
            snd_cwnd_cnt: 0,
            prior_cwnd: 0,
            prr_delivered: 0,
            prr_out: 0,
            packets_out: 0,
            retrans_out: 0,
            sacked_out: 0,
            lost_out: 0,
            ca_state: cong::CaState::Open,
            high_seq: SeqNum(0),
            dupacks: 0,
            frto: false,
            reordering: s.tcp_reordering.get() as u32,
            inet: Default::default(),
            priority: 0,
            nospace: core::sync::atomic::AtomicBool::new(false),
            defer_accept: 0,
            reuseport: false,
            dontroute: false,
            // tcp_assign_congestion_control(): the namespace default.
            ca_algo: cong::CongAlgo::from_sysctl(s.tcp_congestion_control.get()),
            reord_seen: 0,
            undo_marker: None,
            undo_retrans: -1,
            undo_stamp: None,
            prior_ssthresh: 0,
            rack_reo_wnd_steps: 1,
            rack_reo_wnd_persist: 0,
            rack_dsack_seen: false,
            rack_last_delivered: 0,
            dsack_dups: 0,
            min_rtt_us: 0,
            min_rtt_stamp: Instant::ZERO,
            cubic: Cubic::default(),
            bbr: None,
            lsndtime: now,
            rcv_tstamp: now,
            timers: timer::Timers::NONE,
            thin_lto: false,
            tw_counted: false,
            orphan_counted: false,
            tw_entry_stamp: Instant::ZERO,
            rto_min: jiffies_from_us(net.sysctl.tcp_rto_min_us.get()),
            save_syn: 0,
            bytes_received: 0,
            bytes_acked: 0,
            segs_in: 0,
            segs_out: 0,
            data_segs_in: 0,
            data_segs_out: 0,
            total_retrans: 0,
            bytes_sent: 0,
            bytes_retrans: 0,
            rcv_ooopack: 0,
            total_rto: 0,
            total_rto_recoveries: 0,
            delivered: 0,
            rate: rate::TcpRate::default(),
            last_data_recv: now,
            start: now,
            listen: None,
            napi_id: 0,
        }
    }

    /// Moves to `state` (`tcp_set_state`), keeping CurrEstab right.
    pub(crate) fn set_state(&mut self, ctx: &mut Ctx<'_>, state: TcpState) {
        let old = self.state;
        if old == state {
            return;
        }
        tracing::trace!(target: "inet_sock_set_state", old = old.name(), new = state.name());
        if state == TcpState::Established {
            ctx.net.mib.tcp_inc(TcpMib::CurrEstab);
        } else if old == TcpState::Established {
            ctx.net.mib.tcp_dec(TcpMib::CurrEstab);
        }
        if state == TcpState::Close && matches!(old, TcpState::CloseWait | TcpState::Established) {
            ctx.net.mib.tcp_inc(TcpMib::EstabResets);
        }
        if self.tw_counted && !matches!(state, TcpState::TimeWait | TcpState::FinWait2) {
            // inet_twsk_kill() → inet_twsk_put(): the timewait sock is gone.
            self.tw_counted = false;
            ctx.net.tw_count.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        if state == TcpState::Close {
            // inet_csk_destroy_sock() follows for an orphan in CLOSE.
            self.tcp_orphan_gone();
        }
        self.state = state;
        ctx.ev.state_change = true;
    }

    /// `sk->sk_socket` is set and the socket is not orphaned (`sock_orphan()` clears it).
    pub(crate) fn has_socket(&self) -> bool {
        !self.orphan && self.sk_socket.as_ref().is_none_or(|f| f.load(std::sync::atomic::Ordering::Acquire))
    }

    /// `tcp_receive_window()`: how much of the advertised window is left.
    pub(crate) fn receive_window(&self) -> u32 {
        let win = (self.rcv_wup + self.rcv_wnd).0.wrapping_sub(self.rcv_nxt.0) as i32;
        win.max(0) as u32
    }

    /// `tcp_win_from_space()`.
    pub(crate) fn win_from_space(&self, space: i64) -> i64 {
        (space * self.scaling_ratio as i64) >> TCP_RMEM_TO_WIN_SCALE
    }

    /// `tcp_space_from_win()`.
    pub(crate) fn space_from_win(&self, win: i64) -> i64 {
        (win << TCP_RMEM_TO_WIN_SCALE) / self.scaling_ratio.max(1) as i64
    }

    /// `tcp_space()`: window available from free receive buffer.
    pub(crate) fn space(&self) -> i64 {
        self.win_from_space(self.rcvbuf as i64 - self.rmem_alloc as i64)
    }

    /// `tcp_full_space()`.
    pub(crate) fn full_space(&self) -> i64 {
        self.win_from_space(self.rcvbuf as i64)
    }

    /// `tcp_inq()`: bytes readable now, stopping at an unread urgent byte; a received FIN is
    /// not counted.
    pub(crate) fn inq(&self) -> u32 {
        if matches!(self.state, TcpState::SynSent | TcpState::SynRecv | TcpState::Listen) {
            return 0;
        }
        if self.urginline
            || self.urg_data == 0
            || self.urg_seq.before(self.copied_seq)
            || !self.urg_seq.before(self.rcv_nxt)
        {
            let mut answ = self.rcv_nxt.diff(self.copied_seq);
            if answ > 0 && self.done {
                answ -= 1;
            }
            answ
        } else {
            self.urg_seq.diff(self.copied_seq)
        }
    }

    /// `tcp_inq_hint()`: like [`TcpSock::inq`] for TCP_CM_INQ, but 1 after a FIN so that the
    /// reader goes on to read the EOF.
    pub(crate) fn inq_hint(&self) -> u32 {
        let inq = self.rcv_nxt.diff(self.copied_seq);
        if inq == 0 && self.done {
            1
        } else {
            inq
        }
    }

    /// `tcp_stream_is_thin()`: too few packets in flight to trigger fast retransmit, and
    /// past the initial slow start.
    pub(crate) fn tcp_stream_is_thin(&self) -> bool {
        self.packets_out < 4 && self.snd_ssthresh < (u32::MAX >> 1)
    }

    /// `tcp_delack_max()`: TCP_DELACK_MAX_US, never above the socket's RTO floor.
    pub(crate) fn tcp_delack_max(&self) -> Duration {
        self.ext().delack_max.min(self.rto_min)
    }

    /// `tcp_packets_in_flight()`.
    pub(crate) fn packets_in_flight(&self) -> u32 {
        (self.packets_out + self.retrans_out).saturating_sub(self.sacked_out + self.lost_out)
    }

    /// Arms a timer.
    pub(crate) fn reset_timer(&mut self, t: TcpTimer, at: Instant) {
        self.timers.set(t, Some(at));
    }

    /// Disarms a timer.
    pub(crate) fn clear_timer(&mut self, t: TcpTimer) {
        self.timers.set(t, None);
    }

    /// The earliest armed timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Current time as a TCP timestamp (ms clock, `tcp_time_stamp_ms`) plus `tsoffset`.
    pub(crate) fn tcp_time_stamp(&self, now: Instant) -> u32 {
        (now.millis() as u32).wrapping_add(self.tsoffset)
    }

    /// Whether the user may still read data or a FIN.
    pub fn readable_state(&self) -> bool {
        !matches!(self.state, TcpState::Listen | TcpState::SynSent | TcpState::SynRecv)
    }
}
