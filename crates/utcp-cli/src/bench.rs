//! Transport-generic benchmark workloads.
//!
//! Two workloads run over any [`Transport`] that can hand out a connected
//! (client, server) pair of byte streams:
//!
//! * [`run_bulk`]: one-way bulk transfer with an end-to-end integrity check.
//! * [`run_rr`]: request/response ping-pong measuring round-trip latency.
//!
//! Both workloads drive the client and the server side from two threads of
//! their own; the transport is free to run more threads behind the streams.

use std::io::{self, ErrorKind, IsTerminal, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3Default;

/// A connected byte stream a workload can drive from one thread.
pub trait BenchStream: Read + Write + Send + 'static {
    /// Switches the stream between blocking and nonblocking mode. In
    /// nonblocking mode `read`/`write` fail with `ErrorKind::WouldBlock`
    /// instead of waiting.
    fn set_nonblocking(&self, on: bool) -> io::Result<()>;

    /// Half-closes the write side so that the peer reads EOF once it has
    /// read everything sent before. The default does nothing, for streams
    /// that signal EOF only when dropped: the workloads keep the client
    /// stream alive until the server side has finished, so such a stream
    /// must still deliver EOF some other way (e.g. a pipe pair whose writer
    /// is a separate handle).
    fn shutdown_write(&self) -> io::Result<()> {
        Ok(())
    }
}

impl BenchStream for std::net::TcpStream {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        std::net::TcpStream::set_nonblocking(self, on)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl BenchStream for std::os::unix::net::UnixStream {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_nonblocking(self, on)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

/// Something that can produce connected stream pairs to benchmark.
pub trait Transport {
    type Stream: BenchStream;

    /// Short name used in reports ("kernel", "utcp", ...).
    fn name(&self) -> &str;

    /// Opens a fresh connection and returns `(client, server)`.
    fn connect_pair(&mut self) -> io::Result<(Self::Stream, Self::Stream)>;

    /// Transport counters (a MIB) to include in reports, e.g. segments
    /// sent, retransmissions, drops. Empty by default; the utcp transport
    /// fills this in. Called after the workloads have run.
    fn counters(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }

    /// Segments the receiving side has taken in so far (wire segments), for `alloc.per_segment`;
    /// `None` where the transport's segments are not counted in this process (the kernel).
    fn segments_in(&self) -> Option<u64> {
        None
    }
}

/// Workload parameters.
#[derive(Debug, Clone, Serialize)]
pub struct BenchConfig {
    /// Bytes the bulk workload sends.
    pub bytes: u64,
    /// Largest single `write` the bulk client issues.
    pub chunk_size: usize,
    /// Bytes each way per request/response round trip.
    pub rr_size: usize,
    /// Measured round trips.
    pub rr_round_trips: u64,
    /// Unmeasured round trips run first (connection warm-up).
    pub rr_warmup: u64,
    /// When set, the rr workload uses nonblocking reads/writes and spins on
    /// `WouldBlock` for up to this many microseconds per wait before falling
    /// back to one blocking call (like Linux's `SO_BUSY_POLL`).
    pub busy_poll_us: Option<u64>,
    /// Seed of the bulk data pattern.
    pub seed: u64,
    /// Progress reporting on stderr.
    #[serde(skip)]
    pub progress: Progress,
}

/// How a workload reports progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// Never.
    #[default]
    Off,
    /// A progress bar when stderr is a terminal (drawn once a run has lasted a second),
    /// otherwise a line every `interval`.
    Auto { interval: Duration },
    /// A line every `interval`, terminal or not (tests, whose stderr may be a terminal).
    #[cfg(test)]
    Lines { interval: Duration },
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            bytes: 1 << 30,
            chunk_size: 256 << 10,
            rr_size: 1,
            rr_round_trips: 20_000,
            rr_warmup: 100,
            busy_poll_us: None,
            seed: 1,
            progress: Progress::Off,
        }
    }
}

/// Outcome of [`run_bulk`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkResult {
    /// Bytes the server read (equals `client_bytes` when intact).
    pub bytes: u64,
    /// From the client's first write to the server's last byte read.
    pub seconds: f64,
    /// `bytes / seconds / 1e9` (decimal gigabytes).
    pub gbytes_per_s: f64,
    pub integrity_ok: bool,
    pub client_bytes: u64,
    pub server_bytes: u64,
    #[serde(serialize_with = "ser_hex", deserialize_with = "de_hex")]
    pub client_hash: u64,
    #[serde(serialize_with = "ser_hex", deserialize_with = "de_hex")]
    pub server_hash: u64,
    /// Progress was shown on stderr during the run (a bar or a line).
    #[serde(skip)]
    pub progress_shown: bool,
}

