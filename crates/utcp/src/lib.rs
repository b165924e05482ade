//! utcp: a userspace TCP/IP stack whose sockets behave like Linux's — the same bytes, return
//! values, errno and packets on the wire — built around the receive path of
//! `recv()` → `sock_recvmsg` → `inet_recvmsg` → `tcp_recvmsg`.
//!
//! utcp does no I/O of its own below its host threads: packets enter through a device's
//! receive hook (the stack's `netif_receive`) and leave through [`netdev::NetDevice::xmit`];
//! time is handed in ([`time::Clock`]).
//!
//! # Where to start
//!
//! * [`api::memlink_pair`] gives two stacks ([`api::Host`]) joined by an in-memory wire, with
//!   their timer and NAPI threads; [`sim::SimNet`] the same on a virtual clock.
//! * [`Stack`] is the fd-level socket API, call for call Linux's (`socket`, `bind`, `connect`,
//!   `recvmsg`, `setsockopt`, `epoll_wait`, ...), with Linux's [`Errno`]s.
//! * [`api::TcpListener`] / [`api::TcpStream`] wrap it for `std::io::Read`/`Write`; with the
//!   `tokio` feature, `utcp::tokio` has `AsyncRead`/`AsyncWrite` sockets woken by the stack
//!   itself.
//! * [`mib`] holds Linux's counters (nstat names), [`sysctl`] the sysctls.
//! * `crates/utcp/examples/` (`echo`, `echo_tokio`, `lossy_transfer`) are complete programs.
//!
//! # The root surface
//!
//! A program needs only what the crate root re-exports: [`memlink_pair`], [`Host`],
//! [`LinkConfig`], [`ADDR_A`]/[`ADDR_B`] (and the IPv6 pair), [`TcpListener`]/[`TcpStream`],
//! [`Stack`] (its counters by [`Stack::mib`], its sysctls by [`Stack::sysctl`]),
//! [`Errno`]/[`SysResult`], [`SimNet`], [`Clock`]/[`Duration`]. The documented modules are
//! the rest of the stable surface: [`syscall`] (the fd-level calls and their argument types),
//! [`uapi`] (Linux's constants), [`mib`], [`sysctl`], [`netdev`] (the device trait, memlink,
//! pcap, GSO), [`api`], [`sim`], [`time`], [`errno`] and (feature `tokio`) `tokio`.
//!
//! # Internals
//!
//! The protocol modules (`tcp`, `socket`, `stack`, `ip`, `wire`, `skb`, ...) are
//! `#[doc(hidden)]`: public only so that utcp's own crates (the CLI, the packetdrill runner,
//! the fuzz harnesses, the LD_PRELOAD library) and its integration tests can reach in. They
//! are not part of the API and change without a semver bump. Inside them, only what those
//! crates use is `pub`; everything else is `pub(crate)`, and the crate builds with
//! `#![warn(unreachable_pub)]`.
//!
//! # Layers
//!
//! ```text
//!   syscall/   recv, recvmsg, send ... fd table (EBADF, ENOTSOCK), O_NONBLOCK, cmsgs, poll, epoll
//!   stack      StackCore: hash tables, ports, timer heap, device glue (implements SockHost)
//!   socket/    sock_recvmsg (+ security hook) -> proto_ops -> proto; struct sock: lock,
//!              backlog, prequeue, wait queue, busy polling; SockHost, its view of the stack
//!   tcp/       tcp_recvmsg, input, data queue, ofo queue, urgent, output, timers, CUBIC
//!   ip/        IPv4 in/out, options, ICMP, the error queue; IPv6 and ICMPv6
//!   wire/      zero-copy packet views and parsed representations
//!   netdev/    device trait, softnet queue, memlink (in-memory wire), pcap decorator, GSO
//!   host/      real clock and threads (timers, NAPI)
//!   tokio      (feature `tokio`) async sockets on the sockets' wait queues
//! ```
//!
//! # The receive path
//!
//! A packet and a `recv()` meet at the socket: packet input runs in whatever thread the device
//! delivers in (the sender's, for memlink's inline mode; a NAPI thread; a busy-polling reader)
//! and takes only the socket's spinlock (`slock`); the reader owns the socket (`lock_sock`)
//! while it copies. What arrives while the socket is owned waits on the backlog; what arrives
//! while a reader sleeps for it goes on its prequeue.
//!
//! ```text
//!  A packet                                              A recv()
//!  ────────                                              ────────
//!  device: memlink / TUN                  netdev/        Stack::recv(fd, buf, len, flags)     syscall/mod.rs
//!   │ RxHook, or NAPI poll                                │ __sys_recvfrom: fd lookup (EBADF,
//!   │ (net_rx_action_napi, budget)                        │ ENOTSOCK), O_NONBLOCK → MSG_DONTWAIT  syscall/ops.rs
//!  StackCore::netif_receive               stack.rs        sock_recvmsg: security hook           socket/mod.rs
//!   │ (netif_receive_skb)                                 │
//!  ip_rcv_tcp → ip_rcv_core: header,      ip/mod.rs       inet_recvmsg (proto_ops)              socket/proto_ops.rs
//!   │ length and checksum checks                          │
//!  tcp_v4_rcv: established lookup,        tcp/ipv4.rs     tcp_recvmsg (proto): busy poll,       tcp/recvmsg.rs
//!   │ then listener, else RST                             │ lock_sock
//!  Sock::rcv_softirq (under slock)        socket/sock.rs  tcp_recvmsg_locked: copy from the
//!   │                                                     │ receive queue (MSG_PEEK, urgent
//!   ├─ socket owned ──────► backlog ─────────────────────►│ mark, SO_RCVLOWAT target)
//!   │                       (drained by release_sock)     │ nothing yet: sk_wait_data —
//!   ├─ a reader waits ────► prequeue ────────────────────►│ release_sock drains the backlog,
//!   │  (ucopy.task)         (tcp_prequeue_process)        │ sleep as ucopy.task until woken
//!   └─ otherwise now:                                     │ tcp_cleanup_rbuf: ACK, window
//!      tcp_v4_do_rcv → tcp_rcv_established tcp/input.rs   │ update
//!       ├─ in order ──► receive queue ───────────────────►│ release_sock: drain the backlog
//!       │   (tcp_queue_rcv, tcp_data_queue)  tcp/data_queue.rs
//!       └─ out of order ──► ofo queue (tcp_data_queue_ofo,  tcp/ofo_queue.rs
//!           moved over by tcp_ofo_queue once the hole fills)
//!      sk_data_ready → Sock::wake_all: readers asleep in sk_wait_data, poll/epoll entries,
//!      utcp::tokio tasks (all on the socket's wait queue)
//! ```
//!
//! The backlog and the prequeue are processed by the reader's own thread, through the same
//! `tcp_v4_do_rcv` (`release_sock`, `tcp_prequeue_process`); frames a socket builds on any of
//! these paths go to the device in build order before its locks are dropped and are delivered
//! after (docs/ARCHITECTURE.md, "Transmit order").
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod api;
pub mod errno;
#[doc(hidden)]
pub mod host;
#[doc(hidden)]
pub mod ip;
pub mod mib;
pub mod netdev;
#[doc(hidden)]
pub mod netns;
#[doc(hidden)]
pub mod page_frag;
#[doc(hidden)]
pub mod ports;
#[doc(hidden)]
pub mod seq;
pub mod sim;
#[doc(hidden)]
pub mod siphash;
#[doc(hidden)]
pub mod skb;
#[doc(hidden)]
pub mod skb_queue;
#[doc(hidden)]
pub mod socket;
#[doc(hidden)]
pub mod stack;
#[doc(hidden)]
pub mod sync;
pub mod syscall;
pub mod sysctl;
#[doc(hidden)]
pub mod tcp;
pub mod time;
#[cfg(feature = "tokio")]
pub mod tokio;
#[cfg(feature = "tokio")]
mod tokio_split;
#[cfg(feature = "tokio")]
mod tokio_wait;
pub mod uapi;
#[doc(hidden)]
pub mod wire;

pub use api::{memlink_pair, Host, TcpListener, TcpStream, ADDR6_A, ADDR6_B, ADDR_A, ADDR_B};
pub use errno::{Errno, SysResult};
pub use netdev::memlink::LinkConfig;
pub use sim::SimNet;
pub use syscall::Stack;
pub use time::{Clock, Duration};
