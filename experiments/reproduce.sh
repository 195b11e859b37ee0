#!/usr/bin/env bash
# Issue 5: the seed experiment and the n_bits sweeps, on the synthetic default corpus and, when it
# is there, on the real-music dev corpus (shared/corpus/build_dev_corpus.sh). Reports go to
# reports/<config>[-dev]/ (results.csv/json, summary.md, plots, config.toml).
source "$(dirname "$0")/common.sh"
for cfg in reproduce sweep-nbits sweep-nbits-perfeature; do
  $BIN reproduce --config "configs/$cfg.toml" --out "reports/$cfg"
  if have_dev; then
    $BIN reproduce --config "configs/$cfg.toml" --dataset "$DEV_CORPUS" --out "reports/$cfg-dev"
  fi
done
