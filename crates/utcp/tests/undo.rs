//! Spurious retransmissions on a reordering path are detected and undone (DSACK undo), and
//! RACK's reordering window widens on DSACK (RFC 8985 §6.2, `tcp_rack_update_reo_wnd`) so that
//! persistent reordering stops causing retransmissions — on the virtual clock, deterministic.

mod common;

use common::*;
use utcp::mib::{LinuxMib, TcpMib};
use utcp::time::Duration;
use utcp::Errno;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A 2 ms one-way path where every 40th data segment from A arrives `late` after the ones
/// sent behind it. Returns the lab after moving `len` bytes (checked) and the sender's
/// (retransmissions, DSACKs received, DSACK undos, all undos).
fn reordered(len: usize, late: Duration, rec: &str, ts: bool) -> (Lab, u64, u64, u64, u64) {
    let lab = Lab::new(ms(2));
    lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_recovery", rec).unwrap();
    lab.a.core.net.sysctl.set_by_name("net.ipv4.tcp_timestamps", if ts { "1" } else { "0" }).unwrap();
    let (c, s, _l) = lab.pair();
    let mut nth = 0u32;
    let mut held = std::collections::HashSet::new();
    lab.delay_if(move |p| {
        if p.from_a && p.len > 0 && !held.contains(&p.seq) {
            nth += 1;
            if nth.is_multiple_of(40) {
                held.insert(p.seq); // the original only: a retransmission is not held
                return Some(late);
            }
        }
        None
    });
    let data = pattern(len, 9);
    let (mut sent, mut got) = (0, Vec::new());
    assert!(lab.run_until(Duration::from_secs(120), || {
        while sent < data.len() {
            match lab.a.send(c, Some(&data[sent..]), data.len() - sent, 0) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        drain(&lab.b, s, &mut got).unwrap();
        got.len() == data.len()
    }));
    assert!(got == data, "stream intact");
    let m = &lab.a.core.net.mib;
    let undos = m.get(LinuxMib::TCPDSACKUndo)
        + m.get(LinuxMib::TCPFullUndo)
        + m.get(LinuxMib::TCPPartialUndo)
        + m.get(LinuxMib::TCPLossUndo);
    let (r, d, du) = (
        m.tcp_get(TcpMib::RetransSegs),
        m.get(LinuxMib::TCPDSACKRecv) + m.get(LinuxMib::TCPDSACKOfoRecv),
        m.get(LinuxMib::TCPDSACKUndo),
    );
    (lab, r, d, du, undos)
}

#[test]
fn spurious_recovery_is_undone_by_timestamps() {
    // With timestamps the ACK for the late original echoes a TSval older than the
    // retransmission (Eifel, `tcp_packet_delayed`): the recovery is undone at once.
    let (lab, retrans, dsacks, _, undos) = reordered(2 << 20, ms(6), "1", true);
    let nstat = lab.a.core.net.mib.nstat(false);
    assert!(retrans > 0, "late segments were taken for lost at first\n{nstat}");
    assert!(dsacks > 0, "the receiver reported the needless retransmissions\n{nstat}");
    assert!(undos > 0 && lab.a.core.net.mib.get(LinuxMib::TCPPartialUndo) > 0, "recoveries undone\n{nstat}");
    let c = lab.a.core.sockets().into_iter().find(|sk| sk.peek_tp(|tp| tp.sport != 80)).unwrap();
    let (steps, dups) = c.peek_tp(|tp| (tp.rack_reo_wnd_steps, tp.dsack_dups));
    assert!(steps > 1, "DSACKs widened RACK's reordering window ({steps} steps)");
    assert_eq!(dups as u64, dsacks);
    // Once the window is wide enough, late originals fill their holes: reordering
    // (`tcp_check_sack_reordering()`; 6.18.44 over the same pattern: TCPSACKReorder 15,
    // TCPTSReorder 6 for 2 MiB).
    let m = &lab.a.core.net.mib;
    eprintln!(
        "TCPSACKReorder {} TCPTSReorder {} retrans {retrans}",
        m.get(LinuxMib::TCPSACKReorder),
        m.get(LinuxMib::TCPTSReorder)
    );
    assert!(m.get(LinuxMib::TCPSACKReorder) + m.get(LinuxMib::TCPTSReorder) > 0, "reordering seen\n{nstat}");
}

#[test]
fn spurious_recovery_is_undone_on_dsack() {
    // Without timestamps only the DSACKs show the retransmissions needless:
    // `tcp_try_undo_dsack` restores cwnd once every retransmission is DSACKed.
    let (lab, retrans, dsacks, dsack_undo, _) = reordered(2 << 20, ms(6), "1", false);
    let nstat = lab.a.core.net.mib.nstat(false);
    assert!(retrans > 0 && dsacks > 0, "{nstat}");
    assert!(dsack_undo > 0, "DSACK undo\n{nstat}");
}

#[test]
fn dsack_widened_window_stops_spurious_retransmissions() {
    // The same reordering with a static window (TCP_RACK_STATIC_REO_WND: tcp_recovery = 3)
    // keeps retransmitting every late segment; with the adaptive window the retransmissions
    // stop once the window covers the lateness.
    let (_, adaptive, ..) = reordered(4 << 20, ms(3), "1", true);
    let (_, fixed, ..) = reordered(4 << 20, ms(3), "3", true);
    assert!(fixed > 0, "the static window keeps mistaking lateness for loss");
    eprintln!("adaptive window: {adaptive} retransmissions, static: {fixed}");
    assert!(adaptive * 2 < fixed, "adaptive window: {adaptive} retransmissions, static: {fixed}");
}
