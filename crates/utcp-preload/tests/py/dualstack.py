# A dual-stack server (AF_INET6 on [::] with IPV6_V6ONLY=0: utcp's under the library) and
# AF_INET clients to 127.0.0.1: blocking, non-blocking, options set before connect, a bound
# client; an AF_INET listener still takes its AF_INET clients, and a closed port is refused.
import errno, os, select, socket, threading, urllib.request, http.server

T = socket.IPPROTO_TCP
srv = socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True)
port = srv.getsockname()[1]

# Blocking, with options set before connect: the fd, its options and close-on-exec carry over.
c = socket.socket()
c.setsockopt(T, socket.TCP_NODELAY, 1)
c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
c.setsockopt(T, socket.TCP_KEEPIDLE, 77)
c.settimeout(10)
fd = c.fileno()
c.connect(("127.0.0.1", port))
assert c.fileno() == fd
assert not os.get_inheritable(fd)
assert c.getsockopt(T, socket.TCP_NODELAY) == 1
assert c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
assert c.getsockopt(T, socket.TCP_KEEPIDLE) == 77
s, peer = srv.accept()
assert peer[0] == "::ffff:127.0.0.1", peer
assert c.getpeername() == ("127.0.0.1", port)
blob = os.urandom(1 << 20)
threading.Thread(target=c.sendall, args=(blob,)).start()
got = bytearray()
while len(got) < len(blob):
    got += s.recv(65536)
assert got == blob
s.sendall(b"pong")
assert c.recv(4) == b"pong"
c.close()
s.close()

# Non-blocking: EINPROGRESS (or at once), writable, no error.
n = socket.socket()
n.setblocking(False)
e = n.connect_ex(("127.0.0.1", port))
assert e in (0, errno.EINPROGRESS), e
_, w, _ = select.select([], [n], [], 10)
assert w == [n] and n.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
s2, _ = srv.accept()
n.send(b"hi")
assert s2.recv(2) == b"hi"
n.close()
s2.close()

# A client bound first keeps its address (and its port, unless the kernel has that one in use
# already: utcp's port space is its own).
b = socket.socket()
b.bind(("127.0.0.1", 0))
b.connect(("127.0.0.1", port))
s3, peer = srv.accept()
assert peer == ("::ffff:127.0.0.1", b.getsockname()[1], 0, 0), (peer, b.getsockname())
b.close()
s3.close()

# A port the kernel holds can be bound on utcp (its port space is its own: on the kernel this
# bind fails); the handed-over connect then takes another port from the kernel.
k6 = socket.socket(socket.AF_INET6)
k6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
k6.bind(("::", 0))
taken = k6.getsockname()[1]
b2 = socket.socket()
try:
    b2.bind(("127.0.0.1", taken))
except OSError as e:
    assert e.errno == errno.EADDRINUSE, e
else:
    b2.connect(("127.0.0.1", port))
    s5, peer = srv.accept()
    assert peer[1] == b2.getsockname()[1] != taken, (peer, taken)
    s5.close()
b2.close()
k6.close()

# http.server's default (dual-stack on [::]) and urllib over 127.0.0.1.
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
class DualStack(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
h = DualStack(("::", 0), Quiet)
threading.Thread(target=h.serve_forever, daemon=True).start()
body = urllib.request.urlopen(f"http://127.0.0.1:{h.server_address[1]}/", timeout=10).read()
assert b"Directory listing" in body
h.shutdown()
srv.close()

# An AF_INET listener takes its AF_INET clients as before.
l = socket.create_server(("127.0.0.1", 0))
c4 = socket.create_connection(("127.0.0.1", l.getsockname()[1]))
s4, _ = l.accept()
c4.sendall(b"v4")
assert s4.recv(2) == b"v4"
# No listener at all: refused.
r = socket.socket()
assert r.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED
print("OK")
