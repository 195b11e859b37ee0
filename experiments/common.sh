# Shared settings of the experiment scripts (sourced, not run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
BIN=target/release/fhe-shazam
# The real-music dev corpus built by shared/corpus/build_dev_corpus.sh (not in the repo).
DEV_CORPUS="${DEV_CORPUS:-${XDG_CACHE_HOME:-$HOME/.cache}/fhe-shazam/dev-corpus}"
have_dev() { [ -d "$DEV_CORPUS/audio" ] || { echo "no dev corpus at $DEV_CORPUS (set DEV_CORPUS); skipping real-music runs" >&2; return 1; }; }
# run_configs CFG_DIR OUT_ROOT [DATASET_ARGS…]: `reproduce` every config of CFG_DIR into
# OUT_ROOT/<config name>/, then one ablation table of them all (`fhe-shazam compare`).
run_configs() {
  local cfg_dir=$1 out=$2; shift 2
  local dirs=() cfg name
  for cfg in "$cfg_dir"/*.toml; do
    name=$(basename "$cfg" .toml)
    $BIN reproduce --config "$cfg" "$@" --out "$out/$name" >/dev/null
    dirs+=("$out/$name")
  done
  $BIN compare "${dirs[@]}" --out "$out/ablation.md"
}
