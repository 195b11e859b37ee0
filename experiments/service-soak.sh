#!/usr/bin/env bash
# Reliability (issue 14): a bounded soak of the encrypted service on loopback. Starts
# `fhe-shazam serve`, runs SOAK_CLIENTS concurrent clients × SOAK_QUERIES identifications each
# (`fhe-shazam identify`, one process per identification, one key folder per client) in
# SOAK_ROUNDS rounds, sends bursts of malformed requests with curl before, during and between
# the rounds, samples the server's VmRSS every second, then stops the server with SIGINT and
# writes reports/service-soak/: summary.md (counts, statuses, RSS at warm-up / end / max, the
# verdict), rss.csv, malformed.csv, identifications.tsv and rss.png.
# Every answer is checked against the recording's true song (the dataset's tracks.csv).
# Data: a synthetic corpus, its features, models and query recordings under data/service-soak/
# (gitignored), rebuilt cheaply on every run (synth and extract reuse what is unchanged).
# Exits 1 when a check failed (the report is still written: it says which).
SOAK_SET=$(compgen -e SOAK_ || true)  # the settings given in the environment, for the report
# shellcheck source=experiments/common.sh
source "$(dirname "$0")/common.sh"
BIN="${CARGO_TARGET_DIR:-target}/release/fhe-shazam"
HELPER=experiments/service_soak.py

SONGS=${SOAK_SONGS:-100}                 # catalog size C
SONG_SECONDS=${SOAK_SONG_SECONDS:-20}    # length of each synthetic song (queries are 15 s)
CONDITIONS=${SOAK_CONDITIONS:-aligned,offset}
CLIENTS=${SOAK_CLIENTS:-8}
QUERIES=${SOAK_QUERIES:-200}             # identifications per client
ROUNDS=${SOAK_ROUNDS:-10}
MAX_JOBS=${SOAK_MAX_JOBS:-}              # empty: the server's default (the core count)
SERVER_TIMEOUT=${SOAK_SERVER_TIMEOUT:-30}    # serve --timeout-secs
MAX_BODY=${SOAK_MAX_BODY:-262144}        # serve --max-body-bytes (its default)
RETRIES=${SOAK_RETRIES:-5}               # retries of an honest query answered 503
QUERY_TIMEOUT=${SOAK_QUERY_TIMEOUT:-60}  # one identify process
CLIENT_TIMEOUT=${SOAK_CLIENT_TIMEOUT:-600}  # one client's share of one round
SOAK_TIMEOUT=${SOAK_TIMEOUT:-1800}       # the whole script
WARMUP_PCT=${SOAK_WARMUP_PCT:-10}
RSS_TOL_PCT=${SOAK_RSS_TOL_PCT:-10}      # flat: end − warm-up RSS ≤ max(TOL_MIB MiB, TOL_PCT % of warm-up)
RSS_TOL_MIB=${SOAK_RSS_TOL_MIB:-2}
SLOW_PROBE=${SOAK_SLOW_PROBE:-1}         # 1: probe slow uploads once after the rounds
DATA=${SOAK_DATA:-data/service-soak}/c$SONGS-s$SONG_SECONDS
OUT=${SOAK_OUT:-reports/service-soak}

for v in SONGS CLIENTS QUERIES ROUNDS RETRIES; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "service-soak: $v must be a positive integer (got '${!v}')" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "service-soak: curl is needed" >&2; exit 2; }
command -v python3 >/dev/null || { echo "service-soak: python3 is needed" >&2; exit 2; }

START_NS=$(date +%s%N)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
work=$(mktemp -d)
mkdir -p "$(dirname "$OUT")"
stage=$(mktemp -d "$(dirname "$OUT")/.$(basename "$OUT").XXXXXX")
server_pid='' sampler_pid='' watchdog_pid=''
client_pids=()
keep_work=0
# shellcheck disable=SC2317  # (a trap handler)
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${client_pids[@]}" $sampler_pid $watchdog_pid; do kill "$p" 2>/dev/null || true; done
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -INT "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$stage"
  if [ "$keep_work" = 1 ] || [ "$rc" != 0 ]; then echo "service-soak: raw files kept in $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "service-soak: interrupted" >&2; exit 130' INT
