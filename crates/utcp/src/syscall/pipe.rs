//! Pipes (fs/pipe.c): a 64 KiB byte buffer shared by a read end and a write end. Reads block
//! until data or EOF (no writer left), writes block until room (EPIPE with no reader left);
//! writes of at most PIPE_BUF bytes are atomic. Readiness is reported to poll/epoll.

use crate::errno::{Errno, SysResult};
use crate::socket::sock::EpWaiter;
use crate::sync::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Weak};

/// `PIPE_DEF_BUFFERS * PAGE_SIZE`.
pub(crate) const PIPE_CAPACITY: usize = 16 * 4096;
/// `PIPE_BUF`: writes up to this size are atomic.
pub(crate) const PIPE_BUF: usize = 4096;
/// `O_WRONLY`.
const O_WRONLY: i32 = 1;

/// The buffer and its ends' counts.
#[derive(Default)]
pub(crate) struct PipeState {
    /// Bytes in the pipe.
    pub(crate) data: VecDeque<u8>,
    /// Open read-end files.
    pub(crate) readers: usize,
    /// Open write-end files.
    pub(crate) writers: usize,
}

/// The shared pipe (`pipe_inode_info`).
#[derive(Default)]
pub(crate) struct PipeBuf {
    /// Buffer and counts.
    pub(crate) state: Mutex<PipeState>,
    /// The wait queue (`pipe->rd_wait`/`wr_wait`).
    cv: Condvar,
    ep: Mutex<Vec<Weak<EpWaiter>>>,
}

impl PipeBuf {
    /// Room left for writers.
    pub(crate) fn room(st: &PipeState) -> usize {
        PIPE_CAPACITY - st.data.len().min(PIPE_CAPACITY)
    }

    /// Wakes blocked readers/writers and epoll/poll waiters.
    pub(crate) fn wake(&self) {
        self.cv.notify_all();
        let eps: Vec<Arc<EpWaiter>> = {
            let mut ep = self.ep.lock();
            ep.retain(|w| w.strong_count() > 0);
            ep.iter().filter_map(|w| w.upgrade()).collect()
        };
        for e in eps {
            e.ready.store(true, Ordering::Release);
            (e.notify)();
        }
    }

    /// Registers a poll/epoll waiter.
    pub(crate) fn add_ep_waiter(&self, w: &Arc<EpWaiter>) {
        let mut ep = self.ep.lock();
        ep.retain(|w| w.strong_count() > 0);
        ep.push(Arc::downgrade(w));
    }
}

/// One end of a pipe (an open file).
pub struct PipeEnd {
    /// The pipe.
    pub(crate) buf: Arc<PipeBuf>,
    /// True for the write end.
    pub(crate) write: bool,
    /// `file->f_flags` (O_NONBLOCK lives here).
    pub(crate) f_flags: AtomicI32,
}

impl PipeEnd {
    /// A new pipe: (read end, write end), both open.
    pub(crate) fn pair(nonblock: bool) -> (PipeEnd, PipeEnd) {
        let buf = Arc::new(PipeBuf::default());
        {
            let mut st = buf.state.lock();
            st.readers = 1;
            st.writers = 1;
        }
        let nb = if nonblock { super::O_NONBLOCK } else { 0 };
        let r = PipeEnd { buf: buf.clone(), write: false, f_flags: AtomicI32::new(nb) };
        let w = PipeEnd { buf, write: true, f_flags: AtomicI32::new(O_WRONLY | nb) };
        (r, w)
    }

    fn nonblocking(&self) -> bool {
        self.f_flags.load(Ordering::Relaxed) & super::O_NONBLOCK != 0
    }

    /// The last fd of this end was closed (`pipe_release`).
    pub(crate) fn release(&self) {
        {
            let mut st = self.buf.state.lock();
            if self.write {
                st.writers = st.writers.saturating_sub(1);
            } else {
                st.readers = st.readers.saturating_sub(1);
            }
        }
        self.buf.wake();
    }

