//! [`UtcpEnv`]: the errno table's fixtures and calls on utcp (two stacks on a virtual-clock
//! memlink: the fd under test on host A, the peer on host B).

use super::{ip_bytes, norm_sockaddr, Call, Case, Env, Port, Res, Sa, State, FILL, HELLO};
use ::utcp::api::{ADDR_A, ADDR_B};
use ::utcp::netdev::memlink::LinkConfig;
use ::utcp::sim::SimNet;
use ::utcp::syscall::opt::SO_LINGER;
use ::utcp::syscall::{
    IoVec, MsgHdr, Stack, AF_INET, O_NONBLOCK, SHUT_RD, SHUT_WR, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET,
};
use ::utcp::tcp::TcpState;
use ::utcp::time::Duration;
use ::utcp::Errno;
use std::net::SocketAddrV4;
use std::sync::Arc;

const PEER_PORT: u16 = 5000;
const FULL_PORT: u16 = 5001;
const CLOSED_PORT: u16 = 5002;

/// Runs the errno table on utcp.
pub struct UtcpEnv {
    link: LinkConfig,
}

impl Default for UtcpEnv {
    fn default() -> Self {
        Self::new()
    }
}

struct Fx {
    net: SimNet,
    in_use: u16,
}

impl Fx {
    fn a(&self) -> Arc<Stack> {
        self.net.a.stack.clone()
    }

    fn b(&self) -> Arc<Stack> {
        self.net.b.stack.clone()
    }

    fn state(&self, fd: i32) -> Option<TcpState> {
        self.a().sockfd_lookup(fd).ok().map(|s| s.sk.peek_tp(|tp| tp.sk_state()))
    }

    fn wait(&self, mut cond: impl FnMut(&Fx) -> bool) -> Result<(), String> {
        if self.net.run_until(Duration::from_millis(2000), || cond(self)) {
            Ok(())
        } else {
            Err("fixture: wait timed out".into())
        }
    }

    fn sa(&self, sa: &Sa) -> Vec<u8> {
        let port = match sa.port {
            Port::Zero => 0,
            Port::InUse => self.in_use,
            Port::Listener => PEER_PORT,
            Port::Closed => CLOSED_PORT,
        };
        sa.bytes(ip_bytes(sa.ip, ADDR_A.octets(), ADDR_B.octets()), port)
    }
}

fn e(r: Errno) -> i32 {
    r as i32
}

fn s<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e:?}")
}

fn ret<T: TryInto<i64>>(r: Result<T, Errno>) -> Res {
    Res::ret(r.map(|v| v.try_into().unwrap_or(i64::MAX)).map_err(e))
}

fn unit(r: Result<(), Errno>) -> Res {
    Res::ret(r.map(|_| 0).map_err(e))
}

impl UtcpEnv {
    /// An environment on a link like Linux's loopback (MTU 65536, loopback truesize).
    pub fn new() -> Self {
        UtcpEnv { link: LinkConfig { mtu: 65536, loopback_truesize: true, ..LinkConfig::default() } }
    }

