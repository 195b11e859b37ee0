#!/usr/bin/env bash
# Issue 15, level invariance: the improved pipeline with features as recorded, with c0
# normalised, and with every coefficient normalised (configs/level/), each on the standard
# conditions plus quiet10/20/30 and loud10, and each on every condition recorded −30 dB and
# +10 dB. Synthetic default corpus → reports/level/, the dev corpus (when there) →
# reports/level-dev/; then one ablation table each (`fhe-shazam compare`).
source "$(dirname "$0")/common.sh"
if have_dev; then
  run_configs configs/level reports/level-dev --dataset "$DEV_CORPUS"
fi
run_configs configs/level reports/level
