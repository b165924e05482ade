//! SO_TIMESTAMPING against the kernel: the same call sequences on a kernel TCP connection over
//! 127.0.0.1 and on a utcp connection over a memlink (real threads, real clock); the traces of
//! option results and of the reports read back (recvmsg(MSG_ERRQUEUE): types, keys, order,
//! errno, control messages, data lengths, POLLERR) must be equal.
//!
//! What differs by construction is left out of the trace: time values (only "stamped" or not),
//! device indexes, and the length of a SCHED/SND report's packet copy, which on the kernel's
//! loopback starts with a 14-byte Ethernet header and on utcp's devices (no link header, as a
//! TUN device) with the IP header.
//!
//! Skips (with a message) when kernel TCP sockets on 127.0.0.1 cannot be created.

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utcp::api::{memlink_pair, Host, TcpListener, TcpStream, ADDR_B};
use utcp::netdev::memlink::LinkConfig;
use utcp::syscall::{parse_cmsgs, IoVec, MsgHdr, PollFd};
use utcp_oracle::kernel::sys;

const SOL_SOCKET: i32 = 1;
const IPPROTO_TCP: i32 = 6;
const SO_TIMESTAMPING_OLD: i32 = 37;
const SO_TIMESTAMPING_NEW: i32 = 65;
const SO_TIMESTAMPNS: i32 = 35;
const TCP_NODELAY: i32 = 1;
const TCP_CORK: i32 = 3;
const IP_PKTINFO: i32 = 8;
const MSG_DONTWAIT: i32 = 0x40;
const MSG_ERRQUEUE: i32 = 0x2000;
const SIOCOUTQ: u64 = 0x5411;
const POLLERR: i16 = 0x8;

const TX_SOFTWARE: u32 = 1 << 1;
const RX_SOFTWARE: u32 = 1 << 3;
const SOFTWARE: u32 = 1 << 4;
const OPT_ID: u32 = 1 << 7;
const TX_SCHED: u32 = 1 << 8;
const TX_ACK: u32 = 1 << 9;
const OPT_CMSG: u32 = 1 << 10;
const OPT_TSONLY: u32 = 1 << 11;
const OPT_STATS: u32 = 1 << 12;
const OPT_ID_TCP: u32 = 1 << 16;

/// One step of a sequence, run on the client (`c`) or the server (`s`) side.
#[derive(Clone, Debug)]
enum Step {
    /// setsockopt(SO_TIMESTAMPING_{OLD,NEW}) with these bytes.
    Set { new: bool, val: Vec<u8> },
    /// getsockopt(SO_TIMESTAMPING_{OLD,NEW}), 8 bytes.
    Get { new: bool },
    /// setsockopt of an int option.
    Int { level: i32, name: i32, v: i32 },
    /// send() of `n` bytes from the client.
    Send(usize),
    /// sendmsg() of `n` bytes with SOL_SOCKET control messages (type, u32 payload bytes).
    SendCmsg(usize, Vec<(i32, Vec<u8>)>),
    /// Wait until the client's bytes are all acknowledged (SIOCOUTQ 0).
    Acked,
    /// POLLERR on the client.
    PollErr,
    /// recvmsg(MSG_ERRQUEUE) on the client until EAGAIN.
    DrainErr,
    /// recvmsg() of everything queued on the server, with its control messages.
    RecvServer,
    /// Let the kernel's deferred work run: the first socket that asks for receive timestamps
    /// turns the `netstamp_needed_key` static key on from a work item (`netstamp_work`), so
    /// segments arriving before it has run carry no time. Not a timing assertion: utcp stamps
    /// from the start, the kernel from then on.
    Pause,
}

fn flags(f: u32) -> Vec<u8> {
    f.to_ne_bytes().to_vec()
}

/// A control message: (level, type, data).
type Cmsg = (i32, i32, Vec<u8>);

/// What recvmsg returned: (return, msg_flags, data, control messages).
type Received = (usize, i32, Vec<u8>, Vec<Cmsg>);

/// What a sequence's calls answered, one line per result.
type Trace = Vec<String>;

trait Side {
    fn setsockopt(&self, server: bool, level: i32, name: i32, val: &[u8]) -> Result<(), i32>;
    fn getsockopt(&self, level: i32, name: i32, len: usize) -> Result<Vec<u8>, i32>;
    fn send(&self, data: &[u8]) -> Result<usize, i32>;
    fn sendmsg(&self, data: &[u8], control: &[u8]) -> Result<usize, i32>;
    fn outq(&self) -> i32;
    fn poll_revents(&self) -> i16;
    /// recvmsg on the client's error queue or the server's data: (return, msg_flags, data,
    /// control messages as (level, type, data)).
    fn recvmsg(&self, server: bool, flags: i32) -> Result<Received, i32>;
    /// The client's own address (for the offender of an OPT_CMSG report).
    fn local_addr(&self) -> [u8; 4];
}