/// Latency summary in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Outcome of [`run_rr`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RrResult {
    pub size: usize,
    pub round_trips: u64,
    pub warmup: u64,
    /// Wall time of the measured round trips, back to back.
    pub seconds: f64,
    pub rtt_us: Percentiles,
    /// Every echoed response matched its request byte for byte.
    pub integrity_ok: bool,
    pub mismatched_responses: u64,
    /// Progress was shown on stderr during the run (a bar or a line).
    #[serde(skip)]
    pub progress_shown: bool,
}

fn ser_hex<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:016x}"))
}

fn de_hex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
}

// ---------------------------------------------------------------------------
// Bulk data pattern
// ---------------------------------------------------------------------------

/// Length of the pregenerated pattern (one "lap" of the stream).
pub const PATTERN_LEN: usize = 1 << 20;

/// The deterministic pseudo-random bulk stream.
///
/// A 1 MiB pattern is generated once with xorshift64* from the seed. The
/// stream is a sequence of 1 MiB laps; lap `L` is the pattern rotated left
/// by `rot(L)`, a pseudo-random lap-dependent offset, so
///
/// ```text
/// stream[i] = pattern[(i % PATTERN_LEN + rot(i / PATTERN_LEN)) % PATTERN_LEN]
/// ```
///
/// The stream is therefore not periodic at 1 MiB: data delivered at the
/// wrong offset (e.g. a stale segment from a whole lap earlier) changes the
/// hash. The pattern is stored twice back to back, so any run of the stream
/// within one lap is a contiguous slice of that buffer: producing data costs
/// nothing but a slice, and the generator is never the bottleneck.
pub struct Pattern {
    doubled: Vec<u8>,
    seed: u64,
}

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        let mut doubled = vec![0u8; 2 * PATTERN_LEN];
        // xorshift64* needs a nonzero state.
        let mut x = splitmix64(seed) | 1;
        for chunk in doubled[..PATTERN_LEN].chunks_exact_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            chunk.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let (a, b) = doubled.split_at_mut(PATTERN_LEN);
        b.copy_from_slice(a);
        Pattern { doubled, seed }
    }

    fn rot(&self, lap: u64) -> usize {
        (splitmix64(lap ^ self.seed.rotate_left(32)) % PATTERN_LEN as u64) as usize
    }

    /// Up to `max_len` stream bytes starting at stream offset `offset`; the
    /// slice never crosses a lap boundary, so it may be shorter.
    pub fn slice_at(&self, offset: u64, max_len: usize) -> &[u8] {
        let lap = offset / PATTERN_LEN as u64;
        let within = (offset % PATTERN_LEN as u64) as usize;
        let start = (within + self.rot(lap)) % PATTERN_LEN;
        let len = max_len.min(PATTERN_LEN - within);
        &self.doubled[start..start + len]
    }

    /// The stream byte at `offset` (reference definition, for tests).
    #[cfg(test)]
    pub fn byte_at(&self, offset: u64) -> u8 {
        let lap = offset / PATTERN_LEN as u64;
        let within = (offset % PATTERN_LEN as u64) as usize;
        self.doubled[(within + self.rot(lap)) % PATTERN_LEN]
    }

    /// XXH3-64 of the first `len` stream bytes.
    pub fn hash_prefix(&self, len: u64) -> u64 {
        let mut h = Xxh3Default::new();
        let mut off = 0;
        while off < len {
            let s = self.slice_at(off, (len - off).min(PATTERN_LEN as u64) as usize);
            h.update(s);
            off += s.len() as u64;
        }
        h.digest()
    }
}

/// The receiver's integrity check: every received byte compared with the
/// stream it should be (a slice comparison, which glibc's vector `memcmp`
/// runs at memory speed), and the XXH3-64 of what arrived computed only
/// from the first differing chunk on. Until then the received bytes equal
/// the stream, so their hash is the stream's, taken after the clock stops.
/// Hashing every chunk cost the receiver about as much as the copy out of
/// the socket (session 11 profile of `--gso`: xxh3 16 % of the samples,
/// both copies 35 %), so the bench measured the hash as much as the stack.
pub struct StreamCheck<'p> {
    pattern: &'p Pattern,
    len: u64,
    /// Set from the first chunk that differs from the stream.
    hash: Option<Xxh3Default>,
}

