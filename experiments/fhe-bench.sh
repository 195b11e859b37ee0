#!/usr/bin/env bash
# Issue 4: encrypted scoring speed and bytes for J = 30, d = 20 and C = 400 / 1000 / 8000,
# 1 and 2 threads, plus the layout comparison (benches/fhe.rs), written to reports/fhe-bench/;
# then the summed against the chunks circuit (issue 17, fhe_circuits.sh).
source "$(dirname "$0")/common.sh"
out=reports/fhe-bench
mkdir -p "$out"
tmp=$(mktemp)
FHE_BENCH_TABLE_ONLY=1 cargo bench --quiet --bench fhe > "$tmp"
{
  echo "# Encrypted scoring benchmark"
  echo
  echo "Command: \`FHE_BENCH_TABLE_ONLY=1 cargo bench --bench fhe\` (experiments/fhe-bench.sh)."
  echo "Commit $(git rev-parse --short=12 HEAD), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(nproc) cores), $(date -u +%FT%TZ)."
  echo
  cat "$tmp"
} > "$out/.bench.md.tmp" && mv "$out/.bench.md.tmp" "$out/bench.md"
rm -f "$tmp"
cat "$out/bench.md"
bash "$(dirname "$0")/fhe_circuits.sh"
