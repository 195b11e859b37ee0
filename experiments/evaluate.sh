#!/usr/bin/env bash
# Issue 4: seed-protocol accuracy of every model in clear, simulate and execute (real FHE on
# every query), with the noise budget. Needs experiments/train.sh first.
source "$(dirname "$0")/common.sh"
sets=(synth)
have_dev && sets+=(dev)
for s in "${sets[@]}"; do
  features=data/features; [ "$s" = dev ] && features=data/features-dev
  $BIN evaluate --features "$features" --models "data/models-$s" --n-bits 2..12 --out "reports/evaluate-$s"
  $BIN evaluate --features "$features" --models "data/models-$s-std" --n-bits 2..12 --out "reports/evaluate-$s-std"
done