impl<'p> StreamCheck<'p> {
    pub fn new(pattern: &'p Pattern) -> StreamCheck<'p> {
        StreamCheck { pattern, len: 0, hash: None }
    }

    /// Checks (or, after a difference, hashes) the next received bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        if self.hash.is_none() {
            let start = self.len;
            let mut off = start;
            let mut rest = data;
            while !rest.is_empty() {
                let want = self.pattern.slice_at(off, rest.len());
                if want != &rest[..want.len()] {
                    // Hash the matched prefix from the stream itself, then
                    // everything received from this chunk on.
                    let mut h = Xxh3Default::new();
                    let mut o = 0;
                    while o < start {
                        let s = self.pattern.slice_at(o, (start - o).min(PATTERN_LEN as u64) as usize);
                        h.update(s);
                        o += s.len() as u64;
                    }
                    self.hash = Some(h);
                    break;
                }
                off += want.len() as u64;
                rest = &rest[want.len()..];
            }
            if self.hash.is_none() {
                self.len += data.len() as u64;
                data = &[];
            }
        }
        if let Some(h) = &mut self.hash {
            h.update(data);
            self.len += data.len() as u64;
        }
    }

    /// Bytes seen.
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.len
    }

    /// XXH3-64 of every byte seen.
    pub fn digest(&self) -> u64 {
        match &self.hash {
            Some(h) => h.digest(),
            None => self.pattern.hash_prefix(self.len),
        }
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------

/// Progress fed from an atomic counter by a thread of its own, so the
/// workload threads only do a relaxed store: on a terminal a bar, hidden for
/// the first second; elsewhere (a log, a pipe) a line every interval, so a
/// long run is never silent.
struct ProgressFeed<'scope> {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::ScopedJoinHandle<'scope, bool>>,
}

/// One progress line: `utcp bench: utcp bulk 812 MiB / 4 GiB, 612.3 MB/s` (the mean rate so far).
fn progress_line(label: &str, done: u64, total: u64, bytes: bool, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    if bytes {
        let bps = done as f64 / secs;
        let rate = if bps >= 1e9 { format!("{:.2} GB/s", bps / 1e9) } else { format!("{:.1} MB/s", bps / 1e6) };
        format!("utcp bench: {label} {} / {}, {rate}", crate::units::fmt_size(done), crate::units::fmt_size(total))
    } else {
        format!("utcp bench: {label} {done} / {total} round trips, {:.0} round trips/s", done as f64 / secs)
    }
}

impl<'scope> ProgressFeed<'scope> {
    fn spawn(
        scope: &'scope thread::Scope<'scope, '_>,
        mode: Progress,
        label: String,
        total: u64,
        bytes: bool,
        counter: &'scope AtomicU64,
    ) -> ProgressFeed<'scope> {
        let (bar, interval) = match mode {
            Progress::Off => return ProgressFeed { stop: None, thread: None },
            Progress::Auto { interval } => (io::stderr().is_terminal(), interval),
            #[cfg(test)]
            Progress::Lines { interval } => (false, interval),
        };
        let (tx, rx) = mpsc::channel::<()>();
        let thread = scope.spawn(move || {
            if bar {
                draw_bar(&rx, &label, total, bytes, counter)
            } else {
                print_lines(&rx, &label, total, bytes, counter, interval)
            }
        });
        ProgressFeed { stop: Some(tx), thread: Some(thread) }
    }

    /// Stops the feed; whether any progress was shown.
    fn finish(&mut self) -> bool {
        self.stop.take();
        self.thread.take().is_some_and(|t| t.join().unwrap_or(false))
    }
}

fn draw_bar(rx: &mpsc::Receiver<()>, label: &str, total: u64, bytes: bool, counter: &AtomicU64) -> bool {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let start = Instant::now();
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    let template = if bytes {
        "{prefix:>14} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}"
    } else {
        "{prefix:>14} [{bar:40}] {pos}/{len} round trips, eta {eta}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label.to_string());
    let mut shown = false;
    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_millis(100)) {
        if !shown && start.elapsed() >= Duration::from_secs(1) {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            shown = true;
        }
        bar.set_position(counter.load(Ordering::Relaxed));
    }
    bar.finish_and_clear();
    shown
}

fn print_lines(
    rx: &mpsc::Receiver<()>,
    label: &str,
    total: u64,
    bytes: bool,
    counter: &AtomicU64,
    interval: Duration,
) -> bool {
    let start = Instant::now();
    let mut shown = false;
    let mut next = start + interval;
    loop {
        match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return shown,
        }
        let done = counter.load(Ordering::Relaxed);
        eprintln!("{}", progress_line(label, done, total, bytes, start.elapsed()));
        shown = true;
        next += interval;
    }
}

// ---------------------------------------------------------------------------
// Bulk
// ---------------------------------------------------------------------------

