//! File-level calls (fs/open.c, fs/file.c, fs/fcntl.c, fs/read_write.c, fs/pipe.c,
//! fs/select.c, fs/eventpoll.c): close with last-reference release, dup/dup2/dup3, fcntl,
//! read/write/readv/writev on sockets and pipes, pipe/pipe2, poll and epoll. poll and
//! epoll_wait sleep on the files' wait queues until an event or their timeout.

use super::fdtable::File;
use super::*;
use crate::time::{Duration, Instant};
use std::sync::atomic::Ordering;

/// `EPOLL_CLOEXEC`.
pub const EPOLL_CLOEXEC: i32 = O_CLOEXEC;
/// `POLLNVAL`.
const POLLNVAL: u32 = 0x20;

/// The readiness mask of a file (`vfs_poll`).
pub fn file_poll(f: &File) -> u32 {
    match f {
        File::Socket(s) => crate::tcp::poll::tcp_poll(&s.sk),
        File::Pipe(p) => p.poll(),
        File::Epoll(e) => {
            if e.items.lock().values().any(|i| !i.disabled && i.waiter.ready.load(Ordering::Acquire)) {
                0x1 | 0x40
            } else {
                0
            }
        }
    }
}

fn file_key(f: &Arc<File>) -> usize {
    Arc::as_ptr(f) as usize
}

/// A one-shot wait queue entry (`poll_table` / epoll's wakeup): a generation counter bumped by
/// the files' wakeups.
type Gate = Arc<(crate::sync::Mutex<u64>, crate::sync::Condvar)>;

fn gate_waiter(gate: &Gate) -> Arc<crate::socket::sock::EpWaiter> {
    let gate = gate.clone();
    Arc::new(crate::socket::sock::EpWaiter {
        ready: crate::sync::atomic::AtomicBool::new(true),
        notify: Box::new(move || {
            let mut g = gate.0.lock();
            *g += 1;
            gate.1.notify_all();
        }),
    })
}

impl Stack {
    fn now_f(&self) -> Instant {
        self.core.clock.now()
    }

    /// Sleeps on `gate` until it moves past `gen` or `deadline`. On a virtual clock the
    /// deadline is re-checked in short real-time slices, so a timeout elapses as soon as the
    /// clock is advanced past it.
    pub(crate) fn wait_gate(&self, gate: &Gate, gen: u64, deadline: Option<Instant>) {
        let mut g = gate.0.lock();
        if *g != gen {
            return;
        }
        if self.core.clock.is_virtual() {
            gate.1.wait_for(&mut g, std::time::Duration::from_micros(200));
            return;
        }
        match deadline {
            Some(d) => {
                let left = d.saturating_since(self.now_f());
                gate.1.wait_for(&mut g, left);
            }
            None => gate.1.wait(&mut g),
        }
    }

    /// Registers `w` on the wait queue of `f`.
    fn add_waiter(f: &File, w: &Arc<crate::socket::sock::EpWaiter>) {
        match f {
            File::Socket(s) => s.sk.add_ep_waiter(w),
            File::Pipe(p) => p.buf.add_ep_waiter(w),
            File::Epoll(_) => {}
        }
    }

    /// The last fd of `f` is gone (`__fput`): leave every epoll interest list
    /// (`eventpoll_release`), then release the file itself.
    fn release_file(&self, f: &Arc<File>) {
        let k = file_key(f);
        let eps: Vec<Arc<epoll::Epoll>> = {
            let mut eps = self.epolls.lock();
            eps.retain(|e| e.strong_count() > 0);
            eps.iter().filter_map(|e| e.upgrade()).collect()
        };
        for ep in eps {
            ep.items.lock().retain(|(_, fk), _| *fk != k);
        }
        match &**f {
            // DEVIATION(linux): a call still blocked on this socket in another thread holds
            // no file reference here; the socket is closed under it and the call returns (0,
            // data, or an error) instead of blocking on until data or FIN arrives.
            File::Socket(s) => self.sock_close(s),
            File::Pipe(p) => p.release(),
            File::Epoll(_) => {}
        }
    }

    /// `close()`: the file is released when this was the last fd referring to it.
    pub fn close(&self, fd: i32) -> SysResult<()> {
        let (f, last) = self.fds.remove(fd)?;
        if last {
            self.release_file(&f);
        }
        Ok(())
    }

    /// `setrlimit(RLIMIT_NOFILE)` (soft limit; Linux's default is 1024).
    pub fn set_rlimit_nofile(&self, n: usize) -> SysResult<()> {
        self.fds.set_nofile(n)
    }

    /// `dup()`.
    pub fn dup(&self, oldfd: i32) -> SysResult<i32> {
        self.fds.get(oldfd)?;
        self.fds.dupfd(oldfd, 0, false).map_err(|e| if e == Errno::EINVAL { Errno::EMFILE } else { e })
    }

    /// `dup2()`.
    pub fn dup2(&self, oldfd: i32, newfd: i32) -> SysResult<i32> {
        if oldfd == newfd {
            self.fds.get(oldfd)?;
            return Ok(newfd);
        }
        self.dup3_inner(oldfd, newfd, false)
    }

