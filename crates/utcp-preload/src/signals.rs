//! Signals that arrive while a thread sleeps in utcp (`signal_pending()` in `sk_wait_data`,
//! `inet_wait_for_connect`, `inet_csk_wait_for_connect`, `sk_stream_wait_memory`).
//!
//! The kernel ends such a sleep when a signal with a handler is delivered to the thread:
//! the call returns EINTR (or what it copied so far), or is restarted when the handler was
//! installed with SA_RESTART and the socket has no timeout for that direction
//! (`sock_intr_errno()`: -ERESTARTSYS only with MAX_SCHEDULE_TIMEOUT, else -EINTR).
//!
//! Here: `sigaction()`/`signal()` are hooked (crate::ffi) and every handler is installed
//! behind a wrapper. A call that may sleep in utcp registers an interruption token
//! ([`utcp::socket::sock::Cancel`]) under its thread id ([`enter`]). When a signal reaches a
//! thread that is inside such a call, the wrapper — which may do only async-signal-safe
//! things — writes (thread id, SA_RESTART) to a pipe, then runs the program's handler; the
//! watcher thread reads the pipe and cancels the token unless the call is to restart. The
//! cancelled call returns EINTR, or its partial count, as Linux's does. A restarted call
//! simply sleeps on (the handler has run meanwhile), which is what a restart amounts to.

use parking_lot::Mutex;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;
use utcp::socket::sock::Cancel;
use utcp::Stack;

/// A call asleep (or about to sleep) in utcp.
#[derive(Clone)]
struct Blocked {
    cancel: Cancel,
    ufd: i32,
    /// A send-side call (SO_SNDTIMEO decides a restart) rather than receive-side (SO_RCVTIMEO).
    send: bool,
}

static BLOCKED: Mutex<BTreeMap<i32, Blocked>> = Mutex::new(BTreeMap::new());

thread_local! {
    // Const-initialised, no destructor: plain TLS, safe to read in a signal handler.
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
}

thread_local! {
    // The last handler the wrapper ran on this thread: 0 none (since `take_last_handler`),
    // 1 installed with SA_RESTART, 2 without. Plain TLS, written in a signal handler.
    static LAST_HANDLER: Cell<u8> = const { Cell::new(0) };
}

/// The wrapper is about to run a handler on this thread (`restart`: its SA_RESTART).
pub fn note_handler(restart: bool) {
    LAST_HANDLER.with(|c| c.set(if restart { 1 } else { 2 }));
}

/// Whether the last handler run on this thread since the previous call had SA_RESTART
/// (`None`: none ran). For the library's own kernel sleeps that Linux would restart
/// (-ERESTARTSYS), such as splice's waits on a pipe.
pub fn take_last_handler() -> Option<bool> {
    match LAST_HANDLER.with(|c| c.replace(0)) {
        1 => Some(true),
        2 => Some(false),
        _ => None,
    }
}

/// Whether this thread is inside a call that may sleep in utcp (read by the signal wrapper).
pub fn in_call() -> bool {
    IN_CALL.with(|c| c.get())
}

/// Registration of one interruptible call; dropping it ends the registration.
pub struct Guard {
    tid: i32,
}

/// Registers `cancel` as this thread's interruption token for a call on utcp fd `ufd`.
pub fn enter(cancel: Cancel, ufd: i32, send: bool) -> Guard {
    let tid = crate::ffi::sys::gettid();
    BLOCKED.lock().insert(tid, Blocked { cancel, ufd, send });
    IN_CALL.with(|c| c.set(true));
    Guard { tid }
}

impl Drop for Guard {
    fn drop(&mut self) {
        IN_CALL.with(|c| c.set(false));
        BLOCKED.lock().remove(&self.tid);
    }
}

/// Whether the socket has a timeout for the direction (`sk_rcvtimeo`/`sk_sndtimeo` other
/// than MAX_SCHEDULE_TIMEOUT).
fn has_timeout(stack: &Stack, ufd: i32, send: bool) -> bool {
    let name = if send { utcp::uapi::opt::SO_SNDTIMEO } else { utcp::uapi::opt::SO_RCVTIMEO };
    let mut tv = [0u8; 16];
    stack.getsockopt(ufd, utcp::syscall::SOL_SOCKET, name, &mut tv).is_ok_and(|_| tv.iter().any(|&b| b != 0))
}

/// The wrapper's note for thread `tid`, as the watcher acts on it.
pub fn interrupt(stack: &Stack, tid: i32, restart: bool) {
    let b = BLOCKED.lock().get(&tid).cloned();
    if let Some(b) = b {
        if !restart || has_timeout(stack, b.ufd, b.send) {
            b.cancel.cancel();
        }
    }
}

/// Starts the watcher thread: reads the wrapper's notes from the pipe and interrupts.
pub fn start_watcher(stack: Arc<Stack>) {
    let Ok(rfd) = crate::ffi::sys::open_note_pipe() else { return };
    let _ = std::thread::Builder::new().name("utcp-signals".into()).spawn(move || {
        while let Some((tid, restart)) = crate::ffi::sys::read_note(rfd) {
            interrupt(&stack, tid, restart);
        }
    });
}
