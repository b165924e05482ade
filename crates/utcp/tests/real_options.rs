//! Socket options on real threads and the real clock do what they do on the virtual clock:
//! IP_TOS/IP_TTL on the wire, TCP_NOTSENT_LOWAT gating writability. (TCP_DEFER_ACCEPT and
//! SO_REUSEPORT tests written in the same way failed on real threads: a bare ACK made the
//! connection acceptable, and 30 blocking connects to 3 SO_REUSEPORT listeners hung; both
//! are open, see the branch report.)
//!
//! Every wait is bounded by a generous watchdog; nothing asserts a duration.

use std::io::Write;
use std::net::SocketAddrV4;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant as StdInstant};
use utcp::api::{ADDR_A, ADDR_B};
use utcp::errno::Errno;
use utcp::host::{HostThreads, MonotonicClock};
use utcp::netdev::memlink::{self, LinkConfig};
use utcp::netdev::pcap::{read_pcap, PcapDevice};
use utcp::netdev::NetDevice;
use utcp::stack::StackCore;
use utcp::syscall::{PollFd, Stack};
use utcp::time::Clock;

const SOL_IP: i32 = 0;
const SOL_TCP: i32 = 6;
const IP_TOS: i32 = 1;
const IP_TTL: i32 = 2;
const TCP_NOTSENT_LOWAT: i32 = 25;
const O_NONBLOCK: i32 = 0o4000;
const POLLOUT: i16 = 4;
/// Reached only when something hangs.
const LIMIT: StdDuration = StdDuration::from_secs(120);

/// A `Write` into a shared buffer (the pcap capture of host A).
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);
impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Two stacks on a memlink in real time; host A's traffic is captured.
struct Pair {
    a: Arc<Stack>,
    b: Arc<Stack>,
    pcap: Arc<PcapDevice<Arc<memlink::MemPort>>>,
    cap: Shared,
    threads: Vec<HostThreads>,
}

impl Pair {
    fn new() -> Pair {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::default());
        let (pa, pb) = memlink::pair(LinkConfig::default(), clock.clone());
        let cap = Shared::default();
        let pcap = Arc::new(PcapDevice::new(pa, Box::new(cap.clone()), clock.clone()));
        let ca = StackCore::new(ADDR_A, 1500, clock.clone(), 0x11);
        ca.attach_device(pcap.clone() as Arc<dyn NetDevice>);
        let cb = StackCore::new(ADDR_B, 1500, clock.clone(), 0x22);
        cb.attach_device(pb.clone() as Arc<dyn NetDevice>);
        let threads =
            vec![HostThreads::start(ca.clone(), Some(pcap.clone())), HostThreads::start(cb.clone(), Some(pb))];
        Pair { a: Arc::new(Stack::from_core(ca)), b: Arc::new(Stack::from_core(cb)), pcap, cap, threads }
    }

    /// Frames host A sent and received so far (IP packets).
    fn frames(&self) -> Vec<Vec<u8>> {
        self.pcap.flush().unwrap();
        read_pcap(&self.cap.0.lock().unwrap()).unwrap().into_iter().map(|(_, f)| f).collect()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for t in self.threads.drain(..) {
            t.stop();
        }
    }
}

fn listener(st: &Stack, port: u16) -> i32 {
    let fd = st.socket(2, 1, 0).unwrap();
    st.bind(fd, SocketAddrV4::new(ADDR_B, port)).unwrap();
    st.listen(fd, 16).unwrap();
    fd
}

fn connected(p: &Pair, port: u16) -> (i32, i32) {
    let l = listener(&p.b, port);
    let c = p.a.socket(2, 1, 0).unwrap();
    p.a.connect(c, SocketAddrV4::new(ADDR_B, port)).unwrap();
    let (s, _) = p.b.accept4(l, 0).unwrap();
    (c, s)
}

/// Waits (bounded) until `f` holds.
fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let start = StdInstant::now();
    while start.elapsed() < LIMIT {
        if f() {
            return true;
        }
        std::thread::sleep(StdDuration::from_millis(1));
    }
    false
}

#[test]
fn ip_tos_and_ttl_are_on_the_wire() {
    let p = Pair::new();
    let c = p.a.socket(2, 1, 0).unwrap();
    p.a.setsockopt_int(c, SOL_IP, IP_TOS, 0x28).unwrap();
    p.a.setsockopt_int(c, SOL_IP, IP_TTL, 17).unwrap();
    let l = listener(&p.b, 7001);
    p.a.connect(c, SocketAddrV4::new(ADDR_B, 7001)).unwrap();
    let (s, _) = p.b.accept4(l, 0).unwrap();
    assert_eq!(p.a.send(c, Some(b"hello"), 5, 0), Ok(5));
    let mut buf = [0u8; 16];
    assert_eq!(p.b.recv(s, Some(&mut buf), 16, 0), Ok(5));
    let sent: Vec<Vec<u8>> = p.frames().into_iter().filter(|f| f.len() >= 20 && f[12..16] == ADDR_A.octets()).collect();
    assert!(sent.len() >= 3, "SYN, ACK and data captured: {}", sent.len());
    for f in &sent {
        assert_eq!(f[1] & !3, 0x28, "IP_TOS (DSCP bits) on every segment");
        assert_eq!(f[8], 17, "IP_TTL on every segment");
    }
}

#[test]
fn tcp_notsent_lowat_gates_pollout() {
    let p = Pair::new();
    let (c, s) = connected(&p, 7002);
    p.a.setsockopt_int(c, SOL_TCP, TCP_NOTSENT_LOWAT, 1000).unwrap();
    p.a.fcntl(c, 4, O_NONBLOCK).unwrap(); // F_SETFL
                                          // B does not read: once its window is full A's data stays unsent, and A is not writable
                                          // while more than 1000 unsent bytes are queued.
    let chunk = vec![7u8; 64 * 1024];
    let filled = wait_for(|| match p.a.send(c, Some(&chunk), chunk.len(), 0) {
        Ok(_) => false,
        Err(e) => {
            assert_eq!(e, Errno::EAGAIN);
            true
        }
    });
    assert!(filled, "the send buffer never filled");
    let mut fds = [PollFd { fd: c, events: POLLOUT, revents: 0 }];
    assert_eq!(p.a.poll(&mut fds, Some(utcp::time::Duration::ZERO)), Ok(0), "unsent data above the low mark");
    // B reads everything: the unsent data drains, and POLLOUT comes back (a blocking poll
    // woken by the ACKs that free space).
    let b = p.b.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        let start = StdInstant::now();
        while start.elapsed() < LIMIT {
            let n = buf.len();
            match b.recv(s, Some(&mut buf), n, 0x40) {
                Ok(0) => break,
                Ok(_) => {}
                Err(Errno::EAGAIN) => std::thread::sleep(StdDuration::from_millis(1)),
                Err(e) => panic!("{e:?}"),
            }
        }
    });
    let mut fds = [PollFd { fd: c, events: POLLOUT, revents: 0 }];
    assert_eq!(p.a.poll(&mut fds, Some(utcp::time::Duration::from_secs(60))), Ok(1));
    assert!(fds[0].revents & POLLOUT != 0);
    p.a.close(c).unwrap();
    reader.join().unwrap();
}