trap 'echo "service-soak: stopped (time limit of $SOAK_TIMEOUT s?)" >&2; exit 124' TERM
( trap 'kill "$s" 2>/dev/null; exit 0' TERM; sleep "$SOAK_TIMEOUT" & s=$!; wait "$s" && kill -TERM $$ 2>/dev/null ) &
watchdog_pid=$!

# ---- preparation: corpus, models, recordings with their true song --------------------------
echo "== corpus: $SONGS synthetic songs of $SONG_SECONDS s → $DATA" >&2
"$BIN" synth --songs "$SONGS" --seconds "$SONG_SECONDS" --out "$DATA/synth" >/dev/null
"$BIN" extract --dataset "$DATA/synth" --out "$DATA/features" >/dev/null
"$BIN" train --features "$DATA/features" --out "$DATA/models" --n-bits 6,8 --standardize-inputs >/dev/null
"$BIN" queries --dataset "$DATA/synth" --out "$DATA/queries" --conditions "$CONDITIONS" >/dev/null
python3 "$HELPER" manifest "$DATA/queries/queries.csv" "$DATA/synth/metadata/tracks.csv" \
  "$work/all.tsv" --conditions "$CONDITIONS" >/dev/null

# The offline answer of every recording (the same circuit in one process): a recording the
# model itself gets wrong is left out, so that a wrong answer in the soak is the service's.
echo "== offline check of $(wc -l < "$work/all.tsv") recordings" >&2
mkdir -p "$work/keys" && chmod 700 "$work/keys"
offline() { # offline WORKER WORKERS: every WORKERS-th recording
  local i=0 file track cond expected got
  while IFS=$'\t' read -r file track cond expected; do
    if (( i++ % $2 == $1 )); then
      got=$(timeout "$QUERY_TIMEOUT" "$BIN" identify "$file" --model-file "$DATA/models/q8.json" \
            --key-dir "$work/keys/offline$1" 2>/dev/null) || got="(error)"
      printf '%s\t%s\t%s\t%s\t%s\n' "$file" "$track" "$cond" "$expected" "$got"
    fi
  done < "$work/all.tsv" > "$work/offline.$1.tsv"
}
offline 0 2 & o0=$!; offline 1 2 & o1=$!
wait "$o0" "$o1"
cat "$work"/offline.*.tsv | sort > "$work/offline.tsv"
awk -F'\t' '$4 == $5 { print $1"\t"$2"\t"$3"\t"$4 }' "$work/offline.tsv" > "$work/manifest.tsv"
awk -F'\t' '$4 != $5' "$work/offline.tsv" > "$work/excluded.tsv"
RECORDINGS=$(wc -l < "$work/manifest.tsv")
EXCLUDED=$(wc -l < "$work/excluded.tsv")
[ "$RECORDINGS" -gt 0 ] || { echo "service-soak: no recording is identified offline" >&2; exit 1; }
# CPU time of one identify process (mostly its start: see summary.md, Findings).
t0=$(date +%s%N)
"$BIN" identify "$(head -1 "$work/manifest.tsv" | cut -f1)" --model-file "$DATA/models/q8.json" \
  --key-dir "$work/keys/offline0" >/dev/null 2>&1
STARTUP_MS=$(ms_since "$t0")

# ---- the server ----------------------------------------------------------------------------
"$BIN" serve --models "$DATA/models/q8.json" "$DATA/models/q6.json" --addr 127.0.0.1:0 \
  --timeout-secs "$SERVER_TIMEOUT" --max-body-bytes "$MAX_BODY" ${MAX_JOBS:+--max-jobs "$MAX_JOBS"} > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 300); do
  grep -q 'listening on http://' "$work/server.log" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
ADDR=$(grep -o 'listening on http://[0-9.:]*' "$work/server.log" | head -1 | sed 's|.*http://||')
[ -n "$ADDR" ] || { echo "service-soak: the server did not start" >&2; cat "$work/server.log" >&2; exit 1; }
URL="http://$ADDR"
MAX_JOBS=$(curl -sS "$URL/health" | sed -n 's/.*"max_jobs":\([0-9]*\).*/\1/p')
echo "== server pid $server_pid on $URL (max_jobs $MAX_JOBS)" >&2

