//! Many connections at once: `--streams N` (N concurrent bulk streams sharing `--bytes`) and
//! `--idle N` (N established connections, each having carried a byte both ways, then measured
//! for the memory they hold).

use std::io::{self, ErrorKind, Read, Write};
use std::sync::Barrier;
use std::thread;
use std::time::Instant;

use serde::Serialize;
use xxhash_rust::xxh3::Xxh3Default;

use crate::bench::{BenchConfig, BenchStream, BulkResult, Pattern, Transport};

/// Threads that drive the senders, and as many for the receivers (each thread serves every
/// `SIDE_THREADS`-th stream with nonblocking calls, so 10,000 streams need no 20,000 threads).
pub const SIDE_THREADS: usize = 2;

/// A sender thread's result: when it started, and per stream (index, bytes sent, the stream).
type Sent<S> = (Instant, Vec<(usize, u64, S)>);
/// A receiver thread's result: its last read, and per stream (index, bytes, hash).
type Received = (Instant, Vec<(usize, u64, u64)>);
/// Established connections, (client, server).
pub type Pairs<S> = Vec<(S, S)>;

/// `n` concurrent bulk streams, each carrying its share of `cfg.bytes` (the first ones one byte
/// more when it does not divide). Stream `i` carries the pattern of seed `cfg.seed + i`; each is
/// hashed on arrival and checked. Aggregate rate: all bytes / (first write → last byte read).
pub fn run_streams<T: Transport>(t: &mut T, cfg: &BenchConfig, n: usize) -> io::Result<BulkResult> {
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let (c, s) = t.connect_pair()?;
        c.set_nonblocking(true)?;
        s.set_nonblocking(true)?;
        pairs.push((c, s));
    }
    let share = |i: usize| cfg.bytes / n as u64 + u64::from((i as u64) < cfg.bytes % n as u64);
    let patterns: Vec<Pattern> = (0..n.min(64)).map(|i| Pattern::new(cfg.seed.wrapping_add(i as u64))).collect();
    let pat = |i: usize| &patterns[i % patterns.len()];
    let (mut clients, mut servers): (Vec<_>, Vec<_>) =
        pairs.into_iter().enumerate().map(|(i, (c, s))| ((i, c), (i, s))).unzip();
    let barrier = Barrier::new(2 * SIDE_THREADS);
    let mut csets: Vec<Vec<(usize, T::Stream)>> = (0..SIDE_THREADS).map(|_| Vec::new()).collect();
    for (k, c) in clients.drain(..).enumerate() {
        csets[k % SIDE_THREADS].push(c);
    }
    let mut ssets: Vec<Vec<(usize, T::Stream)>> = (0..SIDE_THREADS).map(|_| Vec::new()).collect();
    for (k, s) in servers.drain(..).enumerate() {
        ssets[k % SIDE_THREADS].push(s);
    }
    let (starts, results) = thread::scope(|sc| {
        let barrier = &barrier;
        let senders: Vec<_> = csets
            .into_iter()
            .map(|mut set| {
                sc.spawn(move || -> io::Result<Sent<T::Stream>> {
                    barrier.wait();
                    let start = Instant::now();
                    let mut off = vec![0u64; set.len()];
                    let mut done = vec![false; set.len()];
                    let mut left = set.len();
                    while left > 0 {
                        let mut progress = false;
                        for (k, (i, c)) in set.iter_mut().enumerate() {
                            if done[k] {
                                continue;
                            }
                            let want = (share(*i) - off[k]).min(cfg.chunk_size as u64) as usize;
                            if want > 0 {
                                match c.write(pat(*i).slice_at(off[k], want)) {
                                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                                    Ok(w) => {
                                        off[k] += w as u64;
                                        progress = true;
                                    }
                                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                                    Err(e) => return Err(e),
                                }
                            }
                            if off[k] == share(*i) {
                                c.shutdown_write()?;
                                done[k] = true;
                                left -= 1;
                            }
                        }
                        if !progress {
                            thread::yield_now();
                        }
                    }
                    Ok((start, set.into_iter().zip(off).map(|((i, c), o)| (i, o, c)).collect()))
                })
            })
            .collect();
        let receivers: Vec<_> = ssets
            .into_iter()
            .map(|mut set| {
                sc.spawn(move || -> io::Result<Received> {
                    let mut buf = vec![0u8; cfg.chunk_size.max(64 << 10)];
                    let mut h: Vec<Xxh3Default> = set.iter().map(|_| Xxh3Default::new()).collect();
                    let mut got = vec![0u64; set.len()];
                    let mut eof = vec![false; set.len()];
                    let mut left = set.len();
                    barrier.wait();
                    let mut last = Instant::now();
                    while left > 0 {
                        let mut progress = false;
                        for (k, (_, s)) in set.iter_mut().enumerate() {
                            if eof[k] {
                                continue;
                            }
                            match s.read(&mut buf) {
                                Ok(0) => {
                                    eof[k] = true;
                                    left -= 1;
                                    last = Instant::now();
                                }
                                Ok(r) => {
                                    h[k].update(&buf[..r]);
                                    got[k] += r as u64;
                                    progress = true;
                                    last = Instant::now();
                                }
                                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                                Err(e) => return Err(e),
                            }
                        }
                        if !progress {
                            thread::yield_now();
                        }
                    }
                    Ok((last, set.iter().zip(got).zip(h).map(|(((i, _), g), h)| (*i, g, h.digest())).collect()))
                })
            })
            .collect();
        let s: Vec<_> = senders.into_iter().map(join).collect();
        let r: Vec<_> = receivers.into_iter().map(join).collect();
        (s, r)
    });
    let mut start = None::<Instant>;
    let mut sent = vec![0u64; n];
    let mut keep = Vec::new();
    for s in starts {
        let (t0, v) = s?;
        start = Some(start.map_or(t0, |s| s.min(t0)));
        for (i, o, c) in v {
            sent[i] = o;
            keep.push(c);
        }
    }
    let mut end = None::<Instant>;
    let mut ok = true;
    let (mut server_bytes, mut hx_c, mut hx_s) = (0u64, 0u64, 0u64);
    for r in results {
        let (t1, v) = r?;
        end = Some(end.map_or(t1, |e| e.max(t1)));
        for (i, g, h) in v {
            let want = pat(i).hash_prefix(sent[i]);
            ok &= g == sent[i] && h == want;
            server_bytes += g;
            hx_c ^= want.rotate_left(i as u32 % 64);
            hx_s ^= h.rotate_left(i as u32 % 64);
        }
    }
    drop(keep);
    let client_bytes: u64 = sent.iter().sum();
    let seconds = match (start, end) {
        (Some(s), Some(e)) => e.saturating_duration_since(s).as_secs_f64().max(1e-9),
        _ => 1e-9,
    };
    Ok(BulkResult {
        bytes: server_bytes,
        seconds,
        gbytes_per_s: server_bytes as f64 / seconds / 1e9,
        integrity_ok: ok && client_bytes == server_bytes,
        client_bytes,
        server_bytes,
        client_hash: hx_c,
        server_hash: hx_s,
        progress_shown: false,
    })
}

