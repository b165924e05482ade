# UDP, AF_UNIX and pipes only: all the kernel's (the stack is never created).
import os, socket
u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u1.bind(("127.0.0.1", 0))
u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u2.sendto(b"d", u1.getsockname())
assert u1.recv(10) == b"d"
a, b = socket.socketpair(); a.send(b"u"); assert b.recv(10) == b"u"
r, w = os.pipe(); os.write(w, b"p"); assert os.read(r, 10) == b"p"
print("OK")
