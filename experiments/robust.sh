#!/usr/bin/env bash
# Issue 6: the robust protocol and its ablation. Each config in configs/robust/ changes one thing
# (00 the seed pipeline … 04 the improved one; 05 the held-out split; 06 the improved model on the
# seed protocol). Runs on the synthetic default corpus → reports/robust/NN-*/ and, when it is
# there, on the real-music dev corpus → reports/robust-dev/NN-*/; then one ablation table each
# (`fhe-shazam compare`).
source "$(dirname "$0")/common.sh"
run_configs configs/robust reports/robust
if have_dev; then
  run_configs configs/robust reports/robust-dev --dataset "$DEV_CORPUS"
fi
