//! The file-descriptor table (fs/file.c) and `sockfd_lookup_light` (net/socket.c).

use crate::errno::{Errno, SysResult};
use crate::socket::Socket;
use parking_lot::RwLock;
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

/// The fd table. fds 0–2 are reserved (as stdin/out/err are in a process), so the first
/// socket is fd 3, as in packetdrill scripts.
pub struct FdTable {
    files: RwLock<Vec<Option<Arc<File>>>>,
    max: usize,
}

impl Default for FdTable {
    fn default() -> Self {
        FdTable { files: RwLock::new(vec![None, None, None]), max: 1 << 20 }
    }
}

impl FdTable {
    /// Installs `f` at the lowest free fd ≥ 3.
    pub fn install(&self, f: File) -> SysResult<i32> {
        let mut files = self.files.write();
        let f = Some(Arc::new(f));
        for (i, slot) in files.iter_mut().enumerate().skip(3) {
            if slot.is_none() {
                *slot = f;
                return Ok(i as i32);
            }
        }
        if files.len() >= self.max {
            return Err(Errno::EMFILE);
        }
        files.push(f);
        Ok(files.len() as i32 - 1)
    }

    /// `fget()`.
    pub fn get(&self, fd: i32) -> SysResult<Arc<File>> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        self.files.read().get(fd as usize).and_then(|f| f.clone()).ok_or(Errno::EBADF)
    }

    /// `sockfd_lookup_light()`: EBADF for no file, ENOTSOCK for a file that is no socket.
    pub fn sockfd_lookup(&self, fd: i32) -> SysResult<Arc<Socket>> {
        match &*self.get(fd)? {
            File::Socket(s) => Ok(s.clone()),
            _ => Err(Errno::ENOTSOCK),
        }
    }

    /// Removes the fd (`close_fd`).
    pub fn remove(&self, fd: i32) -> SysResult<Arc<File>> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        let mut files = self.files.write();
        files.get_mut(fd as usize).and_then(|f| f.take()).ok_or(Errno::EBADF)
    }
}
