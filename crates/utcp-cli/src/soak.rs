//! `utcp soak`: N connections on a memlink (real threads, real clock, optional impairments)
//! for S seconds, each driven by a client thread on host A and a server thread on host B.
//! The client writes random amounts of the stream (a fixed function of the offset) with
//! random flags and ends each connection in one of the ways a program does: shutdown(SHUT_WR),
//! close(), or an abortive close (SO_LINGER 0: a RST); the server reads with random sizes and
//! flags (plain, MSG_PEEK, MSG_WAITALL, MSG_DONTWAIT), checks every byte against the stream,
//! and now and then closes first. Each slot opens a new connection when the previous ended,
//! until S seconds have passed.
//!
//! Checked: every stream that closed cleanly arrived byte-exact (the server read exactly what
//! the client's sends accepted, then EOF); no connection hangs (every thread ends within a
//! grace period after S; failures are errnos Linux gives in these cases: ECONNRESET, EPIPE,
//! ETIMEDOUT); once everything closed, every table of both hosts empty and the heap (the
//! counting allocator's live bytes) back at its starting level, with RSS reported before and
//! after the allocator was asked to give its free memory back.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use utcp::api::{memlink_pair, ADDR_B};
use utcp::netdev::memlink::LinkConfig;
use utcp::syscall::opt::{SO_KEEPALIVE, SO_LINGER, SO_RCVTIMEO, SO_SNDTIMEO, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL};
use utcp::syscall::{AF_INET, SHUT_WR, SOCK_STREAM, SOL_SOCKET, SOL_TCP};
use utcp::tcp::recvmsg::{MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL};
use utcp::tcp::TcpState;
use utcp::{Errno, Stack};

use crate::units::{check_probability, parse_probability, parse_seconds};

/// `utcp soak` arguments.
#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    /// Connections open at once (each slot reopens when its connection ends)
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub connections: u32,
    /// How long to keep opening connections and moving data: seconds, or with a unit (30, 500ms, 2s)
    #[arg(long, value_name = "S", default_value = "10", value_parser = parse_seconds)]
    pub seconds: Duration,
    /// Link: probability of dropping a packet
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_probability)]
    pub loss: f64,
    /// Link: probability of reordering a packet
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_probability)]
    pub reorder: f64,
    /// Link: probability of duplicating a packet
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_probability)]
    pub dup: f64,
    /// Seed of the link impairments and of every random choice
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// How long after --seconds a connection may still take to finish before it counts as hung:
    /// seconds, or with a unit
    #[arg(long, value_name = "S", default_value = "120", value_parser = parse_seconds)]
    pub grace: Duration,
    /// Print one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

/// What a soak run found.
#[derive(Debug, Default, Serialize)]
pub struct SoakReport {
    /// Connections opened in all.
    pub connections: u64,
    /// Connections that ended cleanly (FIN read after the whole stream) and were compared.
    pub clean_streams: u64,
    /// Connections that ended with a reset or an early close by either side.
    pub reset_streams: u64,
    /// Bytes read and checked against the stream (all connections).
    pub verified_bytes: u64,
    /// Streams with a wrong byte, or a clean end short of what was sent.
    pub mismatched_streams: u64,
    /// Connection threads that had not finished `--grace` after `--seconds`.
    pub hung_connections: u64,
    /// Errors other than ECONNRESET, EPIPE, ETIMEDOUT (and EAGAIN from the timeouts).
    pub unexpected_errors: u64,
    /// Resident set once the hosts were set up and the process had once had the soak's threads
    /// ([`warm_threads`]), and at the end: after every socket left the
    /// tables, the stack's caches were reaped, every host thread trimmed its allocator heap
    /// (`skb_queue::request_trim`) and this thread did too (`utcp_alloc::collect`, as a
    /// long-running server trims after a burst).
    pub rss_start: u64,
    pub rss_end: u64,
    /// The resident set before the soak's 2N threads had first run (see [`warm_threads`]):
    /// `rss_start` minus this is what libc and the allocator keep for threads that ran.
    pub rss_before_threads: u64,
    /// The peak resident set of the whole run (`VmHWM`).
    pub rss_peak: u64,
    /// The resident set at the end before the allocator gave its free memory back: what it
    /// kept cached of the memory the run freed.
    pub rss_end_before_collect: u64,
    /// Heap bytes allocated and not freed (the counting allocator), once both hosts and their
    /// listeners were set up, and at the end (every socket gone, caches reaped).
    pub heap_start: u64,
    pub heap_end: u64,
    /// Sockets of either host neither in TIME_WAIT nor closed 90 s after the last
    /// connection thread ended.
    pub sockets_left: u64,
    /// At the end, both hosts together: sockets in the connection tables, of them in
    /// TIME_WAIT, listeners, sockets holding a port, live sockets with a timer armed,
    /// `tcp_orphan_count`, `tcp_memory_allocated` (pages) and `tcp_sockets_allocated`.
    pub sockets_end: u64,
    pub time_wait_end: u64,
    pub listeners_end: u64,
    pub ports_end: u64,
    pub timers_end: u64,
    pub orphans_end: i64,
    pub tcp_mem_pages_end: i64,
    pub sockets_allocated_end: i64,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
}

