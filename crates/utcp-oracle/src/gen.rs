//! Random scenario generation.
//!
//! * [`generate`] — deterministic scenario from a `u64` seed (ChaCha8). CI
//!   runs thousands of these with a per-run seed and prints the seed on
//!   failure; [`seed_from_env`] reads `UTCP_ORACLE_SEED`.
//! * [`scenario_strategy`] — the same generator as a proptest `Strategy`.
//! * [`Model`] — a small model of the Linux receive path (`tcp_recvmsg`,
//!   urgent-data handling, FIN/RST) used to decide whether a *blocking*
//!   receive call would return. The generator only emits blocking calls the
//!   model says complete (or, rarely, ones bounded by a short `SO_RCVTIMEO`);
//!   otherwise it adds `MSG_DONTWAIT` or drops `MSG_WAITALL`. [`validate`]
//!   runs the same check over a whole scenario (used by [`shrink`]).
//!
//! The model tracks only what matters for blocking: the stream positions
//! (`rcv_nxt`, `copied_seq`), the single urgent byte Linux remembers
//! (`urg_seq`, and whether `urg_data` is set), `SO_OOBINLINE`, the receive
//! low-water mark, FIN/RST, local shutdowns, and blocking mode. It mirrors
//! `tcp_recvmsg_locked()` / `tcp_check_urg()` / `tcp_recv_urg()` of Linux
//! 6.18. `MSG_PEEK` together with an enabled `SO_PEEK_OFF` is not modelled:
//! such calls are always made non-blocking unless the socket can no longer
//! block at all.

use crate::scenario::{consts::*, IoctlReq, PreOpt, Scenario, Setup, Step};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Generator knobs.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Maximum number of steps per scenario.
    pub max_steps: usize,
    /// Never let more than this many unread bytes pile up in the local
    /// receive queue (keeps us far from rcvbuf/window limits, which would
    /// make delivery timing-dependent).
    pub max_unread: u64,
    /// Maximum payload of a single peer send.
    pub max_send: usize,
    /// Probability that a call which would block is kept as-is when a
    /// `SO_RCVTIMEO` is in effect (it then times out; costs wall time).
    pub keep_timeout_prob: f64,
    /// Probability of a scenario using a listening / fresh socket instead of
    /// a connected one.
    pub unconnected_prob: f64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            max_steps: 32,
            max_unread: 16 * 1024,
            max_send: 3000,
            keep_timeout_prob: 0.15,
            unconnected_prob: 0.03,
        }
    }
}

/// The urgent-data state Linux keeps (`tp->urg_seq`, `tp->urg_data != 0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Urg {
    /// Stream offset of the urgent byte.
    pub seq: u64,
    /// `TCP_URG_READ`: the byte was consumed with `MSG_OOB`.
    pub read: bool,
}

/// Receive-side model of the local socket (see module docs).
#[derive(Clone, Debug)]
pub struct Model {
    /// Setup of the scenario.
    pub setup: Setup,
    /// Stream offset of the next byte to arrive (payload bytes only).
    pub rcv_nxt: u64,
    /// Stream offset of the next byte to read (`copied_seq`).
    pub copied: u64,
    /// Urgent state; `None` when `urg_data == 0`.
    pub urg: Option<Urg>,
    /// `SO_OOBINLINE`.
    pub inline: bool,
    /// Effective `sk_rcvlowat` (≥ 1).
    pub lowat: u64,
    /// `SO_PEEK_OFF` enabled (≥ 0).
    pub peek_off: bool,
    /// `SO_RCVTIMEO` in µs (0 = none).
    pub rcvtimeo: u64,
    /// `O_NONBLOCK`.
    pub nonblock: bool,
    /// Peer FIN received.
    pub fin: bool,
    /// Local socket is `TCP_CLOSE` because of a reset (received or sent).
    pub reset: bool,
    /// Local `shutdown(SHUT_RD)` done.
    pub rd_shut: bool,
    /// Local `shutdown(SHUT_WR)` done.
    pub wr_shut: bool,
    /// Local descriptor closed.
    pub local_closed: bool,
    /// Peer descriptor still open.
    pub peer_open: bool,
    /// Peer did `shutdown(SHUT_WR)`.
    pub peer_wr_shut: bool,
    /// Peer's connection was reset by the local side (peer can no longer
    /// send or shut down).
    pub peer_broken: bool,
}

