# Shared settings of the experiment scripts (sourced, not run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
BIN=target/release/fhe-shazam
# The real-music dev corpus built by shared/corpus/build_dev_corpus.sh (not in the repo).
DEV_CORPUS="${DEV_CORPUS:-${XDG_CACHE_HOME:-$HOME/.cache}/fhe-shazam/dev-corpus}"
have_dev() { [ -d "$DEV_CORPUS/audio" ] || { echo "no dev corpus at $DEV_CORPUS (set DEV_CORPUS); skipping real-music runs" >&2; return 1; }; }