fn stream_byte(off: u64) -> u8 {
    (off.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

fn fill(off: u64, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = stream_byte(off + k as u64);
    }
}

fn timeouts(st: &Stack, fd: i32) {
    let tv = [0i64.to_ne_bytes(), 200_000i64.to_ne_bytes()].concat();
    let _ = st.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv);
    let _ = st.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv);
}

fn expected(e: Errno) -> bool {
    matches!(e, Errno::ECONNRESET | Errno::EPIPE | Errno::ETIMEDOUT | Errno::EAGAIN)
}

#[derive(Default)]
struct Totals {
    connections: AtomicU64,
    clean: AtomicU64,
    reset: AtomicU64,
    verified: AtomicU64,
    mismatched: AtomicU64,
    unexpected: AtomicU64,
}

/// How the client ended a connection.
#[derive(Clone, Copy, PartialEq, Debug)]
enum End {
    Clean,
    Abort,
}

fn client(st: &Stack, rng: &mut ChaCha8Rng, fd: i32, until: Instant, t: &Totals) -> (u64, End) {
    timeouts(st, fd);
    let mut off = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if Instant::now() >= until || rng.gen_ratio(1, 64) {
            break;
        }
        let n = rng.gen_range(1..=buf.len());
        fill(off, &mut buf[..n]);
        let flags = if rng.gen_bool(0.3) { MSG_DONTWAIT } else { 0 };
        match st.send(fd, Some(&buf[..n]), n, flags) {
            Ok(k) => off += k as u64,
            Err(Errno::EAGAIN) => {}
            Err(e) => {
                if !expected(e) {
                    t.unexpected.fetch_add(1, Ordering::Relaxed);
                }
                let _ = st.close(fd);
                return (off, End::Abort);
            }
        }
    }
    let end = match rng.gen_range(0..10) {
        0..=5 => {
            let _ = st.shutdown(fd, SHUT_WR);
            // Wait for the server's close (its FIN or RST), then close.
            let mut b = [0u8; 256];
            let give_up = Instant::now() + Duration::from_secs(300);
            loop {
                match st.recv(fd, Some(&mut b), 256, 0) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(Errno::EAGAIN) if Instant::now() < give_up => {}
                    Err(e) => {
                        if !expected(e) {
                            t.unexpected.fetch_add(1, Ordering::Relaxed);
                        }
                        break;
                    }
                }
            }
            End::Clean
        }
        6..=8 => End::Clean,
        _ => {
            let lin = [1i32.to_ne_bytes(), 0i32.to_ne_bytes()].concat();
            let _ = st.setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin);
            End::Abort
        }
    };
    let _ = st.close(fd);
    (off, end)
}

