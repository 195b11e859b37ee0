#!/usr/bin/env bash
# Issue 15, held-out degradation families: the improved pipeline (00), it with c0 normalised
# (01), then one client-side feature change each (02 …), all trained on copies made by
# dataset/degrade.rs's first algorithms and tested on conditions made by other algorithms
# (configs/families/). Needs ffmpeg (GSM, Opus). Dev corpus → reports/families-dev/ (the goals are on real music), then one ablation table.
source "$(dirname "$0")/common.sh"
have_dev || exit 0
run_configs configs/families reports/families-dev --dataset "$DEV_CORPUS"
