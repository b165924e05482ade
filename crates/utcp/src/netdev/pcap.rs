//! [`PcapDevice`]: a decorator that records every frame a device transmits or receives in a
//! Wireshark-readable capture.
//!
//! The format is classic libpcap ("pcap", not pcapng): a 24-byte global header with the
//! nanosecond-resolution magic `0xa1b23c4d`, version 2.4, snaplen [`SNAPLEN`] and link type
//! [`LINKTYPE_RAW`] (101: each packet is a bare IPv4 or IPv6 datagram, told apart by its version
//! nibble; no link-layer header), then per
//! packet a 16-byte record header (seconds, nanoseconds, captured length, original length) and the
//! bytes. Everything is written little-endian (readers detect the byte order from the magic).
//! Timestamps come from the device's [`Clock`], so captures made on a virtual clock show virtual
//! time.
//!
//! Writes go through a `BufWriter` behind a mutex; they are flushed by [`PcapDevice::flush`] and
//! on drop. A write error stops the capture (frames still flow) and is reported by the next
//! `flush`.
//!
//! This module also implements [`NetDevice`] for `Arc<T: NetDevice>`, so that shared devices —
//! [`memlink::pair`](super::memlink::pair) returns `Arc<MemPort>` — can be wrapped.

use crate::netdev::{NetDevice, RxHook, TxTap};
use crate::skb::Frame;
use crate::sync::Mutex;
use crate::time::{Clock, Instant};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

/// `LINKTYPE_RAW`: packets begin with an IPv4 (or IPv6) header.
pub const LINKTYPE_RAW: u32 = 101;
/// `LINKTYPE_IPV4`: packets are IPv4 datagrams (accepted by [`read_pcap`]).
pub const LINKTYPE_IPV4: u32 = 228;
/// Magic of a classic pcap file with microsecond timestamps.
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Magic of a classic pcap file with nanosecond timestamps (what [`PcapDevice`] writes).
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Largest number of bytes captured per packet; longer packets are truncated (their original
/// length is recorded).
pub const SNAPLEN: u32 = 262_144;

/// The 24-byte global header [`PcapDevice`] writes.
pub fn file_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC_NANOS.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes()); // version_major
    h[6..8].copy_from_slice(&4u16.to_le_bytes()); // version_minor
    h[8..12].copy_from_slice(&0i32.to_le_bytes()); // thiszone: timestamps are UTC
    h[12..16].copy_from_slice(&0u32.to_le_bytes()); // sigfigs
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_RAW.to_le_bytes());
    h
}

struct Sink {
    w: BufWriter<Box<dyn Write + Send>>,
    err: Option<io::Error>,
    /// Added to clock readings: wall-clock time (ns since 1970) at the capture's start minus
    /// the clock's reading then, or 0 to record the clock as it reads.
    epoch_ns: u64,
}

impl Sink {
    fn record(&mut self, now: Instant, frame: &Frame) {
        self.record_parts(now, &[frame.head(), &frame.payload]);
    }

