//! The file-descriptor table (fs/file.c) and `sockfd_lookup_light` (net/socket.c).
//!
//! Several fds may refer to one open file (`dup`): the table counts them, and the file is
//! released (a socket closed, a pipe end hung up) when the last fd referring to it goes.
//! FD_CLOEXEC is per fd. fd numbers stay below RLIMIT_NOFILE (Linux's default soft limit,
//! 1024, settable with `FdTable::set_nofile`).

use crate::errno::{Errno, SysResult};
use crate::socket::Socket;
use crate::sync::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What an fd refers to.
pub enum File {
    /// A socket.
    Socket(Arc<Socket>),
    /// An epoll instance.
    Epoll(Arc<super::epoll::Epoll>),
    /// One end of a pipe.
    Pipe(Arc<super::pipe::PipeEnd>),
}

/// The default RLIMIT_NOFILE soft limit.
pub(crate) const NOFILE_DEFAULT: usize = 1024;
/// `fs.nr_open`: the most RLIMIT_NOFILE may be raised to.
pub const NR_OPEN: usize = 1 << 20;

/// A file whose fd went away, and whether that was its last fd.
pub(crate) type Closed = (Arc<File>, bool);

enum Slot {
    Free,
    /// Allocated by `get_unused_fd_flags` and not yet installed.
    Reserved,
    Open {
        file: Arc<File>,
        cloexec: bool,
    },
}

struct Inner {
    slots: Vec<Slot>,
    /// Open fds per file (keyed by the file's address).
    refs: HashMap<usize, usize>,
    /// `files->next_fd`: every fd in 3..next_fd is in use, so the lowest-free search starts
    /// here (amortized O(1) for the usual allocate/close pattern instead of a scan from 3).
    next_fd: usize,
}

/// The fd table. fds 0–2 are reserved (as stdin/out/err are in a process), so the first
/// socket is fd 3, as in packetdrill scripts.
pub struct FdTable {
    inner: RwLock<Inner>,
    nofile: AtomicUsize,
}

impl Default for FdTable {
    fn default() -> Self {
        FdTable {
            inner: RwLock::new(Inner {
                slots: vec![Slot::Reserved, Slot::Reserved, Slot::Reserved],
                refs: HashMap::new(),
                next_fd: 3,
            }),
            nofile: AtomicUsize::new(NOFILE_DEFAULT),
        }
    }
}

fn key(f: &Arc<File>) -> usize {
    Arc::as_ptr(f) as usize
}

impl Inner {
    /// The lowest free fd ≥ `min` below `limit`.
    fn free_fd(&self, min: usize, limit: usize) -> Option<usize> {
        let from = min.max(3).max(self.next_fd);
        (from..limit.min(self.slots.len()))
            .find(|&i| matches!(self.slots[i], Slot::Free))
            .or_else(|| (self.slots.len().max(from) < limit).then(|| self.slots.len().max(from)))
    }

    fn set(&mut self, fd: usize, slot: Slot) -> Slot {
        if fd >= self.slots.len() {
            self.slots.resize_with(fd + 1, || Slot::Free);
        }
        if let Slot::Open { file, .. } = &slot {
            *self.refs.entry(key(file)).or_insert(0) += 1;
        }
        let now_free = matches!(slot, Slot::Free);
        let old = std::mem::replace(&mut self.slots[fd], slot);
        // __put_unused_fd / __clear_open_fd: keep the next_fd hint.
        if now_free {
            if fd >= 3 && fd < self.next_fd {
                self.next_fd = fd;
            }
        } else if fd == self.next_fd {
            while self.next_fd < self.slots.len() && !matches!(self.slots[self.next_fd], Slot::Free) {
                self.next_fd += 1;
            }
        }
        if let Slot::Open { file, .. } = &old {
            let k = key(file);
            if let Some(n) = self.refs.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.refs.remove(&k);
                }
            }
        }
        old
    }

    /// What leaving `old` means: the file and whether that was its last fd.
    fn closed(&self, old: Slot) -> Option<(Arc<File>, bool)> {
        match old {
            Slot::Open { file, .. } => {
                let last = !self.refs.contains_key(&key(&file));
                Some((file, last))
            }
            _ => None,
        }
    }
}

