#!/bin/bash
# Linux's TCP (cubic) over a TUN-to-TUN wire between two namespaces (hk1 -> hk2) with
# impairments, to compare with utcp on memlink: the kernel figures of tests/brutal_wire.rs and
# tests/undo.rs. Root; creates and deletes the namespaces hk1 and hk2.
#   run.sh BYTES brutal LOSS REORDER DUP CORRUPT SEED   memlink's impairments (brutal_bridge.py)
#   run.sh BYTES late DELAY_MS NTH LATE_MS              every NTH data segment LATE_MS late
N=$1; SEED=${7:-1}
ip netns del hk1 2>/dev/null; ip netns del hk2 2>/dev/null
ip netns add hk1; ip netns add hk2
here=$(dirname "$0")
log=$(mktemp)
if [ "$2" = late ]; then
  python3 "$here/late_bridge.py" $3 $4 $5 > "$log" 2>&1 &
else
  python3 "$here/brutal_bridge.py" $3 $4 $5 $6 $SEED > "$log" 2>&1 &
fi
BR=$!
trap 'kill $BR; ip netns del hk1; ip netns del hk2; rm -f "$log"' EXIT
for i in $(seq 50); do grep -q ready "$log" && break; sleep 0.1; done
ip -n hk1 link set lo up; ip -n hk2 link set lo up
ip -n hk1 addr add 10.9.0.1/24 dev tk1; ip -n hk2 addr add 10.9.0.2/24 dev tk2
ip -n hk1 link set tk1 up mtu 1500; ip -n hk2 link set tk2 up mtu 1500
ip netns exec hk2 python3 -c "
import socket
ls=socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,1); ls.bind(('10.9.0.2',5001)); ls.listen(1)
s,_=ls.accept(); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b'cubic'); n=0
while True:
    b=s.recv(1<<20)
    if not b: break
    n+=len(b)
print('server got',n)
" &
SV=$!
sleep 0.3
ip netns exec hk1 python3 -c "
import socket,time,os
c=socket.socket(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b'cubic')
data=os.urandom(1<<16)*($N>>16); t0=time.time(); c.connect(('10.9.0.2',5001)); c.sendall(data); c.shutdown(socket.SHUT_WR); c.recv(1); print('kernel: %d bytes in %.1f s'%($N, time.time()-t0))
"
wait $SV
for ns in hk1; do echo "$ns: $(ip netns exec $ns nstat -az TcpOutSegs TcpRetransSegs TcpExtTCPTimeouts TcpExtTCPLossProbes TcpExtTCPLossProbeRecovery TcpExtTCPSackRecovery TcpExtTCPFullUndo TcpExtTCPPartialUndo TcpExtTCPLossUndo TcpExtTCPDSACKUndo TcpExtTCPSpuriousRTOs TcpExtTCPSACKReorder TcpExtTCPTSReorder TcpExtTCPDSACKRecv| tail -n +2 | awk '$2>0{printf "%s=%s ",$1,$2}')"; done
