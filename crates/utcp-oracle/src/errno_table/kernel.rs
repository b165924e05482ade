//! [`KernelEnv`]: the errno table's fixtures and calls on real kernel sockets (127.0.0.1).

use super::{ip_bytes, norm_sockaddr, Call, Case, Env, Res, Sa, State, FILL, HELLO};
use std::io;
use std::time::{Duration, Instant};

const LO: [u8; 4] = [127, 0, 0, 1];

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn cvt(r: i64) -> Result<i64, i32> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// Runs the errno table on kernel sockets.
#[derive(Default)]
pub struct KernelEnv {
    /// fds to close after the case.
    owned: Vec<i32>,
    /// A local listener's port (Port::InUse).
    in_use: u16,
    /// The peer's accepting listener's port.
    listener: u16,
    /// A port nothing listens on.
    closed: u16,
}

impl KernelEnv {
    /// A new environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Can kernel TCP sockets on 127.0.0.1 be created (and connected) here?
    pub fn available() -> Result<(), String> {
        let mut k = KernelEnv::new();
        let c = Case { state: State::Connected, calls: vec![Call::Send(5, 0)], len_only: false };
        match k.run(&c) {
            Ok(r) if r[0].ret == Ok(5) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    }

    fn sock(&mut self, nonblock: bool) -> Result<i32, String> {
        // No SOCK_CLOEXEC: utcp has no close-on-exec flag, so F_GETFD compares as 0.
        let ty = libc::SOCK_STREAM | if nonblock { libc::SOCK_NONBLOCK } else { 0 };
        // SAFETY: plain syscall.
        let fd = unsafe { libc::socket(libc::AF_INET, ty, 0) };
        if fd < 0 {
            return Err(format!("socket: errno {}", errno()));
        }
        self.owned.push(fd);
        // The fixture's congestion control is utcp's default, CUBIC, whatever the host's
        // net.ipv4.tcp_congestion_control is (bbr here): the module shapes what the calls
        // read back (TCP_CONGESTION, TCP_CC_INFO, SO_SNDBUF through its sndbuf_expand), and
        // the table compares calls, not the host's configuration. Accepted children inherit
        // it from their listener (made here too).
        let ca = b"cubic";
        // SAFETY: `ca` is a valid buffer of the given length.
        let r = unsafe {
            libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_CONGESTION, ca.as_ptr() as *const _, ca.len() as u32)
        };
        if r < 0 {
            return Err(format!("TCP_CONGESTION cubic: errno {}", errno()));
        }
        Ok(fd)
    }

    fn port(&self, p: super::Port) -> u16 {
        match p {
            super::Port::Zero => 0,
            super::Port::InUse => self.in_use,
            super::Port::Listener => self.listener,
            super::Port::Closed => self.closed,
        }
    }

    fn sa(&self, sa: &Sa) -> Vec<u8> {
        sa.bytes(ip_bytes(sa.ip, LO, LO), self.port(sa.port))
    }

    fn listener(&mut self, backlog: i32) -> Result<(i32, u16), String> {
        let fd = self.sock(false)?;
        k_bind(fd, &Sa::inet(super::Ip::Local, super::Port::Zero).bytes(LO, 0)).map_err(|e| format!("bind {e}"))?;
        // SAFETY: plain syscall.
        cvt(unsafe { libc::listen(fd, backlog) } as i64).map_err(|e| format!("listen {e}"))?;
        Ok((fd, local_port(fd)?))
    }

