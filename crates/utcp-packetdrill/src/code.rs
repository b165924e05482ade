//! What packetdrill's `%{ }%` code events read from the socket under test: `TCP_INFO`,
//! `TCP_CC_INFO` and `SO_MEMINFO` (code.c `get_data`).

use utcp::errno::{Errno, SysResult};
use utcp::syscall::opt::TCP_INFO;
use utcp::syscall::{SOL_SOCKET, SOL_TCP};
use utcp::Stack;

/// `TCP_CC_INFO`.
pub const TCP_CC_INFO: i32 = 26;
/// `SO_MEMINFO`.
pub const SO_MEMINFO: i32 = 55;
/// `SK_MEMINFO_VARS`.
pub const SK_MEMINFO_VARS: usize = 9;

/// `sizeof(struct tcp_info)` on Linux 6.18 (packetdrill asserts it gets at least its own
/// `struct _tcp_info`, also 280 bytes).
pub const TCP_INFO_LEN: usize = 280;

/// `getsockopt` for a code event: utcp's answer, completed where utcp falls short of Linux.
///
/// - `TCP_INFO`: utcp's `getsockopt` stops after `tcpi_total_retrans` (104 bytes); the rest of
///   Linux 6.18's 280-byte layout is filled from `Stack::tcp_info` (`tcpi_bytes_acked`,
///   `tcpi_bytes_received`, `tcpi_segs_*`, `tcpi_notsent_bytes`, `tcpi_data_segs_*`,
///   `tcpi_delivered`, `tcpi_snd_wnd`, `tcpi_rcv_wnd`); fields utcp does not keep are 0.
/// - `TCP_CC_INFO`: CUBIC has no `get_info`, so Linux returns success with length 0.
/// - `SO_MEMINFO` (`sk_get_meminfo`): `[RMEM_ALLOC, RCVBUF, WMEM_ALLOC, SNDBUF, FWD_ALLOC,
///   WMEM_QUEUED, OPTMEM, BACKLOG, DROPS]` from the socket's state; utcp keeps no separate
///   `sk_wmem_alloc`, `sk_forward_alloc`, `sk_omem_alloc`, backlog or drop count
///   here, so those read 0.
pub fn getsockopt(stack: &Stack, fd: i32, level: i32, name: i32, out: &mut [u8]) -> SysResult<usize> {
    if (level, name) == (SOL_TCP, TCP_INFO) && out.len() > 104 {
        let mut b = [0u8; TCP_INFO_LEN];
        let n = stack.getsockopt(fd, level, name, &mut b)?;
        if n < TCP_INFO_LEN {
            let i = stack.tcp_info(fd)?;
            let mut put = |off: usize, v: &[u8]| {
                if off >= n {
                    b[off..off + v.len()].copy_from_slice(v);
                }
            };
            put(120, &i.tcpi_bytes_acked.to_ne_bytes());
            put(128, &i.tcpi_bytes_received.to_ne_bytes());
            put(136, &i.tcpi_segs_out.to_ne_bytes());
            put(140, &i.tcpi_segs_in.to_ne_bytes());
            put(144, &i.tcpi_notsent_bytes.to_ne_bytes());
            put(152, &i.tcpi_data_segs_in.to_ne_bytes());
            put(156, &i.tcpi_data_segs_out.to_ne_bytes());
            put(192, &i.tcpi_delivered.to_ne_bytes());
            put(228, &i.tcpi_snd_wnd.to_ne_bytes());
            put(232, &i.tcpi_rcv_wnd.to_ne_bytes());
        }
        let k = out.len().min(TCP_INFO_LEN);
        out[..k].copy_from_slice(&b[..k]);
        return Ok(k);
    }
    match stack.getsockopt(fd, level, name, out) {
        Err(Errno::ENOPROTOOPT) if (level, name) == (SOL_TCP, TCP_CC_INFO) => Ok(0),
        Err(Errno::ENOPROTOOPT) if (level, name) == (SOL_SOCKET, SO_MEMINFO) => {
            let s = stack.sockfd_lookup(fd)?;
            let v: [u32; SK_MEMINFO_VARS] =
                s.sk.peek_tp(|tp| [tp.rmem_alloc, tp.rcvbuf, 0, tp.sndbuf, 0, tp.wmem_queued, 0, 0, 0]);
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
            let n = out.len().min(bytes.len());
            out[..n].copy_from_slice(&bytes[..n]);
            Ok(n)
        }
        r => r,
    }
}
