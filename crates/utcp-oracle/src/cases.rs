//! Named scenarios documenting Linux receive-path behaviour, each with the
//! outcomes Linux 6.18 produces (verified by the kernel backend in this
//! crate's tests). Any backend can be checked against them with
//! [`check_case`].

use crate::scenario::{consts::*, IoctlReq, Outcome, PreOpt, Scenario, Setup, Step, FILL};

/// Expected outcome of one step.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Anything (setup steps whose result is not the point of the case).
    Any,
    /// [`Outcome::Unit`].
    Unit,
    /// `Ret` with this return value (other fields unchecked).
    Ret(i64),
    /// `Ret(n)` whose buffer starts with these bytes and is otherwise
    /// untouched ([`FILL`]).
    Data(i64, &'static [u8]),
    /// `Ret(0)` whose data is this `int` (ioctl / getsockopt).
    Int(i32),
    /// recvmsg `Ret(n)` with exactly these `msg_flags`.
    Flags(i64, i32),
    /// poll `Ret(n)` with exactly these `revents`.
    Revents(i64, i16),
    /// `Err(errno)`.
    Err(i32),
    /// Custom predicate with a description.
    Pred(fn(&Outcome) -> bool, &'static str),
}

impl Expect {
    /// Does `o` satisfy this expectation?
    pub fn matches(&self, o: &Outcome) -> bool {
        match (self, o) {
            (Expect::Any, o) => !o.is_harness(),
            (Expect::Unit, Outcome::Unit) => true,
            (Expect::Ret(r), o) => o.ret_val() == Some(*r),
            (Expect::Data(r, d), Outcome::Ret { ret, data, .. }) => {
                ret == r
                    && data.len() >= d.len()
                    && &data[..d.len()] == *d
                    && data[d.len()..].iter().all(|&b| b == FILL)
            }
            (Expect::Int(v), o) => o.ret_val() == Some(0) && o.int_val() == Some(*v),
            (Expect::Flags(r, f), o) => o.ret_val() == Some(*r) && o.msg_flags() == Some(*f),
            (Expect::Revents(r, ev), Outcome::Ret { ret, data, .. }) => ret == r && data.as_slice() == ev.to_ne_bytes(),
            (Expect::Err(e), o) => o.errno() == Some(*e),
            (Expect::Pred(p, _), o) => p(o),
            _ => false,
        }
    }
}

/// A named scenario plus the outcomes Linux produces for it.
#[derive(Clone, Debug)]
pub struct NamedCase {
    /// Short identifier.
    pub name: &'static str,
    /// The Linux fact this case documents.
    pub doc: &'static str,
    /// The scenario.
    pub scenario: Scenario,
    /// One expectation per step.
    pub expect: Vec<Expect>,
}

/// Check outcomes of `case` (from any backend) against the Linux
/// expectations.
pub fn check_case(case: &NamedCase, outcomes: &[Outcome]) -> Result<(), String> {
    if outcomes.len() != case.scenario.steps.len() {
        return Err(format!("{}: {} outcomes for {} steps", case.name, outcomes.len(), case.scenario.steps.len()));
    }
    for (i, (e, o)) in case.expect.iter().zip(outcomes).enumerate() {
        if !e.matches(o) {
            return Err(format!(
                "case `{}` ({}):\n step #{i} {}: expected {e:?}, got {o}\n{}",
                case.name,
                case.doc,
                case.scenario.steps[i],
                crate::scenario::transcript(&case.scenario, outcomes, None)
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Step constructors (short names keep the table readable).
// ---------------------------------------------------------------------------

fn send(d: &[u8]) -> Step {
    Step::PeerSend(d.to_vec())
}
fn oob(d: &[u8]) -> Step {
    Step::PeerSendOob(d.to_vec())
}
fn recv(len: usize, flags: i32) -> Step {
    Step::Recv { len, flags }
}
fn recvmsg(iov: &[usize], control_len: usize, flags: i32) -> Step {
    Step::RecvMsg { iov: iov.to_vec(), control_len, flags }
}
fn setopt(level: i32, name: i32, val: i32) -> Step {
    Step::SetOpt { level, name, val }
}
fn getopt(level: i32, name: i32) -> Step {
    Step::GetOpt { level, name }
}
fn ioctl(req: IoctlReq) -> Step {
    Step::Ioctl { req }
}
fn poll(events: i16) -> Step {
    Step::Poll { events }
}

const DW: i32 = MSG_DONTWAIT;
const ALLPOLL: i16 = POLLIN | POLLPRI | POLLOUT | POLLRDHUP;

fn case(
    name: &'static str,
    doc: &'static str,
    setup: Setup,
    pre_opts: &[(i32, i32, i32)],
    table: Vec<(Step, Expect)>,
) -> NamedCase {
    let (steps, expect) = table.into_iter().unzip();
    NamedCase {
        name,
        doc,
        scenario: Scenario {
            setup,
            pre_opts: pre_opts.iter().map(|&(level, name, val)| PreOpt { level, name, val }).collect(),
            steps,
        },
        expect,
    }
}

fn conn(name: &'static str, doc: &'static str, table: Vec<(Step, Expect)>) -> NamedCase {
    case(name, doc, Setup::Connected, &[], table)
}

fn has_cmsg(o: &Outcome, level: i32, ty: i32, len: usize) -> bool {
    matches!(o, Outcome::Ret { cmsgs, .. }
        if cmsgs.iter().any(|c| c.level == level && c.ty == ty && c.data.len() == len))
}

fn inq_is(o: &Outcome, v: i32) -> bool {
    matches!(o, Outcome::Ret { cmsgs, .. } if cmsgs.iter().any(|c| c.level == SOL_TCP
        && c.ty == TCP_CM_INQ && c.data == v.to_ne_bytes()))
}

/// Just the `(name, scenario)` pairs of [`named_cases`].
pub fn named_scenarios() -> Vec<(&'static str, Scenario)> {
    named_cases().into_iter().map(|c| (c.name, c.scenario)).collect()
}

/// A scenario that is *invalid* on purpose: a blocking `recv` on an empty
/// queue with no timeout. Backends must report it as a harness error
/// ("would hang") after [`crate::scenario::WATCHDOG`] instead of hanging.
pub fn case_would_hang() -> Scenario {
    Scenario::new(vec![send(b"ab"), recv(10, MSG_WAITALL), recv(1, 0)])
}

/// All named cases.
pub fn named_cases() -> Vec<NamedCase> {
    use Expect::*;
    vec![
        conn(
            "oob_none_einval",
            "recv(MSG_OOB) with no urgent data is EINVAL, blocking or not",
            vec![
                (recv(10, MSG_OOB), Err(EINVAL)),
                (recv(10, MSG_OOB | DW), Err(EINVAL)),
                (send(b"abc"), Unit),
                (recv(10, MSG_OOB), Err(EINVAL)),
            ],
        ),
        conn(
            "oob_read_once",
            "the urgent (last) byte is read once with MSG_OOB, then EINVAL; \
             in-band reads stop at the mark and skip the urgent byte",
            vec![
                (send(b"hello"), Unit),
                (oob(b"abc"), Unit),
                (ioctl(IoctlReq::Fionread), Int(7)),
                (ioctl(IoctlReq::Siocatmark), Int(0)),
                (recv(100, MSG_OOB), Data(1, b"c")),
                (recv(100, MSG_OOB), Err(EINVAL)),
                (recv(100, 0), Data(7, b"helloab")),
                (ioctl(IoctlReq::Siocatmark), Int(1)),
                (recv(100, DW), Err(EAGAIN)),
            ],
        ),
        conn(
            "oob_peek",
            "MSG_OOB|MSG_PEEK returns the urgent byte without consuming it",
            vec![
                (oob(b"xy"), Unit),
                (recv(4, MSG_OOB | MSG_PEEK), Data(1, b"y")),
                (recv(4, MSG_OOB | MSG_PEEK), Data(1, b"y")),
                (recv(4, MSG_OOB), Data(1, b"y")),
                (recv(4, MSG_OOB | MSG_PEEK), Err(EINVAL)),
            ],
        ),
        conn(
            "oob_len0",
            "recvmsg(MSG_OOB) with a zero-length buffer returns 0 with \
             MSG_OOB|MSG_TRUNC and consumes the urgent byte",
            vec![
                (oob(b"ab"), Unit),
                (recvmsg(&[0], 0, MSG_OOB), Flags(0, MSG_OOB | MSG_TRUNC)),
                (recv(4, MSG_OOB), Err(EINVAL)),
                (recv(4, 0), Data(1, b"a")),
            ],
        ),
        conn(
            "oob_msgflags",
            "recvmsg(MSG_OOB) sets MSG_OOB in msg_flags",
            vec![(oob(b"q"), Unit), (recvmsg(&[8], 0, MSG_OOB), Flags(1, MSG_OOB))],
        ),
        case(
            "oob_inline",
            "with SO_OOBINLINE, MSG_OOB is EINVAL and the urgent byte is read \
             in-band; a read still stops at the mark",
            Setup::Connected,
            &[(SOL_SOCKET, SO_OOBINLINE, 1)],
            vec![
                (oob(b"abc"), Unit),
                (send(b"de"), Unit),
                (recv(10, MSG_OOB), Err(EINVAL)),
                (ioctl(IoctlReq::Fionread), Int(5)),
                (recv(10, 0), Data(2, b"ab")),
                (ioctl(IoctlReq::Siocatmark), Int(1)),
                (recv(10, 0), Data(3, b"cde")),
                (ioctl(IoctlReq::Siocatmark), Int(0)),
            ],
        ),
        conn(
            "oob_lost_when_read_past",
            "reading in-band past an unread urgent byte (not inline) silently \
             drops it: MSG_OOB is EINVAL afterwards",
            vec![
                (oob(b"ab"), Unit),
                (send(b"cd"), Unit),
                (recv(10, 0), Data(1, b"a")),
                (recv(10, 0), Data(2, b"cd")),
                (recv(10, MSG_OOB), Err(EINVAL)),
            ],
        ),
        conn(
            "oob_waitall_stops_at_mark",
            "even MSG_WAITALL returns early at the urgent mark",
            vec![
                (send(b"abc"), Unit),
                (oob(b"d"), Unit),
                (send(b"ef"), Unit),
                (recv(100, MSG_WAITALL), Data(3, b"abc")),
                (recv(100, MSG_WAITALL | DW), Data(2, b"ef")),
            ],
        ),
        conn(
            "oob_second_urgent_replaces_first",
            "a new urgent pointer replaces the old one; the old urgent byte \
             becomes ordinary in-band data",
            vec![
                (send(b"ab"), Unit),
                (oob(b"X"), Unit),
                (send(b"cd"), Unit),
                (oob(b"Y"), Unit),
                (recv(10, MSG_OOB), Data(1, b"Y")),
                (recv(10, 0), Data(5, b"abXcd")),
            ],
        ),
        conn(
            "fin_read_returns_zero_repeatedly",
            "after the FIN has been read, recv keeps returning 0",
            vec![
                (send(b"hi"), Unit),
                (Step::PeerShutdownWr, Unit),
                (recv(10, 0), Data(2, b"hi")),
                (recv(10, 0), Data(0, b"")),
                (recv(10, 0), Data(0, b"")),
                (recv(10, MSG_PEEK), Data(0, b"")),
                (recv(10, MSG_OOB), Err(EINVAL)),
                (ioctl(IoctlReq::Fionread), Int(0)),
                (poll(ALLPOLL), Revents(1, POLLIN | POLLOUT | POLLRDHUP)),
            ],
        ),
        conn(
            "waitall_fin_short_count",
            "MSG_WAITALL returns a short count when the FIN arrives",
            vec![
                (send(b"abc"), Unit),
                (Step::PeerShutdownWr, Unit),
                (recv(10, MSG_WAITALL), Data(3, b"abc")),
                (recv(10, MSG_WAITALL), Data(0, b"")),
            ],
        ),
        conn(
            "rst_with_queued_data",
            "after an RST, queued data is still readable; then ECONNRESET once, \
             then 0 (EOF)",
            vec![
                (send(b"data"), Unit),
                (Step::PeerReset, Unit),
                (poll(ALLPOLL), Any),
                (recv(2, 0), Data(2, b"da")),
                (recv(10, 0), Data(2, b"ta")),
                (recv(10, 0), Err(ECONNRESET)),
                (recv(10, 0), Data(0, b"")),
                (getopt(SOL_SOCKET, SO_ERROR), Int(0)),
            ],
        ),
        conn(
            "rst_so_error_consumes",
            "SO_ERROR reports and clears the pending ECONNRESET; recv then \
             returns 0",
            vec![
                (Step::PeerReset, Unit),
                (poll(ALLPOLL), Revents(1, POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDHUP)),
                (getopt(SOL_SOCKET, SO_ERROR), Int(ECONNRESET)),
                (getopt(SOL_SOCKET, SO_ERROR), Int(0)),
                (recv(10, 0), Data(0, b"")),
                (Step::ShutdownWr, Err(ENOTCONN)),
            ],
        ),
        conn(
            "rst_after_fin_is_epipe",
            "an RST received in CLOSE_WAIT sets EPIPE, but recv first reports \
             EOF (SOCK_DONE is checked before sk_err)",
            vec![
                (Step::PeerShutdownWr, Unit),
                (Step::PeerReset, Unit),
                (recv(10, 0), Data(0, b"")),
                (getopt(SOL_SOCKET, SO_ERROR), Int(EPIPE)),
            ],
        ),
        case(
            "recv_on_listener",
            "recv on a listening socket is ENOTCONN (also with MSG_OOB); \
             FIONREAD is EINVAL",
            Setup::Listening,
            &[],
            vec![
                (recv(10, 0), Err(ENOTCONN)),
                (recv(10, MSG_OOB), Err(ENOTCONN)),
                (recv(0, 0), Err(ENOTCONN)),
                (ioctl(IoctlReq::Fionread), Err(EINVAL)),
                (getopt(SOL_SOCKET, SO_ACCEPTCONN), Int(1)),
            ],
        ),
        case(
            "recv_on_fresh_socket",
            "recv on a never-connected socket is ENOTCONN",
            Setup::Fresh,
            &[],
            vec![(recv(10, 0), Err(ENOTCONN)), (recv(10, DW), Err(ENOTCONN)), (recvmsg(&[4], 32, 0), Err(ENOTCONN))],
        ),
        conn(
            "msg_trunc_discards",
            "MSG_TRUNC on TCP discards the bytes without touching the buffer \
             and returns the count; recvmsg does not report MSG_TRUNC",
            vec![
                (send(b"abcdef"), Unit),
                (recv(3, MSG_TRUNC), Data(3, b"")),
                (recvmsg(&[1], 0, MSG_TRUNC), Flags(1, 0)),
                (recv(10, 0), Data(2, b"ef")),
            ],
        ),
        conn(
            "msg_trunc_peek",
            "MSG_PEEK|MSG_TRUNC returns the count without copying or consuming",
            vec![
                (send(b"abcdef"), Unit),
                (recv(4, MSG_PEEK | MSG_TRUNC), Data(4, b"")),
                (recv(10, 0), Data(6, b"abcdef")),
            ],
        ),
        case(
            "rcvlowat_nonblocking",
            "SO_RCVLOWAT: a non-blocking recv returns what is there; poll does \
             not report POLLIN below the low-water mark",
            Setup::Connected,
            &[(SOL_SOCKET, SO_RCVLOWAT, 10)],
            vec![
                (send(b"abc"), Unit),
                (poll(POLLIN), Revents(0, 0i16)),
                (recv(100, DW), Data(3, b"abc")),
                (send(b"0123456789"), Unit),
                (poll(POLLIN), Revents(1, POLLIN)),
                (recv(100, 0), Data(10, b"0123456789")),
            ],
        ),
        conn(
            "rcvlowat_zero_is_one",
            "SO_RCVLOWAT 0 is stored as 1",
            vec![(setopt(SOL_SOCKET, SO_RCVLOWAT, 0), Ret(0)), (getopt(SOL_SOCKET, SO_RCVLOWAT), Int(1))],
        ),
        conn(
            "recv_len_zero",
            "recv with len 0 returns 0 when data is queued, but EAGAIN (or \
             blocks) on an empty queue",
            vec![
                (recv(0, DW), Err(EAGAIN)),
                (send(b"x"), Unit),
                (recv(0, 0), Data(0, b"")),
                (recv(0, MSG_PEEK), Data(0, b"")),
                (ioctl(IoctlReq::Fionread), Int(1)),
                (Step::PeerShutdownWr, Unit),
                (recv(1, 0), Data(1, b"x")),
                (recv(0, 0), Data(0, b"")),
            ],
        ),
        conn(
            "peek_then_read",
            "MSG_PEEK does not consume",
            vec![
                (send(b"hello"), Unit),
                (recv(3, MSG_PEEK), Data(3, b"hel")),
                (recv(10, MSG_PEEK | DW), Data(5, b"hello")),
                (recv(10, 0), Data(5, b"hello")),
            ],
        ),
        conn(
            "peek_off",
            "SO_PEEK_OFF advances with each peek and moves back with reads",
            vec![
                (setopt(SOL_SOCKET, SO_PEEK_OFF, 0), Ret(0)),
                (send(b"abcdef"), Unit),
                (recv(2, MSG_PEEK | DW), Data(2, b"ab")),
                (recv(2, MSG_PEEK | DW), Data(2, b"cd")),
                (getopt(SOL_SOCKET, SO_PEEK_OFF), Int(4)),
                (recv(3, 0), Data(3, b"abc")),
                (getopt(SOL_SOCKET, SO_PEEK_OFF), Int(1)),
                (recv(2, MSG_PEEK | DW), Data(2, b"ef")),
            ],
        ),
        conn(
            "tcp_inq_cmsg",
            "TCP_INQ adds a TCP_CM_INQ cmsg with the bytes left to read",
            vec![
                (setopt(SOL_TCP, TCP_INQ, 1), Ret(0)),
                (send(b"hello"), Unit),
                (recvmsg(&[2], 64, 0), Pred(|o| o.ret_val() == Some(2) && inq_is(o, 3), "ret 2, TCP_CM_INQ=3")),
                (getopt(SOL_TCP, TCP_INQ), Int(1)),
            ],
        ),
        conn(
            "cmsg_ctrunc",
            "a control buffer too small for the cmsg gives MSG_CTRUNC; the \
             header is still written, with cmsg_len clipped to 16 (no payload), and msg_controllen is 16",
            vec![
                (setopt(SOL_TCP, TCP_INQ, 1), Ret(0)),
                (send(b"hello"), Unit),
                (recvmsg(&[2], 16, 0), Flags(2, MSG_CTRUNC)),
                (send(b"!"), Unit),
                (
                    recvmsg(&[9], 16, 0),
                    Pred(
                        |o| {
                            matches!(o, Outcome::Ret { ret: 4, controllen: Some(16), cmsgs, .. }
                            if cmsgs.len() == 1 && cmsgs[0].cmsg_len == 16 && cmsgs[0].data.is_empty())
                        },
                        "ret 4, controllen 16, one truncated TCP_CM_INQ cmsg with cmsg_len 16",
                    ),
                ),
            ],
        ),
        conn(
            "timestamp_cmsg",
            "SO_TIMESTAMP yields an SCM_TIMESTAMP cmsg (struct timeval, 16 \
             bytes; payload not compared)",
            vec![
                (setopt(SOL_SOCKET, SO_TIMESTAMP, 1), Ret(0)),
                (send(b"hello"), Unit),
                (
                    recvmsg(&[8], 64, 0),
                    Pred(
                        |o| o.ret_val() == Some(5) && has_cmsg(o, SOL_SOCKET, SCM_TIMESTAMP, 16),
                        "ret 5 with SCM_TIMESTAMP[16]",
                    ),
                ),
            ],
        ),
        conn(
            "recvmsg_name_untouched",
            "TCP recvmsg sets msg_namelen to 0 and does not write msg_name",
            vec![
                (send(b"z"), Unit),
                (
                    recvmsg(&[4], 0, 0),
                    Pred(
                        |o| {
                            matches!(o, Outcome::Ret { namelen: Some(0), name: Some(n), .. }
                            if n.iter().all(|&b| b == FILL))
                        },
                        "namelen 0, name untouched",
                    ),
                ),
            ],
        ),
        conn(
            "errqueue_empty",
            "MSG_ERRQUEUE on a TCP socket with an empty error queue is EAGAIN",
            vec![(recv(10, MSG_ERRQUEUE), Err(EAGAIN))],
        ),
        conn(
            "shut_rd_then_data",
            "after shutdown(SHUT_RD) recv returns 0 on an empty queue, but data \
             arriving later is still delivered",
            vec![
                (Step::ShutdownRd, Ret(0)),
                (recv(10, 0), Data(0, b"")),
                (send(b"abc"), Unit),
                (recv(10, 0), Data(3, b"abc")),
                (recv(10, 0), Data(0, b"")),
            ],
        ),
        conn(
            "shut_rdwr_then_data_resets",
            "data arriving for a socket in FIN_WAIT after SHUT_RD makes the \
             local stack reset the connection (ECONNRESET)",
            vec![
                (Step::ShutdownRd, Ret(0)),
                (Step::ShutdownWr, Ret(0)),
                (send(b"abc"), Unit),
                (recv(10, 0), Err(ECONNRESET)),
                (recv(10, 0), Data(0, b"")),
            ],
        ),
        conn(
            "rcvbuf_doubled",
            "SO_RCVBUF is doubled by the kernel; tiny values are raised to the \
             minimum (2*SOCK_MIN_RCVBUF)",
            vec![
                (setopt(SOL_SOCKET, SO_RCVBUF, 65536), Ret(0)),
                (getopt(SOL_SOCKET, SO_RCVBUF), Int(131072)),
                (setopt(SOL_SOCKET, SO_RCVBUF, 1), Ret(0)),
                (getopt(SOL_SOCKET, SO_RCVBUF), Int(2304)),
            ],
        ),
        conn(
            "rcvtimeo_eagain",
            "a blocking recv with SO_RCVTIMEO times out with EAGAIN",
            vec![
                (Step::SetRcvTimeo { usec: 5000 }, Ret(0)),
                (recv(10, 0), Err(EAGAIN)),
                (send(b"ab"), Unit),
                (recv(10, MSG_WAITALL), Data(2, b"ab")),
            ],
        ),
        conn(
            "nonblocking_eagain",
            "O_NONBLOCK recv on an empty queue is EAGAIN",
            vec![
                (Step::SetNonblocking(true), Ret(0)),
                (recv(10, 0), Err(EAGAIN)),
                (recv(10, MSG_WAITALL), Err(EAGAIN)),
            ],
        ),
        conn(
            "closed_fd_ebadf",
            "after close() every call is EBADF",
            vec![(Step::LocalClose, Ret(0)), (recv(10, 0), Err(EBADF)), (ioctl(IoctlReq::Fionread), Err(EBADF))],
        ),
        conn("bad_option", "unknown SOL_TCP option is ENOPROTOOPT", vec![(setopt(SOL_TCP, 9999, 1), Err(ENOPROTOOPT))]),
        conn(
            "oob_after_reset_enotconn",
            "recv(MSG_OOB) on a reset socket (TCP_CLOSE without SOCK_DONE) is ENOTCONN even with \
             a valid urgent byte; queued in-band data is still readable, then ECONNRESET",
            vec![
                (oob(b"ab"), Unit),
                (Step::PeerReset, Unit),
                (recv(4, MSG_OOB), Err(ENOTCONN)),
                (recv(4, MSG_OOB | MSG_PEEK), Err(ENOTCONN)),
                (recv(4, 0), Data(1, b"a")),
                (recv(4, 0), Err(ECONNRESET)),
                (recv(4, MSG_OOB), Err(EINVAL)),
            ],
        ),
        conn(
            "peek_off_beyond_data",
            "a peek starting (SO_PEEK_OFF) past the queued data finds nothing: EAGAIN, or 0 once \
             the FIN is queued; nothing is consumed",
            vec![
                (setopt(SOL_SOCKET, SO_PEEK_OFF, 10), Ret(0)),
                (send(b"abc"), Unit),
                (recv(4, MSG_PEEK | DW), Err(EAGAIN)),
                (Step::PeerShutdownWr, Unit),
                (recv(4, MSG_PEEK | DW), Data(0, b"")),
                (getopt(SOL_SOCKET, SO_PEEK_OFF), Int(10)),
                (recv(4, 0), Data(3, b"abc")),
                (getopt(SOL_SOCKET, SO_PEEK_OFF), Int(7)),
            ],
        ),
        conn(
            "fionread_stops_at_mark",
            "FIONREAD counts only up to an unread urgent byte (0 at the mark), then everything \
             after it once the mark is passed",
            vec![
                (send(b"abc"), Unit),
                (oob(b"de"), Unit),
                (send(b"fg"), Unit),
                (ioctl(IoctlReq::Fionread), Int(4)),
                (recv(2, 0), Data(2, b"ab")),
                (ioctl(IoctlReq::Fionread), Int(2)),
                (recv(10, 0), Data(2, b"cd")),
                (ioctl(IoctlReq::Siocatmark), Int(1)),
                (ioctl(IoctlReq::Fionread), Int(0)),
                (recv(10, 0), Data(2, b"fg")),
                (ioctl(IoctlReq::Siocatmark), Int(0)),
            ],
        ),
        conn(
            "time_wait_is_close",
            "once the connection reaches TIME_WAIT the user's socket is TCP_CLOSE (the timewait \
             mini-socket took over): shutdown() is ENOTCONN, poll reports POLLHUP",
            vec![
                (Step::ShutdownWr, Ret(0)),
                (Step::PeerShutdownWr, Unit),
                (Step::ShutdownWr, Err(ENOTCONN)),
                (Step::ShutdownRd, Err(ENOTCONN)),
                (poll(ALLPOLL), Revents(1, POLLIN | POLLOUT | POLLHUP | POLLRDHUP)),
                (recv(10, 0), Data(0, b"")),
                (Step::PeerReset, Unit),
                (getopt(SOL_SOCKET, SO_ERROR), Int(0)),
            ],
        ),
        case(
            "listener_shut_rd_disconnects",
            "shutdown(SHUT_RD) on a listener is tcp_disconnect(): the socket is closed, its \
             write_seq jumps by max_window + 2 (visible in SIOCOUTQ/SIOCOUTQNSD), recv is ENOTCONN",
            Setup::Listening,
            &[],
            vec![
                (Step::ShutdownRd, Ret(0)),
                (getopt(SOL_SOCKET, SO_ACCEPTCONN), Int(0)),
                (ioctl(IoctlReq::Siocoutq), Int(2)),
                (ioctl(IoctlReq::Siocoutqnsd), Int(2)),
                (recv(10, 0), Err(ENOTCONN)),
                (poll(ALLPOLL), Revents(1, POLLOUT | POLLHUP)),
            ],
        ),
        conn(
            "cmsg_cloexec_echoed",
            "MSG_CMSG_CLOEXEC passed to recvmsg() comes back in msg_flags",
            vec![
                (send(b"ab"), Unit),
                (recvmsg(&[1], 0, MSG_CMSG_CLOEXEC), Flags(1, MSG_CMSG_CLOEXEC)),
                (recvmsg(&[4], 32, MSG_CMSG_CLOEXEC | MSG_PEEK), Flags(1, MSG_CMSG_CLOEXEC)),
            ],
        ),
        conn(
            "rcvlowat_grows_rcvbuf",
            "tcp_set_rcvlowat(): without SO_RCVBUF, a large SO_RCVLOWAT grows sk_rcvbuf to \
             tcp_space_from_win(val); with SO_RCVBUF set the mark is capped at rcvbuf/2",
            vec![
                (getopt(SOL_SOCKET, SO_RCVBUF), Int(131072)),
                (setopt(SOL_SOCKET, SO_RCVLOWAT, 100_000), Ret(0)),
                (getopt(SOL_SOCKET, SO_RCVBUF), Int(200_000)),
                (getopt(SOL_SOCKET, SO_RCVLOWAT), Int(100_000)),
                (setopt(SOL_SOCKET, SO_RCVBUF, 10_000), Ret(0)),
                (setopt(SOL_SOCKET, SO_RCVLOWAT, 100_000), Ret(0)),
                (getopt(SOL_SOCKET, SO_RCVLOWAT), Int(10_000)),
                (getopt(SOL_SOCKET, SO_RCVBUF), Int(20_000)),
            ],
        ),
        conn(
            "poll_urgent",
            "urgent data makes poll report POLLPRI",
            vec![
                (oob(b"u"), Unit),
                (poll(ALLPOLL), Revents(1, POLLPRI | POLLOUT)),
                (send(b"v"), Unit),
                (poll(ALLPOLL), Revents(1, POLLIN | POLLPRI | POLLOUT)),
            ],
        ),
    ]
}
