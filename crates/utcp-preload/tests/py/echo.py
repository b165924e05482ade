import socket, threading, os, hashlib
N = 16 << 20
data = os.urandom(1 << 20) * 16
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(8)
port = srv.getsockname()[1]
def serve():
    c, _ = srv.accept()
    while True:
        b = c.recv(65536)
        if not b: break
        c.sendall(b)
    c.close()
t = threading.Thread(target=serve); t.start()
cl = socket.create_connection(("127.0.0.1", port))
got = bytearray()
def rd():
    while True:
        b = cl.recv(65536)
        if not b: break
        got.extend(b)
r = threading.Thread(target=rd); r.start()
cl.sendall(data); cl.shutdown(socket.SHUT_WR)
r.join(); t.join(); cl.close(); srv.close()
assert bytes(got) == data, (len(got), len(data))
print("OK", len(got))