impl Model {
    /// Initial model for `setup` with `pre_opts` applied.
    pub fn new(setup: Setup, pre_opts: &[PreOpt]) -> Self {
        let mut m = Model {
            setup,
            rcv_nxt: 0,
            copied: 0,
            urg: None,
            inline: false,
            lowat: 1,
            peek_off: false,
            rcvtimeo: 0,
            nonblock: false,
            fin: false,
            reset: false,
            rd_shut: false,
            wr_shut: false,
            local_closed: false,
            peer_open: setup == Setup::Connected,
            peer_wr_shut: false,
            peer_broken: false,
        };
        for o in pre_opts {
            m.apply_opt(o.level, o.name, o.val);
        }
        m
    }

    /// Bytes that arrived but were not consumed yet (including holes).
    pub fn unread(&self) -> u64 {
        self.rcv_nxt - self.copied
    }

    /// The peer may write data.
    pub fn peer_can_send(&self) -> bool {
        self.peer_open && !self.peer_wr_shut && !self.peer_broken && !self.local_closed
    }

    fn apply_opt(&mut self, level: i32, name: i32, val: i32) {
        match (level, name) {
            (SOL_SOCKET, SO_OOBINLINE) => self.inline = val != 0,
            (SOL_SOCKET, SO_RCVLOWAT) => self.lowat = if val < 0 { i32::MAX as u64 } else { (val as u64).max(1) },
            (SOL_SOCKET, SO_PEEK_OFF) => self.peek_off = val >= 0,
            _ => {}
        }
    }

    /// Can the socket no longer sleep in recvmsg at all?
    fn never_blocks(&self) -> bool {
        self.local_closed || self.setup != Setup::Connected || self.fin || self.reset || self.rd_shut
    }

    /// Simulate the in-band path of `tcp_recvmsg_locked()`. Returns
    /// `(would_sleep_forever, new_copied, new_urg)`.
    fn sim_read(&self, len: u64, flags: i32) -> (bool, u64, Option<Urg>) {
        let peek = flags & MSG_PEEK != 0;
        let waitall = flags & MSG_WAITALL != 0;
        let dontwait = flags & MSG_DONTWAIT != 0 || self.nonblock;
        let target = if waitall { len } else { self.lowat.min(len) }.max(1);
        let mut seq = self.copied;
        let mut urg = self.urg;
        let mut copied = 0u64;
        let mut remaining = len;
        loop {
            if let Some(u) = urg {
                if u.seq == seq && copied > 0 {
                    break;
                }
            }
            if seq < self.rcv_nxt {
                let mut used = (self.rcv_nxt - seq).min(remaining);
                let mut skip = false;
                if let Some(u) = urg {
                    if u.seq >= seq && u.seq - seq < used {
                        let off = u.seq - seq;
                        if off == 0 {
                            if !self.inline {
                                seq += 1;
                                used -= 1;
                                skip = used == 0;
                            }
                        } else {
                            used = off;
                        }
                    }
                }
                if !skip {
                    seq += used;
                    copied += used;
                    remaining -= used;
                }
                if !peek {
                    if let Some(u) = urg {
                        if seq > u.seq {
                            urg = None;
                        }
                    }
                }
                if seq >= self.rcv_nxt && self.fin {
                    break;
                }
                if remaining == 0 {
                    break;
                }
                continue;
            }
            if self.never_blocks() || copied >= target || dontwait || self.rcvtimeo > 0 {
                break;
            }
            return (true, self.copied, self.urg);
        }
        (false, if peek { self.copied } else { seq }, if peek { self.urg } else { urg })
    }

    /// Would this local receive step sleep without bound?
    pub fn would_hang(&self, step: &Step) -> bool {
        let (len, flags) = match step {
            Step::Recv { len, flags } => (*len as u64, *flags),
            Step::RecvMsg { iov, flags, .. } => (iov.iter().sum::<usize>() as u64, *flags),
            _ => return false,
        };
        if flags & (MSG_OOB | MSG_ERRQUEUE) != 0 || self.never_blocks() {
            return false;
        }
        let dontwait = flags & MSG_DONTWAIT != 0 || self.nonblock;
        if flags & MSG_PEEK != 0 && self.peek_off && !dontwait {
            // Not modelled: only allowed when bounded by a timeout.
            return self.rcvtimeo == 0;
        }
        self.sim_read(len, flags).0
    }

