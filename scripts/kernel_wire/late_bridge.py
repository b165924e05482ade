# Used by run.sh (late mode).
# TUN wire hk1<->hk2: one-way delay D ms; every Nth data segment (first transmission of its
# seq) from hk1 is delayed L ms more. Mirrors tests/undo.rs reordered().
import ctypes, os, fcntl, struct, select, sys, time, heapq
D, N, L = float(sys.argv[1]) / 1000, int(sys.argv[2]), float(sys.argv[3]) / 1000
libc = ctypes.CDLL("libc.so.6", use_errno=True)
def tun_in(ns, name):
    fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    assert libc.setns(fd, 0x40000000) == 0
    t = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(t, 0x400454ca, struct.pack("16sH", name.encode(), 0x1001))
    return t
a = tun_in("hk1", "tk1"); b = tun_in("hk2", "tk2")
print("ready", flush=True)
peer = {a: b, b: a}; q = []; nth = 0; held = set(); k = 0
while True:
    now = time.monotonic()
    while q and q[0][0] <= now:
        _, _, dst, f = heapq.heappop(q)
        try: os.write(dst, f)
        except OSError: pass
    to = max(0.0, q[0][0] - now) if q else 0.05
    r, _, _ = select.select([a, b], [], [], to)
    for s in r:
        f = os.read(s, 65536); t = time.monotonic() + D
        if s == a and len(f) >= 40 and f[9] == 6:
            ihl = (f[0] & 15) * 4; thl = (f[ihl + 12] >> 4) * 4
            plen = len(f) - ihl - thl; seq = struct.unpack("!I", f[ihl + 4:ihl + 8])[0]
            if plen > 0 and seq not in held:
                nth += 1
                if nth % N == 0:
                    held.add(seq); t += L
        k += 1; heapq.heappush(q, (t, k, peer[s], f))
