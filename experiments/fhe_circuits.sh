#!/usr/bin/env bash
# Issue 17: the summed circuit against the chunks circuit on worst-case 8-bit models
# (`fhe-shazam bench fhe`), one core, J = 30: d = 20 at C = 400, 8 000 and all of FMA
# (106 574, summed only: the chunks reply would be ~290 MiB), and d = 40 (the robust model)
# at C = 400. Each pair runs back to back; reports/fhe-bench/summary.md puts them side by side
# with the model-download and Concrete ML baselines.
source "$(dirname "$0")/common.sh"
out=reports/fhe-bench
run() { $BIN bench fhe --out "$out" --json "$@" >/dev/null; }
if [ -n "${PRIVACY_ONLY-}" ]; then
  # Issue 20: the model-privacy option next to the plain protocol on the same queries (one
  # run each, interleaved per query), summed, C = 400, the seed's d = 20 and the robust d = 40,
  # at the λ the configs/privacy configs serve.
  for d in 20 40; do run --classes 400 --features "$d" --circuit summed --queries 200 --model-privacy 12; done
  cat "$out/summary.md"
  exit 0
fi
if [ -z "${SHAPES19_ONLY-}" ]; then
for shape in "--classes 400 --features 20" "--classes 8000 --features 20" "--classes 400 --features 40"; do
  # shellcheck disable=SC2086
  run $shape --circuit chunks --queries 30
  # shellcheck disable=SC2086
  run $shape --circuit summed --queries 100
done
run --classes 106574 --features 20 --circuit summed --queries 20
fi
# Issue 19's cost goal (C = 8000, ≤ 10 ms, ≤ 2 MiB down): the robust model (d = 40) and the
# 60-band one (d = 60), summed, back to back; SHAPES19_ONLY=1 runs only these.
for d in 40 60; do run --classes 8000 --features "$d" --circuit summed --queries 100; done
cat "$out/summary.md"
