# A signal whose handler has no SA_RESTART (Python's) ends a call asleep in the stack with
# EINTR: blocking recv, accept and send (with a full send buffer) raise the handler's
# exception; a handler that returns lets Python retry (PEP 475) and the data still arrives.
import signal, socket, threading

class Boom(Exception):
    pass

def boom(sig, frame):
    raise Boom()

signal.signal(signal.SIGALRM, boom)
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4)
c = socket.create_connection(l.getsockname())
s, _ = l.accept()

# (The buffer is made first: a signal that lands while Python builds it, before the call,
# is handled before the call starts, and the call then blocks — on the kernel too.)
big = b"x" * (64 << 20)
for what, call in [("recv", lambda: s.recv(10)), ("accept", lambda: l.accept()),
                   ("send", lambda: c.sendall(big))]:
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        call()
        raise SystemExit(f"{what}: returned")
    except Boom:
        pass

# Drain what the interrupted send left, then: a handler that returns, data later.
s.setblocking(False)
try:
    while s.recv(1 << 20):
        pass
except BlockingIOError:
    pass
s.setblocking(True)
hits = []
signal.signal(signal.SIGALRM, lambda *a: hits.append(1))
threading.Timer(0.6, lambda: c.sendall(b"late")).start()
signal.setitimer(signal.ITIMER_REAL, 0.1)
got = b""
while not got.endswith(b"late"):
    got += s.recv(100)
assert got.endswith(b"late") and hits == [1], (got[-10:], hits)
# sigaction read-back is the program's handler, not the library's wrapper
h = signal.getsignal(signal.SIGALRM)
assert callable(h) and h.__name__ == "<lambda>", h
print("OK")
