# Kernel listeners of another process (started without the library) on [::1] and on [::]
# dual-stack: this process's AF_INET6 clients to [::1]:port, and to ::ffff:127.0.0.1 for the
# dual-stack one, are handed to the kernel (same fd, options and close-on-exec carried over)
# and talk to them; a port nobody listens on is refused.
import os, socket, subprocess, sys

SERVER = r"""
import socket, sys, threading
a = socket.socket(socket.AF_INET6); a.bind(("::1", 0)); a.listen()
b = socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True)
print(a.getsockname()[1], b.getsockname()[1], flush=True)
def serve(s):
    while True:
        c, peer = s.accept()
        c.sendall(repr((peer[0], c.getsockname()[0])).encode() + b"\n"); c.close()
for s in (a, b):
    threading.Thread(target=serve, args=(s,), daemon=True).start()
sys.stdin.read()
"""
env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "UTCP_STAT_FILE")}
p = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
p1, p2 = map(int, p.stdout.readline().split())

def ask(addr):
    c = socket.socket(socket.AF_INET6)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    fd = c.fileno()
    c.settimeout(10)
    c.connect(addr)
    assert c.fileno() == fd and not os.get_inheritable(fd)
    assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    line = c.makefile().readline().strip()
    print(addr[0], "->", line, c.getpeername()[0])
    c.close()

ask(("::1", p1))
ask(("::1", p2))
ask(("::ffff:127.0.0.1", p2))
s = socket.socket(socket.AF_INET6)
l = socket.socket(socket.AF_INET6); l.bind(("::1", 0)); free = l.getsockname()[1]; l.close()
try:
    s.connect(("::1", free))
    print("connected?")
except ConnectionRefusedError:
    print("refused")
p.stdin.close(); p.wait()
print("done")
