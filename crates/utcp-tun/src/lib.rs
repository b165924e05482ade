//! A Linux TUN device for utcp (drivers/net/tun.c seen from userspace): [`TunDevice`]
//! implements [`utcp::netdev::NetDevice`], so `HostThreads` drives it like any other device.
//!
//! * **Plain mode** (`IFF_TUN | IFF_NO_PI`): one IPv4 packet per `read`/`write`.
//! * **Offload mode** (`IFF_VNET_HDR` + `TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4)`): every packet
//!   carries a `struct virtio_net_hdr`. The kernel hands us GRO-sized TCP packets (up to 64 KiB,
//!   `gso_size` = the sender's MSS) with a partial checksum, which the device completes before
//!   the stack sees them; the stack takes each as one large segment, as Linux's TCP does after
//!   GRO (`Frame::gso_size` feeds `tcp_measure_rcv_mss`). On transmit, runs of full-sized
//!   segments of one flow queued together are written as one 64 KiB GSO super-packet
//!   (`VIRTIO_NET_HDR_GSO_TCPV4`, partial checksum), which the kernel segments — a batch of up to
//!   45 segments in one `writev`; TCP's own super-segments (it builds them for the
//!   `gso_max_size` this mode advertises) are written as they are. If the kernel refuses the
//!   offloads the device falls back to plain mode ([`TunDevice::offload`] tells which one is
//!   in force), where `dev_queue_xmit` has already cut TCP's super-segments in software
//!   (`utcp::netdev::gso`).
//!
//! Transmit keeps the stack's order rule: `xmit` only queues (it is called under the socket
//! lock); `flush_tx` writes the queue in FIFO order, one thread at a time.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod sys;
pub mod vnet;

use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use utcp::netdev::{DevStats, NetDevice, RxHook, TxTap};
use utcp::skb::Frame;
use vnet::VirtioNetHdr;

/// Largest packet the device reads: 64 KiB of IP datagram plus the virtio header.
const RX_MAX: usize = 65_536 + vnet::HDR_LEN;
/// Frames waiting to be written before `xmit` drops (`txqueuelen` of a tun device is 500; a
/// full congestion window is queued in one go here, so allow more).
const TX_QUEUE_LIMIT: usize = 8192;
/// Receive buffers are carved out of chunks this big (one allocation per ~16 large packets);
/// a chunk is freed when the last segment cut from it is consumed.
const RX_CHUNK: usize = 1 << 20;

/// How to open the device.
#[derive(Clone, Debug)]
pub struct TunConfig {
    /// Interface name (an existing persistent device, or a new one).
    pub name: String,
    /// Ask for IFF_VNET_HDR + checksum/TSO offloads (falls back to plain mode when refused).
    pub offload: bool,
    /// The MTU the stack uses (the kernel side's interface MTU).
    pub mtu: u32,
    /// Raise the device's `txqueuelen` (the ring the kernel fills for this reader) to at
    /// least this many packets; 0 leaves it alone. See [`DEFAULT_TXQUEUELEN`].
    pub txqueuelen: u32,
}

/// The `txqueuelen` [`TunDevice::open`] raises a device to by default. A tun device drops
/// what finds its ring full (the kernel default is 500 packets), and a TCP sender's window
/// toward utcp can hold more than that: `tcp_rmem[2]` (6 MiB) is about 4,300 full-sized
/// segments at MTU 1500. With a ring larger than any window the kernel can have in flight,
/// a reader that falls behind slows the sender (its ACKs come later) instead of losing
/// packets.
pub const DEFAULT_TXQUEUELEN: u32 = 8192;

/// Device counters (`ip -s link` style, plus offload counts).
#[derive(Debug, Default)]
pub struct TunStats {
    /// Packets read from the kernel.
    pub rx_packets: AtomicU64,
    /// Bytes read (IP datagrams, without the virtio header).
    pub rx_bytes: AtomicU64,
    /// Packets read that were GRO super-packets (`gso_type` TCPV4).
    pub rx_gso: AtomicU64,
    /// Packets written to the kernel.
    pub tx_packets: AtomicU64,
    /// Bytes written (IP datagrams).
    pub tx_bytes: AtomicU64,
    /// GSO super-packets written (each counts once in `tx_packets`).
    pub tx_gso: AtomicU64,
    /// Segments that went out inside GSO super-packets.
    pub tx_gso_segs: AtomicU64,
    /// Received packets dropped (unusable virtio header, read error).
    pub rx_dropped: AtomicU64,
    /// Frames dropped on transmit (queue full, write error).
    pub tx_dropped: AtomicU64,
    /// Received packets of a protocol utcp does not run (neither IPv4 nor IPv6), dropped
    /// before the stack as `netif_receive_skb` does (`rx_nohandler`).
    pub rx_nohandler: AtomicU64,
}