impl FdTable {
    /// RLIMIT_NOFILE.
    pub fn nofile(&self) -> usize {
        self.nofile.load(Ordering::Relaxed)
    }

    /// `setrlimit(RLIMIT_NOFILE)`: EPERM above `fs.nr_open`. Open fds above the new limit
    /// stay open, as in Linux.
    pub(crate) fn set_nofile(&self, n: usize) -> SysResult<()> {
        if n > NR_OPEN {
            return Err(Errno::EPERM);
        }
        self.nofile.store(n, Ordering::Relaxed);
        Ok(())
    }

    /// Installs `f` at the lowest free fd ≥ 3 (EMFILE when none is below RLIMIT_NOFILE).
    pub fn install(&self, f: File) -> SysResult<i32> {
        self.install_flags(f, false)
    }

    /// Installs `f` with FD_CLOEXEC as given.
    pub(crate) fn install_flags(&self, f: File, cloexec: bool) -> SysResult<i32> {
        let fd = self.reserve()?;
        self.fill(fd, f, cloexec);
        Ok(fd)
    }

    /// `get_unused_fd_flags()`: allocates the lowest free fd without a file yet.
    pub(crate) fn reserve(&self) -> SysResult<i32> {
        let mut t = self.inner.write();
        let fd = t.free_fd(3, self.nofile()).ok_or(Errno::EMFILE)?;
        t.set(fd, Slot::Reserved);
        Ok(fd as i32)
    }

    /// `fd_install()`: puts `f` into a reserved fd.
    pub(crate) fn fill(&self, fd: i32, f: File, cloexec: bool) {
        self.inner.write().set(fd as usize, Slot::Open { file: Arc::new(f), cloexec });
    }

    /// `put_unused_fd()`: gives a reserved fd back.
    pub(crate) fn unreserve(&self, fd: i32) {
        let mut t = self.inner.write();
        if matches!(t.slots.get(fd as usize), Some(Slot::Reserved)) {
            t.set(fd as usize, Slot::Free);
        }
    }

