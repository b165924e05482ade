//! The system calls behind the TUN device: `open("/dev/net/tun")` + `TUNSETIFF`,
//! `TUNSETOFFLOAD`, `TUNSETVNETHDRSZ`, `read`, `writev`, `poll`, an eventfd to wake a poller,
//! and SIGINT/SIGTERM handlers. This module is the only `unsafe` code of utcp.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// `IFF_TUN`: layer-3 packets (no Ethernet header).
pub const IFF_TUN: c_int = libc::IFF_TUN;
/// `IFF_NO_PI`: no 4-byte packet-information prefix.
pub const IFF_NO_PI: c_int = libc::IFF_NO_PI;
/// `IFF_VNET_HDR`: every packet is preceded by a `struct virtio_net_hdr`.
pub const IFF_VNET_HDR: c_int = libc::IFF_VNET_HDR;
/// `TUN_F_CSUM`: userspace accepts packets with a partial checksum.
pub const TUN_F_CSUM: u32 = libc::TUN_F_CSUM;
/// `TUN_F_TSO4`: userspace accepts TCPv4 super-packets (GSO).
pub const TUN_F_TSO4: u32 = libc::TUN_F_TSO4;
/// `TUN_F_TSO6`: userspace accepts TCPv6 super-packets.
pub const TUN_F_TSO6: u32 = libc::TUN_F_TSO6;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An open TUN queue.
#[derive(Debug)]
pub struct TunFd {
    fd: OwnedFd,
    name: String,
}