    /// Would this receive step sleep until a `SO_RCVTIMEO` expires (i.e. it
    /// is bounded but slow)?
    pub fn would_time_out(&self, step: &Step) -> bool {
        if self.rcvtimeo == 0 {
            return false;
        }
        let mut m = self.clone();
        m.rcvtimeo = 0;
        m.would_hang(step)
    }

    /// Is `step` legal in the current state? (Peer actions need an open peer
    /// in the right state; blocking calls must not hang.)
    pub fn check(&self, step: &Step) -> Result<(), String> {
        let peer_ok = self.setup == Setup::Connected && !self.local_closed;
        match step {
            Step::PeerSend(d) | Step::PeerSendOob(d) => {
                if !peer_ok || !self.peer_can_send() {
                    return Err("peer cannot send now".into());
                }
                if d.is_empty() {
                    return Err("empty peer send".into());
                }
            }
            Step::PeerShutdownWr => {
                if !peer_ok || !self.peer_open || self.peer_wr_shut || self.peer_broken {
                    return Err("peer cannot shut down now".into());
                }
            }
            Step::PeerClose | Step::PeerReset => {
                if !peer_ok || !self.peer_open {
                    return Err("peer is not open".into());
                }
            }
            _ => {
                if self.would_hang(step) {
                    return Err("blocking call would hang".into());
                }
            }
        }
        Ok(())
    }

    /// Advance the model over `step` (assumed legal).
    pub fn apply(&mut self, step: &Step) {
        match step {
            Step::PeerSend(d) | Step::PeerSendOob(d) => {
                if self.wr_shut && self.rd_shut && !self.fin && !self.reset {
                    // tcp_rcv_state_process(): data for a socket in
                    // FIN_WAIT1/2 that was shut down for reading → reset.
                    self.reset = true;
                    self.peer_broken = true;
                    return;
                }
                if self.reset {
                    return;
                }
                let base = self.rcv_nxt;
                if matches!(step, Step::PeerSendOob(_)) {
                    let ptr = base + d.len() as u64 - 1;
                    // tcp_check_urg(): skip a pending urgent byte that is the
                    // next byte to be read.
                    if let Some(u) = self.urg {
                        if u.seq == self.copied && !self.inline && self.copied != base {
                            self.copied += 1;
                        }
                    }
                    self.urg = Some(Urg { seq: ptr, read: false });
                }
                self.rcv_nxt += d.len() as u64;
            }
            Step::PeerShutdownWr => {
                self.peer_wr_shut = true;
                if !self.reset {
                    self.fin = true;
                }
            }
            Step::PeerClose => {
                self.peer_open = false;
                if !self.reset && !self.peer_wr_shut {
                    self.fin = true;
                }
                self.peer_wr_shut = true;
            }
            Step::PeerReset => {
                self.peer_open = false;
                self.reset = true;
            }
            Step::Recv { .. } | Step::RecvMsg { .. } => {
                if self.local_closed || self.setup != Setup::Connected {
                    return;
                }
                let (len, flags) = match step {
                    Step::Recv { len, flags } => (*len as u64, *flags),
                    Step::RecvMsg { iov, flags, .. } => (iov.iter().sum::<usize>() as u64, *flags),
                    _ => unreachable!(),
                };
                if flags & MSG_ERRQUEUE != 0 {
                    return;
                }
                if flags & MSG_OOB != 0 {
                    // tcp_recv_urg()
                    if let Some(u) = self.urg.as_mut() {
                        let closed_not_done = self.reset && !self.fin;
                        if !self.inline && !u.read && !closed_not_done && flags & MSG_PEEK == 0 {
                            u.read = true;
                        }
                    }
                    return;
                }
                if flags & MSG_PEEK != 0 {
                    return;
                }
                let (_, copied, urg) = self.sim_read(len, flags);
                self.copied = copied;
                self.urg = urg;
            }
            Step::SetOpt { level, name, val } => {
                if !self.local_closed {
                    self.apply_opt(*level, *name, *val)
                }
            }
            Step::SetRcvTimeo { usec } => {
                if !self.local_closed && *usec < 1_000_000 {
                    self.rcvtimeo = *usec;
                }
            }
            Step::SetNonblocking(on) => {
                if !self.local_closed {
                    self.nonblock = *on
                }
            }
            Step::ShutdownRd => {
                if !self.local_closed {
                    self.rd_shut = true
                }
            }
            Step::ShutdownWr => {
                if !self.local_closed {
                    self.wr_shut = true
                }
            }
            Step::LocalClose => self.local_closed = true,
            Step::Ioctl { .. } | Step::GetOpt { .. } | Step::Poll { .. } => {}
        }
    }
}

