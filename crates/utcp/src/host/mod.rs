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
}

impl HostThreads {
    /// Starts the timer thread, and a NAPI thread if `napi` is given.
    pub fn start(core: Arc<StackCore>, napi: Option<Arc<crate::netdev::memlink::MemPort>>) -> HostThreads {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let core = core.clone();
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("utcp-timers".into())
                    .spawn(move || {
                        while !stop.load(Ordering::Acquire) {
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
        if let Some(port) = napi {
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("utcp-napi".into())
                    .spawn(move || {
                        while !stop.load(Ordering::Acquire) {
                            port.poll_timers();
                            if port.napi_poll(64) == 0 {
                                port.wait_rx(Some(std::time::Duration::from_millis(5)));
                            }
                        }
                    })
                    .expect("spawn napi thread"),
            );
        }
        HostThreads { stop, threads, core }
    }

    /// Stops the threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.core.timer_cv.notify_all();
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
