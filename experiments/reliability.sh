#!/usr/bin/env bash
# Issue 14: the standing bad-input suite (tests/bad_inputs.rs) run on the release binary,
# writing its table — each kind of bad input, the command, the exit code or HTTP status, the
# first line the user sees, and whether the outputs that existed before are byte-identical —
# to reports/reliability/summary.md (with machine, commit and command). Fails if any kind
# fails its checks, and then leaves the previous report as it was.
source "$(dirname "$0")/common.sh"
out=reports/reliability
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
RELIABILITY_REPORT="$tmp/table.md" cargo test --release --quiet --test bad_inputs
{
  echo "# Reliability: every kind of bad input, what the user sees, and that nothing was lost"
  echo
  echo "Each row is one kind of bad input driven through the real binary (\`tests/bad_inputs.rs\`)."
  echo "Checked for every row: the exit code (2 = argument error, 1 = error, 0 = handled and"
  echo "reported) or HTTP status, that the message names the file or field and the problem, that"
  echo "nothing panicked, and that every output folder that existed before is byte-identical"
  echo "afterwards (\"unchanged\"). HTTP rows are sent to a real \`fhe-shazam serve\` on loopback,"
  echo "each followed by an honest query that must still get 200. \`\$T\` is the test's temporary"
  echo "folder (a 4-song synthetic corpus with its features, models, queries and key)."
  echo
  echo "$(grep -c '^| [0-9]' "$tmp/table.md") kinds, all passing."
  echo
  cat "$tmp/table.md"
  echo
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(nproc) cores), commit $(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD -- src tests || echo -dirty), $(date -u +%Y-%m-%dT%H:%M:%SZ)."
  echo "Command: \`experiments/reliability.sh\`"
} > "$tmp/summary.md"
mkdir -p "$out"
mv "$tmp/summary.md" "$out/summary.md.new" && mv "$out/summary.md.new" "$out/summary.md"
echo "wrote $out/summary.md"
