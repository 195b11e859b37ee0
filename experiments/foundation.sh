#!/usr/bin/env bash
# Issue 2: synthesise the default corpus, extract features, and benchmark extraction
# (decode, resample, MFCC per song; one thread and all threads) on it and on real music.
source "$(dirname "$0")/common.sh"
$BIN synth --songs 400 --seconds 30 --seed 42 --out data/synth
$BIN extract --dataset data/synth --out data/features
$BIN bench extract --dataset data/synth --songs 100 --out reports/bench-extract-synth
if have_dev; then
  $BIN extract --dataset "$DEV_CORPUS" --out data/features-dev
  $BIN bench extract --dataset "$DEV_CORPUS" --songs 100 --out reports/bench-extract-dev
fi
