//! `utcp bench --peers`: the same bulk and request/response workloads over smoltcp, two
//! interfaces joined by an in-memory link and polled from one thread, with the MTU and checksums
//! (computed on send, verified on receive) of utcp's link. smoltcp is a dependency of the CLI only.

use std::collections::VecDeque;
use std::io;
use std::time::Instant as StdInstant;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address};

use crate::bench::{BenchConfig, BulkResult, Pattern, Percentiles, RrResult, StreamCheck};

/// Socket buffer size of each smoltcp socket, both directions (smoltcp scales its window to fit).
pub const SMOLTCP_BUFFER: usize = 1 << 20;

/// One direction of the in-memory link: a FIFO of packets plus a free list, so that a packet
/// buffer is reused rather than allocated per packet.
#[derive(Default)]
struct Wire {
    queue: VecDeque<Vec<u8>>,
    free: Vec<Vec<u8>>,
}

/// Both directions; `MemDev { side }` transmits on `wires[side]` and receives from the other.
#[derive(Default)]
struct Link {
    wires: [Wire; 2],
    packets: u64,
}

struct MemDev<'a> {
    link: &'a mut Link,
    side: usize,
    mtu: usize,
}

struct Rx<'a> {
    buf: Vec<u8>,
    free: &'a mut Vec<Vec<u8>>,
}

impl phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(&self.buf);
        self.free.push(self.buf);
        r
    }
}

struct Tx<'a> {
    wire: &'a mut Wire,
    packets: &'a mut u64,
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = self.wire.free.pop().unwrap_or_default();
        buf.resize(len, 0);
        let r = f(&mut buf);
        self.wire.queue.push_back(buf);
        *self.packets += 1;
        r
    }
}

impl Device for MemDev<'_> {
    type RxToken<'a>
        = Rx<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        let [w0, w1] = &mut self.link.wires;
        let (tx, rx) = if self.side == 0 { (w0, w1) } else { (w1, w0) };
        let buf = rx.queue.pop_front()?;
        // The received buffer goes back to the wire it came from.
        Some((Rx { buf, free: &mut rx.free }, Tx { wire: tx, packets: &mut self.link.packets }))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        Some(Tx { wire: &mut self.link.wires[self.side], packets: &mut self.link.packets })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.mtu;
        c.checksum = ChecksumCapabilities::default(); // compute and verify every checksum
        c
    }
}

const ADDR: [Ipv4Address; 2] = [Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2)];
const PORT: u16 = 5001;

/// Two smoltcp hosts, a connected pair of sockets between them, polled from one thread.
struct Pair {
    link: Link,
    ifaces: [Interface; 2],
    sockets: [SocketSet<'static>; 2],
    client: SocketHandle,
    server: SocketHandle,
    mtu: usize,
}

impl Pair {
    fn new(mtu: u16, quick_ack: bool) -> io::Result<Pair> {
        let mut link = Link::default();
        let now = Instant::now();
        let mut ifaces = [0, 1].map(|side| {
            let mut dev = MemDev { link: &mut link, side, mtu: mtu as usize };
            let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut dev, now);
            iface.update_ip_addrs(|a| {
                a.push(IpCidr::new(IpAddress::Ipv4(ADDR[side]), 24)).expect("one address");
            });
            iface
        });
        let socket = || {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; SMOLTCP_BUFFER]),
                tcp::SocketBuffer::new(vec![0; SMOLTCP_BUFFER]),
            );
            // As TCP_NODELAY on the utcp and kernel sockets. rr ACKs at once (as Linux's quick-ACK
            // mode does in ping-pong); bulk keeps smoltcp's delayed ACK.
            s.set_nagle_enabled(false);
            if quick_ack {
                s.set_ack_delay(None);
            }
            s
        };
        let mut sockets = [SocketSet::new(vec![]), SocketSet::new(vec![])];
        let client = sockets[0].add(socket());
        let server = sockets[1].add(socket());
        sockets[1].get_mut::<tcp::Socket>(server).listen(PORT).map_err(io::Error::other)?;
        let cx = ifaces[0].context();
        sockets[0]
            .get_mut::<tcp::Socket>(client)
            .connect(cx, (IpAddress::Ipv4(ADDR[1]), PORT), 49152)
            .map_err(io::Error::other)?;
        let mut p = Pair { link, ifaces, sockets, client, server, mtu: mtu as usize };
        let t = StdInstant::now();
        while !(p.sock(0).may_send() && p.sock(1).may_recv()) {
            p.poll();
            if t.elapsed().as_secs() > 5 {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "smoltcp handshake did not complete"));
            }
        }
        Ok(p)
    }

    fn sock(&mut self, side: usize) -> &mut tcp::Socket<'static> {
        let h = if side == 0 { self.client } else { self.server };
        self.sockets[side].get_mut::<tcp::Socket>(h)
    }

    /// Polls both interfaces once each.
    fn poll(&mut self) {
        let now = Instant::now();
        for side in [0, 1] {
            let mut dev = MemDev { link: &mut self.link, side, mtu: self.mtu };
            self.ifaces[side].poll(now, &mut dev, &mut self.sockets[side]);
        }
    }
}

