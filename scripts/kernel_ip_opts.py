#!/usr/bin/env python3
"""The kernel's answers to what crates/utcp/tests/ip_opts.rs asks utcp: IP_LOCAL_PORT_RANGE,
IP_BIND_ADDRESS_NO_PORT and IP_OPTIONS on TCP sockets over loopback. Run it as root in a fresh
network namespace (the ranges below must be free):

    ip netns add ipopts && ip netns exec ipopts python3 scripts/kernel_ip_opts.py; ip netns del ipopts

Every check is an assert; it prints "ok" at the end.
"""
import errno
import socket
import struct
import subprocess

SOL_IP, IP_OPTIONS, IP_BIND_ADDRESS_NO_PORT, IP_LOCAL_PORT_RANGE = 0, 4, 24, 51
A = "127.0.0.1"


def rng(lo, hi):
    return struct.pack("I", lo | hi << 16)


def err(f):
    try:
        f()
    except OSError as e:
        return errno.errorcode[e.errno]
    return "ok"


def sock():
    s = socket.socket()
    s.setblocking(False)
    return s


def connect(s, port):
    return err(lambda: s.connect((A, port)))


subprocess.run(["ip", "link", "set", "lo", "up", "mtu", "1500"], check=True)
listeners = []
for port in (80, 81):
    l = socket.socket()
    l.bind((A, port))
    l.listen(16)
    listeners.append(l)

# IP_LOCAL_PORT_RANGE values and errors.
s = sock()
assert s.getsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, 4) == b"\0" * 4
for bad in [b"", b"\1", b"\1\0", struct.pack("Q", 1), rng(200, 100)]:
    assert err(lambda: s.setsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, bad)) == "EINVAL", bad
for ok in [rng(100, 200), rng(100, 0), rng(0, 100), rng(0, 0)]:
    s.setsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, ok)
    assert s.getsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, 4) == ok
for val, want in [(b"", 0), (b"\1", 1), (b"\5\0", 1), (struct.pack("i", 256), 1)]:
    s.setsockopt(SOL_IP, IP_BIND_ADDRESS_NO_PORT, val)
    assert s.getsockopt(SOL_IP, IP_BIND_ADDRESS_NO_PORT) == want, val

# A socket's own range is tried whole for connect(), then EADDRNOTAVAIL.
ports = []
keep = []
for _ in range(3):
    c = sock()
    c.setsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, rng(40000, 40002))
    assert connect(c, 80) == "EINPROGRESS"
    ports.append(c.getsockname()[1])
    keep.append(c)
assert sorted(ports) == [40000, 40001, 40002], ports
c = sock()
c.setsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, rng(40000, 40002))
assert connect(c, 80) == "EADDRNOTAVAIL"
c = sock()
c.setsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, rng(100, 0))
assert connect(c, 80) == "EINPROGRESS"
assert 32768 <= c.getsockname()[1] <= 60999
keep.append(c)
# bind(port 0) over an odd range of three offers two ports.
bound = []
for _ in range(2):
    b = sock()
    b.setsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, rng(50000, 50002))
    b.bind((A, 0))
    bound.append(b.getsockname()[1])
    keep.append(b)
assert sorted(bound) == [50000, 50001], bound
b = sock()
b.setsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, rng(50000, 50002))
assert err(lambda: b.bind((A, 0))) == "EADDRINUSE"
b = sock()
b.setsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, rng(50003, 50003))
b.listen(4)
assert b.getsockname()[1] == 50003
keep.append(b)

# IP_BIND_ADDRESS_NO_PORT: two sockets share the one port of the range, to two destinations.
got = []
for dport in (80, 81):
    c = sock()
    c.setsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, rng(45000, 45000))
    c.setsockopt(SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    c.bind((A, 0))
    assert c.getsockname() == (A, 0)
    c.bind((A, 0))
    assert connect(c, dport) == "EINPROGRESS"
    got.append(c.getsockname()[1])
    keep.append(c)
    s = sock()
    s.setsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, rng(45000, 45000))
    assert err(lambda: s.bind((A, 0))) == "EADDRINUSE"
