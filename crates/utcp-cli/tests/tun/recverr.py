# IP_RECVERR on a real kernel socket: connects to HOST PORT (a port the test REJECTs with an
# ICMP error) and prints, one line per call, what connect, poll, SO_ERROR and
# recvmsg(MSG_ERRQUEUE) return. The utcp side (tun_interop.rs, recverr_child) prints the same
# lines for its socket.
import errno, select, socket, struct, sys

IP_RECVERR, MSG_ERRQUEUE = 11, 0x2000


def quoted(d):
    """The quoted TCP header: ports, flags and option kinds (not the ISN or timestamps)."""
    sport, dport, _, _, off, flags = struct.unpack("!HHIIBB", d[:14])
    opts, i, kinds = d[20:(off >> 4) * 4], 0, []
    while i < len(opts):
        kinds.append(opts[i])
        i += 1 if opts[i] in (0, 1) else opts[i + 1]
    return f"dport {dport} flags {flags:#x} hdr {(off >> 4) * 4} kinds {kinds}"


def main(host, port):
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    p = select.poll()
    p.register(s, select.POLLIN | select.POLLOUT | select.POLLPRI)
    try:
        s.connect((host, port))
        print("connect 0")
    except OSError as e:
        print(f"connect {errno.errorcode[e.errno]}")
    print(f"poll {p.poll(0)[0][1]:#x}")
    print(f"SO_ERROR {s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)}")
    while True:
        try:
            data, anc, flags, addr = s.recvmsg(4096, 1024, MSG_ERRQUEUE)
        except OSError as e:
            print(f"errqueue {errno.errorcode[e.errno]}")
            break
        print(f"errqueue {len(data)} flags {flags:#x} name {addr[0]}:{addr[1]} {quoted(data)}")
        for lvl, typ, d in anc:
            ee = struct.unpack("=IBBBBII", d[:16])
            fam, oport = struct.unpack("=HH", d[16:20])
            print(f"cmsg {lvl} {typ} {len(d)} ee {ee} offender {fam} {oport} {socket.inet_ntoa(d[20:24])} {d[24:32].hex()}")
        print(f"poll {p.poll(0)[0][1]:#x}")
    print(f"poll {p.poll(0)[0][1]:#x}")
    try:
        s.recv(10)
    except OSError as e:
        print(f"recv {errno.errorcode[e.errno]}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
