#!/usr/bin/env bash
# Issue 18: training at catalogue scale. The fast f32 L-BFGS kernel against scikit-learn on the
# same features.npy in the same run (experiments/sklearn_baseline.py, interleaved rounds), and
# `fhe-shazam bench train` (one fit per row → reports/train-bench/summary.md) for LR and LDA at
# C = 400 and C = 8 000 synthetic songs (20 coefficients) and on the dev corpus when present.
# Wall-clock times: run it on an otherwise idle machine. SIZES=400 skips the 8 000-song corpus
# (~11 GB of WAV, ~9 min to synthesise and extract); SKLEARN=0 skips the sklearn side by side.
source "$(dirname "$0")/common.sh"
SIZES=${SIZES:-"400 8000"}
SKLEARN=${SKLEARN:-1}
sets=()
for n in $SIZES; do
  $BIN synth --songs "$n" --out "data/synth-${n}x30s-seed42" >/dev/null
  $BIN extract --dataset "data/synth-${n}x30s-seed42" --out "data/features/bench-synth-$n" >/dev/null
  sets+=("data/features/bench-synth-$n")
done
if have_dev; then
  $BIN extract --dataset "$DEV_CORPUS" --out data/features/bench-dev >/dev/null
  sets+=(data/features/bench-dev)
fi
for f in "${sets[@]}"; do
  for backend in lbfgs lda; do
    $BIN bench train --features "$f" --backend "$backend" --threads 2 --out reports/train-bench >/dev/null
  done
  # Adding a tenth of the songs to an LDA of the others, against refitting.
  songs=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['songs']))" "$f/features.json")
  $BIN bench train --features "$f" --backend lda --add-songs $((songs / 10)) --threads 2 \
    --out reports/train-bench >/dev/null
done
# sklearn side by side where one fit takes seconds (at C = 8 000 sklearn would take hours).
[ "$SKLEARN" = 1 ] || exit 0
python3 experiments/sklearn_baseline.py data/features/bench-synth-400 \
  --out reports/train-bench/sklearn-synth-400.json --rust-bin "$BIN" --md reports/train-bench/sklearn-synth-400.md
if have_dev; then
  python3 experiments/sklearn_baseline.py data/features/bench-dev \
    --out reports/train-bench/sklearn-dev.json --rust-bin "$BIN" --md reports/train-bench/sklearn-dev.md
fi