#[derive(Default)]
struct TxQ {
    q: VecDeque<Frame>,
    draining: bool,
}

/// A TUN device (see the crate docs).
pub struct TunDevice {
    fd: sys::TunFd,
    wake: sys::EventFd,
    offload: bool,
    mtu: u32,
    hook: RwLock<Option<RxHook>>,
    /// A capture of what is written (`set_tx_tap`).
    tap: RwLock<Option<TxTap>>,
    txq: Mutex<TxQ>,
    rx: Mutex<BytesMut>,
    /// Counters.
    pub stats: TunStats,
}

impl TunDevice {
    /// Opens the device (see [`TunConfig`]).
    pub fn open(cfg: &TunConfig) -> io::Result<TunDevice> {
        let plain = sys::IFF_TUN | sys::IFF_NO_PI;
        let (fd, offload) = if cfg.offload {
            let fd = sys::TunFd::open(&cfg.name, plain | sys::IFF_VNET_HDR)?;
            let ok = fd.set_vnet_hdr_sz(vnet::HDR_LEN as i32).is_ok()
                && fd.set_offload(sys::TUN_F_CSUM | sys::TUN_F_TSO4).is_ok();
            if ok {
                (fd, true)
            } else {
                drop(fd);
                (Self::open_plain(&cfg.name)?, false)
            }
        } else {
            (Self::open_plain(&cfg.name)?, false)
        };
        if cfg.txqueuelen > 0 && fd.txqueuelen()? < cfg.txqueuelen {
            fd.set_txqueuelen(cfg.txqueuelen)?;
        }
        Ok(TunDevice {
            fd,
            wake: sys::EventFd::new()?,
            offload,
            mtu: cfg.mtu,
            hook: RwLock::new(None),
            tap: RwLock::new(None),
            txq: Mutex::new(TxQ::default()),
            rx: Mutex::new(BytesMut::with_capacity(RX_CHUNK)),
            stats: TunStats::default(),
        })
    }

    /// Plain mode. A persistent device keeps the offloads an earlier reader asked for, and
    /// would go on sending super-packets with partial checksums: turn them off.
    fn open_plain(name: &str) -> io::Result<sys::TunFd> {
        let fd = sys::TunFd::open(name, sys::IFF_TUN | sys::IFF_NO_PI)?;
        fd.set_offload(0)?;
        Ok(fd)
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        self.fd.name()
    }

