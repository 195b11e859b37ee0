#!/usr/bin/env bash
# Issue 8: accuracy, FHE latency and reply bytes, training time against the catalog size.
# configs/scale.toml at C = 100, 400, 1000, 2000 synthetic songs (SIZES="…" to change) →
# reports/scale/cN/ per size and reports/scale/summary.md (`fhe-shazam compare`, one line per size).
source "$(dirname "$0")/common.sh"
SIZES=${SIZES:-"100 400 1000 2000"}
dirs=()
for n in $SIZES; do
  cfg=$(mktemp --suffix=.toml)
  sed -e "s/^num_songs = .*/num_songs = $n/" -e "s/^songs = .*/songs = $n/" \
      -e "s/^name = .*/name = \"scale-c$n\"/" configs/scale.toml > "$cfg"
  /usr/bin/time -v $BIN reproduce --config "$cfg" --out "reports/scale/c$n" >/dev/null 2> "reports/scale/c$n.time.txt" \
    || { cat "reports/scale/c$n.time.txt"; exit 1; }
  rm -f "$cfg"
  dirs+=("reports/scale/c$n")
done
$BIN compare "${dirs[@]}" --out reports/scale/summary.md
