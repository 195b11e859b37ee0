#!/usr/bin/env bash
# Issue 8: accuracy, FHE latency and reply bytes, training time and memory against the catalog size.
# configs/scale.toml (seed model + landmark) at SIZES synthetic songs, configs/scale-aug40.toml (the
# augmented 40-coefficient model) at AUG_SIZES, configs/scale-lda.toml (the closed-form LDA
# trainer, issue 18) at every size, configs/scale-robust{,60}.toml (issue 19: the robust pipeline
# and its 60-band variant with the open-set threshold) at ROBUST_SIZES / ROBUST60_SIZES, and the
# REAL configs (scale, scale-lda, scale-robust{,60}, scale-heldout{,60}) on the real dev corpus when present
# → reports/scale/<family>-c<N>/ per run and reports/scale/summary.md + plots (`fhe-shazam scale-report`).
# Training times are wall clock: run it on an otherwise idle machine.
source "$(dirname "$0")/common.sh"
SIZES=${SIZES-"100 400 1000 2000 8000"}
AUG_SIZES=${AUG_SIZES-"400 1000 2000"}
LDA_SIZES=${LDA_SIZES-$SIZES}
# Issue 19: the robust pipeline with the open-set threshold (configs/scale-robust.toml) and the
# same with 60 coefficients of 60 mel bands (configs/scale-robust60.toml).
ROBUST_SIZES=${ROBUST_SIZES-$SIZES}
ROBUST60_SIZES=${ROBUST60_SIZES-$SIZES}
# Songs an open-set config keeps out of the catalogue (calibration + impostor), 0 otherwise.
kept_out() { awk -F' *= *' '/^(calibration|impostor)_songs/ {s += $2} END {print s + 0}' "configs/$1.toml"; }
# run CONFIG FAMILY SIZE [reproduce flags…]: one catalog size of one model family. SIZE is the
# catalogue; an open-set config's calibration and impostor songs come on top of it.
run() {
  local config=$1 family=$2 n=$3; shift 3
  local cfg out="reports/scale/$family-c$n" songs
  songs=$((n + $(kept_out "$config")))
  cfg=$(mktemp --suffix=.toml)
  sed -e "s/^num_songs = .*/num_songs = $songs/" -e "s/^songs = .*/songs = $songs/" \
      -e "s/^name = .*/name = \"$family-c$n\"/" "configs/$config.toml" > "$cfg"
  echo "== $family at $n songs → $out" >&2
  $BIN reproduce --config "$cfg" --out "$out" "$@" >/dev/null
  rm -f "$cfg"
}
for n in $SIZES; do run scale synthetic "$n"; done
for n in $AUG_SIZES; do run scale-aug40 synthetic-aug40 "$n"; done
for n in $LDA_SIZES; do run scale-lda synthetic-lda "$n"; done
for n in $ROBUST_SIZES; do run scale-robust robust "$n"; done
for n in $ROBUST60_SIZES; do run scale-robust60 robust60 "$n"; done
if have_dev; then
  # run_real CONFIG FAMILY: every track of the dev corpus, the catalogue what the open set leaves.
  run_real() { run "$1" "$2" $(($(find "$DEV_CORPUS/audio" -type f | wc -l) - $(kept_out "$1"))) --dataset "$DEV_CORPUS"; }
  REAL=${REAL-"scale:real scale-lda:real-lda scale-robust:real-robust scale-robust60:real-robust60 scale-heldout:real-heldout scale-heldout60:real-heldout60"}
  for pair in $REAL; do run_real "${pair%%:*}" "${pair##*:}"; done
fi
# Every report under reports/scale/, so one size can be rerun alone (SIZES=8000 AUG_SIZES= LDA_SIZES= …;
# REAL= skips the dev corpus, REAL="scale-heldout:real-heldout" runs one config on it).
$BIN scale-report reports/scale/*/ --out reports/scale/summary.md
# Issue 19's two families alone (the summary above has too many lines per plot to read).
if compgen -G "reports/scale/robust*-c*/" >/dev/null; then
  $BIN scale-report reports/scale/robust*-c*/ --out reports/scale/robust.md
fi
