# fork: the child gets kernel TCP for new sockets and cannot touch the parent's utcp
# connections; the parent's connection carries on unharmed.
import errno, os, socket

l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4)
c = socket.create_connection(l.getsockname())
s, _ = l.accept()
c.sendall(b"before")
assert s.recv(100) == b"before"
pid = os.fork()
if pid == 0:
    code = 0
    try:
        c.send(b"child")  # the inherited placeholder is no socket in the child
        code = 1
    except OSError as e:
        if e.errno != errno.ENOTSOCK:
            code = 2
    # a new TCP socket in the child is the kernel's, and works
    kl = socket.socket(); kl.bind(("127.0.0.1", 0)); kl.listen(1)
    kc = socket.create_connection(kl.getsockname())
    ks, _ = kl.accept()
    kc.sendall(b"kernel")
    if ks.recv(100) != b"kernel":
        code = 3
    os._exit(code)
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
c.sendall(b"after")
assert s.recv(100) == b"after"
s.sendall(b"back")
assert c.recv(100) == b"back"
print("OK")
