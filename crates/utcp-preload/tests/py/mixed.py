# Readiness over sets that mix utcp sockets with kernel fds (a pipe, a UDP socket pair, an
# AF_UNIX pair: these must stay the kernel's), through poll, select and epoll, level- and
# edge-triggered; non-blocking connect must not look writable before it completes.
import errno, os, select, selectors, socket

def pair():
    l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4)
    c = socket.socket(); c.setblocking(False)
    e = c.connect_ex(l.getsockname())
    assert e in (0, errno.EINPROGRESS), e
    s, _ = l.accept()
    # the connect completes: writable, SO_ERROR 0
    _, w, _ = select.select([], [c], [], 5)
    assert w == [c], w
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    c.setblocking(True)
    l.close()
    return c, s

c, s = pair()
r, w = os.pipe()
u1, u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u1.bind(("127.0.0.1", 0)); u2.connect(u1.getsockname())
a1, a2 = socket.socketpair()

# Nothing readable yet: every API times out.
assert select.select([s, r, u1, a1], [], [], 0.05) == ([], [], [])
p = select.poll()
for f in (s, r, u1, a1):
    p.register(f, select.POLLIN)
assert p.poll(50) == []
ep = select.epoll()
ep.register(s.fileno(), select.EPOLLIN | select.EPOLLET)
ep.register(r, select.EPOLLIN)
ep.register(u1.fileno(), select.EPOLLIN)
assert ep.poll(0.05) == []

# A kernel fd becomes readable: reported alone.
os.write(w, b"x")
assert select.select([s, r], [], [], 5)[0] == [r]
assert p.poll(5000) == [(r, select.POLLIN)]
assert ep.poll(5) == [(r, select.EPOLLIN)]
os.read(r, 1)

# The utcp socket becomes readable: reported alone, by each API.
c.sendall(b"hello")
assert select.select([s, r, u1], [], [], 5)[0] == [s]
assert p.poll(5000) == [(s.fileno(), select.POLLIN)]
assert ep.poll(5) == [(s.fileno(), select.EPOLLIN)]
assert ep.poll(0.05) == []  # edge-triggered: no second report without new data
assert s.recv(100) == b"hello"

# Both kinds at once, and a UDP datagram and AF_UNIX bytes through the kernel.
c.sendall(b"more"); u2.send(b"dgram"); a2.send(b"unix")
got = set()
for _ in range(20):
    for fd, ev in p.poll(1000):
        got.add(fd)
    if {s.fileno(), u1.fileno(), a1.fileno()} <= got:
        break
assert {s.fileno(), u1.fileno(), a1.fileno()} <= got, got
assert u1.recv(100) == b"dgram" and a1.recv(100) == b"unix"

# A blocked poll is woken by utcp data sent from another thread.
import threading
assert s.recv(100) == b"more"
threading.Timer(0.2, lambda: c.sendall(b"late")).start()
sel = selectors.DefaultSelector()
sel.register(s, selectors.EVENT_READ); sel.register(r, selectors.EVENT_READ)
ev = sel.select(10)
assert [k.fileobj for k, _ in ev] == [s], ev
assert s.recv(100) == b"late"

# EOF / hang-up shows as readable.
c.close()
assert select.select([s], [], [], 5)[0] == [s]
assert s.recv(100) == b""
print("OK")

# fstat: a TCP socket is a socket (S_IFSOCK), distinct sockets have distinct inodes, a dup
# shares its socket's.
import stat
a, b = pair()
sa, sb, sd = os.fstat(a.fileno()), os.fstat(b.fileno()), os.fstat(os.dup(a.fileno()))
assert stat.S_ISSOCK(sa.st_mode) and stat.S_ISSOCK(sb.st_mode), oct(sa.st_mode)
assert sa.st_ino != sb.st_ino and sa.st_ino == sd.st_ino, (sa.st_ino, sb.st_ino, sd.st_ino)
print("OK fstat")