fn describe_cmsgs(side: &dyn Side, cmsgs: &[Cmsg], tsonly_or_ack: bool) -> String {
    let mut out = Vec::new();
    for (level, ty, d) in cmsgs {
        let what = match (*level, *ty) {
            (SOL_SOCKET, SO_TIMESTAMPING_OLD | SO_TIMESTAMPING_NEW) => {
                let ts0 = d[..16].iter().any(|&b| b != 0);
                let rest = d[16..].iter().all(|&b| b == 0);
                format!("SCM_TIMESTAMPING({ty}) len {} ts0 {ts0} rest0 {rest}", d.len())
            }
            (0, 11) => {
                let u = |o: usize| u32::from_ne_bytes(d[o..o + 4].try_into().unwrap());
                let off_family = u16::from_ne_bytes([d[16], d[17]]);
                let off_self = d[20..24] == side.local_addr();
                let info = u(8);
                let data_len = if tsonly_or_ack { "exact" } else { "packet" };
                format!(
                    "IP_RECVERR errno {} origin {} type {} code {} info {info} data {} offender {off_family}/{off_self} ({data_len})",
                    u(0),
                    d[4],
                    d[5],
                    d[6],
                    u(12)
                )
            }
            (SOL_SOCKET, 54) => format!("OPT_STATS len {}", d.len()),
            _ => format!("cmsg {level}/{ty} len {}", d.len()),
        };
        out.push(what);
    }
    out.join("; ")
}