/// What `--peers` adds to the report: smoltcp's results in the same shape as utcp's.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerReport {
    pub transport: String,
    pub integrity: &'static str,
    pub bulk: BulkResult,
    pub rr: RrResult,
    /// Packets the in-memory link carried (both directions, both workloads).
    pub link_packets: u64,
    /// Each socket's buffer size (both directions).
    pub socket_buffer: usize,
}

/// Runs bulk and rr over smoltcp with the bench's parameters.
pub fn run_smoltcp(cfg: &BenchConfig, mtu: u16) -> io::Result<PeerReport> {
    let (bulk, p1) = bulk(cfg, mtu)?;
    let (rr, p2) = rr(cfg, mtu)?;
    let ok = bulk.integrity_ok && rr.integrity_ok;
    Ok(PeerReport {
        transport: "smoltcp".into(),
        integrity: if ok { "ok" } else { "mismatch" },
        bulk,
        rr,
        link_packets: p1 + p2,
        socket_buffer: SMOLTCP_BUFFER,
    })
}

fn stalled(t: StdInstant) -> io::Result<()> {
    if t.elapsed().as_secs() > 30 {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "smoltcp made no progress for 30 s"));
    }
    Ok(())
}

fn bulk(cfg: &BenchConfig, mtu: u16) -> io::Result<(BulkResult, u64)> {
    let pattern = Pattern::new(cfg.seed);
    let mut p = Pair::new(mtu, false)?;
    let mut buf = vec![0u8; cfg.chunk_size.max(64 << 10)];
    let mut check = StreamCheck::new(&pattern);
    let (mut sent, mut got) = (0u64, 0u64);
    let start = StdInstant::now();
    let mut progress_at = start;
    let mut closed = false;
    loop {
        while sent < cfg.bytes {
            let want = (cfg.bytes - sent).min(cfg.chunk_size as u64) as usize;
            let n = p.sock(0).send_slice(pattern.slice_at(sent, want)).map_err(io::Error::other)?;
            if n == 0 {
                break;
            }
            sent += n as u64;
        }
        if sent == cfg.bytes && !closed {
            p.sock(0).close();
            closed = true;
        }
        p.poll();
        let before = got;
        while p.sock(1).can_recv() {
            let n = p.sock(1).recv_slice(&mut buf).map_err(io::Error::other)?;
            check.update(&buf[..n]);
            got += n as u64;
        }
        if got > before {
            progress_at = StdInstant::now();
        } else if !p.sock(1).may_recv() {
            break; // FIN received and everything read
        } else {
            stalled(progress_at)?;
        }
    }
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    let client_hash = pattern.hash_prefix(sent);
    let server_hash = check.digest();
    let r = BulkResult {
        bytes: got,
        seconds,
        gbytes_per_s: got as f64 / seconds / 1e9,
        integrity_ok: sent == got && client_hash == server_hash,
        client_bytes: sent,
        server_bytes: got,
        client_hash,
        server_hash,
        progress_shown: false,
    };
    Ok((r, p.link.packets))
}

