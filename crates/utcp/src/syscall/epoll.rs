//! epoll (fs/eventpoll.c): interest list, ready flags set by socket wakeups, level- and
//! edge-triggered reporting.

use super::fdtable::File;
use crate::socket::sock::EpWaiter;
use crate::sync::{Condvar, Mutex};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// `EPOLLET`.
pub const EPOLLET: u32 = 1 << 31;
/// `EPOLLONESHOT`.
pub(crate) const EPOLLONESHOT: u32 = 1 << 30;

/// One registered fd.
pub(crate) struct EpItem {
    /// The file (a socket or a pipe end).
    pub(crate) file: Arc<File>,
    /// Requested events.
    pub(crate) events: u32,
    /// `epoll_data`.
    pub(crate) data: u64,
    /// Ready flag, set by the socket's wakeups.
    pub(crate) waiter: Arc<EpWaiter>,
    /// Disabled by EPOLLONESHOT after reporting.
    pub(crate) disabled: bool,
}

/// An epoll instance.
#[derive(Default)]
pub struct Epoll {
    /// Interest list by (fd, file), as `ep_find` keys it.
    pub(crate) items: Mutex<BTreeMap<(i32, usize), EpItem>>,
    /// Woken by socket wakeups.
    pub(crate) gate: Arc<(Mutex<u64>, Condvar)>,
}

impl Epoll {
    /// Builds the waiter an item registers on its socket.
    pub(crate) fn new_waiter(&self) -> Arc<EpWaiter> {
        let gate = self.gate.clone();
        Arc::new(EpWaiter {
            ready: crate::sync::atomic::AtomicBool::new(true),
            notify: Box::new(move || {
                let mut g = gate.0.lock();
                *g += 1;
                gate.1.notify_all();
            }),
        })
    }

    /// Collects ready events (at most `max`), applying ET/LT/ONESHOT rules.
    pub(crate) fn collect(&self, max: usize) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        let mut items = self.items.lock();
        for item in items.values_mut() {
            if out.len() >= max {
                break;
            }
            // ep_send_events(): the item leaves the ready list before it is polled, so a
            // wakeup while it is polled puts it back (ep->ovflist) instead of being lost.
            // Clearing the flag after a poll that found nothing lost an event arriving in
            // between: epoll_wait slept on with the fd ready (found by tests/shuttle_sock.rs).
            if item.disabled || !item.waiter.ready.swap(false, Ordering::AcqRel) {
                continue;
            }
            let mask = super::file_poll(&item.file) & (item.events | 0x8 | 0x10);
            if mask == 0 {
                continue;
            }
            out.push((mask, item.data));
            if item.events & EPOLLET == 0 {
                // Level-triggered: back on the ready list, to be polled again next time.
                item.waiter.ready.store(true, Ordering::Release);
            }
            if item.events & EPOLLONESHOT != 0 {
                item.disabled = true;
            }
        }
        out
    }
}
