# python3 -m http.server's handler and a urllib client in ONE process: a 16 MiB file over
# 127.0.0.1, checked byte for byte.
import functools, hashlib, http.server, os, sys, tempfile, threading, urllib.request

root = tempfile.mkdtemp()
data = os.urandom(1 << 20) * 16
with open(os.path.join(root, "blob.bin"), "wb") as f:
    f.write(data)
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
handler = functools.partial(Quiet, directory=root)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
port = srv.server_address[1]
t = threading.Thread(target=srv.serve_forever, daemon=True)
t.start()
with urllib.request.urlopen(f"http://127.0.0.1:{port}/blob.bin", timeout=60) as r:
    body = r.read()
    assert r.status == 200, r.status
srv.shutdown()
srv.server_close()
assert len(body) == len(data), (len(body), len(data))
assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
print("OK", len(body))