    /// `pipe_read()` into the iovec `bufs` (each a buffer, `None` = NULL, and its length).
    pub(crate) fn read(&self, bufs: &mut [(Option<&mut [u8]>, usize)]) -> SysResult<usize> {
        if self.write {
            return Err(Errno::EBADF);
        }
        let total: usize = bufs.iter().fold(0usize, |a, b| a.saturating_add(b.1)).min(super::MAX_RW_COUNT);
        if total == 0 {
            return Ok(0);
        }
        let mut st = self.buf.state.lock();
        while st.data.is_empty() {
            if st.writers == 0 {
                return Ok(0);
            }
            if self.nonblocking() {
                return Err(Errno::EAGAIN);
            }
            self.buf.cv.wait(&mut st);
        }
        let mut copied = 0;
        for (b, len) in bufs.iter_mut() {
            let want = (*len).min(st.data.len()).min(total - copied);
            if want == 0 {
                continue;
            }
            // copy_page_to_iter() into memory shorter than claimed faults; what faulted
            // stays in the pipe, and only a fault before any byte is an error.
            let fits = b.as_deref().map_or(0, |b| b.len()) >= want;
            let Some(b) = b.as_deref_mut().filter(|_| fits) else {
                if copied == 0 {
                    return Err(Errno::EFAULT);
                }
                break;
            };
            for (i, byte) in st.data.drain(..want).enumerate() {
                b[i] = byte;
            }
            copied += want;
            if st.data.is_empty() || copied == total {
                break;
            }
        }
        drop(st);
        self.buf.wake();
        Ok(copied)
    }

    /// `pipe_write()` from the iovec `bufs`.
    pub fn write(&self, bufs: &[(Option<&[u8]>, usize)]) -> SysResult<usize> {
        if !self.write {
            return Err(Errno::EBADF);
        }
        let total: usize = bufs.iter().fold(0usize, |a, b| a.saturating_add(b.1)).min(super::MAX_RW_COUNT);
        if total == 0 {
            return Ok(0);
        }
        let mut st = self.buf.state.lock();
        let mut written = 0usize;
        let mut result = Ok(());
        'outer: for (b, len) in bufs {
            let len = (*len).min(total - written);
            let avail = b.map_or(0, |b| b.len()).min(len);
            let mut off = 0;
            while off < len {
                if st.readers == 0 {
                    result = Err(Errno::EPIPE);
                    break 'outer;
                }
                let room = PipeBuf::room(&st);
                // A write of at most PIPE_BUF bytes goes in whole or waits.
                let need = if total <= PIPE_BUF { total - written } else { 1 };
                if room >= need {
                    let n = room.min(len - off);
                    let ok = n.min(avail.saturating_sub(off));
                    if let Some(b) = b {
                        st.data.extend(&b[off..off + ok]);
                    }
                    off += ok;
                    written += ok;
                    if ok < n {
                        result = Err(Errno::EFAULT);
                        break 'outer;
                    }
                    self.buf.cv.notify_all();
                    continue;
                }
                if self.nonblocking() {
                    result = Err(Errno::EAGAIN);
                    break 'outer;
                }
                drop(st);
                self.buf.wake();
                st = self.buf.state.lock();
                if PipeBuf::room(&st) < need && st.readers > 0 {
                    self.buf.cv.wait(&mut st);
                }
            }
        }
        drop(st);
        if written > 0 {
            self.buf.wake();
            return Ok(written);
        }
        result.map(|_| 0)
    }

    /// `pipe_poll()`.
    pub(crate) fn poll(&self) -> u32 {
        const IN: u32 = 0x1 | 0x40;
        const OUT: u32 = 0x4 | 0x100;
        const ERR: u32 = 0x8;
        const HUP: u32 = 0x10;
        let st = self.buf.state.lock();
        let mut mask = 0;
        if self.write {
            if PipeBuf::room(&st) >= PIPE_BUF {
                mask |= OUT;
            }
            if st.readers == 0 {
                mask |= ERR;
            }
        } else {
            if !st.data.is_empty() {
                mask |= IN;
            }
            if st.writers == 0 {
                mask |= HUP;
            }
        }
        mask
    }
}