/// Keepalive on a server's socket (SO_KEEPALIVE, TCP_KEEPIDLE 1 s, TCP_KEEPINTVL 1 s,
/// TCP_KEEPCNT 5): a client's abortive close whose RST the link dropped leaves the server
/// established with nothing to send, reading forever on Linux too; the probe finds the client
/// gone (its RST answers) and the read fails with ECONNRESET, as a server that enables
/// keepalive sees it.
fn keepalive(st: &Stack, fd: i32) {
    let one = 1i32.to_ne_bytes();
    let _ = st.setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one);
    for (opt, v) in [(TCP_KEEPIDLE, 1i32), (TCP_KEEPINTVL, 1), (TCP_KEEPCNT, 5)] {
        let _ = st.setsockopt(fd, SOL_TCP, opt, &v.to_ne_bytes());
    }
}

/// Reads until EOF or an error, checking each byte; returns (bytes read, EOF seen, bad).
fn server(st: &Stack, rng: &mut ChaCha8Rng, fd: i32, t: &Totals) -> (u64, bool, bool) {
    timeouts(st, fd);
    keepalive(st, fd);
    let mut off = 0u64;
    let mut buf = vec![0u8; 96 * 1024];
    let early = rng.gen_ratio(1, 20).then(|| rng.gen_range(0..4u64 << 20));
    let give_up = Instant::now() + Duration::from_secs(900);
    loop {
        if early.is_some_and(|e| off >= e) {
            let _ = st.close(fd);
            return (off, false, false);
        }
        let n = rng.gen_range(1..=buf.len());
        let flags = [0, 0, MSG_PEEK, MSG_WAITALL, MSG_DONTWAIT][rng.gen_range(0..5)];
        match st.recv(fd, Some(&mut buf[..n]), n, flags) {
            Ok(0) => {
                let _ = st.close(fd);
                return (off, true, false);
            }
            Ok(k) => {
                let bad = (0..k).any(|i| buf[i] != stream_byte(off + i as u64));
                if bad {
                    let _ = st.close(fd);
                    return (off, false, true);
                }
                if flags != MSG_PEEK {
                    off += k as u64;
                    t.verified.fetch_add(k as u64, Ordering::Relaxed);
                }
            }
            Err(Errno::EAGAIN) if Instant::now() < give_up => {}
            Err(e) => {
                if !expected(e) {
                    t.unexpected.fetch_add(1, Ordering::Relaxed);
                }
                let _ = st.close(fd);
                return (off, false, false);
            }
        }
    }
}

const PHASE_CONNECT: u64 = 1;
const PHASE_CLIENT: u64 = 2;
const PHASE_JOIN_SERVER: u64 = 3;
const PHASE_DONE: u64 = 4;
const PHASE_NAMES: [&str; 5] =
    ["before its first connection", "in connect()", "in the client", "waiting for the server thread", "done"];

/// Prints, on stderr, every socket of both hosts that is neither in TIME_WAIT nor closed.
fn describe_sockets(sa: &Stack, sb: &Stack) {
    for (host, st) in [("A", sa), ("B", sb)] {
        for sk in st.core.sockets() {
            let line = sk.peek_tp(|tp| {
                if matches!(tp.state, TcpState::TimeWait | TcpState::Close) {
                    return None;
                }
                Some(format!(
                    "{:?} snd_una {} snd_nxt {} snd_wnd {} packets_out {} retransmits {} backoff {} rcv_nxt {} \
                     rcv_wnd {} timers {:?} {}",
                    tp.state,
                    tp.snd_una.0,
                    tp.snd_nxt.0,
                    tp.snd_wnd,
                    tp.packets_out,
                    tp.retransmits,
                    tp.backoff,
                    tp.rcv_nxt.0,
                    tp.rcv_wnd,
                    tp.timers,
                    tp.rx_summary()
                ))
            });
            if let Some(l) = line {
                eprintln!("utcp soak: host {host} (now {:?}) socket {l}", sk.now());
            }
        }
    }
}

