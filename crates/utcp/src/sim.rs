//! A deterministic two-host simulation on a virtual clock: what the tests and the property tests
//! run on. Time jumps to the next event instead of passing; nothing sleeps.

use crate::api::{memlink_pair_with_clock, Host};
use crate::netdev::memlink::LinkConfig;
use crate::netdev::NetDevice;
use crate::time::{Clock, Duration, Instant, VirtualClock};
use std::sync::Arc;

/// Two stacks on a memlink, driven by a virtual clock.
pub struct SimNet {
    /// The clock.
    pub clock: Arc<VirtualClock>,
    /// Host A (192.0.2.1).
    pub a: Host,
    /// Host B (192.0.2.2).
    pub b: Host,
}

impl SimNet {
    /// A simulation with link `cfg`, starting at t = 1 s.
    pub fn new(cfg: LinkConfig) -> SimNet {
        let clock = Arc::new(VirtualClock::new(Instant::from_millis(1000)));
        let (a, b) = memlink_pair_with_clock(cfg, clock.clone() as Arc<dyn Clock>, false);
        SimNet { clock, a, b }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Delivers queued frames and fires due timers, repeatedly, without moving time.
    pub fn settle(&self) {
        for _ in 0..100_000 {
            let mut work = 0;
            for h in [&self.a, &self.b] {
                if let Some(p) = &h.port {
                    p.poll_timers();
                    let net = &h.stack.core.net;
                    work += crate::netdev::net_rx_action_napi(&**p, net.sysctl.netdev_budget.get(), &net.softnet).0;
                }
            }
            let now = self.now();
            for h in [&self.a, &self.b] {
                if h.stack.core.next_timer().is_some_and(|t| t <= now) {
                    h.stack.core.run_timers(now);
                    work += 1;
                }
            }
            if work == 0 {
                return;
            }
        }
    }

    /// The next time anything is scheduled.
    pub fn next_event(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for h in [&self.a, &self.b] {
            consider(h.stack.core.next_timer());
            if let Some(p) = &h.port {
                consider(p.next_event());
            }
        }
        next
    }

    /// Advances time by `d`, processing everything due on the way.
    pub fn advance(&self, d: Duration) {
        let end = self.now() + d;
        loop {
            self.settle();
            match self.next_event() {
                Some(t) if t <= end => {
                    self.clock.advance_to(t.max(self.now()));
                }
                _ => break,
            }
        }
        self.clock.advance_to(end);
        self.settle();
    }

    /// Runs until `done()` holds, jumping from event to event; false if `limit` passes first.
    pub fn run_until(&self, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let end = self.now() + limit;
        // Rounds in a row with no scheduled event: `done()` itself may make progress (send,
        // read), so a few are allowed before calling the run stalled.
        let mut idle = 0u32;
        loop {
            self.settle();
            if done() {
                return true;
            }
            match self.next_event() {
                Some(t) if t <= end => {
                    idle = 0;
                    self.clock.advance_to(t.max(self.now() + Duration::from_nanos(1)));
                }
                Some(_) => return done(),
                None => {
                    idle += 1;
                    if idle > 64 {
                        return done();
                    }
                }
            }
        }
    }
}
