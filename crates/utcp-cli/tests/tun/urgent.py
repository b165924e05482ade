# Urgent data over a real kernel socket: `client HOST PORT` sends the sequence below and
# prints "sent" once the peer has acknowledged all of each phase; `reader HOST PORT INLINE`
# is the kernel's reader: it reads a line on stdin (the test relays "sent") before each
# phase and prints one line per call. The utcp reader (tun_interop.rs, urgent_reader_child)
# makes the same calls and prints the same lines.
import errno, fcntl, select, socket, struct, sys, time

SIOCATMARK, SIOCINQ, SIOCOUTQ = 0x8905, 0x541B, 0x5411
MSG_OOB, MSG_PEEK, MSG_DONTWAIT = socket.MSG_OOB, socket.MSG_PEEK, socket.MSG_DONTWAIT


def client(host, port):
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.send(b"hello")
    s.send(b"abc", MSG_OOB)
    s.send(b"world")
    acked(s)
    assert s.recv(1) == b"1"  # phase 1 read
    s.send(b"12", MSG_OOB)
    s.send(b"34", MSG_OOB)
    s.send(b"56")
    acked(s)
    assert s.recv(1) == b"2"  # phase 2 read
    s.close()


def acked(s):
    """Waits until the peer acknowledged every byte sent (SIOCOUTQ 0), then says so."""
    while ioctl(s, SIOCOUTQ):
        time.sleep(0.002)
    print("sent", flush=True)


def ioctl(s, req):
    return struct.unpack("i", fcntl.ioctl(s, req, struct.pack("i", 0)))[0]


def recv(s, n, flags, name):
    try:
        data, _, mflags, _ = s.recvmsg(n, 0, flags)
        print(f"recvmsg({n}, {name}) = {len(data)} {data.hex()} flags={mflags:#x}")
    except OSError as e:
        print(f"recvmsg({n}, {name}) = {errno.errorcode[e.errno]}")


def steps(s, n):
    for _ in range(n):
        print(f"atmark {ioctl(s, SIOCATMARK)}")
        recv(s, 1, MSG_OOB | MSG_PEEK, "OOB|PEEK")
        recv(s, 100, MSG_OOB | MSG_DONTWAIT, "OOB|DONTWAIT")
        recv(s, 100, MSG_DONTWAIT, "DONTWAIT")


def reader(host, port, inline):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, inline)
    l.bind((host, port))
    l.listen(1)
    print("listening", flush=True)
    c, _ = l.accept()
    p = select.poll()
    p.register(c, select.POLLIN | select.POLLPRI | select.POLLOUT)
    sys.stdin.readline()
    print(f"inq {ioctl(c, SIOCINQ)} poll {p.poll(0)[0][1]:#x}")
    steps(c, 4)
    c.send(b"1")
    sys.stdin.readline()
    print(f"inq {ioctl(c, SIOCINQ)} poll {p.poll(0)[0][1]:#x}")
    steps(c, 4)
    c.send(b"2")
    print("done", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]))
    else:
        reader(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
