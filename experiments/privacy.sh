#!/usr/bin/env bash
# Issue 20: model privacy at C = 400 with the summed circuit. The seed protocol and the robust
# one (scale-robust's pipeline with its open set) served at λ = 12, each with the [extraction]
# stage (top-1 and the open set at every flood level, the extraction attack), then the
# option's cost next to the plain protocol on the same queries (`bench fhe --model-privacy`).
# Writes reports/privacy/{seed,robust}/summary.md and reports/fhe-bench/summary.md.
source "$(dirname "$0")/common.sh"
for cfg in seed robust; do
  $BIN reproduce --config "configs/privacy/$cfg.toml" >/dev/null
  echo "reports/privacy/$cfg/summary.md"
done
PRIVACY_ONLY=1 bash "$(dirname "$0")/fhe_circuits.sh" >/dev/null
echo "reports/fhe-bench/summary.md"
