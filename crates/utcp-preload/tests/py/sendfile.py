# socket.sendfile() (os.sendfile) from a regular file into a TCP socket: whole file, and a
# range with the file position left after it, as the kernel leaves it.
import os, socket, tempfile, threading
data = os.urandom(3 << 20)
path = tempfile.mktemp()
with open(path, "wb") as f:
    f.write(data)
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.create_connection(l.getsockname())
s, _ = l.accept()
got = bytearray()
def rd():
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        got.extend(b)
t = threading.Thread(target=rd); t.start()
with open(path, "rb") as f:
    assert c.sendfile(f) == len(data)
    assert f.tell() == len(data)
    assert c.sendfile(f, offset=1000, count=5000) == 5000
    assert f.tell() == 6000, f.tell()
    # os.sendfile with an explicit offset leaves the file position alone
    f.seek(7)
    assert os.sendfile(c.fileno(), f.fileno(), 10, 20) == 20
    assert f.tell() == 7
c.close(); t.join()
assert bytes(got) == data + data[1000:6000] + data[10:30], len(got)
os.unlink(path)
print("OK")
