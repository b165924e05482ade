#!/bin/bash
# One run of each bench of issue 9's table (docs/PERFORMANCE.md). Usage: scripts/perf_table.sh [BIN] [OUTDIR];
# then python3 scripts/perf_table.py OUTDIR prints the markdown table. Needs root for --kernel --loss.
B=${1:-target/release/utcp}; O=${2:-target/perf_table}; mkdir -p $O
set -x
$B bench --bytes 512M --round-trips 20000 --kernel --peers --json --no-progress > $O/bulk_rr.json 2>$O/bulk_rr.err
$B bench --bytes 128M --busy-poll 50 --kernel --peers --json --no-progress > $O/busy.json 2>$O/busy.err
$B bench --bytes 1G --gso --round-trips 1 --warmup 0 --kernel --json --no-progress > $O/gso.json 2>$O/gso.err
for L in 0.01 0.05; do
  $B bench --bytes 64M --loss $L --kernel --round-trips 1000 --json --no-progress > $O/loss_cubic_$L.json 2>$O/loss_cubic_$L.err
  $B bench --bytes 64M --loss $L --kernel --congestion bbr --kernel-congestion bbr --round-trips 1000 --json --no-progress > $O/loss_bbr_$L.json 2>$O/loss_bbr_$L.err
done
for N in 1 10 100 1000 10000; do
  K=--kernel; [ $N = 10000 ] && K=   # the kernel side needs 2N fds; this shell allows 20,000
  $B bench --bytes 256M --streams $N $K --round-trips 1 --warmup 0 --json --no-progress > $O/streams_$N.json 2>$O/streams_$N.err
done
$B bench --idle 10000 --json --no-progress > $O/idle_10000.json 2>$O/idle_10000.err
$B bench --idle 100000 --json --no-progress > $O/idle_100000.json 2>$O/idle_100000.err
