# One short exchange over 127.0.0.1, then both ends close (the UTCP_LOG test traces it).
import socket
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen()
c = socket.create_connection(l.getsockname())
s, _ = l.accept()
c.sendall(b"hello")
assert s.recv(16) == b"hello"
c.close()
assert s.recv(16) == b""
s.close()
l.close()
print("OK")