    fn setup(&mut self, st: State) -> Result<i32, String> {
        let (_, p) = self.listener(8)?;
        self.in_use = p;
        let (lfd, p) = self.listener(8)?;
        self.listener = p;
        let tmp = self.sock(false)?;
        k_bind(tmp, &Sa::inet(super::Ip::Local, super::Port::Zero).bytes(LO, 0)).map_err(|e| format!("bind {e}"))?;
        self.closed = local_port(tmp)?;
        close(tmp);
        self.owned.retain(|&f| f != tmp);
        let fd = self.sock(true)?;
        let to = |port: u16| Sa::inet(super::Ip::Peer, super::Port::Zero).bytes(LO, port);
        match st {
            State::Fresh => {}
            State::Bound => {
                k_bind(fd, &Sa::inet(super::Ip::Local, super::Port::Zero).bytes(LO, 0)).map_err(|e| e.to_string())?;
            }
            State::Listening => {
                k_bind(fd, &Sa::inet(super::Ip::Local, super::Port::Zero).bytes(LO, 0)).map_err(|e| e.to_string())?;
                // SAFETY: plain syscall.
                cvt(unsafe { libc::listen(fd, 8) } as i64).map_err(|e| e.to_string())?;
            }
            State::Connecting => {
                let (_, full) = self.listener(0)?;
                let filler = self.sock(true)?;
                let _ = k_connect(filler, &to(full));
                wait(|| tcp_state(filler) == Some(1))?;
                match k_connect(fd, &to(full)) {
                    Err(libc::EINPROGRESS) => {}
                    r => return Err(format!("connect to a full listener: {r:?}")),
                }
            }
            State::Refused => {
                let _ = k_connect(fd, &to(self.closed));
                wait(|| tcp_state(fd) == Some(7))?;
            }
            State::Connected
            | State::ConnectedData
            | State::ShutWr
            | State::ShutRd
            | State::PeerClosed
            | State::Reset => {
                let _ = k_connect(fd, &to(self.listener));
                wait(|| tcp_state(fd) == Some(1))?;
                // Complete the nonblocking connect as an application does (SS_CONNECTED).
                k_connect(fd, &to(self.listener)).map_err(|e| format!("connect completion: errno {e}"))?;
                // SAFETY: NULL address pointers are allowed.
                let peer =
                    unsafe { libc::accept4(lfd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
                if peer < 0 {
                    return Err(format!("accept: errno {}", errno()));
                }
                self.owned.push(peer);
                match st {
                    State::ConnectedData => {
                        // SAFETY: HELLO is a valid buffer.
                        unsafe { libc::send(peer, HELLO.as_ptr() as *const _, HELLO.len(), 0) };
                        wait(|| ioctl_int(fd, libc::FIONREAD) == Ok(5))?;
                    }
                    State::ShutWr => {
                        // SAFETY: plain syscall.
                        unsafe { libc::shutdown(fd, libc::SHUT_WR) };
                        wait(|| tcp_state(fd) == Some(5))?;
                    }
                    State::ShutRd => {
                        // SAFETY: plain syscall.
                        unsafe { libc::shutdown(fd, libc::SHUT_RD) };
                    }
                    State::PeerClosed => {
                        close(peer);
                        self.owned.retain(|&f| f != peer);
                        wait(|| tcp_state(fd) == Some(8))?;
                        // Let the delayed ACK of the FIN go out (ato 0 on a connection that
                        // never received data: the next jiffy), as utcp's settled fixture has
                        // it; reading at once would race it (TCP_QUICKACK reads pingpong). The
                        // delack timer leaves pingpong mode with ato = TCP_ATO_MIN.
                        wait(|| tcp_ato(fd).is_some_and(|a| a != 0))?;
                    }
                    State::Reset => {
                        let l = [1i32, 0i32];
                        // SAFETY: `l` is a struct linger's 8 bytes.
                        unsafe { libc::setsockopt(peer, libc::SOL_SOCKET, libc::SO_LINGER, l.as_ptr() as *const _, 8) };
                        close(peer);
                        self.owned.retain(|&f| f != peer);
                        wait(|| tcp_state(fd) == Some(7))?;
                    }
                    _ => {}
                }
            }
            State::ClosedFd => {
                close(fd);
                self.owned.retain(|&f| f != fd);
                // The closed number could be reused at once by another thread of this
                // process; a number far above any open fd is closed for certain.
                return Ok(999_999);
            }
            State::NotSocket => {
                let mut p = [0i32; 2];
                // SAFETY: `p` has room for two fds.
                if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK) } < 0 {
                    return Err(format!("pipe: errno {}", errno()));
                }
                self.owned.extend(p);
                return Ok(p[0]);
            }
        }
        Ok(fd)
    }

