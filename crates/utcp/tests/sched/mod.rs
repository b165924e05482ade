//! How much the machine held a real-threads test back, and the clean-link judgement that uses
//! it: on a shared 2-core machine a preempted thread can hold an ACK back past a loss-probe
//! timeout, which is scheduling, not the stack. A round with timer-driven retransmissions
//! passes only when the scheduler's own record (`/proc/self/task/*/schedstat`, `/proc/stat`
//! steal) shows a thread waited at least the probe timeout's floor for a CPU.
#![allow(dead_code)]

use std::time::Duration as StdDuration;
use utcp::api::Host;
use utcp::mib::{LinuxMib, TcpMib};

/// Nanoseconds the calling thread has spent runnable but waiting for a CPU
/// (`/proc/thread-self/schedstat`, second field), or `None` without schedstats.
pub fn rq_wait_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().nth(1)?.parse().ok()
}

/// Runqueue waits of the threads of this process that carry a direction (the application's,
/// the devices'), by thread id. A timer thread held back fires a probe late, never one more,
/// so its waits do not count.
pub fn rq_waits_all() -> std::collections::HashMap<String, u64> {
    let mut m = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.starts_with("utcp-timers") {
            continue;
        }
        let p = e.path().join("schedstat");
        if let Some(w) = std::fs::read_to_string(p).ok().and_then(|s| s.split_whitespace().nth(1)?.parse().ok()) {
            m.insert(e.file_name().to_string_lossy().into_owned(), w);
        }
    }
    m
}

/// Ticks (USER_HZ) the hypervisor took from this machine's CPUs (`/proc/stat`, `steal`).
pub fn steal_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    s.lines().next().and_then(|l| l.split_whitespace().nth(8)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// How much the machine held this process's threads back during a round: the largest
/// runqueue wait of one thread, and the CPU time stolen by the hypervisor.
pub struct Stall {
    /// The largest runqueue wait of one thread.
    pub max_rq_wait: StdDuration,
    /// Ticks stolen by the hypervisor.
    pub steal_ticks: u64,
}

/// The scheduler's record at one moment: every thread's runqueue wait and the steal count.
pub struct Snapshot {
    waits: std::collections::HashMap<String, u64>,
    steal: u64,
}

impl Snapshot {
    /// Takes the record now.
    pub fn now() -> Self {
        Snapshot { waits: rq_waits_all(), steal: steal_ticks() }
    }

    /// The [`Stall`] between this snapshot and now, over the threads alive now (a thread
    /// started since counts from 0); `extra_wait` is the wait a thread that has exited
    /// meanwhile reported for itself.
    pub fn stall(&self, extra_wait: u64) -> Stall {
        let w1 = rq_waits_all();
        let max = w1.iter().map(|(t, w)| w.saturating_sub(*self.waits.get(t).unwrap_or(&0))).max().unwrap_or(0);
        Stall {
            max_rq_wait: StdDuration::from_nanos(max.max(extra_wait)),
            steal_ticks: steal_ticks().saturating_sub(self.steal),
        }
    }
}

/// Measures [`Stall`] around `f`; `reader_wait` is the runqueue wait a thread that exits
/// inside `f` reported for itself.
pub fn measure_stall<R>(f: impl FnOnce() -> (R, u64)) -> (R, Stall) {
    let snap = Snapshot::now();
    let (r, reader_wait) = f();
    (r, snap.stall(reader_wait))
}

/// The counters that must stay 0 on a clean link, on both hosts.
pub fn self_inflicted(h: &Host) -> Vec<(&'static str, u64)> {
    let mib = &h.stack.core.net.mib;
    let mut v = vec![("TcpRetransSegs", mib.tcp_get(TcpMib::RetransSegs))];
    for (name, c) in [
        ("TCPOFOQueue", LinuxMib::TCPOFOQueue),
        ("TCPDSACKRecv", LinuxMib::TCPDSACKRecv),
        ("TCPDSACKOfoRecv", LinuxMib::TCPDSACKOfoRecv),
        ("TCPLossProbes", LinuxMib::TCPLossProbes),
        ("TCPSACKReorder", LinuxMib::TCPSACKReorder),
        ("TCPBacklogDrop", LinuxMib::TCPBacklogDrop),
    ] {
        v.push((name, mib.get(c)));
    }
    v.retain(|(_, n)| *n != 0);
    v
}

/// What must hold on a clean link even when the machine is busy: no segment ever arrives out
/// of order, and nothing is retransmitted except by a timer (a loss probe or an RTO fires when
/// a thread delivering a direction is preempted for longer than 2·srtt + 2 ms, in 4 ms jiffies
/// (`tcp_schedule_loss_probe()`) — scheduling, as when ksoftirqd is preempted, and not a
/// self-inflicted reordering). With `stall`, a round that is not clean must also show that the
/// machine held a thread back for at least a loss-probe timeout's floor (TCP_TIMEOUT_MIN, 8 ms:
/// `tcp_schedule_loss_probe()` waits 2·srtt + 8 ms for an ACK), or stole CPU time: an ACK that
/// takes that long on an in-memory link comes from a thread that did not run (a preempted
/// reader whose full window leaves the ACK to its next read, as on Linux), never from the
/// stack when every thread ran. A probe without such a stall fails the round. Returns whether
/// the round was fully clean.
pub fn check_round(what: &str, a: &Host, b: &Host, stall: Option<&Stall>) -> bool {
    for h in [a, b] {
        let m = &h.stack.core.net.mib;
        assert_eq!(m.get(LinuxMib::TCPOFOQueue), 0, "{what}: out-of-order segment on a clean link");
        assert_eq!(m.get(LinuxMib::TCPSACKReorder), 0, "{what}: reordering seen on a clean link");
        assert_eq!(m.get(LinuxMib::TCPFastRetrans), 0, "{what}: fast retransmit on a clean link");
        assert_eq!(m.get(LinuxMib::TCPBacklogDrop), 0, "{what}: backlog drop");
        let timer = m.get(LinuxMib::TCPLossProbes) + m.get(LinuxMib::TCPTimeouts);
        assert!(m.tcp_get(TcpMib::RetransSegs) <= timer, "{what}: retransmission not caused by a timer");
    }
    for p in [a.port.as_ref().unwrap().stats(), b.port.as_ref().unwrap().stats()] {
        assert_eq!((p.lost, p.ring_drops, p.unattached), (0, 0, 0), "{what}");
    }
    let dirty: Vec<_> = self_inflicted(a).into_iter().chain(self_inflicted(b)).collect();
    if !dirty.is_empty() {
        eprintln!("{what}: timer-driven retransmissions (a preempted thread?): {dirty:?}");
        if let Some(st) = stall {
            eprintln!(
                "{what}: largest runqueue wait of one thread {:?}, steal {} ticks",
                st.max_rq_wait, st.steal_ticks
            );
            assert!(
                st.max_rq_wait >= StdDuration::from_millis(8) || st.steal_ticks > 0,
                "{what}: {dirty:?} although no thread waited 8 ms for a CPU (largest wait {:?}, no steal)",
                st.max_rq_wait
            );
        }
    }
    dirty.is_empty()
}

/// Whether this kernel keeps per-thread runqueue waits (CONFIG_SCHED_INFO).
pub fn schedstats() -> bool {
    rq_wait_ns().is_some()
}