    fn setup(&self, st: State) -> Result<(Fx, i32), String> {
        let net = SimNet::new(self.link.clone());
        for h in [&net.a, &net.b] {
            for (name, value) in crate::utcp::host_sysctls() {
                let _ = h.stack.core.net.sysctl.set_by_name(name, value);
            }
        }
        let mut fx = Fx { net, in_use: 0 };
        let (a, b) = (fx.a(), fx.b());
        let busy = a.socket(AF_INET, SOCK_STREAM, 0).map_err(s("socket"))?;
        a.bind(busy, SocketAddrV4::new(ADDR_A, 0)).map_err(s("bind"))?;
        a.listen(busy, 8).map_err(s("listen"))?;
        fx.in_use = a.getsockname(busy).map_err(s("getsockname"))?.port();
        let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).map_err(s("socket"))?;
        b.bind(l, SocketAddrV4::new(ADDR_B, PEER_PORT)).map_err(s("bind"))?;
        b.listen(l, 8).map_err(s("listen"))?;
        let fd = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).map_err(s("socket"))?;
        let local0 = SocketAddrV4::new(ADDR_A, 0);
        match st {
            State::Fresh => {}
            State::Bound => a.bind(fd, local0).map_err(s("bind"))?,
            State::Listening => {
                a.bind(fd, local0).map_err(s("bind"))?;
                a.listen(fd, 8).map_err(s("listen"))?;
            }
            State::Connecting => {
                let full = b.socket(AF_INET, SOCK_STREAM, 0).map_err(s("socket"))?;
                b.bind(full, SocketAddrV4::new(ADDR_B, FULL_PORT)).map_err(s("bind"))?;
                b.listen(full, 0).map_err(s("listen"))?;
                let filler = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).map_err(s("socket"))?;
                let _ = a.connect(filler, SocketAddrV4::new(ADDR_B, FULL_PORT));
                fx.wait(|f| f.state(filler) == Some(TcpState::Established))?;
                match a.connect(fd, SocketAddrV4::new(ADDR_B, FULL_PORT)) {
                    Err(Errno::EINPROGRESS) => {}
                    r => return Err(format!("connect to a full listener: {r:?}")),
                }
                fx.net.settle();
            }
            State::Refused => {
                let _ = a.connect(fd, SocketAddrV4::new(ADDR_B, CLOSED_PORT));
                fx.wait(|f| f.state(fd) == Some(TcpState::Close))?;
            }
            State::Connected
            | State::ConnectedData
            | State::ShutWr
            | State::ShutRd
            | State::PeerClosed
            | State::Reset => {
                let _ = a.connect(fd, SocketAddrV4::new(ADDR_B, PEER_PORT));
                fx.wait(|f| f.state(fd) == Some(TcpState::Established))?;
                a.connect(fd, SocketAddrV4::new(ADDR_B, PEER_PORT)).map_err(s("connect completion"))?;
                fx.net.settle();
                let (peer, _) = b.accept4(l, SOCK_NONBLOCK).map_err(s("accept"))?;
                match st {
                    State::ConnectedData => {
                        b.send(peer, Some(HELLO), HELLO.len(), 0).map_err(s("peer send"))?;
                        fx.wait(|f| f.a().ioctl(fd, ::utcp::syscall::FIONREAD) == Ok(5))?;
                    }
                    State::ShutWr => {
                        a.shutdown(fd, SHUT_WR).map_err(s("shutdown"))?;
                        fx.wait(|f| f.state(fd) == Some(TcpState::FinWait2))?;
                    }
                    State::ShutRd => a.shutdown(fd, SHUT_RD).map_err(s("shutdown"))?,
                    State::PeerClosed => {
                        b.close(peer).map_err(s("peer close"))?;
                        fx.wait(|f| f.state(fd) == Some(TcpState::CloseWait))?;
                    }
                    State::Reset => {
                        let mut l = 1i32.to_ne_bytes().to_vec();
                        l.extend_from_slice(&0i32.to_ne_bytes());
                        b.setsockopt(peer, SOL_SOCKET, SO_LINGER, &l).map_err(s("peer SO_LINGER"))?;
                        b.close(peer).map_err(s("peer close"))?;
                        fx.wait(|f| f.state(fd) == Some(TcpState::Close))?;
                    }
                    _ => {}
                }
            }
            State::ClosedFd => a.close(fd).map_err(s("close"))?,
            State::NotSocket => {
                // As the kernel fixture: a nonblocking pipe (a blocking read of an empty pipe
                // whose writer is open sleeps on Linux too).
                let (r, _w) = a.pipe2(O_NONBLOCK).map_err(s("pipe"))?;
                return Ok((fx, r));
            }
        }
        fx.net.settle();
        Ok((fx, fd))
    }

    fn exec(fx: &Fx, fd: i32, call: &Call) -> Res {
        let a = fx.a();
        let (la, pa) = (ADDR_A.octets(), ADDR_B.octets());
        let r = match call {
            Call::Socket(d, t, p) => {
                let r = a.socket(*d, *t, *p);
                if let Ok(n) = r {
                    let _ = a.close(n);
                }
                ret(r.map(|_| 0))
            }
            Call::Bind(sa) => unit(a.bind_raw(fd, &fx.sa(sa))),
            Call::Listen(b) => unit(a.listen(fd, *b)),
            Call::Accept4(fl) => ret(a.accept4(fd, *fl).map(|_| 0)),
            Call::Connect(sa) => unit(a.connect_raw(fd, &fx.sa(sa))),
            Call::Send(n, fl) => ret(a.send(fd, Some(HELLO), *n, *fl)),
            Call::SendTo(n, fl, sa) => {
                // utcp's sendto() takes a typed address: __sys_sendto's length check (after
                // the fd lookup) is done here.
                if let Err(x) = a.sockfd_lookup(fd) {
                    Res::ret(Err(e(x)))
                } else if fx.sa(sa).len() > ::utcp::syscall::sockaddr::SOCKADDR_STORAGE_LEN {
                    Res::ret(Err(e(Errno::EINVAL)))
                } else {
                    ret(a.sendto(fd, Some(HELLO), *n, *fl, None))
                }
            }
            Call::SendMsg(n, fl) => {
                let k = (*n).min(3);
                ret(a.sendmsg(fd, &[(Some(&HELLO[..k]), k), (Some(&HELLO[k..*n]), n - k)], *fl))
            }
            Call::Recv(n, fl) => {
                let mut b = vec![FILL; *n];
                let r = a.recv(fd, Some(&mut b), *n, *fl);
                Res { ret: r.map(|v| v as i64).map_err(e), out: b, len: None, flags: None }
            }
            Call::RecvFrom(n, fl, nl) => {
                let mut b = vec![FILL; *n];
                let mut name = [FILL; 32];
                let mut len = *nl;
                let r = a.recvfrom(fd, Some(&mut b), *n, *fl, Some(&mut name[..]), Some(&mut len));
                b.extend(norm_sockaddr(&name[..(*nl as usize).min(32)], la, pa));
                Res { ret: r.map(|v| v as i64).map_err(e), out: b, len: Some(len as u64), flags: None }
            }
            Call::RecvMsg(n, fl, cl) => {
                let mut b = vec![FILL; *n];
                let mut ctl = vec![FILL; *cl];
                let mut name = [FILL; 16];
                let (r, controllen, namelen, mflags) = {
                    let mut m = MsgHdr {
                        name: Some(&mut name[..]),
                        namelen: 16,
                        iov: vec![IoVec { len: *n, base: Some(&mut b[..]) }],
                        control: if *cl == 0 { None } else { Some(&mut ctl[..]) },
                        controllen: *cl,
                        flags: 0,
                    };
                    let r = a.recvmsg(fd, &mut m, *fl);
                    (r, m.controllen, m.namelen, m.flags)
                };
                b.extend(norm_sockaddr(&name, la, pa));
                let used = if r.is_ok() { controllen } else { 0 };
                for c in crate::kernel::parse_cmsgs(&ctl, used) {
                    b.extend_from_slice(&c.level.to_ne_bytes());
                    b.extend_from_slice(&c.ty.to_ne_bytes());
                }
                let ok = r.is_ok();
                Res {
                    ret: r.map(|v| v as i64).map_err(e),
                    out: b,
                    len: ok.then_some(controllen as u64 * 1000 + namelen as u64),
                    flags: ok.then_some(mflags),
                }
            }
            Call::Shutdown(h) => unit(a.shutdown(fd, *h)),
            Call::GetSockName(l) | Call::GetPeerName(l) => {
                let mut name = [FILL; 32];
                let mut len = *l;
                let r = if matches!(call, Call::GetSockName(_)) {
                    a.getsockname_raw(fd, Some(&mut name[..]), &mut len)
                } else {
                    a.getpeername_raw(fd, Some(&mut name[..]), &mut len)
                };
                let out = norm_sockaddr(&name[..(*l as usize).min(32)], la, pa);
                Res { ret: r.map(|_| 0).map_err(e), out, len: Some(len as u64), flags: None }
            }
            Call::Ioctl(req) => ret(a.ioctl(fd, *req)),
            Call::Fcntl(c, arg) => ret(a.fcntl(fd, *c, *arg)),
            Call::GetOpt(lv, nm, l) => {
                let mut b = vec![FILL; *l as usize];
                let r = a.getsockopt(fd, *lv, *nm, &mut b);
                if (*lv, *nm) == (SOL_SOCKET, 28) {
                    b = norm_sockaddr(&b, la, pa); // SO_PEERNAME
                }
                match r {
                    Ok(n) => Res { ret: Ok(0), out: b, len: Some(n as u64), flags: None },
                    Err(x) => Res { ret: Err(e(x)), out: b, len: Some(*l as u64), flags: None },
                }
            }
            Call::SetOpt(lv, nm, v) => unit(a.setsockopt(fd, *lv, *nm, v)),
            Call::Read(n) => {
                let mut b = vec![FILL; *n];
                let r = a.read(fd, Some(&mut b), *n);
                Res { ret: r.map(|v| v as i64).map_err(e), out: b, len: None, flags: None }
            }
            Call::Write(n) => ret(a.write(fd, Some(HELLO), *n)),
            Call::Close => unit(a.close(fd)),
        };
        fx.net.settle();
        r
    }
}

impl Env for UtcpEnv {
    fn run(&mut self, case: &Case) -> Result<Vec<Res>, String> {
        let (fx, fd) = self.setup(case.state)?;
        Ok(case.calls.iter().map(|c| Self::exec(&fx, fd, c)).collect())
    }
}