    fn exec(&mut self, fd: i32, call: &Call) -> Res {
        match call {
            Call::Socket(d, t, p) => {
                // SAFETY: plain syscall.
                let r = unsafe { libc::socket(*d, *t, *p) };
                if r >= 0 {
                    close(r);
                }
                Res::ret(cvt(r as i64).map(|_| 0))
            }
            Call::Bind(sa) => Res::ret(k_bind(fd, &self.sa(sa)).map(|_| 0)),
            // SAFETY: plain syscall.
            Call::Listen(b) => Res::ret(cvt(unsafe { libc::listen(fd, *b) } as i64)),
            Call::Accept4(fl) => {
                // SAFETY: NULL address pointers are allowed.
                let r = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), *fl) };
                if r >= 0 {
                    self.owned.push(r);
                }
                Res::ret(cvt(r as i64).map(|_| 0))
            }
            Call::Connect(sa) => Res::ret(k_connect(fd, &self.sa(sa)).map(|_| 0)),
            Call::Send(n, fl) => {
                // SAFETY: HELLO has at least `n` bytes (n <= 5).
                Res::ret(cvt(unsafe { libc::send(fd, HELLO.as_ptr() as *const _, *n, *fl) } as i64))
            }
            Call::SendTo(n, fl, sa) => {
                let a = self.sa(sa);
                // SAFETY: HELLO has `n` bytes; `a` has `a.len()` bytes.
                Res::ret(cvt(unsafe {
                    libc::sendto(fd, HELLO.as_ptr() as *const _, *n, *fl, a.as_ptr() as *const _, a.len() as u32)
                } as i64))
            }
            Call::SendMsg(n, fl) => {
                let k = (*n).min(3);
                let mut iov = [
                    libc::iovec { iov_base: HELLO.as_ptr() as *mut _, iov_len: k },
                    // SAFETY: in bounds (k <= 3 < 5).
                    libc::iovec { iov_base: unsafe { HELLO.as_ptr().add(k) } as *mut _, iov_len: n - k },
                ];
                // SAFETY: all-zero is a valid msghdr.
                let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
                m.msg_iov = iov.as_mut_ptr();
                m.msg_iovlen = 2;
                // SAFETY: `m` points at valid iovecs.
                Res::ret(cvt(unsafe { libc::sendmsg(fd, &m, *fl) } as i64))
            }
            Call::Recv(n, fl) => {
                let mut b = vec![FILL; *n];
                // SAFETY: `b` has `n` bytes.
                let r = cvt(unsafe { libc::recv(fd, b.as_mut_ptr() as *mut _, *n, *fl) } as i64);
                Res { ret: r, out: b, len: None, flags: None }
            }
            Call::RecvFrom(n, fl, nl) => {
                let mut b = vec![FILL; *n];
                let mut name = [FILL; 32];
                let mut len = *nl;
                // SAFETY: `b` has `n` bytes, `name` 32 >= len bytes.
                let r = cvt(unsafe {
                    libc::recvfrom(fd, b.as_mut_ptr() as *mut _, *n, *fl, name.as_mut_ptr() as *mut _, &mut len)
                } as i64);
                b.extend(norm_sockaddr(&name[..(*nl as usize).min(32)], LO, LO));
                Res { ret: r, out: b, len: Some(len as u64), flags: None }
            }
            Call::RecvMsg(n, fl, cl) => {
                let mut b = vec![FILL; *n];
                let mut ctl = vec![FILL; *cl];
                let mut name = [FILL; 16];
                let mut iov = libc::iovec { iov_base: b.as_mut_ptr() as *mut _, iov_len: *n };
                // SAFETY: all-zero is a valid msghdr.
                let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
                m.msg_iov = &mut iov;
                m.msg_iovlen = 1;
                m.msg_name = name.as_mut_ptr() as *mut _;
                m.msg_namelen = 16;
                if *cl > 0 {
                    m.msg_control = ctl.as_mut_ptr() as *mut _;
                    m.msg_controllen = *cl;
                }
                // SAFETY: every pointer in `m` is valid for its length.
                let r = cvt(unsafe { libc::recvmsg(fd, &mut m, *fl) } as i64);
                b.extend(norm_sockaddr(&name, LO, LO));
                let ctl_used = if r.is_ok() { m.msg_controllen } else { 0 };
                // Control message payloads (timestamps, inq) are not compared, their headers are.
                let cm = crate::kernel::parse_cmsgs(&ctl, ctl_used);
                for c in cm {
                    b.extend_from_slice(&c.level.to_ne_bytes());
                    b.extend_from_slice(&c.ty.to_ne_bytes());
                }
                let ok = r.is_ok();
                Res {
                    ret: r,
                    out: b,
                    len: ok.then_some(m.msg_controllen as u64 * 1000 + m.msg_namelen as u64),
                    flags: ok.then_some(m.msg_flags),
                }
            }
            // SAFETY: plain syscall.
            Call::Shutdown(h) => Res::ret(cvt(unsafe { libc::shutdown(fd, *h) } as i64)),
            Call::GetSockName(l) | Call::GetPeerName(l) => {
                let mut name = [FILL; 32];
                let mut len = *l;
                let p = name.as_mut_ptr() as *mut libc::sockaddr;
                // SAFETY: `name` has 32 >= len bytes.
                let r = unsafe {
                    if matches!(call, Call::GetSockName(_)) {
                        libc::getsockname(fd, p, &mut len)
                    } else {
                        libc::getpeername(fd, p, &mut len)
                    }
                };
                let r = cvt(r as i64);
                let out = norm_sockaddr(&name[..(*l as usize).min(32)], LO, LO);
                Res { ret: r, out, len: Some(len as u64), flags: None }
            }
            Call::Ioctl(req) => match ioctl_int(fd, *req as libc::c_ulong) {
                Ok(v) => Res::ret(Ok(v as i64)),
                Err(e) => Res::ret(Err(e)),
            },
            // SAFETY: plain syscall with integer arguments.
            Call::Fcntl(c, a) => Res::ret(cvt(unsafe { libc::fcntl(fd, *c, *a) } as i64)),
            Call::GetOpt(lv, nm, l) => {
                let mut b = vec![FILL; (*l as usize).max(1)];
                let mut len = *l;
                // SAFETY: `b` has at least `len` bytes.
                let r = cvt(unsafe { libc::getsockopt(fd, *lv, *nm, b.as_mut_ptr() as *mut _, &mut len) } as i64);
                b.truncate(*l as usize);
                if (*lv, *nm) == (libc::SOL_SOCKET, 28) {
                    b = norm_sockaddr(&b, LO, LO); // SO_PEERNAME
                }
                Res { ret: r, out: b, len: Some(len as u64), flags: None }
            }
            Call::SetOpt(lv, nm, v) => {
                let p = if v.is_empty() { std::ptr::null() } else { v.as_ptr() };
                // SAFETY: `v` has `v.len()` bytes (NULL when empty).
                Res::ret(cvt(unsafe { libc::setsockopt(fd, *lv, *nm, p as *const _, v.len() as u32) } as i64))
            }
            Call::Read(n) => {
                let mut b = vec![FILL; *n];
                // SAFETY: `b` has `n` bytes.
                let r = cvt(unsafe { libc::read(fd, b.as_mut_ptr() as *mut _, *n) } as i64);
                Res { ret: r, out: b, len: None, flags: None }
            }
            // SAFETY: HELLO has `n` <= 5 bytes.
            Call::Write(n) => Res::ret(cvt(unsafe { libc::write(fd, HELLO.as_ptr() as *const _, *n) } as i64)),
            Call::Close => {
                // SAFETY: closing the fd under test (or an invalid one).
                let r = cvt(unsafe { libc::close(fd) } as i64);
                if r.is_ok() {
                    self.owned.retain(|&f| f != fd);
                }
                Res::ret(r)
            }
        }
    }
}