    /// `dup3()`: EINVAL for flags other than O_CLOEXEC or `oldfd == newfd`.
    pub fn dup3(&self, oldfd: i32, newfd: i32, flags: i32) -> SysResult<i32> {
        if flags & !O_CLOEXEC != 0 || oldfd == newfd {
            return Err(Errno::EINVAL);
        }
        self.dup3_inner(oldfd, newfd, flags & O_CLOEXEC != 0)
    }

    fn dup3_inner(&self, oldfd: i32, newfd: i32, cloexec: bool) -> SysResult<i32> {
        let (fd, replaced) = self.fds.dup_to(oldfd, newfd, cloexec)?;
        if let Some((f, true)) = replaced {
            self.release_file(&f);
        }
        Ok(fd)
    }

    /// `fcntl()`: F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL, F_SETFL (O_NONBLOCK).
    pub fn fcntl(&self, fd: i32, cmd: i32, arg: i32) -> SysResult<i32> {
        let f = self.fds.get(fd)?;
        match cmd {
            F_DUPFD | F_DUPFD_CLOEXEC => self.fds.dupfd(fd, arg as i64, cmd == F_DUPFD_CLOEXEC),
            F_GETFD => Ok(self.fds.cloexec(fd)? as i32 * FD_CLOEXEC),
            F_SETFD => self.fds.set_cloexec(fd, arg & FD_CLOEXEC != 0).map(|_| 0),
            F_GETFL => Ok(match &*f {
                File::Socket(s) => s.f_flags.load(Ordering::Relaxed),
                File::Pipe(p) => p.f_flags.load(Ordering::Relaxed),
                File::Epoll(_) => O_RDWR,
            }),
            F_SETFL => {
                let flags = match &*f {
                    File::Socket(s) => &s.f_flags,
                    File::Pipe(p) => &p.f_flags,
                    File::Epoll(_) => return Ok(0),
                };
                let keep = flags.load(Ordering::Relaxed) & !O_NONBLOCK;
                flags.store(keep | (arg & O_NONBLOCK), Ordering::Relaxed);
                Ok(0)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// `read()` on an fd.
    pub fn read(&self, fd: i32, buf: Option<&mut [u8]>, len: usize) -> SysResult<usize> {
        let mut iov = [IoVec { base: buf, len }];
        self.readv(fd, &mut iov)
    }

    /// `write()` on an fd.
    pub fn write(&self, fd: i32, buf: Option<&[u8]>, len: usize) -> SysResult<usize> {
        self.writev(fd, &[(buf, len)])
    }

    /// `readv()` (`do_readv` → `sock_read_iter` / `pipe_read`).
    pub fn readv(&self, fd: i32, iov: &mut [IoVec<'_>]) -> SysResult<usize> {
        let f = self.fds.get(fd)?;
        if iov.len() > UIO_MAXIOV || iov.iter().any(|v| (v.len as isize) < 0) {
            return Err(Errno::EINVAL);
        }
        let total = iov.iter().fold(0usize, |a, v| a.saturating_add(v.len));
        match &*f {
            File::Socket(_) => {
                // sock_read_iter(): "Match SYS5 behaviour".
                if total == 0 {
                    return Ok(0);
                }
                let mut msg = MsgHdr {
                    iov: iov.iter_mut().map(|v| IoVec { base: v.base.as_deref_mut(), len: v.len }).collect(),
                    ..Default::default()
                };
                self.recvmsg(fd, &mut msg, 0)
            }
            File::Pipe(p) => {
                let mut bufs: Vec<(Option<&mut [u8]>, usize)> =
                    iov.iter_mut().map(|v| (v.base.as_deref_mut(), v.len)).collect();
                p.read(&mut bufs)
            }
            File::Epoll(_) => Err(Errno::EINVAL),
        }
    }

    /// `writev()` (`do_writev` → `sock_write_iter` / `pipe_write`).
    pub fn writev(&self, fd: i32, iov: &[(Option<&[u8]>, usize)]) -> SysResult<usize> {
        let f = self.fds.get(fd)?;
        if iov.len() > UIO_MAXIOV || iov.iter().any(|v| (v.1 as isize) < 0) {
            return Err(Errno::EINVAL);
        }
        match &*f {
            File::Socket(_) => self.sendmsg(fd, iov, 0),
            File::Pipe(p) => p.write(iov),
            File::Epoll(_) => Err(Errno::EINVAL),
        }
    }

    /// `pipe()`: (read fd, write fd).
    pub fn pipe(&self) -> SysResult<(i32, i32)> {
        self.pipe2(0)
    }

    /// `pipe2()` with O_NONBLOCK / O_CLOEXEC (EINVAL for other flags).
    pub fn pipe2(&self, flags: i32) -> SysResult<(i32, i32)> {
        if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        let cloexec = flags & O_CLOEXEC != 0;
        let r = self.fds.reserve()?;
        let w = match self.fds.reserve() {
            Ok(w) => w,
            Err(e) => {
                self.fds.unreserve(r);
                return Err(e);
            }
        };
        let (re, we) = pipe::PipeEnd::pair(flags & O_NONBLOCK != 0);
        self.fds.fill(r, File::Pipe(Arc::new(re)), cloexec);
        self.fds.fill(w, File::Pipe(Arc::new(we)), cloexec);
        Ok((r, w))
    }

    /// `poll()`: fills `revents`; sleeps on the files' wait queues up to `timeout` (None =
    /// forever) for any event.
    pub fn poll(&self, fds: &mut [PollFd], timeout: Option<Duration>) -> SysResult<usize> {
        if fds.len() > self.fds.nofile() {
            return Err(Errno::EINVAL);
        }
        let deadline = timeout.map(|t| self.now_f() + t);
        let gate: Gate = Default::default();
        let waiter = gate_waiter(&gate);
        // None: not registered; Some(false): registering in this pass; Some(true): done.
        let mut registered: Option<bool> = None;
        loop {
            let gen = *gate.0.lock();
            let mut n = 0;
            for p in fds.iter_mut() {
                p.revents = 0;
                if p.fd < 0 {
                    continue;
                }
                let mask = match self.fds.get(p.fd) {
                    Ok(f) => {
                        if registered == Some(false) {
                            Self::add_waiter(&f, &waiter);
                        }
                        file_poll(&f)
                    }
                    Err(_) => POLLNVAL,
                };
                let m = mask & (p.events as u16 as u32 | 0x8 | 0x10 | POLLNVAL);
                p.revents = m as i16;
                if m != 0 {
                    n += 1;
                }
            }
            if n > 0 || timeout == Some(Duration::ZERO) || deadline.is_some_and(|d| self.now_f() >= d) {
                return Ok(n);
            }
            // Register on the wait queues only when about to sleep, then look once more
            // before sleeping (an event between the look and the registration is not lost).
            match registered {
                None => registered = Some(false),
                Some(_) => {
                    registered = Some(true);
                    self.wait_gate(&gate, gen, deadline);
                }
            }
        }
    }

    /// `epoll_create()`.
    pub fn epoll_create(&self, size: i32) -> SysResult<i32> {
        if size <= 0 {
            return Err(Errno::EINVAL);
        }
        self.epoll_create1(0)
    }

    /// `epoll_create1()` (EINVAL for flags other than EPOLL_CLOEXEC).
    pub fn epoll_create1(&self, flags: i32) -> SysResult<i32> {
        if flags & !EPOLL_CLOEXEC != 0 {
            return Err(Errno::EINVAL);
        }
        let ep = Arc::new(epoll::Epoll::default());
        let fd = self.fds.install_flags(File::Epoll(ep.clone()), flags & EPOLL_CLOEXEC != 0)?;
        self.epolls.lock().push(Arc::downgrade(&ep));
        Ok(fd)
    }

    /// `epoll_ctl()` (ADD=1, DEL=2, MOD=3).
    pub fn epoll_ctl(&self, epfd: i32, op: i32, fd: i32, events: u32, data: u64) -> SysResult<()> {
        let ef = self.fds.get(epfd)?;
        let tf = self.fds.get(fd)?;
        let ep = match &*ef {
            File::Epoll(e) if !Arc::ptr_eq(&ef, &tf) => e.clone(),
            _ => return Err(Errno::EINVAL),
        };
        if matches!(&*tf, File::Epoll(_)) {
            // DEVIATION(linux): nested epoll instances are not supported.
            return Err(Errno::EPERM);
        }
        let k = (fd, file_key(&tf));
        let mut items = ep.items.lock();
        match op {
            1 => {
                if items.contains_key(&k) {
                    return Err(Errno::EEXIST);
                }
                let waiter = ep.new_waiter();
                Self::add_waiter(&tf, &waiter);
                items.insert(k, epoll::EpItem { file: tf, events, data, waiter, disabled: false });
            }
            2 => {
                items.remove(&k).ok_or(Errno::ENOENT)?;
            }
            3 => {
                let it = items.get_mut(&k).ok_or(Errno::ENOENT)?;
                it.events = events;
                it.data = data;
                it.disabled = false;
                it.waiter.ready.store(true, Ordering::Release);
            }
            _ => return Err(Errno::EINVAL),
        }
        Ok(())
    }

    /// `epoll_wait()`: up to `max` (events, data) pairs; sleeps up to `timeout` (None =
    /// forever) for one.
    pub fn epoll_wait(&self, epfd: i32, max: i32, timeout: Option<Duration>) -> SysResult<Vec<(u32, u64)>> {
        if max <= 0 {
            return Err(Errno::EINVAL);
        }
        let ep = match &*self.fds.get(epfd)? {
            File::Epoll(e) => e.clone(),
            _ => return Err(Errno::EINVAL),
        };
        let deadline = timeout.map(|t| self.now_f() + t);
        loop {
            let gen = *ep.gate.0.lock();
            let v = ep.collect(max as usize);
            if !v.is_empty() || timeout == Some(Duration::ZERO) || deadline.is_some_and(|d| self.now_f() >= d) {
                return Ok(v);
            }
            self.wait_gate(&ep.gate, gen, deadline);
        }
    }
}