/// Check that every step of `sc` is legal and no blocking call can hang.
/// Returns the index of the first offending step.
pub fn validate(sc: &Scenario) -> Result<(), (usize, String)> {
    let mut m = Model::new(sc.setup, &sc.pre_opts);
    for (i, s) in sc.steps.iter().enumerate() {
        m.check(s).map_err(|e| (i, e))?;
        m.apply(s);
    }
    Ok(())
}

/// Seed for a randomized run: `UTCP_ORACLE_SEED` if set (decimal or
/// `0x`-hex), otherwise derived from the clock. Always print it.
pub fn seed_from_env() -> u64 {
    if let Ok(s) = std::env::var("UTCP_ORACLE_SEED") {
        let s = s.trim();
        let v = if let Some(h) = s.strip_prefix("0x") { u64::from_str_radix(h, 16) } else { s.parse() };
        if let Ok(v) = v {
            return v;
        }
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Seed of the `i`-th scenario of a run with seed `run_seed` (so a single
/// failing scenario can be regenerated with [`generate`]).
pub fn scenario_seed(run_seed: u64, i: u64) -> u64 {
    // splitmix64
    let mut z = run_seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Generate one scenario deterministically from `seed`.
pub fn generate(seed: u64, cfg: &GenConfig) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    generate_with(&mut rng, cfg)
}

/// Proptest strategy producing scenarios (via [`generate`] on a random
/// seed; use [`shrink`] for minimisation).
pub fn scenario_strategy(cfg: GenConfig) -> impl Strategy<Value = Scenario> {
    any::<u64>().prop_map(move |s| generate(s, &cfg))
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, xs: &[T]) -> T {
    xs[rng.gen_range(0..xs.len())]
}

fn gen_len(rng: &mut ChaCha8Rng) -> usize {
    match rng.gen_range(0..100) {
        0..=5 => 0,
        6..=35 => rng.gen_range(1..=8),
        36..=55 => rng.gen_range(1..=64),
        56..=89 => rng.gen_range(1..=4096),
        _ => rng.gen_range(4096..=70_000),
    }
}

fn gen_payload(rng: &mut ChaCha8Rng, max: usize) -> Vec<u8> {
    let n = match rng.gen_range(0..100) {
        0..=39 => rng.gen_range(1..=8),
        40..=69 => rng.gen_range(1..=100),
        _ => rng.gen_range(1..=max),
    };
    if rng.gen_bool(0.1) {
        (0..n).map(|_| rng.gen()).collect()
    } else {
        const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..n).map(|_| ALPHA[rng.gen_range(0..ALPHA.len())]).collect()
    }
}

fn gen_recv_flags(rng: &mut ChaCha8Rng, recvmsg: bool) -> i32 {
    let mut f = 0;
    for (bit, p) in [
        (MSG_PEEK, 0.3),
        (MSG_WAITALL, 0.25),
        (MSG_TRUNC, 0.12),
        (MSG_DONTWAIT, 0.35),
        (MSG_OOB, 0.12),
        (MSG_ERRQUEUE, 0.015),
    ] {
        if rng.gen_bool(p) {
            f |= bit;
        }
    }
    if recvmsg && rng.gen_bool(0.03) {
        f |= MSG_CMSG_CLOEXEC;
    }
    f
}

fn gen_setopt(rng: &mut ChaCha8Rng) -> (i32, i32, i32) {
    match rng.gen_range(0..100) {
        0..=24 => (SOL_SOCKET, SO_RCVLOWAT, pick(rng, &[0, 1, 2, 3, 5, 10, 100, 1000, 5000, 70_000, -1])),
        25..=44 => (SOL_SOCKET, SO_OOBINLINE, pick(rng, &[0, 1, 1, 2])),
        45..=59 => (SOL_TCP, TCP_INQ, pick(rng, &[0, 1])),
        60..=74 => (SOL_SOCKET, SO_PEEK_OFF, pick(rng, &[-1, 0, 0, 1, 5, 100])),
        75..=84 => (SOL_SOCKET, SO_TIMESTAMP, pick(rng, &[0, 1])),
        85..=88 => (SOL_SOCKET, SO_TIMESTAMPNS, pick(rng, &[0, 1])),
        89..=96 => (SOL_SOCKET, SO_RCVBUF, pick(rng, &[65_536, 131_072, 1 << 20])),
        _ => (SOL_TCP, 9999, 1),
    }
}

fn gen_getopt(rng: &mut ChaCha8Rng) -> (i32, i32) {
    pick(
        rng,
        &[
            (SOL_SOCKET, SO_RCVBUF),
            (SOL_SOCKET, SO_RCVLOWAT),
            (SOL_SOCKET, SO_OOBINLINE),
            (SOL_SOCKET, SO_ERROR),
            (SOL_SOCKET, SO_ERROR),
            (SOL_TCP, TCP_INQ),
            (SOL_SOCKET, SO_PEEK_OFF),
            (SOL_SOCKET, SO_TIMESTAMP),
            (SOL_SOCKET, SO_TYPE),
            (SOL_SOCKET, SO_ACCEPTCONN),
            (SOL_SOCKET, SO_RCVTIMEO),
        ],
    )
}

fn gen_poll_events(rng: &mut ChaCha8Rng) -> i16 {
    if rng.gen_bool(0.5) {
        return POLLIN | POLLPRI | POLLOUT | POLLRDHUP;
    }
    let mut e = 0;
    for bit in [POLLIN, POLLPRI, POLLOUT, POLLRDHUP, POLLRDNORM, POLLRDBAND, POLLWRNORM] {
        if rng.gen_bool(0.4) {
            e |= bit;
        }
    }
    e
}

/// Make a receive step safe for `m`: keep it, or add `MSG_DONTWAIT`, or drop
/// `MSG_WAITALL`.
fn make_safe(rng: &mut ChaCha8Rng, m: &Model, step: Step, cfg: &GenConfig) -> Step {
    if !m.would_hang(&step) {
        if m.would_time_out(&step) && !rng.gen_bool(cfg.keep_timeout_prob) {
            return add_flag(step, MSG_DONTWAIT);
        }
        return step;
    }
    if rng.gen_bool(0.3) {
        let relaxed = remove_flag(step.clone(), MSG_WAITALL);
        if !m.would_hang(&relaxed) && !m.would_time_out(&relaxed) {
            return relaxed;
        }
    }
    add_flag(step, MSG_DONTWAIT)
}

fn add_flag(step: Step, bit: i32) -> Step {
    match step {
        Step::Recv { len, flags } => Step::Recv { len, flags: flags | bit },
        Step::RecvMsg { iov, control_len, flags } => Step::RecvMsg { iov, control_len, flags: flags | bit },
        s => s,
    }
}

fn remove_flag(step: Step, bit: i32) -> Step {
    match step {
        Step::Recv { len, flags } => Step::Recv { len, flags: flags & !bit },
        Step::RecvMsg { iov, control_len, flags } => Step::RecvMsg { iov, control_len, flags: flags & !bit },
        s => s,
    }
}

fn gen_pre_opts(rng: &mut ChaCha8Rng) -> Vec<PreOpt> {
    let mut v = Vec::new();
    let mut add = |level, name, val| v.push(PreOpt { level, name, val });
    if rng.gen_bool(0.12) {
        add(SOL_SOCKET, SO_OOBINLINE, 1);
    }
    if rng.gen_bool(0.08) {
        add(SOL_SOCKET, SO_RCVLOWAT, pick(rng, &[1, 4, 64, 1000]));
    }
    if rng.gen_bool(0.1) {
        add(SOL_TCP, TCP_INQ, 1);
    }
    if rng.gen_bool(0.05) {
        add(SOL_SOCKET, SO_RCVBUF, pick(rng, &[65_536, 262_144]));
    }
    if rng.gen_bool(0.05) {
        add(SOL_SOCKET, SO_TIMESTAMP, 1);
    }
    v
}

/// Generate one scenario using `rng`.
pub fn generate_with(rng: &mut ChaCha8Rng, cfg: &GenConfig) -> Scenario {
    let setup = if rng.gen_bool(cfg.unconnected_prob) {
        if rng.gen_bool(0.5) {
            Setup::Listening
        } else {
            Setup::Fresh
        }
    } else {
        Setup::Connected
    };
    let pre_opts = gen_pre_opts(rng);
    let mut m = Model::new(setup, &pre_opts);
    let n = rng.gen_range(1..=cfg.max_steps);
    let mut steps = Vec::with_capacity(n);
    let mut rcvtimeo_set = false;
    while steps.len() < n {
        let connected_peer = setup == Setup::Connected && !m.local_closed;
        let can_send = connected_peer && m.peer_can_send() && m.unread() < cfg.max_unread;
        // (weight, kind)
        let mut table: Vec<(u32, u8)> = vec![
            (22, 10), // recv
            (14, 11), // recvmsg
            (7, 12),  // setopt
            (3, 14),  // nonblocking
            (7, 15),  // ioctl
            (3, 16),  // getopt
            (4, 17),  // poll
            (1, 18),  // shutdown rd
            (1, 19),  // shutdown wr
        ];
        if !rcvtimeo_set {
            table.push((1, 13));
        }
        if !m.local_closed && steps.len() > 2 {
            table.push((1, 20)); // local close (rare; ends peer activity)
        }
        if can_send {
            table.push((24, 0));
            table.push((7, 1));
        }
        if connected_peer && m.peer_open && !m.peer_wr_shut && !m.peer_broken {
            table.push((2, 2));
        }
        if connected_peer && m.peer_open {
            table.push((1, 3));
            table.push((1, 4));
        }
        let total: u32 = table.iter().map(|t| t.0).sum();
        let mut x = rng.gen_range(0..total);
        let mut kind = 10;
        for (w, k) in &table {
            if x < *w {
                kind = *k;
                break;
            }
            x -= w;
        }
        let step = match kind {
            0 => {
                let room = (cfg.max_unread - m.unread()).max(1) as usize;
                let mut d = gen_payload(rng, cfg.max_send);
                d.truncate(room);
                Step::PeerSend(d)
            }
            1 => {
                let room = (cfg.max_unread - m.unread()).max(1) as usize;
                let mut d = gen_payload(rng, 64);
                d.truncate(room);
                Step::PeerSendOob(d)
            }
            2 => Step::PeerShutdownWr,
            3 => Step::PeerClose,
            4 => Step::PeerReset,
            10 => {
                let s = Step::Recv { len: gen_len(rng), flags: gen_recv_flags(rng, false) };
                make_safe(rng, &m, s, cfg)
            }
            11 => {
                let k = pick(rng, &[1usize, 1, 1, 2, 2, 3, 4]);
                let iov = (0..k)
                    .map(|_| {
                        let l = gen_len(rng);
                        if k > 1 {
                            l.min(512)
                        } else {
                            l
                        }
                    })
                    .collect();
                let s = Step::RecvMsg {
                    iov,
                    control_len: pick(rng, &[0, 0, 16, 20, 24, 32, 40, 48, 64, 128]),
                    flags: gen_recv_flags(rng, true),
                };
                make_safe(rng, &m, s, cfg)
            }
            12 => {
                let (level, name, val) = gen_setopt(rng);
                Step::SetOpt { level, name, val }
            }
            13 => {
                rcvtimeo_set = true;
                Step::SetRcvTimeo { usec: pick(rng, &[0, 2_000, 5_000, 10_000, 20_000]) }
            }
            14 => Step::SetNonblocking(rng.gen_bool(0.6)),
            15 => Step::Ioctl {
                req: pick(
                    rng,
                    &[
                        IoctlReq::Fionread,
                        IoctlReq::Fionread,
                        IoctlReq::Siocatmark,
                        IoctlReq::Siocatmark,
                        IoctlReq::Siocoutq,
                        IoctlReq::Siocoutqnsd,
                    ],
                ),
            },
            16 => {
                let (level, name) = gen_getopt(rng);
                Step::GetOpt { level, name }
            }
            17 => Step::Poll { events: gen_poll_events(rng) },
            18 => Step::ShutdownRd,
            19 => Step::ShutdownWr,
            _ => Step::LocalClose,
        };
        debug_assert!(m.check(&step).is_ok(), "generator produced illegal {step}");
        if m.check(&step).is_err() {
            continue;
        }
        m.apply(&step);
        steps.push(step);
    }
    Scenario { setup, pre_opts, steps }
}

/// Greedy minimisation: repeatedly remove steps / pre-options and shorten
/// payloads while the scenario stays valid and `fails` still returns true.
pub fn shrink(sc: &Scenario, mut fails: impl FnMut(&Scenario) -> bool) -> Scenario {
    let mut best = sc.clone();
    let mut progress = true;
    while progress {
        progress = false;
        // Remove single steps, from the end.
        let mut i = best.steps.len();
        while i > 0 {
            i -= 1;
            let mut cand = best.clone();
            cand.steps.remove(i);
            if validate(&cand).is_ok() && fails(&cand) {
                best = cand;
                progress = true;
            }
        }
        let mut i = best.pre_opts.len();
        while i > 0 {
            i -= 1;
            let mut cand = best.clone();
            cand.pre_opts.remove(i);
            if validate(&cand).is_ok() && fails(&cand) {
                best = cand;
                progress = true;
            }
        }
        // Halve payloads.
        for i in 0..best.steps.len() {
            let shorter = match &best.steps[i] {
                Step::PeerSend(d) if d.len() > 1 => Step::PeerSend(d[..d.len() / 2].to_vec()),
                Step::PeerSendOob(d) if d.len() > 1 => Step::PeerSendOob(d[d.len() / 2..].to_vec()),
                _ => continue,
            };
            let mut cand = best.clone();
            cand.steps[i] = shorter;
            if validate(&cand).is_ok() && fails(&cand) {
                best = cand;
                progress = true;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_flags_blocking_calls() {
        let mut m = Model::new(Setup::Connected, &[]);
        let r = |len, flags| Step::Recv { len, flags };
        assert!(m.would_hang(&r(1, 0)));
        assert!(m.would_hang(&r(0, 0)), "len 0 sleeps on an empty queue");
        assert!(!m.would_hang(&r(1, MSG_OOB)));
        m.apply(&Step::PeerSendOob(b"x".to_vec()));
        assert!(m.would_hang(&r(1, 0)), "only the urgent byte is queued");
        m.apply(&Step::PeerSend(b"yz".to_vec()));
        assert!(!m.would_hang(&r(2, MSG_WAITALL)));
        assert!(m.would_hang(&r(3, MSG_WAITALL)));
        m.apply(&Step::PeerShutdownWr);
        assert!(!m.would_hang(&r(3, MSG_WAITALL)));
    }

    #[test]
    fn validate_rejects_hanging_and_illegal_steps() {
        let sc = Scenario::new(vec![Step::Recv { len: 1, flags: 0 }]);
        assert_eq!(validate(&sc).unwrap_err().0, 0);
        let sc = Scenario::new(vec![Step::PeerReset, Step::PeerSend(b"a".to_vec())]);
        assert_eq!(validate(&sc).unwrap_err().0, 1);
        let sc = Scenario::new(vec![Step::SetRcvTimeo { usec: 1000 }, Step::Recv { len: 1, flags: 0 }]);
        assert!(validate(&sc).is_ok());
    }

    #[test]
    fn shrink_minimises() {
        let cfg = GenConfig::default();
        let has_oob = |s: &Scenario| s.steps.iter().any(|x| matches!(x, Step::PeerSendOob(_)));
        let sc = (0..1000)
            .map(|i| generate(i, &cfg))
            .find(|s| has_oob(s) && s.steps.len() > 10)
            .expect("a scenario with OOB data");
        let small = shrink(&sc, has_oob);
        assert_eq!(small.steps.len(), 1, "{small}");
        assert!(matches!(&small.steps[0], Step::PeerSendOob(d) if d.len() == 1));
        assert!(small.pre_opts.is_empty());
    }
}
