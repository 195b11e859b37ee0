#!/usr/bin/env bash
# Issue 16, open-set identification: each model's rejection threshold calibrated on songs kept
# out of the catalogue, false matches measured on other such songs, identification on catalogue
# songs (configs/open-set/). Synthetic default at C = 400 → reports/open-set/synth; the dev
# corpus (the goals are on real music) → reports/open-set/dev.
source "$(dirname "$0")/common.sh"
$BIN reproduce --config configs/open-set/synth.toml >/dev/null
$BIN reproduce --config configs/open-set/synth-best.toml >/dev/null
$BIN reproduce --config configs/open-set/synth-zscore.toml >/dev/null
# The margin in units of the catalogue's spread (issue 19).
$BIN reproduce --config configs/open-set/synth-gap.toml >/dev/null
have_dev || exit 0
$BIN reproduce --config configs/open-set/dev.toml --dataset "$DEV_CORPUS" >/dev/null
# The other confidence (the winner's mean log-posterior), one change from each config above.
$BIN reproduce --config configs/open-set/dev-best.toml --dataset "$DEV_CORPUS" >/dev/null
# The winner's z-score against all C songs' summed log-probabilities.
$BIN reproduce --config configs/open-set/dev-zscore.toml --dataset "$DEV_CORPUS" >/dev/null
$BIN reproduce --config configs/open-set/dev-gap.toml --dataset "$DEV_CORPUS" >/dev/null