    /// One record holding the concatenation of `parts`.
    fn record_parts(&mut self, now: Instant, parts: &[&[u8]]) {
        if self.err.is_some() {
            return;
        }
        let now = Instant(now.nanos().wrapping_add(self.epoch_ns));
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let caplen = len.min(SNAPLEN as usize);
        let mut rh = [0u8; 16];
        rh[0..4].copy_from_slice(&((now.nanos() / 1_000_000_000) as u32).to_le_bytes());
        rh[4..8].copy_from_slice(&((now.nanos() % 1_000_000_000) as u32).to_le_bytes());
        rh[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        rh[12..16].copy_from_slice(&(len.min(u32::MAX as usize) as u32).to_le_bytes());
        let mut r = self.w.write_all(&rh);
        let mut left = caplen;
        for p in parts {
            let n = p.len().min(left);
            r = r.and_then(|_| self.w.write_all(&p[..n]));
            left -= n;
        }
        if let Err(e) = r {
            tracing::warn!("pcap capture stopped: {e}");
            self.err = Some(e);
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.err.take() {
            return Err(e);
        }
        self.w.flush()
    }
}

/// A device that records every frame `inner` transmits and receives (see the module docs).
pub struct PcapDevice<D: NetDevice> {
    inner: D,
    sink: Arc<Mutex<Sink>>,
    clock: Arc<dyn Clock>,
    /// The inner device reports what it writes ([`NetDevice::set_tx_tap`]): transmitted
    /// packets are recorded there, as they cross the wire, not in `xmit`.
    tapped: bool,
}

impl<D: NetDevice> PcapDevice<D> {
    /// Captures `inner`'s traffic into a new file at `path` (truncated if it exists).
    /// Timestamps are wall-clock times, as tcpdump writes them: the wall clock at creation plus
    /// the device clock's progress since.
    pub fn create(inner: D, path: &Path, clock: Arc<dyn Clock>) -> io::Result<Self> {
        let f = std::fs::File::create(path)?;
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let epoch_ns = (wall.as_nanos() as u64).wrapping_sub(clock.now().nanos());
        let dev = PcapDevice::new(inner, Box::new(f), clock);
        dev.sink.lock().epoch_ns = epoch_ns;
        dev.flush()?;
        Ok(dev)
    }

    /// Captures `inner`'s traffic into `writer`, timestamped with `clock`'s readings as they are
    /// (virtual time stays virtual). The global header is written (buffered) at once.
    pub fn new(inner: D, writer: Box<dyn Write + Send>, clock: Arc<dyn Clock>) -> Self {
        let mut sink = Sink { w: BufWriter::with_capacity(64 * 1024, writer), err: None, epoch_ns: 0 };
        if let Err(e) = sink.w.write_all(&file_header()) {
            sink.err = Some(e);
        }
        let sink = Arc::new(Mutex::new(sink));
        let (s2, c2) = (sink.clone(), clock.clone());
        let tapped = inner.set_tx_tap(Arc::new(move |parts: &[&[u8]]| s2.lock().record_parts(c2.now(), parts)));
        PcapDevice { inner, sink, clock, tapped }
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Writes buffered records out; reports a write error that stopped the capture.
    pub fn flush(&self) -> io::Result<()> {
        self.sink.lock().flush()
    }
}

impl<D: NetDevice> NetDevice for PcapDevice<D> {
    fn xmit(&self, frame: Frame) {
        if !self.tapped {
            self.sink.lock().record(self.clock.now(), &frame);
        }
        self.inner.xmit(frame);
    }
    fn mtu(&self) -> u32 {
        self.inner.mtu()
    }
    fn gso_max_size(&self) -> u32 {
        self.inner.gso_max_size()
    }
    fn flush_tx(&self) {
        self.inner.flush_tx()
    }
    fn poll_timers(&self) -> Option<Instant> {
        self.inner.poll_timers()
    }
    fn needs_poll_thread(&self) -> bool {
        self.inner.needs_poll_thread()
    }
    fn wait_event(&self, timeout: Option<std::time::Duration>) {
        self.inner.wait_event(timeout)
    }
    fn kick(&self) {
        self.inner.kick()
    }
    fn napi_prefer_busy_poll(&self, until: Instant) {
        self.inner.napi_prefer_busy_poll(until)
    }
    fn napi_busy_poll_preferred(&self, now: Instant) -> Option<Instant> {
        self.inner.napi_busy_poll_preferred(now)
    }
    fn dev_stats(&self) -> crate::netdev::DevStats {
        self.inner.dev_stats()
    }
    fn sync(&self) -> io::Result<()> {
        let r = self.sink.lock().flush();
        self.inner.sync().and(r)
    }
    fn napi_id(&self) -> u32 {
        self.inner.napi_id()
    }
    fn napi_poll(&self, budget: usize) -> usize {
        self.inner.napi_poll(budget)
    }
    fn rx_pending(&self) -> bool {
        self.inner.rx_pending()
    }
    fn attach(&self, hook: RxHook) {
        let sink = self.sink.clone();
        let clock = self.clock.clone();
        self.inner.attach(Arc::new(move |frame: Frame| {
            // What the wire carried: a packet the device's GRO merged is recorded as the
            // segments it was made of.
            let now = clock.now();
            let mut sink = sink.lock();
            crate::netdev::gro::for_each_wire_packet(&frame, |parts| sink.record_parts(now, parts));
            drop(sink);
            hook(frame);
        }));
    }
}

impl<D: NetDevice> Drop for PcapDevice<D> {
    fn drop(&mut self) {
        let _ = self.sink.lock().flush();
    }
}

/// A shared device is a device.
impl<T: NetDevice + ?Sized> NetDevice for Arc<T> {
    #[inline]
    fn xmit(&self, frame: Frame) {
        (**self).xmit(frame)
    }
    fn mtu(&self) -> u32 {
        (**self).mtu()
    }
    fn gso_max_size(&self) -> u32 {
        (**self).gso_max_size()
    }
    fn flush_tx(&self) {
        (**self).flush_tx()
    }
    fn poll_timers(&self) -> Option<Instant> {
        (**self).poll_timers()
    }
    fn needs_poll_thread(&self) -> bool {
        (**self).needs_poll_thread()
    }
    fn wait_event(&self, timeout: Option<std::time::Duration>) {
        (**self).wait_event(timeout)
    }
    fn kick(&self) {
        (**self).kick()
    }
    fn napi_prefer_busy_poll(&self, until: Instant) {
        (**self).napi_prefer_busy_poll(until)
    }
    fn napi_busy_poll_preferred(&self, now: Instant) -> Option<Instant> {
        (**self).napi_busy_poll_preferred(now)
    }
    fn dev_stats(&self) -> crate::netdev::DevStats {
        (**self).dev_stats()
    }
    fn sync(&self) -> io::Result<()> {
        (**self).sync()
    }
    fn napi_id(&self) -> u32 {
        (**self).napi_id()
    }
    fn napi_poll(&self, budget: usize) -> usize {
        (**self).napi_poll(budget)
    }
    fn rx_pending(&self) -> bool {
        (**self).rx_pending()
    }
    fn attach(&self, hook: RxHook) {
        (**self).attach(hook)
    }
    fn set_tx_tap(&self, tap: TxTap) -> bool {
        (**self).set_tx_tap(tap)
    }
}

/// Parses a classic pcap file (either magic, either byte order; link type [`LINKTYPE_RAW`] or
/// [`LINKTYPE_IPV4`]) into `(timestamp, captured bytes)` per packet.
pub fn read_pcap(bytes: &[u8]) -> Result<Vec<(Instant, Vec<u8>)>, String> {
    if bytes.len() < 24 {
        return Err(format!("pcap: {} bytes, shorter than the 24-byte header", bytes.len()));
    }
    let raw: [u8; 4] = bytes[0..4].try_into().unwrap();
    let (le, nanos) = match (u32::from_le_bytes(raw), u32::from_be_bytes(raw)) {
        (MAGIC_MICROS, _) => (true, false),
        (MAGIC_NANOS, _) => (true, true),
        (_, MAGIC_MICROS) => (false, false),
        (_, MAGIC_NANOS) => (false, true),
        _ => return Err(format!("pcap: bad magic {raw:02x?}")),
    };
    let u16_at = |o: usize| {
        let b: [u8; 2] = bytes[o..o + 2].try_into().unwrap();
        if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    let u32_at = |o: usize| {
        let b: [u8; 4] = bytes[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let (major, minor) = (u16_at(4), u16_at(6));
    if major != 2 {
        return Err(format!("pcap: unsupported version {major}.{minor}"));
    }
    let linktype = u32_at(20) & 0x0fff_ffff; // the top bits may carry FCS information
    if linktype != LINKTYPE_RAW && linktype != LINKTYPE_IPV4 {
        return Err(format!("pcap: link type {linktype}, expected {LINKTYPE_RAW} (raw IP)"));
    }
    let mut out = Vec::new();
    let mut o = 24;
    while o < bytes.len() {
        if bytes.len() - o < 16 {
            return Err(format!("pcap: truncated record header at offset {o}"));
        }
        let (sec, frac, caplen, origlen) = (u32_at(o), u32_at(o + 4), u32_at(o + 8) as usize, u32_at(o + 12));
        if (nanos && frac >= 1_000_000_000) || (!nanos && frac >= 1_000_000) {
            return Err(format!("pcap: bad sub-second timestamp {frac} at offset {o}"));
        }
        if (caplen as u64) > origlen as u64 {
            return Err(format!("pcap: captured length {caplen} > original length {origlen} at offset {o}"));
        }
        o += 16;
        if bytes.len() - o < caplen {
            return Err(format!("pcap: truncated packet at offset {o}"));
        }
        let ns = sec as u64 * 1_000_000_000 + if nanos { frac as u64 } else { frac as u64 * 1000 };
        out.push((Instant(ns), bytes[o..o + caplen].to_vec()));
        o += caplen;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netdev::memlink::{pair, LinkConfig};
    use crate::time::{Duration, VirtualClock};
    use bytes::Bytes;

    /// A `Write` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn csum(b: &[u8]) -> u16 {
        let mut s: u32 = b.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// A well-formed IPv4 + TCP frame (TCP checksum left 0) carrying `payload`.
    fn ip_frame(id: u16, payload: &[u8]) -> Frame {
        let mut f = Frame::with_header_len(40, Bytes::copy_from_slice(payload));
        let total = (40 + payload.len()) as u16;
        let h = f.head_mut();
        h[0] = 0x45;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        h[6] = 0x40; // DF
        h[8] = 64;
        h[9] = 6;
        h[12..16].copy_from_slice(&[10, 0, 0, 1]);
        h[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let c = csum(&h[..20]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h[20..22].copy_from_slice(&40000u16.to_be_bytes());
        h[22..24].copy_from_slice(&80u16.to_be_bytes());
        h[24..28].copy_from_slice(&(1000 + id as u32).to_be_bytes());
        h[32] = 5 << 4;
        h[33] = 0x18; // PSH|ACK
        h[34..36].copy_from_slice(&65535u16.to_be_bytes());
        f
    }

    #[test]
    fn header_is_what_wireshark_expects() {
        let h = file_header();
        assert_eq!(
            h,
            [
                0x4d, 0x3c, 0xb2, 0xa1, // magic, nanosecond resolution, little-endian
                2, 0, 4, 0, // version 2.4
                0, 0, 0, 0, // thiszone
                0, 0, 0, 0, // sigfigs
                0, 0, 4, 0, // snaplen 262144
                101, 0, 0, 0, // LINKTYPE_RAW
            ]
        );
        let buf = Buf::default();
        let clock = Arc::new(VirtualClock::new(Instant::ZERO));
        let (a, _b) = pair(LinkConfig::default(), clock.clone());
        let dev = PcapDevice::new(a, Box::new(buf.clone()), clock);
        dev.flush().unwrap();
        assert_eq!(&buf.0.lock()[..], &h[..]);
        assert_eq!(read_pcap(&buf.0.lock()).unwrap(), vec![]);
    }

    #[test]
    fn round_trip_tx_and_rx() {
        let buf = Buf::default();
        let clock = Arc::new(VirtualClock::new(Instant(1_700_000_000_123_456_789)));
        let (a, b) = pair(LinkConfig::default(), clock.clone());
        let dev = PcapDevice::new(a, Box::new(buf.clone()), clock.clone());
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        dev.attach(Arc::new(move |f: Frame| g.lock().push(f)));
        let seen_by_b = Arc::new(Mutex::new(0));
        let s = seen_by_b.clone();
        b.attach(Arc::new(move |_f| *s.lock() += 1));

        let big: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut expect = Vec::new();
        for i in 0..10u16 {
            let f = ip_frame(i, &big[..i as usize * 300]);
            expect.push((clock.now(), f.to_vec()));
            if i % 2 == 0 {
                dev.xmit(f); // recorded on transmit
                dev.flush_tx();
            } else {
                b.xmit(f); // recorded on receive, through the wrapped hook
                b.flush_tx();
            }
            clock.advance(Duration::from_micros(1500));
        }
        assert_eq!(*seen_by_b.lock(), 5);
        assert_eq!(got.lock().len(), 5);
        assert_eq!(dev.mtu(), 1500);
        dev.flush().unwrap();
        let read = read_pcap(&buf.0.lock()).unwrap();
        assert_eq!(read, expect);
        // Dropping flushes too.
        dev.xmit(ip_frame(99, b"tail"));
        drop(dev);
        let read = read_pcap(&buf.0.lock()).unwrap();
        assert_eq!(read.len(), 11);
        assert_eq!(read[10].1, ip_frame(99, b"tail").to_vec());
    }

    #[test]
    fn long_frames_are_truncated_to_snaplen() {
        let buf = Buf::default();
        let clock = Arc::new(VirtualClock::new(Instant::ZERO));
        let (a, _b) = pair(LinkConfig::default(), clock.clone());
        let dev = PcapDevice::new(a, Box::new(buf.clone()), clock);
        let payload = vec![0xabu8; SNAPLEN as usize + 100];
        dev.xmit(ip_frame(1, &payload));
        dev.flush().unwrap();
        let bytes = buf.0.lock().clone();
        let read = read_pcap(&bytes).unwrap();
        assert_eq!(read[0].1.len(), SNAPLEN as usize);
        assert_eq!(u32::from_le_bytes(bytes[36..40].try_into().unwrap()), SNAPLEN + 140);
    }

    #[test]
    fn reads_microsecond_and_big_endian_files() {
        let mut f = Vec::new();
        f.extend_from_slice(&MAGIC_MICROS.to_be_bytes());
        f.extend_from_slice(&2u16.to_be_bytes());
        f.extend_from_slice(&4u16.to_be_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_be_bytes());
        f.extend_from_slice(&LINKTYPE_RAW.to_be_bytes());
        for (sec, usec, data) in [(5u32, 250_000u32, &b"abc"[..]), (6, 1, &b""[..])] {
            f.extend_from_slice(&sec.to_be_bytes());
            f.extend_from_slice(&usec.to_be_bytes());
            f.extend_from_slice(&(data.len() as u32).to_be_bytes());
            f.extend_from_slice(&(data.len() as u32).to_be_bytes());
            f.extend_from_slice(data);
        }
        let r = read_pcap(&f).unwrap();
        assert_eq!(r, vec![(Instant(5_250_000_000), b"abc".to_vec()), (Instant(6_000_001_000), vec![])]);
        assert!(read_pcap(&f[..f.len() - 1]).is_err()); // the last record header is cut
        assert!(read_pcap(&f[..30]).is_err());
        assert!(read_pcap(&f[..10]).is_err());
        let mut bad = f.clone();
        bad[0] = 0;
        assert!(read_pcap(&bad).is_err());
    }

    #[test]
    fn write_errors_stop_the_capture_not_the_traffic() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let clock = Arc::new(VirtualClock::new(Instant::ZERO));
        let (a, b) = pair(LinkConfig::default(), clock.clone());
        let n = Arc::new(Mutex::new(0));
        let n2 = n.clone();
        b.attach(Arc::new(move |_f| *n2.lock() += 1));
        let dev = PcapDevice::new(a, Box::new(Broken), clock);
        for i in 0..100 {
            dev.xmit(ip_frame(i, &[0; 1400]));
            dev.flush_tx();
        }
        assert_eq!(*n.lock(), 100);
        assert!(dev.flush().is_err());
    }

    #[test]
    fn file_capture_readable_by_tshark_if_present() {
        let dir = std::env::temp_dir().join(format!("utcp-pcap-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cap.pcap");
        let clock = Arc::new(VirtualClock::new(Instant::from_millis(1_000)));
        let (a, _b) = pair(LinkConfig::default(), clock.clone());
        let dev = PcapDevice::create(a, &path, clock.clone()).unwrap();
        for i in 0..3 {
            dev.xmit(ip_frame(i, b"hello"));
            clock.advance(Duration::from_millis(1));
        }
        drop(dev);
        let bytes = std::fs::read(&path).unwrap();
        let r = read_pcap(&bytes).unwrap();
        assert_eq!(r.len(), 3);
        // Wall-clock timestamps (as tcpdump's), advancing with the device clock.
        assert_eq!(r[2].0.nanos() - r[0].0.nanos(), 2_000_000);
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        assert!(r[0].0.nanos() <= wall && wall - r[0].0.nanos() < 60_000_000_000, "{:?}", r[0].0);
        let tshark =
            std::process::Command::new("tshark").args(["-T", "fields", "-e", "ip.src", "-r"]).arg(&path).output();
        match tshark {
            Ok(out) => {
                assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
                let text = String::from_utf8_lossy(&out.stdout);
                assert_eq!(text.lines().filter(|l| l.trim() == "10.0.0.1").count(), 3, "{text}");
            }
            Err(_) => eprintln!("tshark not found: skipping the Wireshark check"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
