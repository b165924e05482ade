# A non-loopback destination: the in-process host has only lo, so no route (ENETUNREACH),
# at once; a closed loopback port is refused.
import errno, socket
c = socket.socket()
e = c.connect_ex(("192.0.2.1", 80))
assert e == errno.ENETUNREACH, errno.errorcode.get(e, e)
c = socket.socket()
assert c.connect_ex(("127.0.0.1", 9)) == errno.ECONNREFUSED
print("OK")