assert got == [45000, 45000], got
c = sock()
c.setsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, rng(45000, 45000))
c.setsockopt(SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
c.bind((A, 0))
assert connect(c, 80) == "EADDRNOTAVAIL"
s = sock()
s.setsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, rng(45001, 45001))
s.setsockopt(SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
s.bind((A, 0))
s.listen(4)
assert s.getsockname() == (A, 45001)
s = sock()
s.setsockopt(SOL_IP, IP_LOCAL_PORT_RANGE, rng(45002, 45002))
s.bind((A, 0))
assert s.getsockname() == (A, 45002)
assert err(lambda: s.bind((A, 0))) == "EINVAL"

# IP_OPTIONS: set, then get (ip_options_undo); None = EINVAL. The same table is
# crates/utcp/src/ip/options.rs's setsockopt_and_getsockopt_as_the_kernel.
TABLE = [
    (b"", b""), (b"\x01", b"\x01\0\0\0"), (b"\x00", b"\0\0\0\0"),
    (b"\x01\x01\x01\x01\x01", b"\x01\x01\x01\x01\x01\0\0\0"),
    (b"\x07\x07\x04\0\0\0\0", b"\x07\x07\x04\0\0\0\0\0"),
    (b"\x07\x0b\x04\x01\x01\x01\x01\x01\x01\x01\x01", b"\x07\x0b\x04\0\0\0\0\x01\x01\x01\x01\0"),
    (b"\x94\x04\x00\x01", b"\x94\x04\x00\x01"),
    (b"\x44\x0c\x05\x00" + b"\x02" * 8, b"\x44\x0c\x05\x00\0\0\0\0" + b"\x02" * 4),
    (b"\x44\x0c\x05\x01" + b"\x02" * 8, b"\x44\x0c\x05\x01" + b"\0" * 8),
    (b"\x44\x0c\x05\x03\x0a\0\0\x01" + b"\x02" * 4, b"\x44\x0c\x05\x03\x0a\0\0\x01" + b"\x02" * 4),
    (b"\x44\x0c\x05\x03\x7f\0\0\x01" + b"\x02" * 4, b"\x44\x0c\x05\x03\x7f\0\0\x01" + b"\0" * 4),
    (b"\x83\x07\x04\x0a\0\0\x01", b"\x83\x07\x04\x0a\0\0\x01\0"),
    (b"\x83\x0b\x04\x0a\0\0\x01\x0b\0\0\x02", b"\x83\x0b\x04\x0a\0\0\x01\x0b\0\0\x02\0"),
    (b"\x89\x07\x04\x0a\0\0\x01", b"\x89\x07\x04\x0a\0\0\x01\0"),
    (b"\x82\x0b" + b"\0" * 9, b"\x82\x0b" + b"\0" * 10), (b"\x99\x02", b"\x99\x02\0\0"),
    (b"\x00\x01\x02", b"\0\0\0\0"), (b"\x07\x03\x04", b"\x07\x03\x04\0"),
    (b"\x07\x07\x08\0\0\0\0", b"\x07\x07\x08\0\0\0\0\0"), (b"\x44\x04\x05\x00", b"\x44\x04\x05\x00"),
    (b"\x44\x08\x09\x00\0\0\0\0", b"\x44\x08\x09\x00\0\0\0\0"),
    (b"\x44\x08\x05\xf0\0\0\0\0", b"\x44\x08\x05\xf0\0\0\0\0"),
    (b"\x44\x08\x09\xe0\0\0\0\0", b"\x44\x08\x09\xe0\0\0\0\0"),
    (b"\x01" * 40, b"\x01" * 40),
]
for bad in [b"\x44\x0c\x05\x02", b"\x86\x06\0\0\0\0", b"\x01" * 41, b"\x07\x04\x04\x00",
            b"\x07\x07\x03\0\0\0\0", b"\x44\x08\x09\xf0\0\0\0\0", b"\x07\x01", b"\x07",
            b"\x83\x08\x04\0\0\0\0\0", b"\x83\x07\x05\0\0\0\0",
            b"\x07\x07\x04\0\0\0\0\x07\x07\x04\0\0\0\0", b"\x94\x03\0"]:
    TABLE.append((bad, None))
for val, want in TABLE:
    s = socket.socket()
    r = err(lambda: s.setsockopt(SOL_IP, IP_OPTIONS, val))
    if want is None:
        assert r == "EINVAL", (val, r)
    else:
        assert r == "ok", (val, r)
        assert s.getsockopt(SOL_IP, IP_OPTIONS, 40) == want, (val, s.getsockopt(SOL_IP, IP_OPTIONS, 40))
    s.close()
s = socket.socket()
s.setsockopt(SOL_IP, IP_OPTIONS, b"\x07\x0b\x04" + b"\x01" * 8)
assert s.getsockopt(SOL_IP, IP_OPTIONS, 3) == b"\x07\x0b\x04"
assert err(lambda: s.setsockopt(SOL_IP, IP_OPTIONS, b"\x07\x04\x04\x00")) == "EINVAL"
assert len(s.getsockopt(SOL_IP, IP_OPTIONS, 40)) == 12, "a refused value leaves the set"
assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 68, "tcp_sync_mss(0) on a fresh socket"

# A connection with a 39-byte record route: the MSS leaves room for 40 option bytes, and
# the child holds the SYN's options echoed (both addresses recorded; its own undone).
l = socket.socket()
l.bind((A, 90))
l.listen(4)
c = socket.socket()
c.setsockopt(SOL_IP, IP_OPTIONS, bytes([7, 39, 4]) + bytes(36))
c.connect((A, 90))
a, _ = l.accept()
assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1408, c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
assert a.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1408
lo = socket.inet_aton(A)
assert a.getsockopt(SOL_IP, IP_OPTIONS, 40) == bytes([7, 39, 12]) + lo + lo + bytes(29)
c.setsockopt(SOL_IP, IP_OPTIONS, b"")
assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1448
c.setsockopt(SOL_IP, IP_OPTIONS, b"\x01" * 8)
assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1440
# A listener's own IP_OPTIONS go to no child: a plain SYN's child has none.
l = socket.socket()
l.setsockopt(SOL_IP, IP_OPTIONS, b"\x01" * 8)
l.bind((A, 91))
l.listen(4)
assert l.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 68
c = socket.socket()
c.connect((A, 91))
a, _ = l.accept()
assert a.getsockopt(SOL_IP, IP_OPTIONS, 40) == b""
assert a.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1448


# Stateless replies echo the options of what they answer (ip_send_unicast_reply), and a
# bad option is answered with an ICMP parameter problem. Raw SYNs to a closed port; the raw
# receiver sees each reply after loopback's receive path compiled its options once more
# (one more address or timestamp recorded, or the overflow counted).
def csum(b):
    if len(b) % 2:
        b += b"\0"
    x = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return ~x & 0xFFFF


def raw_syn(opts):
    tcp = struct.pack("!HHIIBBHHH", 1234, 99, 1, 0, 5 << 4, 2, 1000, 0, 0)
    tcp = tcp[:16] + struct.pack("!H", csum(lo + lo + struct.pack("!BBH", 0, 6, 20) + tcp)) + tcp[18:]
    ihl = 5 + len(opts) // 4
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + 20, 1, 0, 64, 6, 0, lo, lo) + opts
    return ip[:10] + struct.pack("!H", csum(ip)) + ip[12:] + tcp


tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
rx.settimeout(2)
for opts, want in [
    (bytes([7, 15, 4]) + bytes(13), bytes([7, 15, 16]) + lo * 3 + b"\0"),
    (bytes([1, 1, 1, 1]), b""),
]:
    tx.sendto(raw_syn(opts), (A, 0))
    while True:
        d, _ = rx.recvfrom(2000)
        h = (d[0] & 15) * 4
        if d[h + 13] & 4:
            assert d[20:h] == want, (opts, d[20:h].hex())
            break
tx.sendto(raw_syn(bytes([0x44, 12, 5, 0]) + bytes(8)), (A, 0))
while True:
    d, _ = rx.recvfrom(2000)
    h = (d[0] & 15) * 4
    if d[h + 13] & 4:
        # Our two timestamps, full: the pointer at 13, one overflow counted on the way back.
        assert d[20:24] == bytes([0x44, 12, 13, 0x10]), d[20:h].hex()
        break
icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
icmp.settimeout(2)
for opts in [bytes([7, 7, 3, 0, 0, 0, 0, 0]), bytes([1, 1, 7, 1])]:
    tx.sendto(raw_syn(opts), (A, 0))
    while True:
        d, _ = icmp.recvfrom(2000)
        h = (d[0] & 15) * 4
        if d[h] == 12:
            assert (d[h + 1], d[h + 4]) == (0, 22), d.hex()
            break
print("ok")
