#!/usr/bin/env bash
# Issue 15, held-out degradation families: the improved pipeline (00) and it with c0 normalised
# (01), trained on copies made by dataset/degrade.rs's first algorithms and tested on
# conditions made by other algorithms (configs/families/). Needs ffmpeg (GSM, Opus). Dev corpus
# → reports/families-dev/ (the goals are on real music), then one ablation table.
source "$(dirname "$0")/common.sh"
have_dev || exit 0
dirs=()
for cfg in configs/families/*.toml; do
  name=$(basename "$cfg" .toml)
  $BIN reproduce --config "$cfg" --dataset "$DEV_CORPUS" --out "reports/families-dev/$name" >/dev/null
  dirs+=("reports/families-dev/$name")
done
$BIN compare "${dirs[@]}" --out reports/families-dev/ablation.md
