# Used by run.sh (brutal mode).
# A TUN-to-TUN wire between netns hk1 and hk2 with memlink's impairments (loss, dup,
# corrupt one bit, reorder: hold one frame until the next in that direction).
import ctypes, os, fcntl, struct, select, random, sys, time
LOSS, REORDER, DUP, CORRUPT = (float(x) for x in sys.argv[1:5]); SEED=int(sys.argv[5])
libc = ctypes.CDLL("libc.so.6", use_errno=True)
def tun_in(ns, name):
    fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    assert libc.setns(fd, 0x40000000) == 0
    t = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(t, 0x400454ca, struct.pack("16sH", name.encode(), 0x1001))
    return t
a = tun_in("hk1", "tk1"); b = tun_in("hk2", "tk2")
print("ready", flush=True)
rng = random.Random(SEED)
held = {a: None, b: None}
stats = dict(sent=0, lost=0, dup=0, corrupt=0, reorder=0)
peer = {a: b, b: a}
def out(src, f):
    try:
        os.write(peer[src], f)
    except OSError:
        pass
while True:
    r, _, _ = select.select([a, b], [], [], 0.002)
    if not r:
        for s in (a, b):
            if held[s] is not None:
                out(s, held[s]); held[s] = None
        continue
    for s in r:
        f = os.read(s, 65536); stats["sent"] += 1
        frames = []
        if rng.random() < LOSS:
            stats["lost"] += 1
        else:
            frames.append(f)
            if rng.random() < DUP: frames.append(f); stats["dup"] += 1
            if rng.random() < CORRUPT:
                i = rng.randrange(len(f) * 8); g = bytearray(f); g[i // 8] ^= 1 << (i % 8); frames[0] = bytes(g); stats["corrupt"] += 1
        prev = held[s]; held[s] = None
        if frames and prev is None and rng.random() < REORDER:
            held[s] = frames.pop(0); stats["reorder"] += 1
        for x in frames: out(s, x)
        if prev is not None: out(s, prev)