fn run(side: &dyn Side, steps: &[Step]) -> Trace {
    let mut t = Trace::new();
    let mut tsflags = 0u32;
    for st in steps {
        match st {
            Step::Set { new, val } => {
                let name = if *new { SO_TIMESTAMPING_NEW } else { SO_TIMESTAMPING_OLD };
                let r = side.setsockopt(false, SOL_SOCKET, name, val);
                if r.is_ok() && val.len() >= 4 {
                    tsflags = u32::from_ne_bytes(val[..4].try_into().unwrap());
                }
                t.push(format!("set {name} {val:?} -> {r:?}"));
            }
            Step::Get { new } => {
                let name = if *new { SO_TIMESTAMPING_NEW } else { SO_TIMESTAMPING_OLD };
                t.push(format!("get {name} -> {:?}", side.getsockopt(SOL_SOCKET, name, 8)));
            }
            Step::Int { level, name, v } => {
                let server = *level < 0;
                let r = side.setsockopt(server, level.abs(), *name, &v.to_ne_bytes());
                t.push(format!("setsockopt {level}/{name} {v} -> {r:?}"));
            }
            Step::Send(n) => t.push(format!("send {n} -> {:?}", side.send(&vec![b'x'; *n]))),
            Step::SendCmsg(n, cms) => {
                let mut control = Vec::new();
                for (ty, d) in cms {
                    control.extend(((16 + d.len()) as u64).to_ne_bytes());
                    control.extend(SOL_SOCKET.to_ne_bytes());
                    control.extend(ty.to_ne_bytes());
                    control.extend(d);
                    control.resize(control.len().div_ceil(8) * 8, 0);
                }
                t.push(format!("sendmsg {n} {cms:?} -> {:?}", side.sendmsg(&vec![b'y'; *n], &control)));
            }
            Step::Acked => {
                let start = Instant::now();
                while side.outq() != 0 && start.elapsed() < Duration::from_secs(10) {
                    std::thread::sleep(Duration::from_millis(2));
                }
                // The reports of the last ACK are queued under the same lock as snd_una moves.
                t.push(format!("acked {}", side.outq() == 0));
            }
            Step::Pause => std::thread::sleep(Duration::from_millis(100)),
            Step::PollErr => t.push(format!("pollerr {}", side.poll_revents() & POLLERR != 0)),
            Step::DrainErr => loop {
                match side.recvmsg(false, MSG_ERRQUEUE | MSG_DONTWAIT) {
                    Ok((n, fl, _data, cm)) => {
                        let is_ack = cm.iter().any(|(l, ty, d)| *l == 0 && *ty == 11 && d[8] == 2);
                        let exact = tsflags & OPT_TSONLY != 0 || is_ack || n == 0;
                        let n = if exact { n.to_string() } else { "packet".into() };
                        t.push(format!("errqueue {n} flags {fl:#x}: {}", describe_cmsgs(side, &cm, exact)));
                    }
                    Err(e) => {
                        t.push(format!("errqueue -> errno {e}"));
                        break;
                    }
                }
            },
            Step::RecvServer => {
                let start = Instant::now();
                let r = loop {
                    let r = side.recvmsg(true, MSG_DONTWAIT);
                    if r != Err(11) || start.elapsed() > Duration::from_secs(10) {
                        break r;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                };
                match r {
                    Ok((n, fl, _, cm)) => {
                        t.push(format!("recv {n} flags {fl:#x}: {}", describe_cmsgs(side, &cm, true)))
                    }
                    Err(e) => t.push(format!("recv -> errno {e}")),
                }
            }
        }
    }
    t
}

// ---------------------------------------------------------------- the kernel

struct Kernel {
    c: i32,
    s: i32,
    l: i32,
}

impl Kernel {
    fn new() -> Result<Kernel, String> {
        let e = |what: &str, e: i32| format!("{what}: errno {e}");
        let l = sys::socket_stream().map_err(|x| e("socket", x))?;
        sys::bind_loopback(l, 0).map_err(|x| e("bind", x))?;
        sys::listen(l, 4).map_err(|x| e("listen", x))?;
        let port = sys::local_port(l).map_err(|x| e("getsockname", x))?;
        let c = sys::socket_stream().map_err(|x| e("socket", x))?;
        sys::connect_loopback(c, port).map_err(|x| e("connect", x))?;
        let s = sys::accept(l).map_err(|x| e("accept", x))?;
        Ok(Kernel { c, s, l })
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        for fd in [self.c, self.s, self.l] {
            let _ = sys::close(fd);
        }
    }
}

impl Side for Kernel {
    fn setsockopt(&self, server: bool, level: i32, name: i32, val: &[u8]) -> Result<(), i32> {
        sys::setsockopt_bytes(if server { self.s } else { self.c }, level, name, val).map(|_| ())
    }
    fn getsockopt(&self, level: i32, name: i32, len: usize) -> Result<Vec<u8>, i32> {
        sys::getsockopt_buf(self.c, level, name, len)
    }
    fn send(&self, data: &[u8]) -> Result<usize, i32> {
        sys::send(self.c, data, 0).map(|n| n as usize)
    }
    fn sendmsg(&self, data: &[u8], control: &[u8]) -> Result<usize, i32> {
        sys::sendmsg_control(self.c, data, control, 0).map(|n| n as usize)
    }
    fn outq(&self) -> i32 {
        sys::ioctl_int(self.c, SIOCOUTQ).unwrap()
    }
    fn poll_revents(&self) -> i16 {
        sys::poll1(self.c, 0, 0).unwrap().1
    }
    fn recvmsg(&self, server: bool, flags: i32) -> Result<Received, i32> {
        let fd = if server { self.s } else { self.c };
        let mut bufs = vec![vec![0u8; 65536]];
        let mut ctl = vec![0u8; 1024];
        let r = sys::recvmsg(fd, &mut bufs, Some(&mut ctl), &mut [], flags)?;
        let mut data = bufs.remove(0);
        data.truncate(r.ret as usize);
        let cm = parse_cmsgs(&ctl[..r.controllen]).into_iter().map(|c| (c.level, c.ty, c.data)).collect();
        Ok((r.ret as usize, r.msg_flags, data, cm))
    }
    fn local_addr(&self) -> [u8; 4] {
        [127, 0, 0, 1]
    }
}

// ---------------------------------------------------------------- utcp

struct Utcp {
    a: Host,
    b: Host,
    c: TcpStream,
    s: TcpStream,
    _l: TcpListener,
}

impl Utcp {
    fn new(port: u16) -> Utcp {
        let (a, b) = memlink_pair(LinkConfig::default());
        let l = TcpListener::bind(&b.stack, SocketAddrV4::new(ADDR_B, port), 4).unwrap();
        let c = TcpStream::connect(&a.stack, SocketAddrV4::new(ADDR_B, port)).unwrap();
        let (s, _) = l.accept().unwrap();
        Utcp { a, b, c, s, _l: l }
    }
    fn stack(&self, server: bool) -> &Arc<utcp::Stack> {
        if server {
            &self.b.stack
        } else {
            &self.a.stack
        }
    }
}

impl Side for Utcp {
    fn setsockopt(&self, server: bool, level: i32, name: i32, val: &[u8]) -> Result<(), i32> {
        let fd = if server { self.s.fd() } else { self.c.fd() };
        self.stack(server).setsockopt(fd, level, name, val).map_err(|e| e as i32)
    }
    fn getsockopt(&self, level: i32, name: i32, len: usize) -> Result<Vec<u8>, i32> {
        let mut b = vec![0u8; len];
        let n = self.a.stack.getsockopt(self.c.fd(), level, name, &mut b).map_err(|e| e as i32)?;
        b.truncate(n);
        Ok(b)
    }
    fn send(&self, data: &[u8]) -> Result<usize, i32> {
        self.a.stack.send(self.c.fd(), Some(data), data.len(), 0).map_err(|e| e as i32)
    }
    fn sendmsg(&self, data: &[u8], control: &[u8]) -> Result<usize, i32> {
        let iov = [(Some(data), data.len())];
        self.a.stack.sendmsg_control(self.c.fd(), &iov, control, 0).map_err(|e| e as i32)
    }
    fn outq(&self) -> i32 {
        let mut v = 0;
        self.a.stack.ioctl_arg(self.c.fd(), SIOCOUTQ, &mut v).unwrap();
        v
    }
    fn poll_revents(&self) -> i16 {
        let mut fds = [PollFd { fd: self.c.fd(), events: 0, revents: 0 }];
        self.a.stack.poll(&mut fds, Some(utcp::time::Duration::ZERO)).unwrap();
        fds[0].revents
    }
    fn recvmsg(&self, server: bool, flags: i32) -> Result<Received, i32> {
        let fd = if server { self.s.fd() } else { self.c.fd() };
        let mut buf = vec![0u8; 65536];
        let mut ctl = vec![0u8; 1024];
        let mut m = MsgHdr {
            name: None,
            namelen: 0,
            iov: vec![IoVec { len: 65536, base: Some(&mut buf[..]) }],
            control: Some(&mut ctl[..]),
            controllen: 1024,
            flags: 0,
        };
        let n = self.stack(server).recvmsg(fd, &mut m, flags).map_err(|e| e as i32)?;
        let (used, fl) = (m.controllen, m.flags);
        buf.truncate(n);
        let cm = parse_cmsgs(&ctl[..used]).into_iter().map(|c| (c.level, c.ty, c.data)).collect();
        Ok((n, fl, buf, cm))
    }
    fn local_addr(&self) -> [u8; 4] {
        self.a.addr().octets()
    }
}

// ---------------------------------------------------------------- the sequences

fn sequences() -> Vec<(&'static str, Vec<Step>)> {
    use Step::*;
    let set = |f: u32| Set { new: false, val: flags(f) };
    let set_new = |f: u32| Set { new: true, val: flags(f) };
    vec![
        (
            "option results and read-back",
            vec![
                Get { new: false },
                set(1 << 20),
                set(OPT_ID_TCP),
                set(OPT_STATS),
                set(1 << 15),
                Set { new: false, val: vec![1, 0] },
                set_new(SOFTWARE | TX_ACK),
                Get { new: false },
                Get { new: true },
                set(SOFTWARE),
                Get { new: true },
                Set { new: true, val: [flags(SOFTWARE | OPT_ID), flags(3)].concat() },
                Get { new: true },
            ],
        ),
        (
            "SCHED, SND and ACK reports with OPT_ID and OPT_TSONLY",
            vec![
                Int { level: IPPROTO_TCP, name: TCP_NODELAY, v: 1 },
                set(TX_SCHED | TX_SOFTWARE | TX_ACK | SOFTWARE | OPT_ID | OPT_TSONLY),
                PollErr,
                Send(10),
                Acked,
                Send(20),
                Acked,
                PollErr,
                DrainErr,
                PollErr,
            ],
        ),
        (
            "packet copies without OPT_TSONLY, no SOFTWARE: no SCM_TIMESTAMPING",
            vec![
                Int { level: IPPROTO_TCP, name: TCP_NODELAY, v: 1 },
                set(TX_SCHED | TX_SOFTWARE | TX_ACK | OPT_ID),
                Send(10),
                Acked,
                DrainErr,
            ],
        ),
        (
            "OPT_STATS",
            vec![
                Int { level: IPPROTO_TCP, name: TCP_NODELAY, v: 1 },
                set_new(TX_SOFTWARE | TX_ACK | SOFTWARE | OPT_TSONLY | OPT_STATS),
                Send(10),
                Acked,
                DrainErr,
            ],
        ),
        (
            "OPT_CMSG with IP_PKTINFO, OPT_ID_TCP counting from write_seq",
            vec![
                Int { level: IPPROTO_TCP, name: TCP_NODELAY, v: 1 },
                Int { level: 0, name: IP_PKTINFO, v: 1 },
                Send(5),
                set(TX_SOFTWARE | SOFTWARE | OPT_CMSG | OPT_ID | OPT_ID_TCP),
                Send(10),
                Acked,
                DrainErr,
            ],
        ),
        (
            "sends merged in one corked skb: one mark, flags OR-ed, the later key",
            vec![
                Int { level: IPPROTO_TCP, name: TCP_CORK, v: 1 },
                set(TX_SCHED | TX_ACK | SOFTWARE | OPT_ID | OPT_TSONLY),
                Send(10),
                set(TX_SOFTWARE | SOFTWARE | OPT_ID | OPT_TSONLY),
                Send(20),
                Int { level: IPPROTO_TCP, name: TCP_CORK, v: 0 },
                Acked,
                DrainErr,
            ],
        ),
        (
            "SCM_TIMESTAMPING on sendmsg: this call's TX flags; bad ones, lengths, types EINVAL",
            vec![
                Int { level: IPPROTO_TCP, name: TCP_NODELAY, v: 1 },
                set(SOFTWARE | OPT_ID | OPT_TSONLY),
                SendCmsg(5, vec![(SO_TIMESTAMPING_OLD, flags(TX_SOFTWARE))]),
                SendCmsg(5, vec![(SO_TIMESTAMPING_NEW, flags(TX_SCHED | TX_ACK))]),
                SendCmsg(5, vec![(SO_TIMESTAMPING_OLD, flags(TX_SOFTWARE)), (SO_TIMESTAMPING_OLD, flags(TX_ACK))]),
                SendCmsg(5, vec![(SO_TIMESTAMPING_OLD, flags(SOFTWARE))]),
                SendCmsg(5, vec![(SO_TIMESTAMPING_OLD, vec![2, 0])]),
                SendCmsg(5, vec![(SO_TIMESTAMPING_OLD, [flags(TX_SOFTWARE), flags(0)].concat())]),
                SendCmsg(5, vec![(999, flags(0))]),
                SendCmsg(5, vec![(81, flags(1))]),
                SendCmsg(5, vec![(61, vec![0; 8])]),
                SendCmsg(5, vec![(1, flags(0)), (36, flags(3)), (12, flags(1))]),
                SendCmsg(5, vec![(36, vec![0; 8])]),
                SendCmsg(0, vec![(SO_TIMESTAMPING_OLD, flags(TX_SOFTWARE))]),
                Send(5),
                Acked,
                DrainErr,
            ],
        ),
        (
            "receive timestamps: SCM_TIMESTAMPING with RX_SOFTWARE | SOFTWARE, old and new",
            vec![
                Int { level: -SOL_SOCKET, name: SO_TIMESTAMPING_OLD, v: (RX_SOFTWARE | SOFTWARE) as i32 },
                Pause,
                Send(7),
                RecvServer,
                Int { level: -SOL_SOCKET, name: SO_TIMESTAMPING_NEW, v: (RX_SOFTWARE | SOFTWARE) as i32 },
                Send(7),
                RecvServer,
                Int { level: -SOL_SOCKET, name: SO_TIMESTAMPNS, v: 1 },
                Send(7),
                RecvServer,
                Int { level: -SOL_SOCKET, name: SO_TIMESTAMPING_NEW, v: RX_SOFTWARE as i32 },
                Send(7),
                RecvServer,
            ],
        ),
    ]
}

#[test]
fn timestamping_traces_match_the_kernel() {
    let mut failures = Vec::new();
    for (i, (name, steps)) in sequences().into_iter().enumerate() {
        let k = match Kernel::new() {
            Ok(k) => k,
            Err(e) => {
                eprintln!("SKIP timestamping_traces_match_the_kernel: kernel TCP sockets unavailable here: {e}");
                return;
            }
        };
        let kt = run(&k, &steps);
        drop(k);
        let u = Utcp::new(7100 + i as u16);
        let ut = run(&u, &steps);
        eprintln!("== {name}");
        for (n, line) in kt.iter().enumerate() {
            let same = ut.get(n) == Some(line);
            eprintln!("{} {line}", if same { " " } else { "K" });
            if !same {
                eprintln!("U {}", ut.get(n).map_or("(none)", |s| s.as_str()));
            }
        }
        for line in ut.iter().skip(kt.len()) {
            eprintln!("U {line}");
        }
        if kt != ut {
            failures.push(name);
        }
    }
    assert!(failures.is_empty(), "utcp's traces differ from the kernel's: {failures:?}");
}
