//! Urgent data (net/ipv4/tcp_input.c `tcp_check_urg`, net/ipv4/tcp.c `tcp_recv_urg`):
//! the urgent pointer, SO_OOBINLINE, SIOCATMARK.

use super::input::Seg;
use super::{Ctx, TcpSock, TcpState, TCP_URG_NOTYET, TCP_URG_READ, TCP_URG_VALID};
use crate::errno::Errno;

/// What `tcp_recv_urg` returns on success.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UrgRead {
    /// Bytes returned (0 or 1).
    pub(crate) len: usize,
    /// The urgent byte, when one was returned.
    pub(crate) byte: Option<u8>,
    /// MSG_TRUNC must be set in msg_flags (zero-length buffer).
    pub(crate) trunc: bool,
    /// MSG_OOB is set in msg_flags.
    pub(crate) oob: bool,
}

impl TcpSock {
    /// `tcp_check_urg()`: a new urgent pointer arrived.
    pub(crate) fn tcp_check_urg(&mut self, ctx: &mut Ctx<'_>, seg: &Seg) {
        let mut ptr = seg.urg_ptr as u32;
        if ptr != 0 && ctx.net.sysctl.tcp_stdurg.get() == 0 {
            ptr -= 1;
        }
        let ptr = seg.seq + ptr;
        if self.copied_seq.after(ptr) {
            return;
        }
        if ptr.before(self.rcv_nxt) {
            return;
        }
        if self.urg_data != 0 && !ptr.after(self.urg_seq) {
            return;
        }
        // SIGURG would be sent here (sk_send_sigurg); utcp has no signals.
        if self.urg_seq == self.copied_seq && self.urg_data != 0 && !self.urginline && self.copied_seq != self.rcv_nxt {
            self.copied_seq += 1;
            if let Some(head) = self.receive_queue.front() {
                if !self.copied_seq.before(head.end_seq) {
                    let skb = self.receive_queue.pop_front().expect("head");
                    self.rmem_alloc = self.rmem_alloc.saturating_sub(skb.truesize);
                    self.sk_mem_reclaim();
                }
            }
        }
        self.urg_data = TCP_URG_NOTYET;
        self.urg_seq = ptr;
        let _ = ctx;
    }

    /// `tcp_recv_urg()`: `recv(MSG_OOB)`. `buf_len` is the user's buffer size.
    pub(crate) fn tcp_recv_urg(&mut self, buf_len: usize, peek: bool, trunc_flag: bool) -> Result<UrgRead, Errno> {
        if self.urginline || self.urg_data == 0 || self.urg_data == TCP_URG_READ {
            return Err(Errno::EINVAL);
        }
        if self.sk_state() == TcpState::Close && !self.done {
            return Err(Errno::ENOTCONN);
        }
        if self.urg_data & TCP_URG_VALID != 0 {
            let c = self.urg_data as u8;
            if !peek {
                self.urg_data = TCP_URG_READ;
            }
            if buf_len > 0 {
                return Ok(UrgRead { len: 1, byte: (!trunc_flag).then_some(c), trunc: false, oob: true });
            }
            return Ok(UrgRead { len: 0, byte: None, trunc: true, oob: true });
        }
        if self.sk_state() == TcpState::Close || self.shutdown & super::RCV_SHUTDOWN != 0 {
            return Ok(UrgRead { len: 0, byte: None, trunc: false, oob: false });
        }
        Err(Errno::EAGAIN)
    }

    /// SIOCATMARK: true when the next byte to read is the urgent mark.
    pub(crate) fn at_mark(&self) -> bool {
        self.urg_data != 0 && self.urg_seq == self.copied_seq
    }
}