    /// `fget()`.
    pub(crate) fn get(&self, fd: i32) -> SysResult<Arc<File>> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        match self.inner.read().slots.get(fd as usize) {
            Some(Slot::Open { file, .. }) => Ok(file.clone()),
            _ => Err(Errno::EBADF),
        }
    }

    /// `sockfd_lookup_light()`: EBADF for no file, ENOTSOCK for a file that is no socket.
    pub(crate) fn sockfd_lookup(&self, fd: i32) -> SysResult<Arc<Socket>> {
        match &*self.get(fd)? {
            File::Socket(s) => Ok(s.clone()),
            _ => Err(Errno::ENOTSOCK),
        }
    }

    /// Removes the fd (`close_fd`): the file, and true when that was its last fd.
    pub(crate) fn remove(&self, fd: i32) -> SysResult<(Arc<File>, bool)> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        let mut t = self.inner.write();
        if !matches!(t.slots.get(fd as usize), Some(Slot::Open { .. })) {
            return Err(Errno::EBADF);
        }
        let old = t.set(fd as usize, Slot::Free);
        t.closed(old).ok_or(Errno::EBADF)
    }

    /// `F_DUPFD`/`F_DUPFD_CLOEXEC` (`f_dupfd`): the lowest free fd ≥ `min`.
    pub(crate) fn dupfd(&self, oldfd: i32, min: i64, cloexec: bool) -> SysResult<i32> {
        let file = self.get(oldfd)?;
        let limit = self.nofile();
        if min < 0 || min as u64 >= limit as u64 {
            return Err(Errno::EINVAL);
        }
        let mut t = self.inner.write();
        let fd = t.free_fd(min as usize, limit).ok_or(Errno::EMFILE)?;
        t.set(fd, Slot::Open { file, cloexec });
        Ok(fd as i32)
    }

    /// `dup3()` without its argument checks (`do_dup2`): `newfd` refers to `oldfd`'s file; a
    /// file `newfd` referred to before is returned with whether that was its last fd.
    pub(crate) fn dup_to(&self, oldfd: i32, newfd: i32, cloexec: bool) -> SysResult<(i32, Option<Closed>)> {
        if newfd < 0 || newfd as u64 >= self.nofile() as u64 {
            return Err(Errno::EBADF);
        }
        let file = self.get(oldfd)?;
        let mut t = self.inner.write();
        if matches!(t.slots.get(newfd as usize), Some(Slot::Reserved)) && newfd > 2 {
            // Linux: an fd being installed by another thread.
            return Err(Errno::EBUSY);
        }
        let old = t.set(newfd as usize, Slot::Open { file, cloexec });
        let closed = t.closed(old);
        Ok((newfd, closed))
    }

    /// FD_CLOEXEC of `fd`.
    pub(crate) fn cloexec(&self, fd: i32) -> SysResult<bool> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        match self.inner.read().slots.get(fd as usize) {
            Some(Slot::Open { cloexec, .. }) => Ok(*cloexec),
            _ => Err(Errno::EBADF),
        }
    }

    /// Sets FD_CLOEXEC of `fd`.
    pub(crate) fn set_cloexec(&self, fd: i32, on: bool) -> SysResult<()> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        match self.inner.write().slots.get_mut(fd as usize) {
            Some(Slot::Open { cloexec, .. }) => {
                *cloexec = on;
                Ok(())
            }
            _ => Err(Errno::EBADF),
        }
    }

    /// The number of open fds.
    pub fn open_count(&self) -> usize {
        self.inner.read().slots.iter().filter(|s| matches!(s, Slot::Open { .. })).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoll() -> File {
        File::Epoll(Arc::new(super::super::epoll::Epoll::default()))
    }

    #[test]
    fn lowest_free_fd_with_the_next_fd_hint() {
        let t = FdTable::default();
        t.set_nofile(100_000).unwrap();
        let fds: Vec<i32> = (0..50_000).map(|_| t.install(epoll()).unwrap()).collect();
        assert_eq!(fds[0], 3);
        assert_eq!(*fds.last().unwrap(), 50_002);
        // Closing two fds: the lowest comes back first, then the other, then the end.
        t.remove(4000).unwrap();
        t.remove(100).unwrap();
        assert_eq!(t.install(epoll()).unwrap(), 100);
        assert_eq!(t.install(epoll()).unwrap(), 4000);
        assert_eq!(t.install(epoll()).unwrap(), 50_003);
        // F_DUPFD with a minimum above a hole skips the hole; dup2 to a far fd leaves the hint.
        t.remove(10).unwrap();
        assert_eq!(t.dupfd(3, 20, false).unwrap(), 50_004);
        t.dup_to(3, 60_000, false).unwrap();
        assert_eq!(t.install(epoll()).unwrap(), 10);
        assert_eq!(t.install(epoll()).unwrap(), 50_005);
        // A reserved fd is in use until unreserved.
        let r = t.reserve().unwrap();
        assert_eq!(r, 50_006);
        t.unreserve(r);
        assert_eq!(t.install(epoll()).unwrap(), 50_006);
    }

    #[test]
    fn emfile_at_the_limit() {
        let t = FdTable::default();
        t.set_nofile(8).unwrap();
        for want in 3..8 {
            assert_eq!(t.install(epoll()).unwrap(), want);
        }
        assert_eq!(t.install(epoll()).unwrap_err(), Errno::EMFILE);
        t.remove(5).unwrap();
        assert_eq!(t.install(epoll()).unwrap(), 5);
    }
}
