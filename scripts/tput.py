# Bulk TCP on kernel sockets for tun_throughput.sh: `send ADDR PORT BYTES` connects and
# sends; `recv ADDR PORT BYTES` listens, accepts one connection and reads to EOF. Prints
# "GB/s (bytes in seconds)", timed from the first byte to the last.
import socket, sys, time

mode, addr, port, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
buf = bytearray(1 << 20)
if mode == "send":
    s = socket.create_connection((addr, port))
    t, n, mv = time.time(), 0, memoryview(buf)
    while n < size:
        k = min(len(buf), size - n)
        s.sendall(mv[:k])
        n += k
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    dt = time.time() - t
else:
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, port))
    l.listen(1)
    print("ready", flush=True)
    c, _ = l.accept()
    t, n = time.time(), 0
    while True:
        k = c.recv_into(buf)
        if not k:
            break
        n += k
    dt = time.time() - t
    c.close()
print(f"{n / dt / 1e9:.3f} GB/s ({n} bytes in {dt:.2f}s)", flush=True)