fn join<R>(h: thread::ScopedJoinHandle<'_, io::Result<R>>) -> io::Result<R> {
    h.join().unwrap_or_else(|_| Err(io::Error::other("stream thread panicked")))
}

/// `--idle N`'s outcome.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub connections: u64,
    /// Resident-set growth over the whole setup divided by the sockets it created (two per
    /// connection: both ends live in this process).
    pub bytes_per_socket: f64,
    pub rss_before: u64,
    pub rss_after: u64,
    pub setup_seconds: f64,
    /// Connections set up (handshake plus a byte each way) per second.
    pub setup_per_s: f64,
}

/// This process's resident set in bytes (`/proc/self/statm`).
pub fn rss_bytes() -> io::Result<u64> {
    let s = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 =
        s.split_whitespace().nth(1).and_then(|v| v.parse().ok()).ok_or_else(|| io::Error::other("statm"))?;
    Ok(pages * 4096)
}

/// Opens `n` connections, moves one byte each way on each and keeps them all open; reports the
/// memory they hold. The streams are returned so the caller decides when they close.
pub fn run_idle<T: Transport>(t: &mut T, n: u64) -> io::Result<(IdleReport, Pairs<T::Stream>)> {
    let mut pairs = Vec::with_capacity(n as usize);
    let rss_before = rss_bytes()?;
    let start = Instant::now();
    let mut b = [0u8; 1];
    for i in 0..n {
        let (mut c, mut s) = t.connect_pair().map_err(|e| io::Error::new(e.kind(), format!("connection {i}: {e}")))?;
        c.write_all(&[1])?;
        s.read_exact(&mut b)?;
        s.write_all(&[2])?;
        c.read_exact(&mut b)?;
        if b[0] != 2 {
            return Err(io::Error::other(format!("connection {i}: wrong byte echoed")));
        }
        pairs.push((c, s));
    }
    let setup_seconds = start.elapsed().as_secs_f64().max(1e-9);
    let rss_after = rss_bytes()?;
    let sockets = (2 * n).max(1) as f64;
    Ok((
        IdleReport {
            connections: n,
            bytes_per_socket: rss_after.saturating_sub(rss_before) as f64 / sockets,
            rss_before,
            rss_after,
            setup_seconds,
            setup_per_s: n as f64 / setup_seconds,
        },
        pairs,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    struct UnixPair;
    impl Transport for UnixPair {
        type Stream = UnixStream;
        fn name(&self) -> &str {
            "unix"
        }
        fn connect_pair(&mut self) -> io::Result<(UnixStream, UnixStream)> {
            UnixStream::pair()
        }
    }

    #[test]
    fn streams_share_bytes_and_check_each() {
        for n in [1, 3, 17] {
            let cfg = BenchConfig { bytes: 1_000_003, chunk_size: 10_000, ..BenchConfig::default() };
            let r = run_streams(&mut UnixPair, &cfg, n).unwrap();
            assert!(r.integrity_ok, "{n}: {r:?}");
            assert_eq!(r.bytes, 1_000_003);
        }
    }

    #[test]
    fn idle_connections_are_counted() {
        let (r, pairs) = run_idle(&mut UnixPair, 20).unwrap();
        assert_eq!(r.connections, 20);
        assert_eq!(pairs.len(), 20);
        assert!(r.rss_before > 0 && r.setup_per_s > 0.0);
    }
}