fn join<T>(h: thread::ScopedJoinHandle<'_, io::Result<T>>, who: &str) -> io::Result<T> {
    h.join().unwrap_or_else(|_| Err(io::Error::other(format!("{who} thread panicked"))))
}

/// One-way bulk transfer of `cfg.bytes` from client to server.
///
/// The client writes the [`Pattern`] stream in slices of at most
/// `cfg.chunk_size`, then half-closes; the server reads until EOF, comparing
/// everything it receives with the stream ([`StreamCheck`]: XXH3-64 of what
/// arrived). The client's hash covers
/// exactly the bytes its writes accepted: it is computed from the same
/// deterministic stream once the clock has stopped, so hashing does not
/// steal CPU from the transport on the sending side. Integrity is ok iff
/// byte counts and hashes match.
pub fn run_bulk<T: Transport>(t: &mut T, cfg: &BenchConfig) -> io::Result<BulkResult> {
    if cfg.chunk_size == 0 {
        return Err(io::Error::new(ErrorKind::InvalidInput, "chunk_size is 0"));
    }
    let pattern = Pattern::new(cfg.seed);
    let (mut client, mut server) = t.connect_pair()?;
    let received = AtomicU64::new(0);
    let barrier = Barrier::new(2);
    let label = format!("{} bulk", t.name());

    let (client_out, server_out, progress_shown) = thread::scope(|s| {
        let mut progress = ProgressFeed::spawn(s, cfg.progress, label, cfg.bytes, true, &received);
        let pattern = &pattern;
        let barrier = &barrier;
        let received = &received;

        let c = s.spawn(move || -> io::Result<_> {
            barrier.wait();
            let start = Instant::now();
            let mut off = 0u64;
            while off < cfg.bytes {
                let want = (cfg.bytes - off).min(cfg.chunk_size as u64) as usize;
                let buf = pattern.slice_at(off, want);
                match client.write(buf) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(n) => off += n as u64,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            client.flush()?;
            client.shutdown_write()?;
            // Keep the stream open until the server is done: some
            // transports may abort rather than linger on drop.
            Ok((client, start, off))
        });

        let sv = s.spawn(move || -> io::Result<_> {
            let mut buf = vec![0u8; cfg.chunk_size.max(64 << 10)];
            let mut check = StreamCheck::new(pattern);
            let mut total = 0u64;
            barrier.wait();
            let mut last = Instant::now();
            loop {
                match server.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        last = Instant::now();
                        check.update(&buf[..n]);
                        total += n as u64;
                        received.store(total, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((last, total, check))
        });

        let client_out = join(c, "bulk client");
        let server_out = join(sv, "bulk server");
        (client_out, server_out, progress.finish())
    });
    let (client_stream, start, client_bytes) = client_out?;
    let (end, server_bytes, check) = server_out?;
    drop(client_stream);
    let server_hash = check.digest();

    let client_hash = pattern.hash_prefix(client_bytes);
    let seconds = end.saturating_duration_since(start).max(Duration::from_nanos(1)).as_secs_f64();
    Ok(BulkResult {
        bytes: server_bytes,
        seconds,
        gbytes_per_s: server_bytes as f64 / seconds / 1e9,
        integrity_ok: client_bytes == server_bytes && client_hash == server_hash,
        client_bytes,
        server_bytes,
        client_hash,
        server_hash,
        progress_shown,
    })
}

// ---------------------------------------------------------------------------
// Request/response
// ---------------------------------------------------------------------------

/// How a workload waits for a stream to become ready.
#[derive(Clone, Copy)]
enum Wait {
    Block,
    /// Spin up to this long per wait, then fall back to a blocking call.
    Spin(Duration),
}

/// Retries `op` until it makes progress, honouring the wait policy.
fn ready<S: BenchStream, R>(s: &mut S, wait: Wait, mut op: impl FnMut(&mut S) -> io::Result<R>) -> io::Result<R> {
    let mut deadline: Option<Instant> = None;
    let mut spins = 0u32;
    loop {
        match op(s) {
            Ok(r) => return Ok(r),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let Wait::Spin(limit) = wait else {
                    return Err(e);
                };
                spins = spins.wrapping_add(1);
                // Reading the clock every spin is needless; every 64 is plenty.
                if spins & 63 == 0 {
                    let now = Instant::now();
                    let d = *deadline.get_or_insert(now + limit);
                    if now >= d {
                        s.set_nonblocking(false)?;
                        let r = loop {
                            match op(s) {
                                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                                r => break r,
                            }
                        };
                        s.set_nonblocking(true)?;
                        return r;
                    }
                }
                std::hint::spin_loop();
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads exactly `buf.len()` bytes. Returns `Ok(false)` on a clean EOF
/// before the first byte (when `eof_ok`), errors on EOF mid-message.
fn read_msg<S: BenchStream>(s: &mut S, buf: &mut [u8], wait: Wait, eof_ok: bool) -> io::Result<bool> {
    let mut off = 0;
    while off < buf.len() {
        let n = ready(s, wait, |s| s.read(&mut buf[off..]))?;
        if n == 0 {
            if off == 0 && eof_ok {
                return Ok(false);
            }
            return Err(io::Error::new(ErrorKind::UnexpectedEof, "peer closed mid-message"));
        }
        off += n;
    }
    Ok(true)
}

fn write_msg<S: BenchStream>(s: &mut S, buf: &[u8], wait: Wait) -> io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        let n = ready(s, wait, |s| s.write(&buf[off..]))?;
        if n == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
        off += n;
    }
    ready(s, wait, |s| s.flush())
}

/// Request/response ping-pong: the client sends `rr_size` bytes, the server
/// echoes them back, `rr_warmup + rr_round_trips` times; each measured round
/// trip's latency is recorded and every echo is checked against its request.
pub fn run_rr<T: Transport>(t: &mut T, cfg: &BenchConfig) -> io::Result<RrResult> {
    if cfg.rr_size == 0 {
        return Err(io::Error::new(ErrorKind::InvalidInput, "rr_size is 0"));
    }
    let wait = match cfg.busy_poll_us {
        Some(us) => Wait::Spin(Duration::from_micros(us)),
        None => Wait::Block,
    };
    let (mut client, mut server) = t.connect_pair()?;
    if cfg.busy_poll_us.is_some() {
        client.set_nonblocking(true)?;
        server.set_nonblocking(true)?;
    }
    let done = AtomicU64::new(0);
    let barrier = Barrier::new(2);
    let label = format!("{} rr", t.name());
    let total = cfg.rr_warmup + cfg.rr_round_trips;

    let (client_out, server_out, progress_shown) = thread::scope(|s| {
        let mut progress = ProgressFeed::spawn(s, cfg.progress, label, total, false, &done);
        let barrier = &barrier;
        let done = &done;

        let c = s.spawn(move || -> io::Result<_> {
            let mut req = vec![0u8; cfg.rr_size];
            let mut resp = vec![0u8; cfg.rr_size];
            let mut rtt_ns = Vec::with_capacity(cfg.rr_round_trips as usize);
            let mut mismatched = 0u64;
            barrier.wait();
            let mut measured_start = Instant::now();
            for i in 0..total {
                if i == cfg.rr_warmup {
                    measured_start = Instant::now();
                }
                // A per-trip payload, so a stale or misrouted echo shows.
                let tag = (i as u8).wrapping_mul(31);
                for (j, b) in req.iter_mut().enumerate() {
                    *b = tag.wrapping_add(j as u8);
                }
                let t0 = Instant::now();
                write_msg(&mut client, &req, wait)?;
                read_msg(&mut client, &mut resp, wait, false)?;
                let dt = t0.elapsed();
                if i >= cfg.rr_warmup {
                    rtt_ns.push(dt.as_nanos() as u64);
                }
                if resp != req {
                    mismatched += 1;
                }
                done.store(i + 1, Ordering::Relaxed);
            }
            let seconds = measured_start.elapsed().as_secs_f64();
            if cfg.busy_poll_us.is_some() {
                client.set_nonblocking(false)?;
            }
            client.shutdown_write()?;
            Ok((client, rtt_ns, mismatched, seconds))
        });

        let sv = s.spawn(move || -> io::Result<u64> {
            let mut buf = vec![0u8; cfg.rr_size];
            let mut echoed = 0u64;
            barrier.wait();
            while read_msg(&mut server, &mut buf, wait, true)? {
                write_msg(&mut server, &buf, wait)?;
                echoed += 1;
            }
            Ok(echoed)
        });

        let client_out = join(c, "rr client");
        let server_out = join(sv, "rr server");
        (client_out, server_out, progress.finish())
    });
    let (client_stream, mut rtt_ns, mismatched, seconds) = client_out?;
    let echoed = server_out?;
    drop(client_stream);

    Ok(RrResult {
        size: cfg.rr_size,
        round_trips: rtt_ns.len() as u64,
        warmup: cfg.rr_warmup,
        seconds,
        rtt_us: Percentiles::from_nanos(&mut rtt_ns),
        integrity_ok: mismatched == 0 && echoed == total,
        mismatched_responses: mismatched,
        progress_shown,
    })
}

impl Percentiles {
    /// Summarises latencies given in nanoseconds (sorted in place) as
    /// microseconds. Percentiles use the nearest-rank method: pQ is the
    /// smallest sample with at least Q% of all samples at or below it.
    /// All zeros when there are no samples.
    pub fn from_nanos(samples: &mut [u64]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let us = |ns: u64| ns as f64 / 1e3;
        let sum: u128 = samples.iter().map(|&v| v as u128).sum();
        Percentiles {
            min: us(samples[0]),
            mean: sum as f64 / samples.len() as f64 / 1e3,
            p50: us(nearest_rank(samples, 1, 2)),
            p90: us(nearest_rank(samples, 9, 10)),
            p99: us(nearest_rank(samples, 99, 100)),
            p999: us(nearest_rank(samples, 999, 1000)),
            max: us(samples[samples.len() - 1]),
        }
    }
}

/// The `num/den` quantile of sorted, nonempty `sorted` by nearest rank:
/// the sample at 1-based rank `ceil(num/den * n)`, in exact integer math.
pub fn nearest_rank(sorted: &[u64], num: u64, den: u64) -> u64 {
    let n = sorted.len() as u128;
    let rank = (num as u128 * n).div_ceil(den as u128).clamp(1, n);
    sorted[(rank - 1) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    /// A fake transport over in-process Unix socket pairs: proves the
    /// workloads are generic over any [`Transport`].
    struct UnixPair;

    impl Transport for UnixPair {
        type Stream = UnixStream;
        fn name(&self) -> &str {
            "unix"
        }
        fn connect_pair(&mut self) -> io::Result<(UnixStream, UnixStream)> {
            UnixStream::pair()
        }
        fn counters(&self) -> serde_json::Map<String, serde_json::Value> {
            let mut m = serde_json::Map::new();
            m.insert("pairs".into(), 1.into());
            m
        }
    }

    /// A stream that damages data in flight: flips one bit of the byte at
    /// stream offset `flip_at` as it is read.
    struct Corrupting {
        inner: UnixStream,
        pos: u64,
        flip_at: u64,
    }
    impl Read for Corrupting {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            let end = self.pos + n as u64;
            if (self.pos..end).contains(&self.flip_at) {
                buf[(self.flip_at - self.pos) as usize] ^= 0x10;
            }
            self.pos = end;
            Ok(n)
        }
    }
    impl Write for Corrupting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.inner.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }
    impl BenchStream for Corrupting {
        fn set_nonblocking(&self, on: bool) -> io::Result<()> {
            self.inner.set_nonblocking(on)
        }
        fn shutdown_write(&self) -> io::Result<()> {
            self.inner.shutdown(std::net::Shutdown::Write)
        }
    }
    struct CorruptingPair(u64);
    impl Transport for CorruptingPair {
        type Stream = Corrupting;
        fn name(&self) -> &str {
            "corrupting"
        }
        fn connect_pair(&mut self) -> io::Result<(Corrupting, Corrupting)> {
            let (a, b) = UnixStream::pair()?;
            // Only the server's inbound side is damaged (damaging both
            // directions at the same offset would cancel out in rr).
            let client = Corrupting { inner: a, pos: 0, flip_at: u64::MAX };
            let server = Corrupting { inner: b, pos: 0, flip_at: self.0 };
            Ok((client, server))
        }
    }

    fn small_cfg() -> BenchConfig {
        BenchConfig {
            bytes: 3 * PATTERN_LEN as u64 + 12345,
            chunk_size: 100_000,
            rr_size: 7,
            rr_round_trips: 200,
            rr_warmup: 5,
            ..BenchConfig::default()
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&v, 1, 2), 50);
        assert_eq!(nearest_rank(&v, 99, 100), 99);
        assert_eq!(nearest_rank(&v, 999, 1000), 100);
        assert_eq!(nearest_rank(&v, 9, 10), 90);
        assert_eq!(nearest_rank(&[7], 1, 2), 7);
        assert_eq!(nearest_rank(&[7], 999, 1000), 7);
        let v4 = [1, 2, 3, 4];
        assert_eq!(nearest_rank(&v4, 1, 2), 2);
        assert_eq!(nearest_rank(&v4, 99, 100), 4);
        // 1000 samples: p99 is the 990th, p999 the 999th.
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(nearest_rank(&v, 99, 100), 990);
        assert_eq!(nearest_rank(&v, 999, 1000), 999);
    }

    #[test]
    fn percentiles_summary() {
        let mut ns: Vec<u64> = (1..=100).rev().map(|v| v * 1000).collect();
        let p = Percentiles::from_nanos(&mut ns);
        assert_eq!(p.min, 1.0);
        assert_eq!(p.max, 100.0);
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.p999, 100.0);
        assert!((p.mean - 50.5).abs() < 1e-9);
        assert_eq!(Percentiles::from_nanos(&mut []), Percentiles::default());
    }

    #[test]
    fn stream_check_hashes_what_arrived() {
        let p = Pattern::new(7);
        let len = 2 * PATTERN_LEN + 5000;
        let stream: Vec<u8> = (0..len as u64).map(|i| p.byte_at(i)).collect();
        // A clean stream, a flip in the first chunk, one straddling a lap
        // boundary inside a chunk, and one in the last byte.
        for flip in [None, Some(3), Some(PATTERN_LEN + 1), Some(len - 1)] {
            let mut data = stream.clone();
            if let Some(i) = flip {
                data[i] ^= 0x10;
            }
            let mut want = Xxh3Default::new();
            want.update(&data);
            let mut check = StreamCheck::new(&p);
            // Chunks that cross lap boundaries.
            for c in data.chunks(300_007) {
                check.update(c);
            }
            assert_eq!(check.len(), len as u64);
            assert_eq!(check.digest(), want.digest(), "flip {flip:?}");
            assert_eq!(check.digest() == p.hash_prefix(len as u64), flip.is_none());
        }
    }

    #[test]
    fn pattern_slices_match_reference() {
        let p = Pattern::new(42);
        let mut off = 0u64;
        let end = 2 * PATTERN_LEN as u64 + 999;
        while off < end {
            let s = p.slice_at(off, 300_001);
            assert!(!s.is_empty());
            for (k, &b) in s.iter().enumerate().step_by(997) {
                assert_eq!(b, p.byte_at(off + k as u64));
            }
            // Lap boundaries are never crossed.
            let lap = off / PATTERN_LEN as u64;
            assert_eq!((off + s.len() as u64 - 1) / PATTERN_LEN as u64, lap);
            off += s.len() as u64;
        }
        // Laps are rotated differently: the stream is not 1 MiB periodic.
        let l = PATTERN_LEN as u64;
        assert_ne!(p.slice_at(0, 64), p.slice_at(l, 64));
        // Seeds matter, and hashing is chunking-independent.
        assert_ne!(Pattern::new(1).hash_prefix(4096), Pattern::new(2).hash_prefix(4096));
        let mut h = Xxh3Default::new();
        for i in 0..5000u64 {
            h.update(&[p.byte_at(i)]);
        }
        assert_eq!(h.digest(), p.hash_prefix(5000));
    }

    #[test]
    fn generic_bulk_over_unix_pair() {
        let r = run_bulk(&mut UnixPair, &small_cfg()).unwrap();
        assert!(r.integrity_ok, "{r:?}");
        assert_eq!(r.bytes, small_cfg().bytes);
        assert_eq!(r.client_hash, r.server_hash);
        assert!(r.seconds > 0.0 && r.gbytes_per_s > 0.0);
        assert_eq!(UnixPair.counters()["pairs"], 1);
    }

    #[test]
    fn generic_rr_over_unix_pair() {
        let cfg = small_cfg();
        let r = run_rr(&mut UnixPair, &cfg).unwrap();
        assert!(r.integrity_ok);
        assert_eq!(r.round_trips, 200);
        assert_eq!(r.size, 7);
        let p = r.rtt_us;
        assert!(p.min <= p.p50 && p.p50 <= p.p99 && p.p99 <= p.p999 && p.p999 <= p.max);
    }

    #[test]
    fn generic_rr_busy_poll_over_unix_pair() {
        // A tiny spin budget exercises both spinning and the blocking
        // fallback.
        for us in [1, 1_000_000] {
            let cfg = BenchConfig { busy_poll_us: Some(us), rr_size: 3000, ..small_cfg() };
            let r = run_rr(&mut UnixPair, &cfg).unwrap();
            assert!(r.integrity_ok);
            assert_eq!(r.round_trips, 200);
        }
    }

    #[test]
    fn corruption_is_detected() {
        let cfg = small_cfg();
        let r = run_bulk(&mut CorruptingPair(PATTERN_LEN as u64 + 17), &cfg).unwrap();
        assert!(!r.integrity_ok);
        assert_eq!(r.client_bytes, r.server_bytes);
        assert_ne!(r.client_hash, r.server_hash);
        let r = run_rr(&mut CorruptingPair(50), &cfg).unwrap();
        assert!(!r.integrity_ok);
        assert_eq!(r.mismatched_responses, 1);
    }

    /// Not a check, a measurement: `cargo test --release -p utcp-cli --
    /// --ignored --nocapture hash_speed` prints how fast the server side can
    /// hash and how fast the client side can produce data (copying slices
    /// out, a pessimistic stand-in for a transport's own copy).
    #[test]
    #[ignore]
    fn hash_speed() {
        let p = Pattern::new(1);
        let len = 4u64 << 30;
        let t = Instant::now();
        let h = p.hash_prefix(len);
        let hash_gbs = len as f64 / t.elapsed().as_secs_f64() / 1e9;
        let mut buf = vec![0u8; 256 << 10];
        let t = Instant::now();
        let mut off = 0u64;
        while off < len {
            let s = p.slice_at(off, buf.len());
            buf[..s.len()].copy_from_slice(s);
            off += s.len() as u64;
        }
        let gen_gbs = len as f64 / t.elapsed().as_secs_f64() / 1e9;
        println!("xxh3 {hash_gbs:.1} GB/s, generator+copy {gen_gbs:.1} GB/s ({h:x} {})", buf[7]);
    }

    /// A transport whose streams are slow enough (a sleep per read) to outlast a short
    /// progress interval.
    struct SlowPair;
    struct Slow(UnixStream);
    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            thread::sleep(Duration::from_millis(2));
            self.0.read(buf)
        }
    }
    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl BenchStream for Slow {
        fn set_nonblocking(&self, on: bool) -> io::Result<()> {
            self.0.set_nonblocking(on)
        }
        fn shutdown_write(&self) -> io::Result<()> {
            self.0.shutdown(std::net::Shutdown::Write)
        }
    }
    impl Transport for SlowPair {
        type Stream = Slow;
        fn name(&self) -> &str {
            "slow"
        }
        fn connect_pair(&mut self) -> io::Result<(Slow, Slow)> {
            let (a, b) = UnixStream::pair()?;
            Ok((Slow(a), Slow(b)))
        }
    }

    #[test]
    fn progress_lines_without_a_terminal() {
        let interval = Duration::from_millis(20);
        let cfg = BenchConfig {
            bytes: 4 << 20,
            chunk_size: 64 << 10,
            rr_round_trips: 40,
            rr_warmup: 0,
            progress: Progress::Lines { interval },
            ..BenchConfig::default()
        };
        let r = run_bulk(&mut SlowPair, &cfg).unwrap();
        assert!(r.integrity_ok && r.progress_shown, "{r:?}");
        assert!(run_rr(&mut SlowPair, &cfg).unwrap().progress_shown);
        // Off, or a run shorter than the interval, shows nothing.
        let off = BenchConfig { progress: Progress::Off, ..cfg.clone() };
        assert!(!run_bulk(&mut SlowPair, &off).unwrap().progress_shown);
        let long = BenchConfig { progress: Progress::Lines { interval: Duration::from_secs(60) }, ..cfg };
        assert!(!run_bulk(&mut UnixPair, &long).unwrap().progress_shown);
    }

    #[test]
    fn progress_line_format() {
        let l = progress_line("utcp bulk", 812 << 20, 4 << 30, true, Duration::from_secs(2));
        assert_eq!(l, "utcp bench: utcp bulk 812 MiB / 4 GiB, 425.7 MB/s");
        let l = progress_line("utcp bulk", 4 << 30, 4 << 30, true, Duration::from_secs(2));
        assert_eq!(l, "utcp bench: utcp bulk 4 GiB / 4 GiB, 2.15 GB/s");
        let l = progress_line("utcp rr", 5000, 20100, false, Duration::from_secs(2));
        assert_eq!(l, "utcp bench: utcp rr 5000 / 20100 round trips, 2500 round trips/s");
    }

    #[test]
    fn results_read_back_from_json() {
        let r = run_bulk(&mut UnixPair, &BenchConfig { bytes: 1000, ..small_cfg() }).unwrap();
        let back: BulkResult = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!((back.client_hash, back.bytes, back.integrity_ok), (r.client_hash, 1000, true));
        let rr = run_rr(&mut UnixPair, &small_cfg()).unwrap();
        let back: RrResult = serde_json::from_value(serde_json::to_value(&rr).unwrap()).unwrap();
        assert_eq!(back.rtt_us, rr.rtt_us);
    }

    #[test]
    fn result_json_shape() {
        let r = run_bulk(&mut UnixPair, &BenchConfig { bytes: 1000, ..small_cfg() }).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        for k in ["bytes", "seconds", "gbytes_per_s", "integrity_ok", "client_hash", "server_hash"] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["client_hash"].as_str().unwrap().len(), 16);
    }
}
