# A splice relay: 16 MiB from a client socket through a pipe into a second connection with
# os.splice (socket -> pipe, pipe -> socket), as a zero-copy proxy does, checked byte for byte;
# then end of stream passes through as 0.
import hashlib, os, socket, threading

N = 16 << 20
blob = hashlib.shake_256(b"splice").digest(N)
l = socket.create_server(("127.0.0.1", 0))
port = l.getsockname()[1]
src = socket.create_connection(("127.0.0.1", port))
a, _ = l.accept()
dst = socket.create_connection(("127.0.0.1", port))
b, _ = l.accept()
r, w = os.pipe()
moved = []

def relay():
    total = 0
    while True:
        n = os.splice(a.fileno(), w, 1 << 16)
        if n == 0:
            break
        while n:
            m = os.splice(r, b.fileno(), n)
            assert m > 0
            n -= m
            total += m
    b.shutdown(socket.SHUT_WR)
    moved.append(total)

def send():
    src.sendall(blob)
    src.shutdown(socket.SHUT_WR)

threads = [threading.Thread(target=relay), threading.Thread(target=send)]
for t in threads:
    t.start()
got = bytearray()
while True:
    d = dst.recv(1 << 16)
    if not d:
        break
    got += d
for t in threads:
    t.join()
assert moved == [N], moved
assert len(got) == N and got == blob, len(got)
print("OK", N)
