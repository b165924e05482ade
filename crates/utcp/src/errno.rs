//! Linux errno values (include/uapi/asm-generic/errno-base.h, errno.h) and `SysResult`.

use core::fmt;

/// A Linux errno. The discriminants are Linux's numbers, so `errno as i32` is what libc reports.
#[repr(i32)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[allow(missing_docs)]
pub enum Errno {
    EPERM = 1,
    ENOENT = 2,
    EINTR = 4,
    EIO = 5,
    EBADF = 9,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    ENODEV = 19,
    EINVAL = 22,
    ENFILE = 23,
    EMFILE = 24,
    ENOTTY = 25,
    EPIPE = 32,
    EDOM = 33,
    ERANGE = 34,
    ENODATA = 61,
    ENOSYS = 38,
    ENOMSG = 42,
    EPROTO = 71,
    ENOPROTOOPT = 92,
    EPROTONOSUPPORT = 93,
    ESOCKTNOSUPPORT = 94,
    EOPNOTSUPP = 95,
    EAFNOSUPPORT = 97,
    EADDRINUSE = 98,
    EADDRNOTAVAIL = 99,
    ENETDOWN = 100,
    ENETUNREACH = 101,
    ECONNABORTED = 103,
    ECONNRESET = 104,
    ENOBUFS = 105,
    EISCONN = 106,
    ENOTCONN = 107,
    ESHUTDOWN = 108,
    ETIMEDOUT = 110,
    ECONNREFUSED = 111,
    EHOSTUNREACH = 113,
    EHOSTDOWN = 112,
    ENONET = 64,
    EALREADY = 114,
    EINPROGRESS = 115,
    ENOTSOCK = 88,
    EDESTADDRREQ = 89,
    EMSGSIZE = 90,
    EPROTOTYPE = 91,
    ERESTARTSYS = 512,
}

impl Errno {
    /// The errno as libc reports it.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// Linux's symbolic name (`"EAGAIN"`).
    pub fn name(self) -> &'static str {
        use Errno::*;
        match self {
            EPERM => "EPERM",
            ENOENT => "ENOENT",
            EINTR => "EINTR",
            EIO => "EIO",
            EBADF => "EBADF",
            EAGAIN => "EAGAIN",
            ENOMEM => "ENOMEM",
            EACCES => "EACCES",
            EFAULT => "EFAULT",
            EBUSY => "EBUSY",
            EEXIST => "EEXIST",
            ENODEV => "ENODEV",
            EINVAL => "EINVAL",
            ENFILE => "ENFILE",
            EMFILE => "EMFILE",
            ENOTTY => "ENOTTY",
            EPIPE => "EPIPE",
            EDOM => "EDOM",
            ERANGE => "ERANGE",
            ENODATA => "ENODATA",
            ENOSYS => "ENOSYS",
            ENOMSG => "ENOMSG",
            EPROTO => "EPROTO",
            ENOPROTOOPT => "ENOPROTOOPT",
            EPROTONOSUPPORT => "EPROTONOSUPPORT",
            ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
            EOPNOTSUPP => "EOPNOTSUPP",
            EAFNOSUPPORT => "EAFNOSUPPORT",
            EADDRINUSE => "EADDRINUSE",
            EADDRNOTAVAIL => "EADDRNOTAVAIL",
            ENETDOWN => "ENETDOWN",
            ENETUNREACH => "ENETUNREACH",
            ECONNABORTED => "ECONNABORTED",
            ECONNRESET => "ECONNRESET",
            ENOBUFS => "ENOBUFS",
            EISCONN => "EISCONN",
            ENOTCONN => "ENOTCONN",
            ESHUTDOWN => "ESHUTDOWN",
            ETIMEDOUT => "ETIMEDOUT",
            ECONNREFUSED => "ECONNREFUSED",
            EHOSTUNREACH => "EHOSTUNREACH",
            EHOSTDOWN => "EHOSTDOWN",
            ENONET => "ENONET",
            EALREADY => "EALREADY",
            EINPROGRESS => "EINPROGRESS",
            ENOTSOCK => "ENOTSOCK",
            EDESTADDRREQ => "EDESTADDRREQ",
            EMSGSIZE => "EMSGSIZE",
            EPROTOTYPE => "EPROTOTYPE",
            ERESTARTSYS => "ERESTARTSYS",
        }
    }

    /// The errno with this number, if utcp knows it.
    pub fn from_i32(v: i32) -> Option<Errno> {
        use Errno::*;
        const ALL: &[Errno] = &[
            EPERM,
            ENOENT,
            EINTR,
            EIO,
            EBADF,
            EAGAIN,
            ENOMEM,
            EACCES,
            EFAULT,
            EBUSY,
            EEXIST,
            ENODEV,
            EINVAL,
            ENFILE,
            EMFILE,
            ENOTTY,
            EPIPE,
            EDOM,
            ERANGE,
            ENODATA,
            ENOSYS,
            ENOMSG,
            EPROTO,
            ENOPROTOOPT,
            EPROTONOSUPPORT,
            ESOCKTNOSUPPORT,
            EOPNOTSUPP,
            EAFNOSUPPORT,
            EADDRINUSE,
            EADDRNOTAVAIL,
            ENETDOWN,
            ENETUNREACH,
            ECONNABORTED,
            ECONNRESET,
            ENOBUFS,
            EISCONN,
            ENOTCONN,
            ESHUTDOWN,
            ETIMEDOUT,
            ECONNREFUSED,
            EHOSTUNREACH,
            EHOSTDOWN,
            ENONET,
            EALREADY,
            EINPROGRESS,
            ENOTSOCK,
            EDESTADDRREQ,
            EMSGSIZE,
            EPROTOTYPE,
            ERESTARTSYS,
        ];
        ALL.iter().copied().find(|e| *e as i32 == v)
    }

    /// Looks an errno up by its symbolic name.
    pub fn from_name(name: &str) -> Option<Errno> {
        (1..=512).filter_map(Errno::from_i32).find(|e| e.name() == name)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), *self as i32)
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> std::io::Error {
        std::io::Error::from_raw_os_error(e as i32)
    }
}

/// The result of a socket call: a value or an errno.
pub type SysResult<T> = Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_linux() {
        assert_eq!(Errno::EAGAIN as i32, 11);
        assert_eq!(Errno::ENOTCONN as i32, 107);
        assert_eq!(Errno::ECONNRESET as i32, 104);
        assert_eq!(Errno::ENOTSOCK as i32, 88);
        assert_eq!(Errno::from_name("EINVAL"), Some(Errno::EINVAL));
        assert_eq!(Errno::from_i32(104), Some(Errno::ECONNRESET));
        let io: std::io::Error = Errno::EAGAIN.into();
        assert_eq!(io.kind(), std::io::ErrorKind::WouldBlock);
    }
}