# A real encrypted query, captured by a one-shot proxy, for the malformed kinds built from it.
python3 "$HELPER" capture "$URL" "$work/query.bin" > "$work/proxy.port" & proxy_pid=$!
for _ in $(seq 50); do [ -s "$work/proxy.port" ] && break; sleep 0.1; done
"$BIN" identify "$(head -1 "$work/manifest.tsv" | cut -f1)" --server "http://127.0.0.1:$(cat "$work/proxy.port")" \
  --model q8 --key-dir "$work/keys/capture" >/dev/null 2>&1
wait "$proxy_pid"
python3 "$HELPER" bodies "$work/query.bin" "$work/bodies" --limit "$MAX_BODY"
PREP_S=$(( $(ms_since "$START_NS") / 1000 ))

# ---- the RSS sampler -----------------------------------------------------------------------
mkdir -p "$work/results"
echo 0 > "$work/round"
sampler() {
  set +e +o pipefail  # a sample that cannot be read is skipped, not fatal
  local t0 now rss hwm threads fds done_n
  t0=$(date +%s%N)
  echo "elapsed_s,rss_kib,hwm_kib,threads,fds,completed,round"
  while kill -0 "$server_pid" 2>/dev/null; do
    now=$(date +%s%N)
    read -r rss hwm threads < <(awk '/^VmRSS/{r=$2} /^VmHWM/{h=$2} /^Threads/{t=$2} END{print r, h, t}' \
      "/proc/$server_pid/status" 2>/dev/null) || break
    [ -n "$threads" ] || break
    fds=$(find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    done_n=$(cat "$work"/results/*.tsv 2>/dev/null | wc -l)
    printf '%d.%03d,%s,%s,%s,%s,%s,%s\n' $(( (now - t0) / 1000000000 )) $(( (now - t0) / 1000000 % 1000 )) \
      "$rss" "$hwm" "$threads" "$fds" "$done_n" "$(cat "$work/round")"
    sleep 1
  done
}
sampler > "$work/rss.csv" & sampler_pid=$!

# ---- malformed requests --------------------------------------------------------------------
echo "round,phase,kind,method,path,content_type,body_bytes,expected,status,retry_after,verdict,reply" > "$work/malformed.csv"
# The reply's first bytes as one CSV field (quoted by record): printable ASCII, no double quotes.
csvfield() { LC_ALL=C tr -d '\r\n\0' | LC_ALL=C tr -c '[:print:]' '?' | tr '"' "'" | head -c "${1:-120}"; }
# record ROUND PHASE KIND METHOD PATH CTYPE BYTES EXPECTED STATUS RETRY_AFTER REPLYFILE
# EXPECTED "413 or closed": a body past the server's drain cap (4× the limit) is answered 413 and
# the connection closed while the client still sends; the client may then lose the answer to the
# reset (curl exit 52/55/56: "closed").
record() {
  local status=$9 retry=${10} verdict
  if [ "$status" = "${8%% or *}" ]; then verdict=expected
  elif [ "$status" = - ] && [[ $8 == *" or closed" ]] && [[ ${curl_exit:-0} =~ ^(52|55|56)$ ]]; then verdict=closed
  elif [ "$status" = 503 ] && [ -n "$retry" ]; then verdict=overload
  elif [[ $status == 5* ]]; then verdict=SERVER-ERROR
  else verdict=UNEXPECTED; fi
  local path=$5
  [ ${#path} -gt 60 ] && path="${path:0:30}…(${#path} chars)"
  printf '%s,%s,"%s",%s,"%s","%s",%s,%s,%s,%s,%s,"%s"\n' "$1" "$2" "$3" "$4" "$path" "$6" "$7" "$8" "$status" \
    "$retry" "$verdict" "$(csvfield 120 < "${11}")" >> "$work/malformed.csv"
}
# send ROUND PHASE KIND EXPECTED METHOD PATH CTYPE BODYFILE [curl args…]: one request with curl.
send() {
  local round=$1 phase=$2 kind=$3 expected=$4 method=$5 path=$6 ctype=$7 body=$8; shift 8
  local tag; tag=$(mktemp -p "$work" req.XXXXXX)
  local args=(-sS -o "$tag.body" -D "$tag.head" -w '%{http_code}' --max-time 30 -X "$method" -H 'Expect:')
  if [ -n "$ctype" ]; then args+=(-H "Content-Type: $ctype"); else args+=(-H 'Content-Type:'); fi
  local bytes=0
  if [ -n "$body" ]; then args+=(--data-binary "@$body"); bytes=$(stat -c %s "$body"); fi
  local status retry
  local curl_exit=0  # seen by record
  status=$(curl "${args[@]}" "$@" "$URL$path" 2>"$tag.err") || curl_exit=$?
  [ -s "$tag.body" ] || cp "$tag.err" "$tag.body" 2>/dev/null || : > "$tag.body"
  [ "$status" = 000 ] && status="-"
  retry=$(grep -i '^retry-after:' "$tag.head" 2>/dev/null | tr -d '\r' | awk '{print $2}' | head -1) || true
  record "$round" "$phase" "$kind" "$method" "$path" "$ctype" "$bytes" "$expected" "$status" "$retry" "$tag.body"
  rm -f "$tag" "$tag".*
}
# hangup ROUND PHASE: headers of a 16 KiB query, 1000 body bytes, then the client closes.
hangup() (
  local fd port=${ADDR##*:}
  exec {fd}<>"/dev/tcp/127.0.0.1/$port" || exit 1
  printf 'POST /models/q8/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %s\r\n\r\n' \
    "$(stat -c %s "$work/bodies/good.bin")" >&"$fd"
  head -c 1000 "$work/bodies/good.bin" >&"$fd" || true
  exec {fd}>&-
  echo "client hung up" > "$work/hangup.reply"
  record "$1" "$2" "body shorter than Content-Length, client hangs up" POST /models/q8/score \
    application/octet-stream 1000 - - "" "$work/hangup.reply"
)
# burst ROUND PHASE: one of every kind, then a parallel volley of garbage, then GET /health.
burst() {
  local r=$1 ph=$2 b="$work/bodies" bin=application/octet-stream
  send "$r" "$ph" "empty body" 400 POST /models/q8/score "$bin" ""
  send "$r" "$ph" "garbage body (query-sized random bytes)" 400 POST /models/q8/score "$bin" "$b/garbage.bin"
  send "$r" "$ph" "garbage after a valid magic" 400 POST /models/q8/score "$bin" "$b/garbage-magic.bin"
  send "$r" "$ph" "truncated query (first half)" 400 POST /models/q8/score "$bin" "$b/truncated-half.bin"
  send "$r" "$ph" "truncated query (last byte missing)" 400 POST /models/q8/score "$bin" "$b/truncated-last-byte.bin"
  send "$r" "$ph" "query header only (64 B)" 400 POST /models/q8/score "$bin" "$b/header-only.bin"
  send "$r" "$ph" "query with a trailing byte" 400 POST /models/q8/score "$bin" "$b/trailing-byte.bin"
  send "$r" "$ph" "query of another wire version" 400 POST /models/q8/score "$bin" "$b/other-version.bin"
  send "$r" "$ph" "query for another parameter set" 422 POST /models/q8/score "$bin" "$b/other-params.bin"
  send "$r" "$ph" "query with another model id" 422 POST /models/q8/score "$bin" "$b/other-model-id.bin"
  send "$r" "$ph" "valid q8 query sent to the other served model (q6)" 422 POST /models/q6/score "$bin" "$b/good.bin"
  send "$r" "$ph" "unknown model id" 404 POST /models/nope/score "$bin" "$b/good.bin"
  send "$r" "$ph" "model id with ../ (URL-encoded)" 404 POST "/models/..%2F..%2Fetc%2Fpasswd/score" "$bin" "$b/good.bin"
  send "$r" "$ph" "model id of 5000 characters" 404 POST "/models/$(printf 'a%.0s' $(seq 5000))/score" "$bin" "$b/good.bin"
  send "$r" "$ph" "bad JSON body" 400 POST /models/q8/score application/json "$b/bad.json"
  send "$r" "$ph" "JSON instead of a wire message" 400 POST /models/q8/score application/json "$b/valid.json"
  send "$r" "$ph" "garbage, no Content-Type" 400 POST /models/q8/score "" "$b/garbage.bin"
  send "$r" "$ph" "wrong content type: valid query as text/plain (not checked)" 200 POST /models/q8/score text/plain "$b/good.bin"
  send "$r" "$ph" "oversized body (limit + 1 B, Content-Length)" 413 POST /models/q8/score "$bin" "$b/oversized.bin"
  send "$r" "$ph" "oversized body (limit + 1 B, chunked)" 413 POST /models/q8/score "$bin" "$b/oversized.bin" -H 'Transfer-Encoding: chunked'
  send "$r" "$ph" "4 MiB body (16× the limit)" "413 or closed" POST /models/q8/score "$bin" "$b/huge.bin"
  send "$r" "$ph" "invalid Content-Length header" 400 POST /models/q8/score "$bin" "$b/garbage.bin" -H 'Content-Length: abc'
  send "$r" "$ph" "wrong method on the score route" 405 GET /models/q8/score "" ""
  send "$r" "$ph" "wrong method on /models" 405 DELETE /models "" ""
  send "$r" "$ph" "unknown route" 404 GET /admin/../../etc/passwd "" "" --path-as-is
  hangup "$r" "$ph" || { echo "no connection" > "$work/hangup.reply"; record "$r" "$ph" \
    "body shorter than Content-Length, client hangs up" POST /models/q8/score application/octet-stream 1000 - \
    "no connection" "" "$work/hangup.reply"; }
  local pids=() i
  for i in $(seq 16); do
    send "$r" "$ph" "16 garbage bodies at once" 400 POST /models/q8/score "$bin" "$b/garbage.bin" & pids+=($!)
  done
  wait "${pids[@]}"
  send "$r" "$ph" "health after the burst" 200 GET /health "" ""
  kill -0 "$server_pid" 2>/dev/null || { echo "service-soak: the server died during burst $r/$ph" >&2; return 1; }
}

# ---- honest clients ------------------------------------------------------------------------
# client ID FROM TO ROUND: identifications FROM..TO-1 of client ID, one TSV row each.
# shellcheck disable=SC2317  # (run by the exported copy in bash -c)
client() {
  local id=$1 from=$2 to=$3 round=$4 k file track cond expected
  local n; n=$(wc -l < "$work/manifest.tsv")
  mapfile -t recs < "$work/manifest.tsv"
  local kdir="$work/keys/client$id" err="$work/err.$id"
  for ((k = from; k < to; k++)); do
    IFS=$'\t' read -r file track cond expected <<< "${recs[$(( (id * n / CLIENTS + k) % n ))]}"
    local t0 attempts=0 got rc ra outcome msg=""
    t0=$(date +%s%N)
    while :; do
      attempts=$((attempts + 1)); rc=0
      got=$(timeout "$QUERY_TIMEOUT" "$BIN" identify "$file" --server "$URL" --model q8 --key-dir "$kdir" 2>"$err") || rc=$?
      if [ "$rc" != 0 ] && grep -q 'server answered 503' "$err" && [ "$attempts" -le "$RETRIES" ]; then
        ra=$(sed -n 's/.*retry after \([0-9]*\) s.*/\1/p' "$err" | head -1)
        sleep "${ra:-1}"
        continue
      fi
      break
    done
    if [ "$rc" != 0 ]; then outcome=failed; msg=$(grep -v '^model \|^features \|^generated ' "$err" | tr '\t\n' '  ' | head -c 300)
    elif [ "$got" = "$expected" ]; then outcome=correct
    elif [[ $got == unknown* ]]; then outcome=unknown
    else outcome=wrong; fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$k" "$round" "$file" "$cond" "$expected" \
      "$got" "$outcome" "$attempts" "$rc" "$(ms_since "$t0")" "$msg" >> "$work/results/client$id.tsv"
  done
}
export -f client ms_since
export work BIN URL CLIENTS QUERY_TIMEOUT RETRIES

echo "== soak: $CLIENTS clients × $QUERIES identifications in $ROUNDS rounds, $RECORDINGS recordings" >&2
rounds_t0=$(date +%s%N)
burst 0 before || true
for ((r = 1; r <= ROUNDS; r++)); do
  echo "$r" > "$work/round"
  client_pids=()
  for ((c = 0; c < CLIENTS; c++)); do
    timeout "$CLIENT_TIMEOUT" bash -c 'client "$@"' _ "$c" $(( (r - 1) * QUERIES / ROUNDS )) $(( r * QUERIES / ROUNDS )) "$r" &
    client_pids+=($!)
  done
  sleep 2
  died=0
  burst "$r" during || died=1
  for p in "${client_pids[@]}"; do wait "$p" || echo "service-soak: a client of round $r exited with $? (timeout: 124)" >&2; done
  client_pids=()
  if [ "$died" = 0 ]; then
    if [ "$r" -lt "$ROUNDS" ]; then burst "$r" between || died=1; else burst "$r" after || died=1; fi
  fi
  echo "   round $r/$ROUNDS: $(cat "$work"/results/*.tsv | wc -l) identifications done, $(cut -f8 "$work"/results/*.tsv | grep -vc correct) not correct" >&2
  [ "$died" = 0 ] || break
done
ROUNDS_S=$(( $(ms_since "$rounds_t0") / 1000 ))

# Slow uploads: MAX_JOBS connections that send 100 body bytes and stall, and meanwhile a valid
# query (a finding, not a failure: see summary.md); they end at the server's request limit.
if [ "$SLOW_PROBE" = 1 ] && kill -0 "$server_pid" 2>/dev/null; then
  echo "== slow-upload probe (${SERVER_TIMEOUT} s)" >&2
  echo slow > "$work/round"
  port=${ADDR##*:}
  slow() {
    local fd status
    exec {fd}<>"/dev/tcp/127.0.0.1/$port"
    printf 'POST /models/q8/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %s\r\n\r\n' \
      "$(stat -c %s "$work/bodies/good.bin")" >&"$fd"
    head -c 100 "$work/bodies/good.bin" >&"$fd"
    timeout $((SERVER_TIMEOUT + 15)) cat <&"$fd" > "$work/slow.$1.reply" || true
    exec {fd}>&-
    status=$(head -1 "$work/slow.$1.reply" | awk '{print $2}')
    record slow slow-probe "slow upload (headers + 100 B, then stalls)" POST /models/q8/score \
      application/octet-stream 100 "503" "${status:--}" \
      "$(grep -i '^retry-after:' "$work/slow.$1.reply" | tr -d '\r' | awk '{print $2}')" \
      <(sed -n '/^\r\?$/,$p' "$work/slow.$1.reply")
  }
  slow_pids=()
  for ((i = 0; i < MAX_JOBS; i++)); do slow "$i" & slow_pids+=($!); done
  sleep 2
  send slow slow-probe "valid query while $MAX_JOBS slow uploads are open" 200 POST /models/q8/score \
    application/octet-stream "$work/bodies/good.bin"
  wait "${slow_pids[@]}"
  send slow slow-probe "valid query after the slow uploads ended" 200 POST /models/q8/score \
    application/octet-stream "$work/bodies/good.bin"
  send slow slow-probe "health after the burst" 200 GET /health "" ""
fi
sleep 2  # a last RSS sample or two

# ---- shutdown and report -------------------------------------------------------------------
server_alive=no
kill -0 "$server_pid" 2>/dev/null && server_alive=yes
t0=$(date +%s%N)
kill -INT "$server_pid" 2>/dev/null || true
shutdown_rc=0
wait "$server_pid" || shutdown_rc=$?
SHUTDOWN_MS=$(ms_since "$t0")
server_pid=
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=

cat "$work"/results/*.tsv | sort -t$'\t' -k1,1n -k2,2n > "$stage/identifications.tsv"
cp "$work/rss.csv" "$work/malformed.csv" "$stage/"
grep -v ' request method=' "$work/server.log" > "$stage/server-log-lifecycle.txt" || true
total=$((CLIENTS * QUERIES))
warmup_ids=$(( (total * WARMUP_PCT + 99) / 100 ))
warm_x=$(awk -F, -v w="$warmup_ids" 'NR > 1 && $6 >= w { print $6; exit }' "$work/rss.csv")
if command -v gnuplot >/dev/null; then
  plotter="gnuplot $(gnuplot --version | awk '{print $2}')"
  gnuplot <<EOF
set terminal pngcairo size 900,500 font ",10"
set output "$stage/rss.png"
set datafile separator ","
set title "fhe-shazam serve: resident memory during the soak ($CLIENTS clients × $QUERIES identifications, C = $SONGS)"
set xlabel "identifications completed"
set ylabel "server RSS (MiB)"
set yrange [0:*]
set grid
set key bottom right
set arrow from ${warm_x:-0}, graph 0 to ${warm_x:-0}, graph 1 nohead dashtype 2 lc rgb "gray"
set label "end of warm-up ($WARMUP_PCT %)" at ${warm_x:-0}, graph 0.08 offset 1,0 tc rgb "gray40"
plot "$work/rss.csv" every ::1 using 6:(\$2/1024) with lines lw 2 title "VmRSS", \
     "" every ::1 using 6:(\$3/1024) with lines dashtype 3 title "VmHWM (peak)"
EOF
  plot=rss.png
elif python3 -c 'import matplotlib' 2>/dev/null; then
  plotter="python3 matplotlib"
  python3 "$HELPER" matplotlib "$work/rss.csv" "$stage/rss.png" "${warm_x:-0}"
  plot=rss.png
else
  plotter="experiments/service_soak.py svg (no gnuplot or matplotlib)"
  python3 "$HELPER" svg "$work/rss.csv" "$stage/rss.svg" "${warm_x:-0}"
  plot=rss.svg
fi

machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(nproc) cores, $(free -m | awk '/^Mem/{printf "%.1f", $2 / 1024}') GiB)"
commit="$(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD -- src experiments || echo -dirty)"
command="experiments/service-soak.sh"
while read -r v; do [ -n "$v" ] && command="$v=${!v} $command"; done < <(sort -r <<< "$SOAK_SET")
report_rc=0
python3 "$HELPER" report "$work" "$stage/summary.md" \
  --param "songs=$SONGS" --param "song_seconds=$SONG_SECONDS" --param "conditions=$CONDITIONS" \
  --param "recordings=$RECORDINGS" --param "excluded=$EXCLUDED" --param "clients=$CLIENTS" \
  --param "queries=$QUERIES" --param "rounds=$ROUNDS" --param "max_jobs=$MAX_JOBS" \
  --param "server_timeout=$SERVER_TIMEOUT" --param "max_body=$MAX_BODY" --param "retries=$RETRIES" \
  --param "query_timeout_s=$QUERY_TIMEOUT" --param "client_timeout_s=$CLIENT_TIMEOUT" \
  --param "soak_timeout_s=$SOAK_TIMEOUT" --param "warmup_pct=$WARMUP_PCT" --param "warmup_ids=$warmup_ids" \
  --param "rss_tol_pct=$RSS_TOL_PCT" --param "rss_tol_mib=$RSS_TOL_MIB" \
  --param "model=q8 ($DATA/models/q8.json)" --param "other_model=q6" --param "binary=$BIN" \
  --param "server_alive=$server_alive" --param "shutdown_rc=$shutdown_rc" --param "shutdown_ms=$SHUTDOWN_MS" \
  --param "startup_ms=$STARTUP_MS" --param "rounds_s=$ROUNDS_S" --param "prep_s=$PREP_S" \
  --param "wall_s=$(( $(ms_since "$START_NS") / 1000 ))" --param "plot=$plot" --param "plotter=$plotter" \
  --param "machine=$machine" --param "commit=$commit" --param "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --param "load=$LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end" \
  --param "command=$command" || report_rc=$?

# Move the finished report in at once.
rm -rf "$OUT.old"
[ -d "$OUT" ] && mv "$OUT" "$OUT.old"
mv "$stage" "$OUT" && rm -rf "$OUT.old"
echo "wrote $OUT/summary.md" >&2
exit "$report_rc"
