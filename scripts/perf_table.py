# Prints the markdown table of docs/PERFORMANCE.md from the JSON files scripts/perf_table.sh wrote.
import json, sys, os
O = sys.argv[1] if len(sys.argv) > 1 else 'target/perf_table'
def load(n):
    p = os.path.join(O, n + '.json')
    try: return json.load(open(p))
    except Exception as e: return None
def g(d, path):
    for k in path.split('.'):
        if not isinstance(d, dict) or k not in d: return None
        d = d[k]
    return d
def f(x, fmt='{:.2f}'):
    return '–' if x is None else fmt.format(x)
def r(a, b):
    return '–' if a is None or b is None or b == 0 else '{:.2f}×'.format(a / b)
BAD = ['TcpRetransSegs','TcpExtTCPLossProbes','TcpExtTCPTimeouts','TcpExtTCPOFOQueue','TcpExtTCPDSACKRecv']
def bad(d):
    if not d: return ''
    out = []
    for side in ('client', 'server'):
        for k in BAD:
            v = g(d, f'mib.{side}.{k}')
            if v: out.append(f'{side}.{k}={v}')
    return ' '.join(out) or 'clean'
rows = []
d = load('bulk_rr')
if d:
    u, k, s = g(d,'bulk.gbytes_per_s'), g(d,'kernel.bulk.gbytes_per_s'), g(d,'peers.smoltcp.bulk.gbytes_per_s')
    rows.append(('bulk 512 MiB, MTU 1500, checksums (GB/s)', f(u), f(k), f(s), r(u,k), r(u,s), bad(d) + f" gro={g(d,'config.gro')}"))
    for q in ('p50','p99'):
        u, k, s = g(d,f'rr.rtt_us.{q}'), g(d,f'kernel.rr.rtt_us.{q}'), g(d,f'peers.smoltcp.rr.rtt_us.{q}')
        rows.append((f'rr 1 B blocking {q} (µs)', f(u,'{:.1f}'), f(k,'{:.1f}'), f(s,'{:.1f}'), r(k,u)+' (kernel/utcp)', r(s,u)+' (smoltcp/utcp)', ''))
    rows.append(('alloc per received segment', f(g(d,'alloc.per_segment'),'{:.4f}'), '', '', '', '', ''))
d = load('busy')
if d:
    for q in ('p50','p99'):
        u, k, s = g(d,f'rr.rtt_us.{q}'), g(d,f'kernel.rr.rtt_us.{q}'), g(d,f'peers.smoltcp.rr.rtt_us.{q}')
        rows.append((f'rr 1 B busy-poll 50 µs {q} (µs)', f(u,'{:.1f}'), f(k,'{:.1f}'), f(s,'{:.1f}'), r(k,u)+' (kernel/utcp)', r(s,u)+' (smoltcp/utcp)', ''))
d = load('gso')
if d:
    u, k = g(d,'bulk.gbytes_per_s'), g(d,'kernel.bulk.gbytes_per_s')
    rows.append(('bulk 1 GiB --gso 64 KiB (GB/s)', f(u), f(k), '', r(u,k), '', bad(d)))
for cc in ('cubic','bbr'):
    for L in ('0.01','0.05'):
        d = load(f'loss_{cc}_{L}')
        if d:
            u, k = g(d,'bulk.gbytes_per_s'), g(d,'kernel.bulk.gbytes_per_s')
            rows.append((f'bulk 64 MiB loss {float(L)*100:.0f}% {cc} (MB/s)', f(u and u*1000,'{:.1f}'), f(k and k*1000,'{:.1f}'), '', r(u,k), '', f"utcp RTOs {g(d,'mib.client.TcpExtTCPTimeouts')}/{g(d,'mib.server.TcpExtTCPTimeouts')}"))
for N in (1,10,100,1000,10000):
    d = load(f'streams_{N}')
    if d:
        u, k = g(d,'bulk.gbytes_per_s'), g(d,'kernel.bulk.gbytes_per_s')
        rows.append((f'streams {N}, 256 MiB total (GB/s)', f(u), f(k), '', r(u,k), '', bad(d)))
for N in (10000, 100000):
    d = load(f'idle_{N}')
    if d:
        rows.append((f'idle {N} (B/socket RSS growth)', f(g(d,'idle.bytes_per_socket'),'{:.0f}'), '', '', '', '', f"setup {f(g(d,'idle.setup_per_s') or g(d,'idle.connections_per_s'),'{:.0f}')}/s"))
print('| workload | utcp | kernel | smoltcp | utcp/kernel | utcp/smoltcp | notes |')
print('|---|---|---|---|---|---|---|')
for row in rows: print('| ' + ' | '.join(row) + ' |')
