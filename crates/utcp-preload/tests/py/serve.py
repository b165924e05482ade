# `python3 -m http.server ARGS…`, exiting cleanly (atexit runs: UTCP_STAT_FILE is written) on
# SIGTERM; SIGINT is ignored in a background job, so the module's own Ctrl-C exit is no use.
import runpy, signal, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
sys.argv = ["http.server"] + sys.argv[1:]
runpy.run_module("http.server", run_name="__main__")
