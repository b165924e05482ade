#!/bin/bash
# The TUN figures of docs/PERFORMANCE.md, all in one run (as root): bulk TCP kernel->utcp and
# utcp->kernel over a tun device with offloads and in plain mode, next to kernel->kernel over
# a veth pair between two namespaces. Each transfer also reports the retransmissions of both
# sides and the kernel's tun-ring drops (all should be 0 on this clean link).
#   UTCP=target/release/utcp SZ=1073741824 scripts/tun_throughput.sh
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
UTCP=${UTCP:-$HERE/../target/release/utcp}; SZ=${SZ:-1073741824}; PY="python3 $HERE/tput.py"
NS=tput$$; TMP=$(mktemp -d)
trap 'ip netns del $NS 2>/dev/null; ip netns del ${NS}a 2>/dev/null; ip netns del ${NS}b 2>/dev/null; rm -rf $TMP' EXIT
ip netns add $NS; X="ip netns exec $NS"
$X sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n $NS link set lo up; ip -n $NS tuntap add dev tun0 mode tun
ip -n $NS addr add 10.77.0.1/24 dev tun0; ip -n $NS link set tun0 up
health() { # $1: utcp's counters file
  local k; k=$($X nstat -asz TcpRetransSegs | awk '/Retrans/ {print $2}')
  local u; u=$(awk '/^TcpRetransSegs/ {print $2}' "$1"); u=${u:-0}
  local d; d=$($X cat /sys/class/net/tun0/statistics/tx_dropped)
  echo "utcp rtx $u, kernel rtx total ${k:-0}, tun drops total $d"
}
for mode in "" "--no-offload"; do
  m=offload; [ -n "$mode" ] && m=plain
  $X "$UTCP" serve --tun tun0 --addr 10.77.0.2/24 --port 9 $mode discard >$TMP/s.nstat 2>/dev/null & P=$!
  sleep 0.5
  r=$($X $PY send 10.77.0.2 9 "$SZ"); kill -TERM $P; wait $P
  echo "kernel->utcp $m: $r; $(health $TMP/s.nstat)"
  $X $PY recv 10.77.0.1 5001 "$SZ" >$TMP/recv & R=$!; sleep 0.5
  $X "$UTCP" connect --tun tun0 --addr 10.77.0.2/24 $mode discard 10.77.0.1:5001 --bytes "$SZ" >$TMP/c.nstat 2>/dev/null
  wait $R; echo "utcp->kernel $m: $(tail -1 $TMP/recv); $(health $TMP/c.nstat)"
done
A=${NS}a; B=${NS}b; ip netns add $A; ip netns add $B
ip link add va$$ netns $A type veth peer name vb$$ netns $B
ip -n $A addr add 10.88.0.1/24 dev va$$; ip -n $B addr add 10.88.0.2/24 dev vb$$
for n in $A $B; do ip -n $n link set lo up; done
ip -n $A link set va$$ up; ip -n $B link set vb$$ up
ip netns exec $B $PY recv 10.88.0.2 5001 "$SZ" >$TMP/recv & R=$!; sleep 0.5
ip netns exec $A $PY send 10.88.0.2 5001 "$SZ" >/dev/null; wait $R
echo "kernel->kernel veth: $(tail -1 $TMP/recv)"
