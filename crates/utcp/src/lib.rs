//! utcp: a userspace TCP/IP stack whose sockets behave like Linux's — the same bytes, return
//! values, errno and packets on the wire — built around the receive path of
//! `recv()` → `sock_recvmsg` → `inet_recvmsg` → `tcp_recvmsg`.
//!
//! utcp does no I/O of its own below [`host`]: packets enter through a device's receive hook
//! (`StackCore::netif_receive`) and leave through [`netdev::NetDevice::xmit`]; time is handed in.
//!
//! ```text
//!   syscall/   recv, recvmsg, send ... fd table (EBADF, ENOTSOCK), O_NONBLOCK, cmsgs
//!   stack      StackCore: hash tables, ports, timer heap, device glue (implements SockHost)
//!   socket/    sock_recvmsg (+ security hook) -> proto_ops -> proto; struct sock: lock,
//!              backlog, prequeue, wait queue, busy polling; SockHost, its view of the stack
//!   tcp/       tcp_recvmsg, input, data queue, ofo queue, urgent, output, timers, CUBIC
//!   ip/        IPv4 in/out, checksums
//!   wire/      zero-copy packet views and parsed representations
//!   netdev/    device trait, softnet queue, memlink (in-memory wire), pcap decorator
//!   host/      real clock and threads (timers, NAPI)
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod errno;
pub mod host;
pub mod ip;
pub mod mib;
pub mod netdev;
pub mod netns;
pub mod page_frag;
pub mod ports;
pub mod seq;
pub mod sim;
pub mod siphash;
pub mod skb;
pub mod skb_queue;
pub mod socket;
pub mod stack;
pub mod sync;
pub mod syscall;
pub mod sysctl;
pub mod tcp;
pub mod time;
#[cfg(feature = "tokio")]
pub mod tokio;
#[cfg(feature = "tokio")]
mod tokio_split;
#[cfg(feature = "tokio")]
mod tokio_wait;
pub mod uapi;
pub mod wire;

pub use errno::{Errno, SysResult};
pub use syscall::Stack;
