#!/usr/bin/env bash
# Issue 19, the client-side representation: what each chunk vector carries of its MFCC frames
# (`[features] frame_stats`: sum, standard deviation, mean absolute change) against the robust
# pipeline, on held-out audio (train 0–20 s, queries after) with seen and held-out degradation
# families (configs/representation/). Synthetic default → reports/representation/, the dev
# corpus → reports/representation-dev/, each with one ablation table (`fhe-shazam compare`).
# Needs ffmpeg (Opus).
source "$(dirname "$0")/common.sh"
run_configs configs/representation reports/representation
if have_dev; then
  run_configs configs/representation reports/representation-dev --dataset "$DEV_CORPUS"
fi
