#!/usr/bin/env bash
# Issue 3: float + quantized models over n_bits 2..12, Concrete ML's quantization and ours
# (per-feature input ranges), on the synthetic default and the real-music dev corpus.
# Needs experiments/foundation.sh first (the feature sets).
source "$(dirname "$0")/common.sh"
sets=(synth)
have_dev && sets+=(dev)
for s in "${sets[@]}"; do
  features=data/features; [ "$s" = dev ] && features=data/features-dev
  $BIN train --features "$features" --n-bits 2..12 --out "data/models-$s"
  $BIN train --features "$features" --n-bits 2..12 --standardize-inputs --out "data/models-$s-std"
  mkdir -p "reports/train-$s"
  cp "data/models-$s/summary.md" "reports/train-$s/concrete.md"
  cp "data/models-$s/summary.json" "reports/train-$s/concrete.json"
  cp "data/models-$s-std/summary.md" "reports/train-$s/standardized.md"
  cp "data/models-$s-std/summary.json" "reports/train-$s/standardized.json"
done
