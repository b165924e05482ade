//! The host layer: the only part of utcp that reads a real clock, spawns threads or parks them.
//! It runs a stack's timers and, for queued devices, its NAPI poll loop.

use crate::netdev::NetDevice;
use crate::stack::StackCore;
use crate::time::{Clock, Instant};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The real monotonic clock.
#[derive(Debug)]
pub struct MonotonicClock {
    origin: std::time::Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock { origin: std::time::Instant::now() }
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        // Start at 1 s so that "time zero" never looks like an unset timestamp.
        Instant(self.origin.elapsed().as_nanos() as u64 + 1_000_000_000)
    }
}

/// Background threads serving one stack in real time: timers, and NAPI for queued devices.
pub struct HostThreads {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    core: Arc<StackCore>,
    kick: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// The device thread: releases timed frames when they are due and runs NAPI polls, sleeping
/// until the next due time or a received frame — never longer than that, so a delayed or
/// rate-limited frame leaves on time.
fn device_loop<D: NetDevice + ?Sized>(dev: &D, core: &StackCore, stop: &AtomicBool) {
    let clock = &*core.clock;
    const IDLE: std::time::Duration = std::time::Duration::from_millis(50);
    const SPIN: std::time::Duration = std::time::Duration::from_micros(60);
    let mut reap = std::time::Instant::now();
    while !stop.load(Ordering::Acquire) {
        let next = dev.poll_timers();
        if let Some(until) = dev.napi_busy_poll_preferred(clock.now()) {
            // SO_PREFER_BUSY_POLL: a reader busy-polls this queue; stand back until it is done
            // (or a timed frame is due).
            let wait = until.min(next.unwrap_or(until)).saturating_since(clock.now());
            if wait < SPIN {
                std::thread::yield_now();
            } else {
                std::thread::sleep(wait.min(std::time::Duration::from_millis(1)));
            }
            continue;
        }
        // net_rx_action() with net.core.netdev_budget; a spent budget hands the CPU on before
        // the next round, as the softirq leaves the rest to ksoftirqd.
        let budget = core.net.sysctl.netdev_budget.get();
        let (work, squeezed) = crate::netdev::net_rx_action_napi(dev, budget, &core.net.softnet);
        if squeezed {
            std::thread::yield_now();
        }
        if work > 0 {
            continue;
        }
        let wait = match next {
            Some(t) => t.saturating_since(clock.now()).min(IDLE),
            None => IDLE,
        };
        if next.is_some() && wait.is_zero() {
            continue;
        }
        if next.is_some() && wait < SPIN {
            // A futex sleep this short overshoots by the timer slack (50 µs): yield instead.
            std::thread::yield_now();
            continue;
        }
        cache_reap_due(&mut reap);
        dev.wait_event(Some(wait));
    }
}

/// Runs [`crate::skb_queue::cache_reap`] on this thread when `CACHE_REAP_INTERVAL` passed
/// since `last` (real time: the reaper frees memory, whatever clock the stack runs on).
fn cache_reap_due(last: &mut std::time::Instant) {
    let now = std::time::Instant::now();
    if now.duration_since(*last) >= crate::skb_queue::CACHE_REAP_INTERVAL {
        *last = now;
        crate::skb_queue::cache_reap();
    }
}

impl HostThreads {
    /// Starts the timer thread and, when `dev` needs one ([`NetDevice::needs_poll_thread`]:
    /// a receive ring to poll, timed frames to release), a device thread.
    pub fn start<D: NetDevice + ?Sized + 'static>(core: Arc<StackCore>, dev: Option<Arc<D>>) -> HostThreads {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let core = core.clone();
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("utcp-timers".into())
                    .spawn(move || {
                        let mut reap = std::time::Instant::now();
                        while !stop.load(Ordering::Acquire) {
                            cache_reap_due(&mut reap);
                            let now = core.clock.now();
                            let next = core.run_timers(now);
                            let wait = match next {
                                Some(t) => {
                                    t.saturating_since(core.clock.now()).min(std::time::Duration::from_millis(50))
                                }
                                None => std::time::Duration::from_millis(50),
                            };
                            if !wait.is_zero() {
                                core.wait_timer_change(wait);
                            }
                        }
                    })
                    .expect("spawn timer thread"),
            );
        }
        let mut kick: Option<Arc<dyn Fn() + Send + Sync>> = None;
        if let Some(dev) = dev.filter(|d| d.needs_poll_thread()) {
            let stop = stop.clone();
            let core = core.clone();
            let d2 = dev.clone();
            kick = Some(Arc::new(move || d2.kick()));
            threads.push(
                std::thread::Builder::new()
                    .name("utcp-napi".into())
                    .spawn(move || device_loop(&*dev, &core, &stop))
                    .expect("spawn device thread"),
            );
        }
        HostThreads { stop, threads, core, kick }
    }

    /// Stops the threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.core.timer_cv.notify_all();
        if let Some(k) = &self.kick {
            k();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for HostThreads {
    fn drop(&mut self) {
        self.shutdown();
    }
}
