# tests/orphans.rs on Linux: N connections filled towards a listener that never reads, closed
# GAP seconds apart; prints nstat's TCPAbortOnMemory, /proc/net/sockstat and ss after each close,
# then the RST/FIN/probe segments seen on lo. net.ipv4.tcp_max_orphans and the orphan count
# are host-wide: set it small in the initial namespace for the run and restore it after, e.g.
#   o=$(cat /proc/sys/net/ipv4/tcp_max_orphans); echo 2 > /proc/sys/net/ipv4/tcp_max_orphans
#   unshare -n python3 scripts/kernel_orphans.py 6 0.3; echo $o > /proc/sys/net/ipv4/tcp_max_orphans
# (other sockets of the host count as orphans too).
import socket, os, time, threading, struct, subprocess, sys
os.system("ip link set lo up")
N=int(sys.argv[1]) if len(sys.argv)>1 else 6
GAP=float(sys.argv[2]) if len(sys.argv)>2 else 0.3
T0=time.time()
log=[]
def cap():
    s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
    s.bind(("lo",0))
    while True:
        d=s.recv(65535)
        if len(d)<34 or d[12:14]!=b'\x08\x00' or d[23]!=6: continue
        ihl=(d[14]&15)*4; t=d[14+ihl:]
        sp,dp,seq,ack=struct.unpack("!HHII",t[:12]); fl=t[13]; win=struct.unpack("!H",t[14:16])[0]
        tot=struct.unpack("!H",d[16:18])[0]; plen=tot-ihl-(t[12]>>4)*4
        f="".join(c for c,b in zip("FSRPAU",[1,2,4,8,16,32]) if fl&b)
        log.append((time.time()-T0,sp,dp,f,seq,ack,win,plen))
threading.Thread(target=cap,daemon=True).start()
time.sleep(0.1)
ls=socket.socket(); ls.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,4096)
ls.bind(("127.0.0.1",5000)); ls.listen(64)
cl=[]; sv=[]
for i in range(N):
    c=socket.socket(); c.connect(("127.0.0.1",5000)); sv.append(ls.accept()[0]); c.setblocking(False)
    tot=0
    try:
        while True: tot+=c.send(b"x"*65536)
    except BlockingIOError: pass
    cl.append((c,c.getsockname()[1],tot))
print("filled", [(p,t) for _,p,t in cl])
time.sleep(0.5)
def st(tag):
    ns=subprocess.run("nstat -az TcpExtTCPAbortOnMemory TcpExtTCPAbortOnClose TcpExtTCPAbortOnTimeout | tail -n +2",shell=True,capture_output=True,text=True).stdout.split()
    sk=open("/proc/net/sockstat").read().split("\n")[1]
    ss=subprocess.run("ss -tanH state all '( sport = :%s )'" % "or sport = :".join(str(p) for _,p,_ in cl[:1]) ,shell=True,capture_output=True,text=True).stdout
    ss=subprocess.run("ss -tanoH",shell=True,capture_output=True,text=True).stdout
    print("%.3f %s nstat=%s | %s"%(time.time()-T0,tag," ".join(ns),sk))
    for l in ss.splitlines():
        if "127.0.0.1:5000" in l and not l.split()[3].endswith(":5000"): print("   ",l)
for i,(c,p,_) in enumerate(cl):
    c.close(); time.sleep(0.01); st("closed #%d port %d"%(i,p)); time.sleep(GAP)
for k in range(8):
    time.sleep(1); st("later")
for e in log:
    if e[3] not in ("A","PA") or e[7]==0 and e[2]==5000 and 'A'==e[3] and False: pass
    if 'R' in e[3] or 'F' in e[3] or (e[2]==5000 and e[7]<=1 and e[0]>0.5): print("%.3f %d>%d %s seq=%d ack=%d win=%d len=%d"%e)
