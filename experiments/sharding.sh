#!/usr/bin/env bash
# Issue 21: extraction memory is flat in the number of songs (peak RSS of `extract` on SMALL vs
# SONGS synthetic 30 s songs, each in a fresh process and a fresh store), sharded extraction
# merges into exactly the unsharded store (SHARDS processes + `merge`, compared byte for byte),
# and the extraction throughput per core with projected wall times for fma_large / fma_full
# (`bench extract` on the real-music dev corpus if there is one, else on the synthetic songs).
# Writes reports/sharding/report.md and reports/sharding/bench-extract-{dev,synth}/.
source "$(dirname "$0")/common.sh"
SONGS=${SONGS:-8000}
SMALL=${SMALL:-1000}
SHARDS=${SHARDS:-4}
DATA=${DATA:-data/synth-$SONGS}
OUT=${OUT:-reports/sharding}
command -v python3 >/dev/null || { echo "sharding.sh: python3 is needed for the report" >&2; exit 2; }

$BIN synth --songs "$SONGS" --seconds 30 --seed 42 --out "$DATA" >/dev/null
mkdir -p data
work=$(mktemp -d data/sharding-XXXXXX)
trap 'rm -rf "$work"' EXIT

$BIN extract --dataset "$DATA" --num-songs "$SMALL" --out "$work/small" --json >"$work/small.json"
$BIN extract --dataset "$DATA" --out "$work/all" --json >"$work/all.json"
shards=()
for ((i = 0; i < SHARDS; i++)); do
  $BIN extract --dataset "$DATA" --shard "$i/$SHARDS" --out "$work/shard$i" --json >"$work/shard$i.json"
  shards+=("$work/shard$i")
done
$BIN merge "${shards[@]}" --out "$work/merged" --json >"$work/merge.json"
# Training reads the merged store: peak RSS once loaded, and after a closed-form fit.
$BIN bench train --features "$work/merged" --backend lda --out "$work/train-bench" --json >"$work/train.json"
identical=yes
for f in features.npy labels.npy chunks.npy features.json; do
  cmp -s "$work/all/$f" "$work/merged/$f" || { identical="no ($f differs)"; break; }
done

if have_dev; then
  $BIN bench extract --dataset "$DEV_CORPUS" --songs 100 --out "$OUT/bench-extract-dev" --json >"$work/bench.json"
  bench=$OUT/bench-extract-dev/report.md
else
  $BIN bench extract --dataset "$DATA" --songs 100 --out "$OUT/bench-extract-synth" --json >"$work/bench.json"
  bench=$OUT/bench-extract-synth/report.md
fi

mkdir -p "$OUT"
python3 - "$work" "$SMALL" "$SONGS" "$SHARDS" "$identical" "$bench" "$DATA" "$OUT" >"$OUT/report.md.tmp" <<'EOF'
import json, os, platform, subprocess, sys
work, small, songs, shards, identical, bench, data, out = sys.argv[1:]
load = lambda name: json.load(open(os.path.join(work, name)))
runs = [("extract", small, load("small.json")), ("extract", songs, load("all.json"))]
runs += [(f"extract --shard {i}/{shards}", None, load(f"shard{i}.json")) for i in range(int(shards))]
merge = load("merge.json")
mib = lambda j: j["rows"] * j["dim"] * 4 / 2**20
print("# Sharded extraction: memory and identity\n")
print(f"Synthetic 30 s songs of `{data}` (seed 42), each run a fresh process writing a fresh store.\n")
print("| run | songs | rows | feature matrix | peak RSS | wall |")
print("|---|---|---|---|---|---|")
for name, _, j in runs:
    print(f"| `{name}` | {j['songs']} | {j['rows']} | {mib(j):.1f} MiB | {j['peak_rss_mib']:.1f} MiB | {j['wall_seconds']:.1f} s |")
print(f"| `merge` of the {shards} shards | {merge['songs']} | {merge['rows']} | {merge['rows'] * runs[1][2]['dim'] * 4 / 2**20:.1f} MiB | {merge['peak_rss_mib']:.1f} MiB | – |")
a, b = runs[0][2]["peak_rss_mib"], runs[1][2]["peak_rss_mib"]
print(f"\nPeak RSS at {songs} songs / at {small}: **{b / a:.2f}×** (goal ≤ 1.2×) for {int(songs) / int(small):.0f}× the songs and {mib(runs[1][2]) / mib(runs[0][2]):.1f}× the feature matrix.\n")
t = load("train.json")
print(f"Training reads the merged store in blocks: peak RSS {t['load_peak_memory_mib']:.1f} MiB once loaded ({mib(runs[1][2]):.1f} MiB matrix, plus labels, chunk numbers and the {t['songs']}-song sidecar), {t['peak_memory_mib']:.1f} MiB after the LDA fit (`bench train --backend lda`).\n")
print(f"The {shards} shards merged are byte-identical to the unsharded store (features.npy, labels.npy, chunks.npy, features.json): **{identical}**.\n")
print(f"Throughput per core and the projected wall times for fma_large / fma_full: [{bench}]({os.path.relpath(bench, out)}).\n")
commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(f"Machine: {cpu} ({os.cpu_count()} cores), commit {commit}.  ")
print(f"Command: `SONGS={songs} SMALL={small} SHARDS={shards} bash experiments/sharding.sh`")
EOF
mv "$OUT/report.md.tmp" "$OUT/report.md"
cat "$OUT/report.md"