impl TunFd {
    /// Opens `/dev/net/tun` and attaches it to the device `name` with `flags`
    /// (`IFF_TUN | IFF_NO_PI`, optionally `IFF_VNET_HDR`): an existing persistent device of that
    /// name (`ip tuntap add`), or a new one that goes away when the fd is closed. The fd is
    /// non-blocking and close-on-exec.
    pub fn open(name: &str, flags: c_int) -> io::Result<TunFd> {
        if name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"));
        }
        // SAFETY: a NUL-terminated constant path.
        let fd =
            cvt(unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `ifr` is.
        cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr as *mut libc::ifreq) })?;
        let len = ifr.ifr_name.iter().position(|&c| c == 0).unwrap_or(ifr.ifr_name.len());
        let name = ifr.ifr_name[..len].iter().map(|&c| c as u8 as char).collect();
        Ok(TunFd { fd, name })
    }

    /// The device name the kernel attached (it fills in `%d` patterns).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `TUNSETOFFLOAD`: which offloaded packets this reader accepts (`TUN_F_*`).
    pub fn set_offload(&self, flags: u32) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        cvt(unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TUNSETOFFLOAD, flags as libc::c_ulong) }).map(|_| ())
    }

    /// `TUNSETVNETHDRSZ`: the size of the header before each packet.
    pub fn set_vnet_hdr_sz(&self, size: c_int) -> io::Result<()> {
        let mut sz = size;
        // SAFETY: TUNSETVNETHDRSZ reads one int.
        cvt(unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &mut sz as *mut c_int) }).map(|_| ())
    }

    /// The device's `txqueuelen` (`SIOCGIFTXQLEN`): on a tun device, the size of the ring
    /// of packets the kernel queues for this reader; a packet that finds it full is dropped
    /// (`tun_net_xmit`: tun has no backpressure on its transmit side).
    pub fn txqueuelen(&self) -> io::Result<u32> {
        let mut ifr = self.ifreq();
        self.ifr_ioctl(libc::SIOCGIFTXQLEN, &mut ifr)?;
        // SAFETY: SIOCGIFTXQLEN filled in `ifru_metric`.
        Ok(unsafe { ifr.ifr_ifru.ifru_metric } as u32)
    }

    /// Sets `txqueuelen` (`SIOCSIFTXQLEN`, as `ip link set dev NAME txqueuelen N`; needs
    /// CAP_NET_ADMIN). The kernel resizes the tun ring (`tun_queue_resize`).
    pub fn set_txqueuelen(&self, len: u32) -> io::Result<()> {
        let mut ifr = self.ifreq();
        ifr.ifr_ifru.ifru_metric = len.min(i32::MAX as u32) as c_int;
        self.ifr_ioctl(libc::SIOCSIFTXQLEN, &mut ifr)
    }

    fn ifreq(&self) -> libc::ifreq {
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(self.name.bytes()) {
            *d = s as libc::c_char;
        }
        ifr
    }

    /// An interface ioctl, made on a datagram socket of this thread's namespace (the device's).
    fn ifr_ioctl(&self, req: libc::c_ulong, ifr: &mut libc::ifreq) -> io::Result<()> {
        // SAFETY: plain syscall.
        let s = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: just created, owned by nobody else.
        let s = unsafe { OwnedFd::from_raw_fd(s) };
        // SAFETY: `req` is an interface ioctl that reads or writes one `struct ifreq`.
        cvt(unsafe { libc::ioctl(s.as_raw_fd(), req, ifr as *mut libc::ifreq) }).map(|_| ())
    }

    /// Reads one packet into the spare capacity of `buf` (which must have at least `max` bytes
    /// of it) and extends `buf` by its length. `WouldBlock` when none waits.
    pub fn read_into(&self, buf: &mut bytes::BytesMut, max: usize) -> io::Result<usize> {
        buf.reserve(max);
        let spare = buf.spare_capacity_mut();
        let n = spare.len().min(max);
        // SAFETY: `spare` is writable memory of at least `n` bytes owned by `buf`.
        let r = unsafe { libc::read(self.fd.as_raw_fd(), spare.as_mut_ptr() as *mut libc::c_void, n) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let r = r as usize;
        // SAFETY: the kernel initialised the first `r` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + r) };
        Ok(r)
    }

    /// Writes one packet gathered from `parts` (one `writev`: the tun driver takes one packet
    /// per write).
    pub fn writev(&self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: IoSlice is ABI-compatible with `struct iovec`; the slices outlive the call.
        let r =
            unsafe { libc::writev(self.fd.as_raw_fd(), parts.as_ptr() as *const libc::iovec, parts.len() as c_int) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }

    /// Waits until the tun fd or `wake` is readable, or `timeout_ms` passes (-1: forever).
    pub fn poll_in(&self, wake: &EventFd, timeout_ms: c_int) -> io::Result<()> {
        let mut fds = [
            libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: wake.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: `fds` is an array of two valid pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        if fds[1].revents & libc::POLLIN != 0 {
            wake.drain();
        }
        Ok(())
    }
}

impl AsRawFd for TunFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A non-blocking eventfd, to wake a thread sleeping in [`TunFd::poll_in`].
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new eventfd.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain syscall.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: just created, owned by nobody else.
        Ok(EventFd { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }
    /// Makes it readable.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
    }
    fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), &mut v as *mut u64 as *mut libc::c_void, 8) };
    }
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);
static SIGNAL_NO: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: c_int) {
    // Async-signal-safe: two atomic stores.
    SIGNAL_NO.store(sig, Ordering::SeqCst);
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// Installs handlers for SIGINT and SIGTERM that only record the signal (see [`signalled`]).
pub fn catch_sigint_sigterm() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is plain data; the handler only stores to atomics.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            cvt(libc::sigaction(sig, &sa, std::ptr::null_mut()))?;
        }
    }
    Ok(())
}

/// The SIGINT/SIGTERM caught since [`catch_sigint_sigterm`], if any.
pub fn signalled() -> Option<c_int> {
    SIGNALLED.load(Ordering::SeqCst).then(|| SIGNAL_NO.load(Ordering::SeqCst))
}

/// Whether stderr is a terminal (for progress output).
pub fn stderr_is_tty() -> bool {
    // SAFETY: plain syscall on a constant fd.
    unsafe { libc::isatty(2) == 1 }
}