/// Accepts the connection whose client port is `cport` on the slot's listener (which has
/// SO_RCVTIMEO, so accept4 returns EAGAIN now and then). A connection from an earlier client
/// of the slot that reached the server only after that client's server thread gave up is
/// closed (it resets the orphan). Gives up 5 s after the client ended: a client may connect and
/// end before its handshake ACK, its data and its FIN reach the server (lost), and then its
/// RST or its socket's retransmissions giving up drop the request, so no connection ever
/// reaches the accept queue — as on Linux, where accept() would block forever.
fn accept_peer(st: &Stack, l: i32, cport: u16, client_done: &AtomicU64, t: &Totals) -> Option<i32> {
    let mut since: Option<Instant> = None;
    loop {
        match st.accept4(l, 0) {
            Ok((s, peer)) if peer.port() == cport => return Some(s),
            Ok((s, _)) => {
                let _ = st.close(s);
            }
            Err(Errno::EAGAIN) => {
                if client_done.load(Ordering::Acquire) != 0 {
                    let t = *since.get_or_insert_with(Instant::now);
                    if t.elapsed() > Duration::from_secs(5) {
                        return None;
                    }
                }
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOMEM: the child stays queued and nothing will take it;
                // no error is expected here.
                eprintln!("utcp soak: accept4() for client port {cport}: {e:?}");
                t.unexpected.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
    }
}

/// Starts `n` threads that each allocate once and wait until all of them have, then lets them
/// end: the soak's client and server threads (two per slot) then find the process as a
/// server's is after it first had that many threads. What libc and the allocator keep for
/// every thread a process ever ran at once is made here, before `rss_start`, not counted as
/// memory the soak failed to return: mimalloc's per-thread heap metadata (about 9 KiB a
/// thread, zeroed on thread exit and never unmapped: 1.8 MB for 200 threads), glibc's
/// per-thread malloc arenas and its cache of thread stacks. At 100 slots this was most of
/// what the run's RSS kept once every connection had closed.
fn warm_threads(n: usize) {
    let all = Arc::new(std::sync::Barrier::new(n + 1));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let all = all.clone();
            std::thread::spawn(move || {
                // The thread's allocator heap is made at its first allocation.
                drop(std::hint::black_box(vec![0u8; 64]));
                all.wait();
            })
        })
        .collect();
    all.wait();
    for t in threads {
        let _ = t.join();
    }
    // What the threads freed (their first pages) goes back now, not at mimalloc's delayed
    // purge after `rss_start`.
    utcp_alloc::collect();
}

