#!/usr/bin/env bash
# Issue 18, training on what the decision scores: chunk rows against window-sum rows (and
# windows off the chunk grid), for the seed's features and for the robust pipeline, on a held-out
# split (train 0–20 s, queries after) with seen and held-out degradation families
# (configs/windows/). Synthetic default → reports/windows/, the dev corpus → reports/windows-dev/,
# each with one ablation table (`fhe-shazam compare`). Needs ffmpeg (Opus).
source "$(dirname "$0")/common.sh"
run_configs configs/windows reports/windows
if have_dev; then
  run_configs configs/windows reports/windows-dev --dataset "$DEV_CORPUS"
fi