impl Env for KernelEnv {
    fn run(&mut self, case: &Case) -> Result<Vec<Res>, String> {
        let r = self.setup(case.state).map(|fd| case.calls.iter().map(|c| self.exec(fd, c)).collect());
        for fd in self.owned.drain(..) {
            close(fd);
        }
        r
    }
}

fn close(fd: i32) {
    // SAFETY: closing an fd this environment owns.
    unsafe { libc::close(fd) };
}

fn k_bind(fd: i32, a: &[u8]) -> Result<i64, i32> {
    // SAFETY: `a` has `a.len()` bytes.
    cvt(unsafe { libc::bind(fd, a.as_ptr() as *const _, a.len() as u32) } as i64)
}

fn k_connect(fd: i32, a: &[u8]) -> Result<i64, i32> {
    // SAFETY: `a` has `a.len()` bytes.
    cvt(unsafe { libc::connect(fd, a.as_ptr() as *const _, a.len() as u32) } as i64)
}

fn local_port(fd: i32) -> Result<u16, String> {
    let mut b = [0u8; 16];
    let mut len = 16u32;
    // SAFETY: `b` has 16 bytes.
    if unsafe { libc::getsockname(fd, b.as_mut_ptr() as *mut _, &mut len) } < 0 {
        return Err(format!("getsockname: errno {}", errno()));
    }
    Ok(u16::from_be_bytes([b[2], b[3]]))
}

fn ioctl_int(fd: i32, req: libc::c_ulong) -> Result<i32, i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: every request used writes at most an int.
    cvt(unsafe { libc::ioctl(fd, req, &mut v) } as i64).map(|_| v)
}

fn tcp_state(fd: i32) -> Option<u8> {
    let mut b = [0u8; 8];
    let mut len = 8u32;
    // SAFETY: `b` has 8 bytes.
    let r = unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, b.as_mut_ptr() as *mut _, &mut len) };
    (r == 0).then_some(b[0])
}

/// `tcpi_ato` (microseconds).
fn tcp_ato(fd: i32) -> Option<u32> {
    let mut b = [0u8; 16];
    let mut len = 16u32;
    // SAFETY: `b` has 16 bytes.
    let r = unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, b.as_mut_ptr() as *mut _, &mut len) };
    (r == 0).then(|| u32::from_ne_bytes([b[12], b[13], b[14], b[15]]))
}

fn wait(mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() > Duration::from_secs(2) {
            return Err("fixture: wait timed out".into());
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    Ok(())
}