/// Runs the soak.
pub fn run(a: &SoakArgs) -> Result<SoakReport, String> {
    for (name, p) in [("loss", a.loss), ("reorder", a.reorder), ("dup", a.dup)] {
        check_probability(p).map_err(|e| format!("--{name}: probability {e}"))?;
    }
    let started = Instant::now();
    // The host threads give their freed memory back to the OS once idle after work.
    utcp::skb_queue::set_reap_hook(utcp_alloc::collect);
    let cfg = LinkConfig { loss: a.loss, reorder: a.reorder, dup: a.dup, seed: a.seed, ..LinkConfig::default() };
    let (ha, hb) = memlink_pair(cfg);
    let (sa, sb) = (ha.stack.clone(), hb.stack.clone());
    // Each host holds up to two fds per slot (B: the listener and the accepted socket), so
    // both raise RLIMIT_NOFILE as a server would: at Linux's default soft limit of 1,024,
    // accept4() fails with EMFILE past ~500 slots and the child waits on its accept queue.
    let nofile = (2 * a.connections as usize + 64).clamp(1024, utcp::syscall::fdtable::NR_OPEN);
    for st in [&sa, &sb] {
        st.set_rlimit_nofile(nofile).map_err(|e| format!("RLIMIT_NOFILE {nofile}: {e:?}"))?;
    }
    // One listener per slot (port 1000 + slot), so that each accept() gets the slot's own
    // connection and the two ends of a stream can be compared.
    let mut listeners = Vec::new();
    for slot in 0..a.connections {
        let l = sb.socket(AF_INET, SOCK_STREAM, 0).map_err(|e| e.to_string())?;
        sb.bind(l, SocketAddrV4::new(ADDR_B, 1000 + slot as u16)).map_err(|e| e.to_string())?;
        sb.listen(l, 4).map_err(|e| e.to_string())?;
        timeouts(&sb, l);
        listeners.push(l);
    }
    let rss_before_threads = crate::multi::rss_bytes().map_err(|e| e.to_string())?;
    warm_threads(2 * a.connections as usize);
    let rss_start = crate::multi::rss_bytes().map_err(|e| e.to_string())?;
    let heap_start = utcp_alloc::live_bytes();
    let until = started + a.seconds;
    let totals = Arc::new(Totals::default());
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut threads = 0u64;
    // What each slot is doing, for the report on a hung connection.
    let phases: Arc<Vec<AtomicU64>> = Arc::new((0..a.connections).map(|_| AtomicU64::new(0)).collect());
    for slot in 0..a.connections as u64 {
        let (sa, sb, t, done) = (sa.clone(), sb.clone(), totals.clone(), done_tx.clone());
        let phases = phases.clone();
        let phase = move |p: u64| phases[slot as usize].store(p, Ordering::Relaxed);
        let seed = a.seed.wrapping_mul(1_000_003).wrapping_add(slot);
        let (l, port) = (listeners[slot as usize], 1000 + slot as u16);
        threads += 1;
        // The slot's server runs on one thread for the whole soak, connection after connection
        // (a thread per connection leaves exited threads' allocator pages and cached stacks
        // resident: RSS that does not return).
        let (job_tx, job_rx) = mpsc::channel::<(u16, Arc<AtomicU64>, ChaCha8Rng)>();
        let (res_tx, res_rx) = mpsc::channel::<(u64, bool, bool)>();
        let (sb2, t2) = (sb.clone(), t.clone());
        std::thread::spawn(move || {
            for (cport, cd, mut srng) in job_rx {
                let r = match accept_peer(&sb2, l, cport, &cd, &t2) {
                    Some(s) => server(&sb2, &mut srng, s, &t2),
                    None => (0, false, false),
                };
                if res_tx.send(r).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            while Instant::now() < until {
                let Ok(c) = sa.socket(AF_INET, SOCK_STREAM, 0) else { break };
                phase(PHASE_CONNECT);
                if let Err(e) = sa.connect(c, SocketAddrV4::new(ADDR_B, port)) {
                    if !expected(e) {
                        t.unexpected.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = sa.close(c);
                    continue;
                }
                t.connections.fetch_add(1, Ordering::Relaxed);
                let srng = ChaCha8Rng::seed_from_u64(rng.gen());
                let cport = sa.getsockname(c).map(|a| a.port()).unwrap_or(0);
                let client_done = Arc::new(AtomicU64::new(0));
                let server_up = job_tx.send((cport, client_done.clone(), srng)).is_ok();
                phase(PHASE_CLIENT);
                let (sent, end) = client(&sa, &mut rng, c, until, &t);
                client_done.store(1, Ordering::Release);
                phase(PHASE_JOIN_SERVER);
                let r = if server_up { res_rx.recv().ok() } else { None };
                let (got, eof, bad) = r.unwrap_or((0, false, true));
                // A clean stream's length is compared when both ends say it ended cleanly.
                if bad {
                    t.mismatched.fetch_add(1, Ordering::Relaxed);
                } else if end == End::Clean && eof {
                    t.clean.fetch_add(1, Ordering::Relaxed);
                    if got != sent {
                        eprintln!("utcp soak: clean stream of {sent} bytes read as {got}");
                        t.mismatched.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    t.reset.fetch_add(1, Ordering::Relaxed);
                }
            }
            phase(PHASE_DONE);
            let _ = done.send(());
        });
    }
    drop(done_tx);
    let deadline = until + a.grace;
    let mut finished = 0u64;
    while finished < threads {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(()) => finished += 1,
            Err(_) => break,
        }
    }
    if finished < threads {
        for (slot, p) in phases.iter().enumerate() {
            let p = p.load(Ordering::Relaxed);
            if p != PHASE_DONE {
                // A listener's tcpi_unacked is its accept-queue length.
                let queued = sb.tcp_info(listeners[slot]).map(|i| i.tcpi_unacked);
                eprintln!(
                    "utcp soak: slot {slot} hung {}; its listener's accept queue holds {queued:?}",
                    PHASE_NAMES[p as usize]
                );
            }
        }
        describe_sockets(&sa, &sb);
    }
    for l in listeners {
        let _ = sb.close(l);
    }
    // Every socket must get to TIME_WAIT or CLOSE (its FIN handshake or reset done; a
    // socket still elsewhere after this is a connection that never finished).
    let busy = || {
        sa.core
            .sockets()
            .iter()
            .chain(sb.core.sockets().iter())
            .filter(|sk| sk.peek_tp(|tp| !matches!(tp.state, TcpState::TimeWait | TcpState::Close)))
            .count() as u64
    };
    let settle = Instant::now() + Duration::from_secs(90);
    while Instant::now() < settle && busy() > 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let sockets_left = busy();
    if sockets_left > 0 {
        describe_sockets(&sa, &sb);
    }
    // Then TIME_WAIT ends (60 s, TCP_TIMEWAIT_LEN) and every socket leaves the tables.
    let tw_end = Instant::now() + Duration::from_secs(75);
    while Instant::now() < tw_end && (!sa.core.sockets().is_empty() || !sb.core.sockets().is_empty()) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The stack's caches of emptied storage are reaped once unused for two intervals (the
    // host threads reap theirs; this thread's and the shared ones are reaped here too).
    for _ in 0..3 {
        std::thread::sleep(utcp::skb_queue::CACHE_REAP_INTERVAL);
        utcp::skb_queue::cache_reap();
    }
    // Then every host thread trims its own allocator heap (what other threads freed into its
    // pages since its last trim), and one more interval lets each of them do so.
    utcp::skb_queue::request_trim();
    std::thread::sleep(utcp::skb_queue::CACHE_REAP_INTERVAL + Duration::from_millis(200));
    let heap_end = utcp_alloc::live_bytes();
    let (ta, tb) = (sa.core.table_counts(), sb.core.table_counts());
    let rss_end_before_collect = crate::multi::rss_bytes().map_err(|e| e.to_string())?;
    utcp_alloc::collect();
    let rss_end = crate::multi::rss_bytes().map_err(|e| e.to_string())?;
    let t = &totals;
    Ok(SoakReport {
        connections: t.connections.load(Ordering::Relaxed),
        clean_streams: t.clean.load(Ordering::Relaxed),
        reset_streams: t.reset.load(Ordering::Relaxed),
        verified_bytes: t.verified.load(Ordering::Relaxed),
        mismatched_streams: t.mismatched.load(Ordering::Relaxed),
        hung_connections: threads - finished,
        unexpected_errors: t.unexpected.load(Ordering::Relaxed),
        rss_start,
        rss_end,
        rss_before_threads,
        rss_peak: crate::flood::peak_rss_bytes(),
        rss_end_before_collect,
        heap_start,
        heap_end,
        sockets_left,
        sockets_end: (ta.ehash + tb.ehash) as u64,
        time_wait_end: (ta.time_wait + tb.time_wait) as u64,
        listeners_end: (ta.listeners + tb.listeners) as u64,
        ports_end: (ta.port_holders + tb.port_holders) as u64,
        timers_end: (ta.timers_armed + tb.timers_armed) as u64,
        orphans_end: ta.orphans + tb.orphans,
        tcp_mem_pages_end: ta.tcp_mem_pages + tb.tcp_mem_pages,
        sockets_allocated_end: ta.sockets_allocated + tb.sockets_allocated,
        seconds: started.elapsed().as_secs_f64(),
    })
}
