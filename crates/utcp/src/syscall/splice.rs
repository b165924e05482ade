//! `splice()` from a socket into a pipe (fs/splice.c → `tcp_splice_read` → `tcp_read_sock`).

use super::fdtable::File;
use super::*;
use crate::tcp::recvmsg::IovIter;
use crate::tcp::{TcpState, RCV_SHUTDOWN};
use crate::time::Duration;

/// `SPLICE_F_NONBLOCK`.
pub(super) const SPLICE_F_NONBLOCK: i32 = 2;

impl Stack {
    /// `splice()` from a socket into a pipe. A pipe without room waits for it (EAGAIN with
    /// SPLICE_F_NONBLOCK or an O_NONBLOCK pipe); an empty socket waits for data like a
    /// blocking recv (SO_RCVTIMEO, O_NONBLOCK — SPLICE_F_NONBLOCK does not apply to the
    /// socket, as in Linux) and 0 means EOF.
    pub fn splice(&self, fd_in: i32, fd_out: i32, len: usize, flags: i32) -> SysResult<usize> {
        let fin = self.fds().get(fd_in)?;
        let fout = self.fds().get(fd_out)?;
        let pipe = match &*fout {
            File::Pipe(p) if p.write => p.clone(),
            File::Pipe(_) => return Err(Errno::EBADF),
            _ => return Err(Errno::EINVAL),
        };
        let s = match &*fin {
            File::Socket(s) => s.clone(),
            // DEVIATION(linux): only socket → pipe is implemented.
            _ => return Err(Errno::EINVAL),
        };
        if len == 0 {
            return Ok(0);
        }
        // splice_file_to_pipe() → wait_for_space().
        let pipe_nonblock =
            flags & SPLICE_F_NONBLOCK != 0 || pipe.f_flags.load(std::sync::atomic::Ordering::Relaxed) & O_NONBLOCK != 0;
        let room = loop {
            let (room, readers) = {
                let st = pipe.buf.state.lock();
                (pipe::PipeBuf::room(&st), st.readers)
            };
            if readers == 0 {
                return Err(Errno::EPIPE);
            }
            if room > 0 {
                break room;
            }
            if pipe_nonblock {
                return Err(Errno::EAGAIN);
            }
            // Wait for a reader to make room (pipe_wait_writable).
            let gate: std::sync::Arc<(crate::sync::Mutex<u64>, crate::sync::Condvar)> = Default::default();
            let g2 = gate.clone();
            let w = std::sync::Arc::new(crate::socket::sock::EpWaiter {
                ready: crate::sync::atomic::AtomicBool::new(true),
                notify: Box::new(move || {
                    *g2.0.lock() += 1;
                    g2.1.notify_all();
                }),
            });
            pipe.buf.add_ep_waiter(&w);
            let gen = *gate.0.lock();
            let full = pipe::PipeBuf::room(&pipe.buf.state.lock()) == 0;
            if full {
                self.wait_gate(&gate, gen, None);
            }
        };
        let len = len.min(room);
        let mut g = s.sk.lock_sock();
        if g.tp().state == TcpState::Listen {
            s.sk.release_sock(g);
            return Err(Errno::ENOTCONN);
        }
        let timeo = if s.nonblocking() { Some(Duration::ZERO) } else { g.tp().ext().rcvtimeo };
        let deadline = timeo.map(|t| self.core.clock.now() + t);
        let (got, buf) = loop {
            let tp = g.tp_mut();
            let mut want = len;
            // tcp_read_sock(): stops at the urgent mark.
            if tp.urg_data != 0 {
                let urg_offset = tp.urg_seq.diff(tp.copied_seq) as usize;
                if urg_offset < want {
                    want = urg_offset;
                }
            }
            let avail = (tp.rcv_nxt.diff(tp.copied_seq) as usize).saturating_sub(tp.done as usize);
            let n = want.min(avail);
            let mut buf = vec![0u8; n];
            let mut got = 0;
            {
                let mut iov = IovIter::new(vec![&mut buf[..]], n);
                let mut seq = tp.copied_seq;
                while got < n {
                    let Some(skb) = tp.receive_queue.iter().find(|s| !seq.before(s.seq) && seq.before(s.seq + s.len))
                    else {
                        break;
                    };
                    let off = seq.diff(skb.seq) as usize;
                    let take = (skb.len as usize - off).min(n - got);
                    let mut tmp = vec![0u8; take];
                    skb.copy_bits(off, &mut tmp);
                    iov.copy_in(&tmp);
                    got += take;
                    seq += take as u32;
                }
                tp.copied_seq = seq;
            }
            if got > 0 {
                break (got, buf);
            }
            // tcp_splice_read() with nothing read.
            if tp.done {
                break (0, buf);
            }
            if let Some(e) = tp.err.take() {
                s.sk.release_sock(g);
                return Err(e);
            }
            if tp.shutdown & RCV_SHUTDOWN != 0 {
                break (0, buf);
            }
            if tp.state == TcpState::Close {
                s.sk.release_sock(g);
                return Err(Errno::ENOTCONN);
            }
            if timeo == Some(Duration::ZERO) || deadline.is_some_and(|d| self.core.clock.now() >= d) {
                s.sk.release_sock(g);
                return Err(Errno::EAGAIN);
            }
            if !tp.receive_queue.is_empty() {
                // Nothing readable ahead of urgent data: do not loop.
                break (0, buf);
            }
            s.sk.sk_wait_data(&mut g, deadline, None, None);
        };
        let tp = g.tp_mut();
        while let Some(h) = tp.receive_queue.front() {
            if !tp.copied_seq.before(h.seq + h.len) && !h.tcp_flags.fin() {
                let skb = tp.receive_queue.pop_front().expect("head");
                tp.rmem_alloc = tp.rmem_alloc.saturating_sub(skb.truesize);
            } else {
                break;
            }
        }
        g.with_ctx_inner(|tp, ctx| {
            tp.tcp_rcv_space_adjust(ctx);
            tp.tcp_cleanup_rbuf(ctx, got);
        });
        s.sk.release_sock(g);
        if got > 0 {
            pipe.buf.state.lock().data.extend(&buf[..got]);
            pipe.buf.wake();
        }
        Ok(got)
    }
}