fn rr(cfg: &BenchConfig, mtu: u16) -> io::Result<(RrResult, u64)> {
    let mut p = Pair::new(mtu, true)?;
    let n = cfg.rr_size;
    let (mut req, mut resp, mut echo) = (vec![0u8; n], vec![0u8; n], vec![0u8; n]);
    let total = cfg.rr_warmup + cfg.rr_round_trips;
    let mut rtt_ns = Vec::with_capacity(cfg.rr_round_trips as usize);
    let (mut mismatched, mut echoed) = (0u64, 0u64);
    let mut measured_start = StdInstant::now();
    for i in 0..total {
        if i == cfg.rr_warmup {
            measured_start = StdInstant::now();
        }
        let tag = (i as u8).wrapping_mul(31);
        for (j, b) in req.iter_mut().enumerate() {
            *b = tag.wrapping_add(j as u8);
        }
        let t0 = StdInstant::now();
        let (mut sent, mut got, mut srv_in, mut srv_out) = (0, 0, 0, 0);
        while got < n {
            if sent < n {
                sent += p.sock(0).send_slice(&req[sent..]).map_err(io::Error::other)?;
            }
            p.poll();
            // The server echoes what it has read.
            if srv_in < n {
                srv_in += p.sock(1).recv_slice(&mut echo[srv_in..]).map_err(io::Error::other)?;
            }
            if srv_out < srv_in {
                srv_out += p.sock(1).send_slice(&echo[srv_out..srv_in]).map_err(io::Error::other)?;
            }
            if got < n {
                got += p.sock(0).recv_slice(&mut resp[got..]).map_err(io::Error::other)?;
            }
            stalled(t0)?;
        }
        echoed += u64::from(srv_in == n && srv_out == n);
        if i >= cfg.rr_warmup {
            rtt_ns.push(t0.elapsed().as_nanos() as u64);
        }
        if resp != req {
            mismatched += 1;
        }
    }
    let seconds = measured_start.elapsed().as_secs_f64();
    let r = RrResult {
        size: n,
        round_trips: rtt_ns.len() as u64,
        warmup: cfg.rr_warmup,
        seconds,
        rtt_us: Percentiles::from_nanos(&mut rtt_ns),
        integrity_ok: mismatched == 0 && echoed == total,
        mismatched_responses: mismatched,
        progress_shown: false,
    };
    Ok((r, p.link.packets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoltcp_bulk_and_rr_intact() {
        let cfg = BenchConfig {
            bytes: 3 << 20,
            chunk_size: 100_000,
            rr_round_trips: 50,
            rr_warmup: 3,
            rr_size: 7,
            ..BenchConfig::default()
        };
        let r = run_smoltcp(&cfg, 1500).unwrap();
        assert_eq!(r.integrity, "ok", "{r:?}");
        assert_eq!(r.bulk.bytes, 3 << 20);
        assert_eq!(r.rr.round_trips, 50);
        // At MTU 1500, 3 MiB is at least 3 MiB / 1460 data packets.
        assert!(r.link_packets > (3 << 20) / 1460, "{}", r.link_packets);
    }

    #[test]
    fn smoltcp_small_mtu_is_honoured() {
        let cfg = BenchConfig { bytes: 100_000, rr_round_trips: 5, rr_warmup: 0, ..BenchConfig::default() };
        let a = run_smoltcp(&cfg, 1500).unwrap();
        let b = run_smoltcp(&cfg, 576).unwrap();
        assert!(a.integrity == "ok" && b.integrity == "ok");
        assert!(b.link_packets > a.link_packets, "{} vs {}", b.link_packets, a.link_packets);
    }
}
