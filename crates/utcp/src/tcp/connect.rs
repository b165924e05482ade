//! Connection setup and teardown steps (tcp_output.c `tcp_connect`/`tcp_connect_init`,
//! tcp.c `tcp_close_state`), called by the socket calls in `syscall/`.

use super::window::tcp_select_initial_window;
use super::{Ctx, TcpSock, TcpState, TcpTimer, SOCK_RCVBUF_LOCK};
use crate::seq::SeqNum;
use crate::time::Duration;
use crate::wire::TcpFlags;
use bytes::Bytes;

/// `tcp_close_state()`: the next state on close/shutdown; true when a FIN must be sent.
pub(crate) fn tcp_close_state(tp: &mut TcpSock, ctx: &mut Ctx<'_>) -> bool {
    let (next, fin) = match tp.state {
        TcpState::Established | TcpState::SynRecv => (TcpState::FinWait1, true),
        TcpState::CloseWait => (TcpState::LastAck, true),
        TcpState::SynSent | TcpState::Listen | TcpState::Close => (TcpState::Close, false),
        s => (s, false),
    };
    tp.set_state(ctx, next);
    fin
}

/// `tcp_connect()` (with `tcp_connect_init`).
pub(crate) fn tcp_connect(tp: &mut TcpSock, ctx: &mut Ctx<'_>) {
    let s = &ctx.net.sysctl;
    tp.tstamp_ok = s.tcp_timestamps.get() != 0;
    tp.sack_ok = s.tcp_sack.get() != 0;
    tp.wscale_ok = s.tcp_window_scaling.get() != 0;
    tp.tcp_header_len = 20 + if tp.tstamp_ok { crate::tcp::TCPOLEN_TSTAMP_ALIGNED } else { 0 };
    if tp.user_mss != 0 {
        tp.mss_clamp = tp.user_mss;
    }
    tp.max_window = 0;
    let mtu = ctx.net.mtu();
    tp.tcp_sync_mss(mtu, s.tcp_min_snd_mss.get() as u32);
    tp.advmss = (mtu - tp.net_header_len() - 20).min(if tp.user_mss != 0 { tp.user_mss } else { u32::MAX });
    tp.tcp_initialize_rcv_mss();
    if tp.userlocks & SOCK_RCVBUF_LOCK != 0 && (tp.window_clamp as i64 > tp.full_space() || tp.window_clamp == 0) {
        tp.window_clamp = tp.full_space().max(0) as u32;
    }
    let (rcv_wnd, clamp, wscale) =
        tcp_select_initial_window(ctx, tp.full_space(), tp.advmss, tp.window_clamp, tp.wscale_ok, 0);
    tp.rcv_wnd = rcv_wnd;
    tp.window_clamp = clamp;
    tp.rcv_wscale = if tp.wscale_ok { wscale } else { 0 };
    tp.rcv_ssthresh = tp.rcv_wnd;
    tp.err = None;
    tp.done = false;
    tp.snd_wnd = 0;
    tp.snd_wl1 = SeqNum(0);
    tp.write_seq = tp.iss;
    tp.snd_una = tp.iss;
    tp.snd_sml = tp.iss;
    tp.snd_up = tp.iss;
    tp.snd_nxt = tp.iss;
    tp.pushed_seq = tp.iss;
    tp.rcv_nxt = SeqNum(0);
    tp.rcv_wup = SeqNum(0);
    tp.copied_seq = SeqNum(0);
    tp.rto = crate::tcp::TCP_TIMEOUT_INIT;
    tp.retransmits = 0;
    tp.ack.ato = Duration::ZERO;
    tp.start = ctx.now;
    tp.syn_tsval = tp.tcp_time_stamp(ctx.now);
    tp.set_state(ctx, TcpState::SynSent);
    let flags = TcpFlags::SYN;
    let iss = tp.iss;
    tp.tcp_transmit(ctx, iss, flags, Bytes::new());
    tp.rtx_queue.push_back(crate::tcp::TxSkb {
        seq: iss,
        end_seq: iss + 1,
        flags,
        building: None,
        data: Bytes::new(),
        frag: Bytes::new(),
        sacked: 0,
        tx_time: ctx.now,
        tx_order: 0,
        retrans: 0,
        urg: false,
        tx: Default::default(),
    });
    tp.write_seq = iss + 1;
    tp.snd_nxt = iss + 1;
    tp.pushed_seq = iss + 1;
    tp.packets_out = 1;
    ctx.net.mib.tcp_inc(crate::mib::TcpMib::ActiveOpens);
    let rto = tp.rto;
    tp.reset_timer(TcpTimer::Retrans, ctx.now + rto);
}
