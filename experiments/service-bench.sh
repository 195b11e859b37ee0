#!/usr/bin/env bash
# Issue 7: the encrypted identification service on loopback at C = 400 — round-trip latency
# (median, p95) and bytes per identification, throughput under 8 concurrent clients, resident
# memory before/after (benches/service.rs), written to reports/service-bench/.
# Data: a 400-song synthetic corpus (16 s per song: enough for J = 30 half-second chunks)
# under data/service-bench/ (gitignored), built once and reused.
source "$(dirname "$0")/common.sh"
BIN="${CARGO_TARGET_DIR:-target}/release/fhe-shazam"
data=data/service-bench
"$BIN" synth --songs 400 --seconds 16 --out "$data/synth"
"$BIN" extract --dataset "$data/synth" --out "$data/features"
[ -f "$data/models/q8.json" ] || "$BIN" train --features "$data/features" --out "$data/models" --n-bits 8 --standardize-inputs
SERVICE_BENCH_MODEL="$data/models/q8.json" SERVICE_BENCH_DATASET="$data/synth" \
  SERVICE_BENCH_OUT=reports/service-bench cargo bench --quiet --bench service
