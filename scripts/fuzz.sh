#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (the harnesses of crates/utcp-fuzz) for FUZZ_SECONDS each
# (default 30), on the stable toolchain: cargo-fuzz with `--sanitizer none` needs no -Z flag
# and so no nightly. Fails on any crash (a panic is an invariant broken), any input that runs
# longer than 10 s (-timeout=10, a hang), an RSS above 2 GiB, or any artifact left in
# fuzz/artifacts/. The committed corpus fuzz/corpus/<target>/ seeds each run; new inputs go to
# a scratch directory, so the committed corpus is never touched. Prints one line per target:
# inputs run, seconds.
#
#   FUZZ_SECONDS=60 scripts/fuzz.sh            # all targets
#   FUZZ_TARGETS="wire calls" scripts/fuzz.sh  # some
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-30}
targets=${FUZZ_TARGETS:-"packet_input wire calls drill_parser"}
version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $version"; then
  echo "== installing cargo-fuzz $version"
  cargo install --locked cargo-fuzz --version "$version"
fi
flags=(--sanitizer none --release --debug-assertions)
echo "== cargo fuzz build (${flags[*]})"
cargo fuzz build "${flags[@]}"
rm -rf artifacts
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
summary=""
for t in $targets; do
  mkdir -p "$scratch/$t"
  echo "== fuzz $t for ${seconds}s"
  if ! cargo fuzz run "${flags[@]}" "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$scratch/$t.log" 2>&1; then
    tail -60 "$scratch/$t.log"
    echo "fuzz: $t FAILED (artifacts in fuzz/artifacts/$t)"
    exit 1
  fi
  runs=$(grep -Eo '^Done [0-9]+ runs in [0-9]+ second' "$scratch/$t.log" | tail -1 | awk '{print $2 " inputs in " $5 " s"}' || true)
  summary="${summary}fuzz: $t: $runs\n"
done
if [ -n "$(find artifacts -type f 2>/dev/null)" ]; then
  find artifacts -type f
  echo "fuzz: artifacts left"
  exit 1
fi
printf "%b" "$summary"