    /// True when the virtio header and offloads are in force (false: plain mode).
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Reads one packet; `None` when none waits.
    fn read_one(&self, buf: &mut BytesMut) -> io::Result<Option<Frame>> {
        if buf.capacity() - buf.len() < RX_MAX {
            *buf = BytesMut::with_capacity(RX_CHUNK);
        }
        let n = match self.fd.read_into(buf, RX_MAX) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut pkt = buf.split_to(n);
        let mut gso_size = 0;
        if self.offload {
            let Some(h) = VirtioNetHdr::parse(&pkt) else {
                self.stats.rx_dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(Frame::with_header_len(0, Bytes::new())));
            };
            let _ = pkt.split_to(vnet::HDR_LEN);
            if h.flags & vnet::F_NEEDS_CSUM != 0 && !vnet::complete_csum(&mut pkt, h.csum_start, h.csum_offset) {
                self.stats.rx_dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(Frame::with_header_len(0, Bytes::new())));
            }
            if h.gso_type & !vnet::GSO_ECN == vnet::GSO_TCPV4 {
                gso_size = h.gso_size as u32;
                self.stats.rx_gso.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.stats.rx_packets.fetch_add(1, Ordering::Relaxed);
        self.stats.rx_bytes.fetch_add(pkt.len() as u64, Ordering::Relaxed);
        if pkt.first().is_some_and(|b| b >> 4 != 4 && b >> 4 != 6) {
            // IFF_NO_PI gives no protocol field: the version nibble tells (tun_get_user does
            // the same).
            self.stats.rx_nohandler.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(Frame::with_header_len(0, Bytes::new())));
        }
        let mut f = utcp::ip::frame_from_wire(pkt.freeze());
        f.gso_size = gso_size;
        Ok(Some(f))
    }

    /// Writes `batch` in order, joining runs into GSO super-packets in offload mode.
    fn write_batch(&self, batch: &mut VecDeque<Frame>) {
        let frames: Vec<Frame> = batch.drain(..).collect();
        let mut i = 0;
        while i < frames.len() {
            // TCP's own super-segments (gso_max_size advertised) go out as they are; runs of
            // plain segments are still joined.
            let own = self.offload && frames[i].gso_size != 0 && frames[i].csum_partial;
            let n = if self.offload && !own { vnet::gso_run(&frames[i..]) } else { 1 };
            let segs = if own { frames[i].gso_segs() as usize } else { n };
            let r = if own {
                self.write_super(&frames[i])
            } else if n > 1 {
                self.write_gso(&frames[i..i + n])
            } else {
                self.write_one(&frames[i])
            };
            match r {
                Ok(bytes) => {
                    self.stats.tx_packets.fetch_add(1, Ordering::Relaxed);
                    self.stats.tx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                    if segs > 1 {
                        self.stats.tx_gso.fetch_add(1, Ordering::Relaxed);
                        self.stats.tx_gso_segs.fetch_add(segs as u64, Ordering::Relaxed);
                    }
                }
                Err(_) => {
                    self.stats.tx_dropped.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            i += n;
        }
    }

    fn write_one(&self, f: &Frame) -> io::Result<usize> {
        let hdr = [0u8; vnet::HDR_LEN];
        let mut parts: [IoSlice<'_>; 3] = [IoSlice::new(&hdr), IoSlice::new(f.head()), IoSlice::new(&f.payload)];
        let parts: &mut [IoSlice<'_>] = if self.offload { &mut parts[..] } else { &mut parts[1..] };
        // Recorded before the write: the kernel may answer within `writev`, and the answer
        // (read on another thread) must not precede the packet in the capture.
        if let Some(tap) = &*self.tap.read() {
            tap(&[f.head(), &f.payload]);
        }
        self.fd.writev(parts)?;
        Ok(f.len())
    }

    /// A super-segment TCP built (`Frame::gso_size`, partial checksum over the whole length
    /// as `gso_head` leaves it): one `writev` with a `virtio_net_hdr` (TCPV4, `gso_size`,
    /// `hdr_len`, `csum_start`/`csum_offset`); the kernel cuts it (`tcp_gso_segment`).
    fn write_super(&self, f: &Frame) -> io::Result<usize> {
        let hdr = VirtioNetHdr {
            flags: vnet::F_NEEDS_CSUM,
            gso_type: vnet::GSO_TCPV4,
            hdr_len: f.head().len() as u16,
            gso_size: f.gso_size as u16,
            csum_start: 20,
            csum_offset: 16,
        }
        .emit();
        if let Some(tap) = &*self.tap.read() {
            let full = vnet::full_csum_head(f.head(), std::slice::from_ref(f));
            tap(&[&full, &f.payload]);
        }
        self.fd.writev(&[IoSlice::new(&hdr), IoSlice::new(f.head()), IoSlice::new(&f.payload)])?;
        Ok(f.len())
    }

    fn write_gso(&self, run: &[Frame]) -> io::Result<usize> {
        let (hdr, head) = vnet::gso_head(run);
        let mut parts = Vec::with_capacity(run.len() + 2);
        parts.push(IoSlice::new(&hdr));
        parts.push(IoSlice::new(&head));
        for f in run {
            parts.push(IoSlice::new(&f.payload));
        }
        if let Some(tap) = &*self.tap.read() {
            // The super-packet as a capture on the kernel's tun interface shows it (one
            // packet, the whole IP length), but with its TCP checksum completed: the kernel
            // captures the partial sum, which no reader can check.
            let full = vnet::full_csum_head(&head, run);
            let mut p: Vec<&[u8]> = Vec::with_capacity(run.len() + 1);
            p.push(&full);
            p.extend(run.iter().map(|f| &f.payload[..]));
            tap(&p);
        }
        self.fd.writev(&parts)?;
        Ok(head.len() + run.iter().map(|f| f.payload.len()).sum::<usize>())
    }
}

impl NetDevice for TunDevice {
    /// With the offloads (TUN_F_TSO4 | TUN_F_CSUM) TCP builds super-segments up to
    /// `GSO_MAX_SIZE` for it ([`TunDevice::write_super`]); plain mode has none.
    fn gso_max_size(&self) -> u32 {
        if self.offload {
            65_536
        } else {
            0
        }
    }
    fn xmit(&self, frame: Frame) {
        let mut q = self.txq.lock();
        if q.q.len() >= TX_QUEUE_LIMIT {
            drop(q);
            self.stats.tx_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.q.push_back(frame);
    }

    fn flush_tx(&self) {
        // One writer at a time, in FIFO order; a thread that finds another writing leaves its
        // frames to it (the writer loops until the queue is empty).
        let mut batch = {
            let mut q = self.txq.lock();
            if q.draining || q.q.is_empty() {
                return;
            }
            q.draining = true;
            std::mem::take(&mut q.q)
        };
        loop {
            self.write_batch(&mut batch);
            let mut q = self.txq.lock();
            if q.q.is_empty() {
                q.draining = false;
                if q.q.capacity() < batch.capacity() {
                    std::mem::swap(&mut q.q, &mut batch);
                }
                return;
            }
            std::mem::swap(&mut q.q, &mut batch);
        }
    }

    fn mtu(&self) -> u32 {
        self.mtu
    }

    fn napi_poll(&self, budget: usize) -> usize {
        let Some(mut buf) = self.rx.try_lock() else { return 0 };
        let Some(hook) = self.hook.read().clone() else { return 0 };
        let mut n = 0;
        while n < budget {
            match self.read_one(&mut buf) {
                Ok(Some(f)) => {
                    n += 1;
                    if !f.is_empty() {
                        hook(f);
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.stats.rx_dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        n
    }

    fn needs_poll_thread(&self) -> bool {
        true
    }

    fn wait_event(&self, timeout: Option<std::time::Duration>) {
        let ms = timeout.map(|t| t.as_millis().clamp(1, i32::MAX as u128) as i32).unwrap_or(-1);
        let _ = self.fd.poll_in(&self.wake, ms);
    }

    fn kick(&self) {
        self.wake.signal();
    }

    fn attach(&self, hook: RxHook) {
        *self.hook.write() = Some(hook);
    }

    fn set_tx_tap(&self, tap: TxTap) -> bool {
        *self.tap.write() = Some(tap);
        true
    }

    fn dev_stats(&self) -> DevStats {
        DevStats {
            rx_dropped: self.stats.rx_dropped.load(Ordering::Relaxed),
            tx_dropped: self.stats.tx_dropped.load(Ordering::Relaxed),
        }
    }
}

impl TunStats {
    /// The counters as `NAME value` lines (nstat style, prefixed `Tun`).
    pub fn nstat(&self) -> String {
        let rows = [
            ("TunRxPackets", &self.rx_packets),
            ("TunRxBytes", &self.rx_bytes),
            ("TunRxGso", &self.rx_gso),
            ("TunTxPackets", &self.tx_packets),
            ("TunTxBytes", &self.tx_bytes),
            ("TunTxGso", &self.tx_gso),
            ("TunTxGsoSegs", &self.tx_gso_segs),
            ("TunRxDropped", &self.rx_dropped),
            ("TunRxNoHandler", &self.rx_nohandler),
            ("TunTxDropped", &self.tx_dropped),
        ];
        rows.iter()
            .filter(|(_, v)| v.load(Ordering::Relaxed) != 0)
            .map(|(n, v)| format!("{n:<32}{:<19}0.0\n", v.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Shared handle used by callers that keep the device after handing it to a stack.
pub type SharedTun = Arc<TunDevice>;
