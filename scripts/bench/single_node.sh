#!/usr/bin/env bash
# Single-node benchmark: latticed (--sync always) against redis-server with
# appendfsync always and appendfsync everysec, all on this machine, measured
# with redis-benchmark. Writes the report to .bench/single_node.md.
#
# usage: scripts/bench/single_node.sh [--no-build] [--fake-latticed] [--help]
#
#   --no-build        do not run scripts/setup.sh and scripts/build.sh first
#   --fake-latticed   self-test of this script: start a redis-server
#                     (appendfsync always) wherever latticed would run, so the
#                     whole pipeline (start, wait, benchmark, parse, report,
#                     cleanup) runs without latticed. Implies skipping
#                     scripts/build.sh (setup.sh still runs). The report then
#                     says FAKE everywhere. The per-commit I/O part is
#                     latticed only and is skipped; elsewhere latticed's
#                     checkpoint and overlay fields of INFO persistence are
#                     stood in for by redis's AOF rewrites (see "Fields").
#
# Parts, in the order they run (BENCH_PARTS selects some of them):
#   main     redis-benchmark -c BENCH_CLIENTS -n BENCH_N -r BENCH_KEYSPACE
#            -P 1 and -P 16 for SET, SET -d 1024, GET, INCR, SADD, HSET on
#            the three servers side by side, with latticed / redis ratios.
#   io       (latticed only; needs main) INFO persistence before and after
#            each latticed write run of the main table (SET -P 16 among
#            them): deltas of wal_syncs, wal_batches, wal_bytes_written,
#            committed_writes; syncs, bytes and writes per batch, bytes per
#            write, and per request sent (redis-benchmark's count).
#   growth   SADD into one set growing from BENCH_GROWTH_FROM to
#            BENCH_GROWTH_TO members (latticed and redis-everysec).
#   sustain  redis-benchmark -t set -c BENCH_CLIENTS -P 16
#            -r BENCH_SUSTAIN_KEYSPACE, BENCH_SUSTAIN_N requests in all, sent
#            as consecutive windows of BENCH_SUSTAIN_WINDOW requests, on a
#            fresh latticed started with --overlay-mb BENCH_SUSTAIN_OVERLAY_MB
#            and then on fresh redis-always and redis-everysec servers. INFO
#            persistence is polled every 0.5 s and read before and after each
#            window. Reports req/s, checkpoints during the run (fewer than 3
#            makes the run invalid: NOT MET, exit status 1), checkpoint
#            durations (checkpoint_last_ms, min / median / max), and the p99
#            of windows that overlapped a checkpoint (checkpoint_in_progress
#            seen 1, or the checkpoints counter moved) against the others.
#   keys     BENCH_KEYS_N distinct keys (SET key:<i> v<i>, redis-cli --pipe)
#            into a fresh latticed: DBSIZE, VmRSS and RSS per key, disk bytes
#            (du -sb) per key after a clean stop (SIGTERM; aim < 150 B/key),
#            time from exec to PING and GET of a known key answered after the
#            clean stop (aim <= 5 s, restarted with --overlay-mb
#            BENCH_KEYS_OVERLAY_MB); then BENCH_KEYS_EXTRA_N further keys, all
#            still in the log (checked: no checkpoint during the batch),
#            kill -9 at once, and the same restart time (aim <= 5 s), DBSIZE
#            and a sample of BENCH_KEYS_SAMPLE of the new keys checked. The
#            largest files of the data dir are listed beside its size.
#
# Fields: the script reads these fields of latticed's INFO persistence and
# stops with an error naming any that is missing (a latticed without the
# write-ahead log has none of them: run it with BENCH_PARTS="main growth"):
#   io:            wal_syncs wal_batches wal_bytes_written committed_writes
#   sustain, keys: checkpoints checkpoint_last_ms checkpoint_in_progress
#                  overlay_bytes overlay_limit_bytes   (and --overlay-mb)
# For redis-server (the comparators, and the fake latticed) they are derived
# from its AOF rewrites: checkpoints = aof_rewrites, checkpoint_in_progress =
# aof_rewrite_in_progress, checkpoint_last_ms = aof_last_rewrite_time_sec *
# 1000, overlay_bytes = aof_current_size - aof_base_size, overlay_limit_bytes
# = auto-aof-rewrite-min-size (which the fake latticed sets from --overlay-mb).
#
# Environment (defaults in brackets):
#   BENCH_PARTS           parts to run, space or comma separated
#                         [main io growth sustain keys]
#   BENCH_N               requests per redis-benchmark run [200000]
#   BENCH_CLIENTS         parallel connections (-c) [50]
#   BENCH_KEYSPACE        random key space (-r) [100000]
#   BENCH_PORT_BASE       first loopback port tried; 100 ports scanned [7400]
#   BENCH_RUN_TIMEOUT     seconds before one benchmark run is killed [900]
#   BENCH_START_TIMEOUT   seconds a server gets to answer PING [30]
#   BENCH_STOP_TIMEOUT    seconds a server gets to exit on SIGTERM [120]
#   BENCH_GROWTH_FROM     set size where the growth test starts [1000]
#   BENCH_GROWTH_TO       set size where it ends [100000]
#   BENCH_GROWTH_WINDOW   SADDs per timed window [4000]
#   BENCH_GROWTH_REPS     independent repetitions (one key each) [3]
#   BENCH_GROWTH_CLIENTS  -c of the growth windows [10]
#   BENCH_GROWTH_PIPELINE -P of the growth windows [16]
#   BENCH_SUSTAIN_N       requests of the sustained run, per server [2000000]
#   BENCH_SUSTAIN_KEYSPACE  its -r [1000000]
#   BENCH_SUSTAIN_WINDOW  requests per window [20000]: short against the
#                         time between checkpoints, so that some windows
#                         miss every checkpoint and the p99s can be compared
#   BENCH_SUSTAIN_OVERLAY_MB  latticed's --overlay-mb for it [64]
#   BENCH_KEYS_N          distinct keys of the keys part [1000000]
#   BENCH_KEYS_EXTRA_N    further keys written before kill -9 [500000]
#   BENCH_KEYS_OVERLAY_MB --overlay-mb of the restarts [2048]
#   BENCH_KEYS_SAMPLE     new keys read back after the kill -9 restart [1000]
#   BENCH_WAIT_TIMEOUT    seconds DBSIZE gets to reach the count [120]
#   BENCH_RESTART_TIMEOUT seconds a restart gets to serve the GET [300]
#   LATTICED_BIN          server binary [build/node/latticed]
#   LATTICED_EXTRA_ARGS   extra latticed arguments, split on spaces []
#
# Full run (about 6 minutes on 2 cores: main ~2.5, growth ~0.5, sustain
# ~1.5, keys ~1; nothing else should run meanwhile):
#   scripts/bench/single_node.sh
# Quick run (about a minute): BENCH_N=20000 BENCH_SUSTAIN_N=200000 \
#   BENCH_SUSTAIN_WINDOW=5000 BENCH_SUSTAIN_OVERLAY_MB=8 BENCH_KEYS_N=100000 \
#   BENCH_KEYS_EXTRA_N=50000 scripts/bench/single_node.sh --no-build
# Without the write-ahead log build: BENCH_PARTS="main growth" ...
# Self-test (under a minute): BENCH_N=20000 BENCH_SUSTAIN_N=200000 BENCH_SUSTAIN_WINDOW=20000 \
#   BENCH_SUSTAIN_KEYSPACE=20000 BENCH_SUSTAIN_OVERLAY_MB=1 \
#   BENCH_KEYS_N=20000 BENCH_KEYS_EXTRA_N=10000 \
#   scripts/bench/single_node.sh --no-build --fake-latticed
#
# Exit status: 0 with the report written, also when a performance aim is
# NOT MET (the report says so); 1 on an error, or, after writing the report,
# when a measurement was invalid or data was wrong (listed under Problems).
# Every server is stopped on exit, also on error or Ctrl-C.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
# shellcheck source=../lib/node.sh
source "$repo/scripts/lib/node.sh"

usage() {
  sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

build=1
fake=0
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --fake-latticed) fake=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "single_node.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

# Invalid measurements and wrong data: logged loudly, listed in the report,
# and make the exit status 1 once the report is written.
PROBLEMS=()
problem() {
  echo "bench: PROBLEM: $*" >&2
  PROBLEMS+=("$*")
}

int_env() { # name default -> value, checked to be a positive integer
  local v=${!1:-$2}
  [[ $v =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$v'"
  echo "$v"
}

N=$(int_env BENCH_N 200000)
CLIENTS=$(int_env BENCH_CLIENTS 50)
KEYSPACE=$(int_env BENCH_KEYSPACE 100000)
PORT_BASE=$(int_env BENCH_PORT_BASE 7400)
RUN_TIMEOUT=$(int_env BENCH_RUN_TIMEOUT 900)
START_TIMEOUT=$(int_env BENCH_START_TIMEOUT 30)
STOP_TIMEOUT=$(int_env BENCH_STOP_TIMEOUT 120)
GROWTH_FROM=$(int_env BENCH_GROWTH_FROM 1000)
GROWTH_TO=$(int_env BENCH_GROWTH_TO 100000)
GROWTH_WINDOW=$(int_env BENCH_GROWTH_WINDOW 4000)
GROWTH_REPS=$(int_env BENCH_GROWTH_REPS 3)
GROWTH_CLIENTS=$(int_env BENCH_GROWTH_CLIENTS 10)
GROWTH_PIPELINE=$(int_env BENCH_GROWTH_PIPELINE 16)
SUSTAIN_N=$(int_env BENCH_SUSTAIN_N 2000000)
SUSTAIN_KEYSPACE=$(int_env BENCH_SUSTAIN_KEYSPACE 1000000)
SUSTAIN_WINDOW=$(int_env BENCH_SUSTAIN_WINDOW 20000)
SUSTAIN_OVERLAY_MB=$(int_env BENCH_SUSTAIN_OVERLAY_MB 64)
KEYS_N=$(int_env BENCH_KEYS_N 1000000)
KEYS_EXTRA_N=$(int_env BENCH_KEYS_EXTRA_N 500000)
KEYS_OVERLAY_MB=$(int_env BENCH_KEYS_OVERLAY_MB 2048)
KEYS_SAMPLE=$(int_env BENCH_KEYS_SAMPLE 1000)
WAIT_TIMEOUT=$(int_env BENCH_WAIT_TIMEOUT 120)
RESTART_TIMEOUT=$(int_env BENCH_RESTART_TIMEOUT 300)
LATTICED_BIN=${LATTICED_BIN:-build/node/latticed}
read -r -a LATTICED_EXTRA <<<"${LATTICED_EXTRA_ARGS:-}"

ALL_PARTS=(main io growth sustain keys)
parts_env=${BENCH_PARTS:-}
read -r -a PARTS <<<"${parts_env//,/ }"
((${#PARTS[@]})) || PARTS=("${ALL_PARTS[@]}")
for p in "${PARTS[@]}"; do
  [[ " ${ALL_PARTS[*]} " == *" $p "* ]] || die "BENCH_PARTS: unknown part '$p' (parts: ${ALL_PARTS[*]})"
done
part() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }
if part io && ! part main; then
  die "BENCH_PARTS: io measures the main table's latticed runs, so it needs main too"
fi
# Why a part does not run (empty: it runs).
declare -A SKIP=()
for p in "${ALL_PARTS[@]}"; do part "$p" || SKIP[$p]="not in BENCH_PARTS"; done
if ((fake)) && part io; then
  SKIP[io]="skipped by --fake-latticed: latticed only (redis-server has no write-ahead log batch counters)"
fi
run_part() { [[ -z ${SKIP[$1]:-} ]]; }

PIPELINES=(1 16)
TESTS=(SET SET_D1024 GET INCR SADD HSET)
declare -A TEST_TITLE=([SET]=SET [SET_D1024]="SET -d 1024" [GET]=GET [INCR]=INCR [SADD]=SADD [HSET]=HSET)
declare -A TEST_ARGS=([SET]="-t set" [SET_D1024]="-t set -d 1024" [GET]="-t get" [INCR]="-t incr"
  [SADD]="-t sadd" [HSET]="-t hset")
SERVERS=(latticed redis-always redis-everysec)
# Members of the growth windows are __rand_int__ in [0, RAND_SPACE): the
# largest -r redis-benchmark accepts, so repeats are negligible.
RAND_SPACE=2147483647
SUSTAIN_PIPELINE=16
MIN_CHECKPOINTS=3
POLL_MS=500
AIM_DISK_PER_KEY=150   # bytes, strictly below
AIM_RESTART_MS=5000    # at most

IO_FIELDS=(wal_syncs wal_batches wal_bytes_written committed_writes)
CKPT_FIELDS=(checkpoints checkpoint_last_ms checkpoint_in_progress overlay_bytes overlay_limit_bytes)

((GROWTH_TO - GROWTH_WINDOW > GROWTH_FROM + GROWTH_WINDOW)) ||
  die "BENCH_GROWTH_TO - BENCH_GROWTH_WINDOW must exceed BENCH_GROWTH_FROM + BENCH_GROWTH_WINDOW"
((SUSTAIN_WINDOW <= SUSTAIN_N)) || die "BENCH_SUSTAIN_WINDOW must not exceed BENCH_SUSTAIN_N"
((KEYS_SAMPLE <= KEYS_EXTRA_N)) || KEYS_SAMPLE=$KEYS_EXTRA_N

# ---------------------------------------------------------------- preparation

if ((build)); then
  scripts/setup.sh
  if ((fake)); then
    log "--fake-latticed: not building latticed"
  else
    scripts/build.sh
  fi
fi

for tool in redis-server redis-benchmark redis-cli awk timeout du; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs it)"
done
if ((!fake)); then
  [[ -x $LATTICED_BIN ]] ||
    die "$LATTICED_BIN is missing or not executable (build it with scripts/build.sh, or use --fake-latticed)"
  if run_part sustain || run_part keys; then
    "$LATTICED_BIN" --help 2>&1 | grep -q -- '--overlay-mb' ||
      die "$LATTICED_BIN has no --overlay-mb option, which the sustain and keys parts need (a build with the write-ahead log and memory overlay); BENCH_PARTS=\"main growth\" runs the rest"
  fi
fi

scratch=$repo/.bench/single_node
report=$repo/.bench/single_node.md
raw=$scratch/raw
rm -rf "$scratch"
mkdir -p "$raw"

# Servers by name; KIND is latticed, redis-always or redis-everysec.
declare -A PORT=() PID=() LABEL=() KIND=() REWRITE_MIN=()
POLL_PID=

stop_server() { # name [timeout-s]; prints how it went
  local name=$1 t=${2:-$STOP_TIMEOUT} pid=${PID[$1]:-} t0 rc=0
  STOP_OK=0 STOP_MS=
  [[ -n $pid ]] || return 0
  t0=$(_node_now_ms)
  kill_and_wait "$pid" "$t" || rc=$?
  unset "PID[$name]"
  if ((rc == 0)); then
    STOP_OK=1 STOP_MS=$(($(_node_now_ms) - t0))
    echo "$name stopped on SIGTERM in $STOP_MS ms, exit status ${NODE_LAST_EXIT:-unknown}"
  else
    echo "$name did NOT stop within $t s of SIGTERM and was killed"
  fi
}

# stop_noted name: stop_server in this shell (kill_and_wait must run here to
# reap the server and learn its exit status), its line kept for the report.
shutdown_lines=()
stop_noted() {
  stop_server "$1" >"$scratch/stop.$1.txt"
  shutdown_lines+=("$(<"$scratch/stop.$1.txt")")
  log "$(<"$scratch/stop.$1.txt")"
  ((STOP_OK)) || problem "$(<"$scratch/stop.$1.txt")"
}

stop_poller() {
  [[ -n $POLL_PID ]] || return 0
  kill "$POLL_PID" 2>/dev/null || true
  wait "$POLL_PID" 2>/dev/null || true
  POLL_PID=
}

cleanup() {
  local rc=$? name
  trap - EXIT INT TERM
  stop_poller
  for name in "${!PID[@]}"; do
    stop_server "$name" 30 >&2 || true
  done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

redis_cmd() { # fsync-policy port dir
  CMD=(redis-server --bind 127.0.0.1 --port "$2" --appendonly yes --appendfsync "$1"
    --save '' --dir "$3" --daemonize no)
}

# launch name kind [overlay-mb]: starts a server and does not wait for it;
# sets PID, PORT, KIND and LABEL of name, and LAUNCH_MS (just before exec).
# Its data dir is $scratch/<name> and its log $scratch/<name>.log (appended);
# launching a name again (a restart) reuses both, and the port.
launch() {
  local name=$1 kind=$2 overlay=${3:-} dir=$scratch/$1 port=${PORT[$1]:-}
  mkdir -p "$dir"
  if [[ -z $port ]]; then
    free_port "$PORT_BASE" $((PORT_BASE + 99)) >/dev/null || die "no free port"
    port=$NODE_LAST_PORT
  elif port_in_use 127.0.0.1 "$port"; then
    die "$name: port $port is taken, cannot restart there"
  fi
  case "$kind" in
    latticed)
      if ((fake)); then
        redis_cmd always "$port" "$dir"
        LABEL[$name]="FAKE latticed (redis-server appendfsync always)"
        if [[ -n $overlay ]]; then
          CMD+=(--auto-aof-rewrite-min-size "${overlay}mb")
          LABEL[$name]+=", auto-aof-rewrite-min-size ${overlay}mb standing in for --overlay-mb $overlay"
        fi
      else
        CMD=("$LATTICED_BIN" --node-id n1 --bind 127.0.0.1 --port "$port" --data-dir "$dir"
          --sync always --log-level info)
        LABEL[$name]="latticed (--sync always"
        if [[ -n $overlay ]]; then
          CMD+=(--overlay-mb "$overlay")
          LABEL[$name]+=", --overlay-mb $overlay"
        fi
        LABEL[$name]+=")"
        CMD+=(${LATTICED_EXTRA[@]+"${LATTICED_EXTRA[@]}"})
      fi
      ;;
    redis-always)
      redis_cmd always "$port" "$dir"
      LABEL[$name]="redis-server (appendonly, appendfsync always)"
      ;;
    redis-everysec)
      redis_cmd everysec "$port" "$dir"
      LABEL[$name]="redis-server (appendonly, appendfsync everysec)"
      ;;
    *) die "launch: unknown kind '$kind'" ;;
  esac
  log "starting $name on 127.0.0.1:$port: ${CMD[*]}"
  echo "=== $(date -u +%H:%M:%S) ${CMD[*]}" >>"$scratch/$name.log"
  LAUNCH_MS=$(_node_now_ms)
  "${CMD[@]}" >>"$scratch/$name.log" 2>&1 &
  PID[$name]=$!
  PORT[$name]=$port
  KIND[$name]=$kind
}

is_redis() { [[ ${KIND[$1]} != latticed ]] || ((fake)); }

# after_start name: what every start needs once the server answers.
fields_checked=0
after_start() {
  local name=$1 v
  if is_redis "$name"; then
    v=$(timeout --foreground 10 redis-cli --no-auth-warning -h 127.0.0.1 -p "${PORT[$name]}" \
      CONFIG GET auto-aof-rewrite-min-size | sed -n 2p) || true
    [[ $v =~ ^[0-9]+$ ]] || die "$name: CONFIG GET auto-aof-rewrite-min-size answered '$v'"
    REWRITE_MIN[$name]=$v
  fi
  if [[ ${KIND[$name]} == latticed ]] && ((!fields_checked)); then
    # Once, on the first latticed: every field a part that runs will read,
    # so a latticed without them fails now and not after minutes of running.
    local need=()
    run_part io && need+=("${IO_FIELDS[@]}")
    if run_part sustain || run_part keys; then need+=("${CKPT_FIELDS[@]}"); fi
    ((${#need[@]} == 0)) || need_fields "$name" "${need[@]}"
    fields_checked=1
  fi
}

start_server() { # name kind [overlay-mb]
  launch "$@"
  if ! wait_for_ping 127.0.0.1 "${PORT[$1]}" "$START_TIMEOUT" "${PID[$1]}"; then
    tail -n 20 "$scratch/$1.log" >&2 || true
    die "$1 did not come up (log: $scratch/$1.log)"
  fi
  after_start "$1"
}

check_alive() { # name
  if ! _node_alive "${PID[$1]}"; then
    tail -n 20 "$scratch/$1.log" >&2 || true
    die "$1 (pid ${PID[$1]}) died (log: $scratch/$1.log)"
  fi
}

rcli() { # name args...: one redis-cli command, 30 s at most
  timeout --foreground -k 5 30 redis-cli --no-auth-warning -h 127.0.0.1 -p "${PORT[$1]}" "${@:2}"
}

# info_read name: INFO persistence of the server into INFO (field -> value);
# for redis-server (and the fake latticed) with latticed's checkpoint and
# overlay fields derived from its AOF rewrites (see "Fields" in the header).
# Returns 1 if the server does not answer within 5 s.
declare -A INFO=()
info_read() {
  local name=$1 out line
  INFO=()
  out=$(timeout --foreground -k 1 5 redis-cli --no-auth-warning -h 127.0.0.1 -p "${PORT[$name]}" \
    INFO persistence 2>/dev/null) || return 1
  [[ $out == *"# Persistence"* ]] || return 1
  while IFS= read -r line; do
    line=${line%$'\r'}
    [[ $line =~ ^([A-Za-z0-9_]+):(.*)$ ]] && INFO[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
  done <<<"$out"
  if is_redis "$name"; then
    INFO[checkpoints]=${INFO[aof_rewrites]:-}
    INFO[checkpoint_in_progress]=${INFO[aof_rewrite_in_progress]:-}
    local s=${INFO[aof_last_rewrite_time_sec]:-}
    [[ $s == -1 ]] && s=0
    [[ $s =~ ^[0-9]+$ ]] && INFO[checkpoint_last_ms]=$((s * 1000))
    if [[ ${INFO[aof_current_size]:-} =~ ^[0-9]+$ && ${INFO[aof_base_size]:-} =~ ^[0-9]+$ ]]; then
      INFO[overlay_bytes]=$((INFO[aof_current_size] - INFO[aof_base_size]))
    fi
    INFO[overlay_limit_bytes]=${REWRITE_MIN[$name]:-}
  fi
  return 0
}

# need_fields name field...: INFO persistence must hold each field as a
# non-negative integer, or the script stops saying which are missing.
need_fields() {
  local name=$1 f bad=() have
  shift
  info_read "$name" || die "$name does not answer INFO persistence"
  for f in "$@"; do
    [[ ${INFO[$f]:-} =~ ^[0-9]+$ ]] || bad+=("$f${INFO[$f]+=${INFO[$f]}}")
  done
  if ((${#bad[@]})); then
    have=$(printf '%s\n' "${!INFO[@]}" | sort | tr '\n' ' ')
    die "$name (${LABEL[$name]}): INFO persistence lacks the field(s) ${bad[*]} (or they are not integers); it has: ${have% }. This script needs a latticed with the write-ahead log and memory overlay for the parts io, sustain and keys; BENCH_PARTS=\"main growth\" runs the rest."
  fi
}

# info_field name field: one integer field, or the script stops.
info_field() {
  info_read "$1" || die "$1 does not answer INFO persistence"
  [[ ${INFO[$2]:-} =~ ^[0-9]+$ ]] || die "$1: INFO persistence has no integer field $2 (got '${INFO[$2]:-}')"
  echo "${INFO[$2]}"
}

dbsize() { # name
  local v
  v=$(rcli "$1" DBSIZE) || die "$1: DBSIZE failed"
  [[ $v =~ ^[0-9]+$ ]] || die "$1: DBSIZE answered '$v'"
  echo "$v"
}

# wait_dbsize name count: DBSIZE reaches count within BENCH_WAIT_TIMEOUT s;
# sets DB_SIZE to the last answer, returns 1 on timeout.
wait_dbsize() {
  local name=$1 want=$2 deadline
  deadline=$(($(_node_now_ms) + WAIT_TIMEOUT * 1000))
  while :; do
    DB_SIZE=$(dbsize "$name")
    ((DB_SIZE == want)) && return 0
    if (($(_node_now_ms) >= deadline)); then
      log "$name: DBSIZE is $DB_SIZE, not $want, after ${WAIT_TIMEOUT}s"
      return 1
    fi
    check_alive "$name"
    sleep 0.1
  done
}

# ------------------------------------------------------------- measurements

# run_bench name tag redis-benchmark-args...
# Runs one redis-benchmark (-e: error replies are printed, so they can be
# detected; redis-benchmark itself does not fail on them) and sets
# B_STATUS (ok | errors | failed), B_RPS, B_P50, B_P99, B_MAX (ms).
# Output is kept in .bench/single_node/raw/<name>.<tag>.{csv,err}.
run_bench() {
  local name=$1 tag=$2 out err row rc=0
  shift 2
  out=$raw/$name.$tag.csv
  err=$raw/$name.$tag.err
  B_STATUS=failed B_RPS= B_P50= B_P99= B_MAX=
  timeout --foreground -k 5 "$RUN_TIMEOUT" \
    redis-benchmark -h 127.0.0.1 -p "${PORT[$name]}" -e --csv "$@" >"$out" 2>"$err" || rc=$?
  check_alive "$name"
  if ((rc != 0)); then
    log "$name $tag: redis-benchmark exited $rc: $(tail -n 3 "$err" "$out" | tr '\n' ' ')"
    return 0
  fi
  # CSV: header "test","rps","avg_latency_ms","min_latency_ms",
  # "p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms",
  # then one row per test. Test titles hold no commas.
  row=$(grep '^"' "$out" | grep -v '^"test"' | tail -n 1 | tr -d '"') || true
  IFS=, read -r _ B_RPS _ _ B_P50 _ B_P99 B_MAX <<<"$row" || true
  if ! [[ ${B_RPS:-} =~ ^[0-9]+(\.[0-9]+)?$ && ${B_P50:-} =~ ^[0-9.]+$ && ${B_P99:-} =~ ^[0-9.]+$ &&
    ${B_MAX:-} =~ ^[0-9.]+$ ]]; then
    log "$name $tag: cannot parse redis-benchmark output (see $out)"
    B_RPS= B_P50= B_P99= B_MAX=
    return 0
  fi
  if grep -q '^Error from server' "$out"; then
    B_STATUS=errors
    log "$name $tag: server replied with errors: $(grep -m 1 '^Error from server' "$out")"
  else
    B_STATUS=ok
  fi
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
fmt_rps() { awk -v a="$1" 'BEGIN { printf "%.0f", a }'; }
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.1f}" 'BEGIN { if (b > 0) printf f, a / b; else printf "n/a" }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# min / median / max of numbers on stdin, "-" if none
mmm() { sort -g | awk 'NF { v[++n] = $1 } END { if (n == 0) { print "-"; exit }
  m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; print v[1] " / " m " / " v[n] }'; }
met() { if (($1)); then echo met; else echo "**NOT MET**"; fi; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

GROWTH_SERVERS=(latticed redis-everysec)
main_servers=()
if run_part main; then
  main_servers=("${SERVERS[@]}")
elif run_part growth; then
  main_servers=("${GROWTH_SERVERS[@]}")
fi
for s in ${main_servers[@]+"${main_servers[@]}"}; do
  start_server "$s" "$s"
done

# Main table. For each (pipeline, test) the three servers run back to back,
# so slow drift of the machine affects them alike. Each run: -c CLIENTS,
# -n N, -r KEYSPACE; SET/GET/INCR hit random keys, SADD/HSET add random
# members/fields to one key (redis-benchmark's myset/myhash); SET -d 1024
# writes 1 KiB values (the others 3 bytes).
# io part: around every latticed run but GET, INFO persistence is read
# before and after and the deltas of IO_FIELDS kept in IO_D[test|P|field].
declare -A R_STATUS=() R_RPS=() R_P50=() R_P99=() IO_D=()
if run_part main; then
  for P in "${PIPELINES[@]}"; do
    for t in "${TESTS[@]}"; do
      for s in "${SERVERS[@]}"; do
        io=0
        if [[ $s == latticed && $t != GET ]] && run_part io; then
          io=1
          info_read "$s" || die "$s does not answer INFO persistence"
          declare -A io_before=()
          for f in "${IO_FIELDS[@]}"; do io_before[$f]=${INFO[$f]:-}; done
        fi
        # shellcheck disable=SC2086 # TEST_ARGS are words
        run_bench "$s" "${t,,}.P$P" -c "$CLIENTS" -n "$N" -r "$KEYSPACE" -P "$P" ${TEST_ARGS[$t]}
        k="$t|$P|$s"
        R_STATUS[$k]=$B_STATUS R_RPS[$k]=$B_RPS R_P50[$k]=$B_P50 R_P99[$k]=$B_P99
        if ((io)); then
          info_read "$s" || die "$s does not answer INFO persistence"
          for f in "${IO_FIELDS[@]}"; do
            [[ ${INFO[$f]:-} =~ ^[0-9]+$ && ${io_before[$f]} =~ ^[0-9]+$ ]] ||
              die "$s: INFO persistence field $f is '${INFO[$f]:-}' (before the run: '${io_before[$f]}')"
            IO_D[$t|$P|$f]=$((INFO[$f] - io_before[$f]))
          done
        fi
        if [[ $B_STATUS == ok ]]; then
          log "${TEST_TITLE[$t]} -P $P $s: $(fmt_rps "$B_RPS") req/s, p50 $B_P50 ms, p99 $B_P99 ms"
        fi
      done
    done
  done
fi

cell_rps() { # key
  case "${R_STATUS[$1]}" in
    ok) fmt_rps "${R_RPS[$1]}" ;;
    errors) echo "ERR ($(fmt_rps "${R_RPS[$1]}"))" ;;
    *) echo "FAILED" ;;
  esac
}
cell_lat() { # key
  if [[ -n ${R_P50[$1]} ]]; then echo "${R_P50[$1]} / ${R_P99[$1]}"; else echo "-"; fi
}
cell_ratio() { # key-a key-b
  if [[ ${R_STATUS[$1]} == ok && ${R_STATUS[$2]} == ok ]]; then ratio "${R_RPS[$1]}" "${R_RPS[$2]}"; else echo "n/a"; fi
}

main_table=
if run_part main; then
  main_table=$(
    echo "| test | -P | latticed req/s | latticed p50 / p99 ms | redis-always req/s | redis-always p50 / p99 ms | redis-everysec req/s | redis-everysec p50 / p99 ms | latticed / redis-always | latticed / redis-everysec |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for t in "${TESTS[@]}"; do
      for P in "${PIPELINES[@]}"; do
        l="$t|$P|latticed" a="$t|$P|redis-always" e="$t|$P|redis-everysec"
        echo "| ${TEST_TITLE[$t]} | $P | $(cell_rps "$l") | $(cell_lat "$l") | $(cell_rps "$a") | $(cell_lat "$a") | $(cell_rps "$e") | $(cell_lat "$e") | $(cell_ratio "$l" "$a") | $(cell_ratio "$l" "$e") |"
      done
    done
  )
fi

io_table=
if run_part io; then
  io_table=$(
    echo "| test | -P | requests | committed_writes | wal_batches | wal_syncs | wal_bytes_written | syncs / batch | writes / batch | bytes / batch | bytes / write | requests / batch | bytes / request |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for t in SET SET_D1024 INCR SADD HSET; do
      for P in 16 1; do
        w=${IO_D[$t|$P|committed_writes]} b=${IO_D[$t|$P|wal_batches]}
        y=${IO_D[$t|$P|wal_syncs]} by=${IO_D[$t|$P|wal_bytes_written]}
        st=${TEST_TITLE[$t]}
        [[ $t == SET && $P == 16 ]] && st="**SET**"
        echo "| $st | $P | $N | $w | $b | $y | $by | $(div "$y" "$b" %.2f) | $(div "$w" "$b") | $(div "$by" "$b" %.0f) | $(div "$by" "$w" %.0f) | $(div "$N" "$b") | $(div "$by" "$N" %.0f) |"
      done
    done
  )
fi

# Growth test: SADD throughput into ONE set key while it grows from
# GROWTH_FROM (1,000) to GROWTH_TO (100,000) members.
#
# Method, per repetition r (each on its own key growset:r, so every
# repetition really grows one key from scratch):
#   1. pre-fill the key to exactly GROWTH_FROM members "seed:r:i" (untimed,
#      redis-cli --pipe);
#   2. early window: redis-benchmark -n W -r 2^31-1 -c C -P P
#      SADD growset:r __rand_int__ (timed);
#   3. fill to GROWTH_TO - W members with "fill:r:i" (untimed, --pipe);
#   4. late window: the same redis-benchmark command (timed), which takes the
#      set to about GROWTH_TO.
# Fairness: both windows send the same number of the same command with the
# same concurrency, on a server already warm from the main table. Members are
# 12-digit numbers drawn from 2^31 values, disjoint from the seed:/fill:
# names, so nearly all are new (expected repeats within a window W^2/2^32,
# < 0.01 for W = 4000); each window is checked with SCARD before and after
# and the share of new members is reported. A window has to span many
# round trips (W / (C*P) = 25 at the defaults) and many milliseconds
# (redis-benchmark times in whole ms), so it cannot be tiny: the early window
# covers sizes GROWTH_FROM..GROWTH_FROM+W (1,000..5,000, mean ~3,000) and
# the late window GROWTH_TO-W..GROWTH_TO (96,000..100,000, mean ~98,000),
# a ~30x difference in size. Each window's rps is reported as the median
# over the repetitions; late/early near 1 means the per-SADD cost does not
# depend on the set size (redis-server gives the noise floor of the ratio).

scard() { # name key
  local v
  v=$(timeout --foreground 30 redis-cli --no-auth-warning -h 127.0.0.1 -p "${PORT[$1]}" SCARD "$2") ||
    die "$1: SCARD $2 failed"
  [[ $v =~ ^[0-9]+$ ]] || die "$1: SCARD $2 answered '$v'"
  echo "$v"
}

# pipe_sadd name key member-prefix first count: SADD members prefix<first>..
# prefix<first+count-1> in chunks of 10,000 over redis-cli --pipe.
pipe_sadd() {
  local name=$1 key=$2 prefix=$3 first=$4 count=$5 done_=0 chunk out
  while ((done_ < count)); do
    chunk=$((count - done_ < 10000 ? count - done_ : 10000))
    out=$(awk -v key="$key" -v pre="$prefix" -v a=$((first + done_)) -v n="$chunk" 'BEGIN {
        for (i = a; i < a + n; i++) {
          m = pre i
          printf "*3\r\n$4\r\nSADD\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(key), key, length(m), m
        }
      }' | timeout --foreground -k 5 "$RUN_TIMEOUT" redis-cli --no-auth-warning -h 127.0.0.1 -p "${PORT[$name]}" --pipe 2>&1) ||
      die "$name: redis-cli --pipe failed: $out"
    [[ $out == *"errors: 0,"* ]] || die "$name: redis-cli --pipe reported errors: $out"
    done_=$((done_ + chunk))
  done
}

# growth_window name key tag -> sets G_RPS (empty on failure) and G_NEW
growth_window() {
  local name=$1 key=$2 tag=$3 before after
  before=$(scard "$name" "$key")
  run_bench "$name" "$tag" -c "$GROWTH_CLIENTS" -P "$GROWTH_PIPELINE" -n "$GROWTH_WINDOW" \
    -r "$RAND_SPACE" SADD "$key" __rand_int__
  after=$(scard "$name" "$key")
  G_RPS=
  [[ $B_STATUS == ok ]] && G_RPS=$B_RPS
  # redis-benchmark sends whole pipelines, so it may send up to P-1 more.
  G_NEW=$(awk -v a=$((after - before)) -v w="$GROWTH_WINDOW" 'BEGIN { v = a / w; if (v > 1) v = 1; printf "%.4f", v }')
  log "$name $tag: set $before -> $after members, ${G_RPS:-FAILED} req/s"
}

declare -A G_EARLY=() G_LATE=() G_EARLY_ALL=() G_LATE_ALL=() G_MINNEW=()
if run_part growth; then
  for s in "${GROWTH_SERVERS[@]}"; do
    early=() late=() minnew=1
    for ((r = 1; r <= GROWTH_REPS; r++)); do
      key=growset:$r
      log "growth $s rep $r: pre-filling $key to $GROWTH_FROM members"
      pipe_sadd "$s" "$key" "seed:$r:" 0 "$GROWTH_FROM"
      n=$(scard "$s" "$key")
      ((n == GROWTH_FROM)) || die "$s: $key has $n members after pre-fill, expected $GROWTH_FROM"
      growth_window "$s" "$key" "growth.r$r.early"
      [[ -n $G_RPS ]] && early+=("$G_RPS")
      minnew=$(awk -v a="$minnew" -v b="$G_NEW" 'BEGIN { print (b < a ? b : a) }')
      n=$(scard "$s" "$key")
      fill=$((GROWTH_TO - GROWTH_WINDOW - n))
      log "growth $s rep $r: filling $key from $n to $((n + fill)) members"
      ((fill <= 0)) || pipe_sadd "$s" "$key" "fill:$r:" 0 "$fill"
      growth_window "$s" "$key" "growth.r$r.late"
      [[ -n $G_RPS ]] && late+=("$G_RPS")
      minnew=$(awk -v a="$minnew" -v b="$G_NEW" 'BEGIN { print (b < a ? b : a) }')
      check_alive "$s"
    done
    G_EARLY[$s]=$(printf '%s\n' ${early[@]+"${early[@]}"} | median)
    G_LATE[$s]=$(printf '%s\n' ${late[@]+"${late[@]}"} | median)
    G_EARLY_ALL[$s]=$(for v in ${early[@]+"${early[@]}"}; do fmt_rps "$v"; echo -n " "; done)
    G_LATE_ALL[$s]=$(for v in ${late[@]+"${late[@]}"}; do fmt_rps "$v"; echo -n " "; done)
    G_MINNEW[$s]=$minnew
  done
fi

growth_cell() { if [[ -n $1 ]]; then fmt_rps "$1"; else echo FAILED; fi; }
growth_table=
if run_part growth; then
  growth_table=$(
    echo "| server | early req/s (set ${GROWTH_FROM}..$((GROWTH_FROM + GROWTH_WINDOW))) | late req/s (set $((GROWTH_TO - GROWTH_WINDOW))..${GROWTH_TO}) | late / early | each repetition, early | each repetition, late | min share of new members |"
    echo "|---|---:|---:|---:|---|---|---:|"
    for s in "${GROWTH_SERVERS[@]}"; do
      if [[ -n ${G_EARLY[$s]} && -n ${G_LATE[$s]} ]]; then rr=$(ratio "${G_LATE[$s]}" "${G_EARLY[$s]}"); else rr=n/a; fi
      echo "| $s | $(growth_cell "${G_EARLY[$s]}") | $(growth_cell "${G_LATE[$s]}") | $rr | ${G_EARLY_ALL[$s]% } | ${G_LATE_ALL[$s]% } | ${G_MINNEW[$s]} |"
    done
  )
fi

# The main servers are done; the later parts start their own.
main_labels=()
for s in ${main_servers[@]+"${main_servers[@]}"}; do
  main_labels+=("$s: ${LABEL[$s]}")
  stop_noted "$s"
done

# Sustained writes through checkpoints. Each server in turn, fresh, gets
# SUSTAIN_N SETs (-c CLIENTS -P 16 -r SUSTAIN_KEYSPACE) as consecutive
# redis-benchmark windows of SUSTAIN_WINDOW requests; latticed runs with
# --overlay-mb SUSTAIN_OVERLAY_MB so that the run spans several checkpoints,
# the redis-servers with their defaults (their AOF rewrites are reported in
# the same columns). Observations of INFO persistence go to
# $scratch/<name>.obs, one line each:
#   <ms> <tag> <checkpoints> <in_progress> <last_ms> <overlay> <limit>
# tag p: the background poll (every POLL_MS ms; "<ms> p error" if INFO did
# not answer within 5 s), a<w>/b<w>: read just before / after window w,
# e: after the run. Windows go to $scratch/<name>.windows:
#   <w> <start ms> <end ms> <requests> <rps> <p50> <p99> <max>
# A window overlapped a checkpoint if checkpoint_in_progress was 1 when read
# before or after it or in a poll during it, or the checkpoints counter read
# after it differs from the one read before it.
SUSTAIN_SERVERS=(sustain-latticed sustain-redis-always sustain-redis-everysec)
declare -A SU_KIND=([sustain-latticed]=latticed [sustain-redis-always]=redis-always
  [sustain-redis-everysec]=redis-everysec)

obs_line() { # tag: one observation line from INFO
  echo "$(_node_now_ms) $1 ${INFO[checkpoints]:--} ${INFO[checkpoint_in_progress]:--} ${INFO[checkpoint_last_ms]:--} ${INFO[overlay_bytes]:--} ${INFO[overlay_limit_bytes]:--}"
}

poller() { # name file; runs in the background until killed
  trap - EXIT INT TERM
  set +e
  local name=$1 file=$2 next now
  next=$(_node_now_ms)
  while :; do
    if info_read "$name"; then obs_line p >>"$file"; else echo "$(_node_now_ms) p error" >>"$file"; fi
    next=$((next + POLL_MS))
    now=$(_node_now_ms)
    if ((next > now)); then
      sleep "$(awk -v ms=$((next - now)) 'BEGIN { printf "%.3f", ms / 1000 }')"
    else
      next=$now
    fi
  done
}

observe() { # name tag file: read INFO (6 tries, 5 s each at most), append, keep in INFO
  local i
  for ((i = 0; i < 6; i++)); do
    if info_read "$1"; then
      obs_line "$2" >>"$3"
      return 0
    fi
    check_alive "$1"
    sleep 0.5
  done
  die "$1 did not answer INFO persistence in 6 tries"
}

declare -A SU_STATUS=() SU_RPS=() SU_WALL=() SU_CKPT=() SU_DUR=() SU_IN=() SU_OUT=() SU_MAXLAT=()
declare -A SU_OVERLAY=() SU_POLLS=()
sustain_run() { # name
  local name=$1 kind=${SU_KIND[$1]} overlay= obs=$scratch/$1.obs win=$scratch/$1.windows
  local sent=0 w=0 n ts te t0 t1 ck0 ok=1 ip_end
  [[ $kind == latticed ]] && overlay=$SUSTAIN_OVERLAY_MB
  start_server "$name" "$kind" "$overlay"
  need_fields "$name" "${CKPT_FIELDS[@]}"
  : >"$obs"
  : >"$win"
  poller "$name" "$obs" &
  POLL_PID=$!
  log "sustain $name: $SUSTAIN_N SETs in windows of $SUSTAIN_WINDOW (poller pid $POLL_PID)"
  observe "$name" s "$obs"
  ck0=${INFO[checkpoints]}
  t0=$(_node_now_ms)
  while ((sent < SUSTAIN_N)); do
    w=$((w + 1))
    n=$((SUSTAIN_N - sent < SUSTAIN_WINDOW ? SUSTAIN_N - sent : SUSTAIN_WINDOW))
    observe "$name" "a$w" "$obs"
    ts=$(_node_now_ms)
    run_bench "$name" "sustain.w$w" -c "$CLIENTS" -n "$n" -r "$SUSTAIN_KEYSPACE" -P "$SUSTAIN_PIPELINE" -t set
    te=$(_node_now_ms)
    observe "$name" "b$w" "$obs"
    if [[ $B_STATUS != ok ]]; then
      problem "sustain $name: window $w ($n SETs) $B_STATUS (see $raw/$name.sustain.w$w.*); the run stopped there"
      SU_STATUS[$name]="FAILED in window $w"
      ok=0
      break
    fi
    echo "$w $ts $te $n $B_RPS $B_P50 $B_P99 $B_MAX" >>"$win"
    kill -0 "$POLL_PID" 2>/dev/null || die "sustain $name: the INFO persistence poller (pid $POLL_PID) is gone"
    sent=$((sent + n))
    log "sustain $name window $w: $(fmt_rps "$B_RPS") req/s, p99 $B_P99 ms, checkpoints ${INFO[checkpoints]}, overlay ${INFO[overlay_bytes]} of ${INFO[overlay_limit_bytes]} bytes"
  done
  t1=$(_node_now_ms)
  SU_CKPT[$name]=$((INFO[checkpoints] - ck0))
  stop_poller
  # A checkpoint still running: let it finish, so its duration is read too.
  ip_end=${INFO[checkpoint_in_progress]}
  local deadline=$(($(_node_now_ms) + STOP_TIMEOUT * 1000))
  while :; do
    observe "$name" e "$obs"
    [[ ${INFO[checkpoint_in_progress]} == 0 ]] && break
    (($(_node_now_ms) < deadline)) || { problem "sustain $name: a checkpoint was still in progress ${STOP_TIMEOUT}s after the run"; break; }
    sleep 0.2
  done
  stop_noted "$name"
  ((ok)) && SU_STATUS[$name]=ok
  # Windows with their overlap flag (1/0) as a 9th column.
  sort -n -k1,1 "$obs" | awk '
    FNR == NR {
      if ($2 == "p") { if ($3 == "error") next; pt[++np] = $1; pip[np] = $4 }
      else if ($2 ~ /^[ab][0-9]+$/) { ck[$2] = $3; ip[$2] = $4 }
      next
    }
    {
      o = (ip["a" $1] == 1 || ip["b" $1] == 1 || ck["a" $1] != ck["b" $1])
      for (i = 1; i <= np && !o; i++) if (pt[i] >= $2 && pt[i] <= $3 && pip[i] == 1) o = 1
      print $0, o
    }' - "$win" >"$win.flagged"
  SU_RPS[$name]=$(awk '{ n += $4; t += $4 / $5 } END { if (t > 0) printf "%.0f", n / t }' "$win.flagged")
  SU_WALL[$name]=$(awk -v n="$sent" -v ms=$((t1 - t0)) 'BEGIN { if (ms > 0) printf "%.0f", n * 1000 / ms }')
  SU_MAXLAT[$name]=$(awk '$8 > m { m = $8 } END { print m + 0 }' "$win.flagged")
  SU_IN[$name]=$(awk '$9 == 1 { print $7 }' "$win.flagged" | { c=$(cat); if [[ -n $c ]]; then echo "$(wc -l <<<"$c"): $(median <<<"$c") / $(sort -g <<<"$c" | tail -n 1)"; else echo "0: -"; fi; })
  SU_OUT[$name]=$(awk '$9 == 0 { print $7 }' "$win.flagged" | { c=$(cat); if [[ -n $c ]]; then echo "$(wc -l <<<"$c"): $(median <<<"$c") / $(sort -g <<<"$c" | tail -n 1)"; else echo "0: -"; fi; })
  # Durations: checkpoint_last_ms at each observation where none is in
  # progress and the counter moved since the last one taken (if it moved by
  # more than one, the durations in between were not seen).
  local durs
  durs=$(sort -n -k1,1 "$obs" | awk '
    $3 == "error" || $3 == "-" { next }
    !init { last = $3; init = 1 }
    $4 == 0 && $3 > last { print $5; missed += $3 - last - 1; last = $3 }
    END { print "missed", missed + 0 > "/dev/stderr" }' 2>"$scratch/$name.missed")
  SU_DUR[$name]="$(mmm <<<"$durs") ($(grep -c . <<<"$durs" || true) seen$(awk '$2 > 0 { printf ", %d not seen", $2 }' "$scratch/$name.missed"))"
  SU_OVERLAY[$name]=$(awk '$3 == "error" { next }
    $6 ~ /^[0-9]+$/ && $6 + 0 > m { m = $6 + 0 } $7 ~ /^[0-9]+$/ { l = $7 } END { printf "%d of %d", m, l }' "$obs")
  SU_POLLS[$name]=$(awk '$2 == "p" { n++; if ($3 == "error") e++ } END { printf "%d polls, %d unanswered", n, e }' "$obs")
  if [[ $kind == latticed ]]; then
    if ((SU_CKPT[$name] < MIN_CHECKPOINTS)); then
      problem "sustain $name: only ${SU_CKPT[$name]} checkpoint(s) during the run, not >= $MIN_CHECKPOINTS: NOT MET, the run does not show sustained writes through checkpoints (lower BENCH_SUSTAIN_OVERLAY_MB or raise BENCH_SUSTAIN_N)"
    fi
    ((ip_end == 0)) || log "sustain $name: a checkpoint was in progress when the run ended"
    local lim=${INFO[overlay_limit_bytes]}
    # --overlay-mb in MiB or in MB, within 1%
    if ! awk -v l="$lim" -v mb="$overlay" 'function near(a, b) { return a >= 0.99 * b && a <= 1.01 * b }
        BEGIN { exit !(near(l, mb * 1048576) || near(l, mb * 1000000)) }'; then
      problem "sustain $name: overlay_limit_bytes is $lim, which is not the --overlay-mb $overlay asked for"
    fi
  fi
}

if run_part sustain; then
  for s in "${SUSTAIN_SERVERS[@]}"; do
    sustain_run "$s"
  done
fi

sustain_table=
sustain_windows=
sustain_note=
if run_part sustain; then
  l=sustain-latticed
  sustain_note="latticed p99 (median / max over windows): during a checkpoint ${SU_IN[$l]#*: } ms in ${SU_IN[$l]%%:*} windows, otherwise ${SU_OUT[$l]#*: } ms in ${SU_OUT[$l]%%:*} windows."
  if [[ ${SU_IN[$l]%%:*} == 0 || ${SU_OUT[$l]%%:*} == 0 ]]; then
    sustain_note+=" **No comparison: every window fell on the same side; change BENCH_SUSTAIN_WINDOW (shorter than the time between checkpoints) or BENCH_SUSTAIN_OVERLAY_MB.**"
  fi
  sustain_table=$(
    echo "| server | req/s (sum of windows) | wall-clock req/s | latticed / this | checkpoints during the run (redis: AOF rewrites) | checkpoint ms min / median / max | windows during a checkpoint: count: p99 median / max ms | other windows: count: p99 median / max ms | max latency ms | overlay bytes, max seen of limit | INFO polls |"
    echo "|---|---:|---:|---:|---:|---|---|---|---:|---|---|"
    for s in "${SUSTAIN_SERVERS[@]}"; do
      if [[ ${SU_STATUS[$s]:-} == ok && ${SU_STATUS[$l]:-} == ok ]]; then rr=$(ratio "${SU_RPS[$l]}" "${SU_RPS[$s]}"); else rr=n/a; fi
      c=${SU_CKPT[$s]}
      [[ $s == "$l" ]] && ((c < MIN_CHECKPOINTS)) && c="$c **NOT MET (< $MIN_CHECKPOINTS)**"
      [[ ${SU_STATUS[$s]} == ok ]] || c="$c, ${SU_STATUS[$s]}"
      echo "| $s | ${SU_RPS[$s]:-FAILED} | ${SU_WALL[$s]:-} | $rr | $c | ${SU_DUR[$s]} | ${SU_IN[$s]} | ${SU_OUT[$s]} | ${SU_MAXLAT[$s]} | ${SU_OVERLAY[$s]} | ${SU_POLLS[$s]} |"
    done
  )
  sustain_windows=$(
    echo "| window | requests | req/s | p50 ms | p99 ms | max ms | during a checkpoint | checkpoints after | overlay bytes after |"
    echo "|---:|---:|---:|---:|---:|---:|---|---:|---:|"
    sort -n -k1,1 "$scratch/$l.obs" | awk '
      FNR == NR { if ($2 ~ /^b[0-9]+$/) { ck[substr($2, 2)] = $3; ov[substr($2, 2)] = $6 } next }
      { printf "| %d | %d | %.0f | %s | %s | %s | %s | %s | %s |\n", $1, $4, $5, $6, $7, $8, ($9 ? "yes" : "no"), ck[$1], ov[$1] }' \
      - "$scratch/$l.windows.flagged"
  )
fi

# Keys: KEYS_N distinct small string keys in one latticed, its memory, its
# disk, and how long it takes to serve again after a clean stop and after
# kill -9 with a whole batch of writes still only in the log.
#   1. fresh latticed (default overlay), SET key:<i> v<i> for i < KEYS_N over
#      redis-cli --pipe; DBSIZE must reach KEYS_N (BENCH_WAIT_TIMEOUT);
#      VmRSS from /proc/<pid>/status;
#   2. SIGTERM, wait for the exit (BENCH_STOP_TIMEOUT); du -sb of the data
#      dir (apparent bytes; du -s -B1, the allocated bytes, beside it);
#   3. restart with --overlay-mb KEYS_OVERLAY_MB, timed from exec until PING
#      is answered and then GET key:<KEYS_N-1> answers v<KEYS_N-1>;
#   4. KEYS_EXTRA_N further keys; the checkpoints counter must not move and
#      none be in progress (else the batch was not all in the log: invalid);
#      kill -9 right away;
#   5. restart (same flags), timed the same way on the last key written; then
#      DBSIZE must reach KEYS_N + KEYS_EXTRA_N, and KEYS_SAMPLE of the new
#      keys (spread evenly, the last one among them) and 100 of the first
#      ones must read back right;
#   6. SIGTERM again and du -sb once more.

# pipe_set name first count: SET key:<i> v<i> for i in first..first+count-1,
# in chunks of 100,000 over redis-cli --pipe, every reply checked.
pipe_set() {
  local name=$1 first=$2 count=$3 done_=0 chunk out
  while ((done_ < count)); do
    chunk=$((count - done_ < 100000 ? count - done_ : 100000))
    out=$(awk -v a=$((first + done_)) -v n="$chunk" 'BEGIN {
        for (i = a; i < a + n; i++) {
          k = "key:" i; v = "v" i
          printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
        }
      }' | timeout --foreground -k 5 "$RUN_TIMEOUT" redis-cli --no-auth-warning -h 127.0.0.1 -p "${PORT[$name]}" --pipe 2>&1) ||
      die "$name: redis-cli --pipe failed: $out"
    [[ $out =~ errors:\ 0,\ replies:\ $chunk($|[^0-9]) ]] || die "$name: redis-cli --pipe of $chunk SETs reported: $out"
    done_=$((done_ + chunk))
    check_alive "$name"
  done
}

rss_kb() { # name -> "VmRSS RssAnon RssFile" in KiB
  awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } END { print r + 0, a + 0, f + 0 }' \
    "/proc/${PID[$1]}/status"
}

# wait_serving name key value: after launch, waits until PING answers PONG
# and then GET key answers value; sets SERVE_PING_MS and SERVE_GET_MS (from
# LAUNCH_MS). Returns 1 (a problem recorded) after BENCH_RESTART_TIMEOUT s,
# or if GET answers another value or nil for 10 s (error replies, such as
# LOADING, are waited through); dies if the server exits. Polls every 50 ms
# (a new redis-cli each time, so finer polling would take CPU from the
# recovering server on a 2-core machine).
wait_serving() {
  local name=$1 key=$2 want=$3 deadline reply now wrong_since=
  deadline=$((LAUNCH_MS + RESTART_TIMEOUT * 1000))
  SERVE_PING_MS= SERVE_GET_MS=
  while :; do
    reply=$(timeout 2 redis-cli --no-auth-warning -h 127.0.0.1 -p "${PORT[$name]}" PING 2>/dev/null) || reply=
    now=$(_node_now_ms)
    if [[ $reply == PONG ]]; then SERVE_PING_MS=$((now - LAUNCH_MS)); break; fi
    check_alive "$name"
    if ((now >= deadline)); then
      problem "$name did not answer PING within ${RESTART_TIMEOUT}s of its restart"
      return 1
    fi
    sleep 0.05
  done
  while :; do
    reply=$(timeout 2 redis-cli --no-auth-warning -h 127.0.0.1 -p "${PORT[$name]}" GET "$key" 2>/dev/null) || reply="(no answer)"
    now=$(_node_now_ms)
    if [[ $reply == "$want" ]]; then SERVE_GET_MS=$((now - LAUNCH_MS)); return 0; fi
    check_alive "$name"
    if ! [[ $reply =~ ^(v[0-9]*)?$ ]]; then
      wrong_since= # an error reply: not serving yet
    elif [[ -z $wrong_since ]]; then
      wrong_since=$now
    elif ((now - wrong_since >= 10000)); then
      problem "$name: after its restart GET $key answered '$reply', not '$want', for 10 s"
      return 1
    fi
    if ((now >= deadline)); then
      problem "$name: GET $key did not answer '$want' within ${RESTART_TIMEOUT}s of its restart (last answer '$reply')"
      return 1
    fi
    sleep 0.05
  done
}

# check_sample name first count sample: GET sample keys spread evenly over
# key:<first>..key:<first+count-1>, the last one included; prints "good of n".
check_sample() {
  local name=$1 first=$2 count=$3 k=$4
  awk -v a="$first" -v n="$count" -v k="$k" 'BEGIN {
      for (j = 0; j < k - 1; j++) print a + int(j * n / k)
      print a + n - 1
    }' >"$scratch/sample.idx"
  sed 's/^/GET key:/' "$scratch/sample.idx" |
    timeout --foreground -k 5 120 redis-cli --no-auth-warning -h 127.0.0.1 -p "${PORT[$name]}" >"$scratch/sample.out" ||
    die "$name: reading the sample back failed"
  awk 'FNR == NR { want[FNR] = "v" $1; n++; next } { if ($0 == want[FNR]) good++; else if (bad++ < 3) print "key:" substr(want[FNR], 2) " -> \"" $0 "\"" > "/dev/stderr" }
    END { print good + 0 " of " n }' "$scratch/sample.idx" "$scratch/sample.out"
}

disk_bytes() { # dir -> "apparent allocated"
  echo "$(du -sb "$1" | cut -f1) $(du -s -B1 "$1" | cut -f1)"
}

# restart_timed name tag last what: restarts name with --overlay-mb
# KEYS_OVERLAY_MB, times it (wait_serving) on key:<last>, then DBSIZE must
# reach last + 1; keeps K[<tag>_ping], K[<tag>_get], K[dbsize_<tag>].
restart_timed() {
  local name=$1 tag=$2 last=$3 what=$4
  launch "$name" latticed "$KEYS_OVERLAY_MB"
  wait_serving "$name" "key:$last" "v$last" || return 1
  after_start "$name"
  K[${tag}_ping]=$SERVE_PING_MS K[${tag}_get]=$SERVE_GET_MS
  log "keys: restart after $what: PING after $SERVE_PING_MS ms, GET after $SERVE_GET_MS ms"
  wait_dbsize "$name" $((last + 1)) || problem "$name: DBSIZE is $DB_SIZE after the restart after $what, not $((last + 1))"
  K[dbsize_$tag]=$DB_SIZE
}

declare -A K=()
keys_part() {
  local kn=keys-latticed dir=$scratch/keys-latticed t0 total ck_a ov_a
  K[ok]=0
  start_server "$kn" latticed
  need_fields "$kn" "${CKPT_FIELDS[@]}"
  K[label1]=${LABEL[$kn]}
  (($(dbsize "$kn") == 0)) || die "$kn: a fresh server does not have DBSIZE 0"
  read -r 'K[rss0]' _ _ <<<"$(rss_kb "$kn")"
  log "keys: loading $KEYS_N keys into $kn"
  t0=$(_node_now_ms)
  pipe_set "$kn" 0 "$KEYS_N"
  K[load_ms]=$(($(_node_now_ms) - t0))
  wait_dbsize "$kn" "$KEYS_N" || problem "$kn: DBSIZE is $DB_SIZE after loading $KEYS_N distinct keys"
  K[dbsize]=$DB_SIZE
  read -r 'K[rss]' 'K[rss_anon]' 'K[rss_file]' <<<"$(rss_kb "$kn")"
  info_read "$kn" || die "$kn does not answer INFO persistence"
  K[info1]="checkpoints ${INFO[checkpoints]}, overlay_bytes ${INFO[overlay_bytes]} of ${INFO[overlay_limit_bytes]}"
  log "keys: $KEYS_N keys in ${K[load_ms]} ms, VmRSS ${K[rss]} KiB; stopping $kn (SIGTERM)"
  stop_noted "$kn"
  K[stop]=${shutdown_lines[-1]}
  ((STOP_OK)) || return 0
  read -r 'K[du]' 'K[du_alloc]' <<<"$(disk_bytes "$dir")"
  K[files]=$(find "$dir" -type f -printf '%s %P\n' | sort -rn | head -n 5 | awk '{ printf "%s%s %d", (NR > 1 ? ", " : ""), $2, $1 }')
  log "keys: data dir after a clean stop: ${K[du]} bytes (du -sb), ${K[du_alloc]} allocated"

  restart_timed "$kn" r1 $((KEYS_N - 1)) "the clean stop" || return 0
  K[label2]=${LABEL[$kn]}

  info_read "$kn" || die "$kn does not answer INFO persistence"
  ck_a=${INFO[checkpoints]} ov_a=${INFO[overlay_bytes]}
  log "keys: writing $KEYS_EXTRA_N further keys, then kill -9"
  t0=$(_node_now_ms)
  pipe_set "$kn" "$KEYS_N" "$KEYS_EXTRA_N"
  K[load2_ms]=$(($(_node_now_ms) - t0))
  info_read "$kn" || die "$kn does not answer INFO persistence"
  kill -KILL "${PID[$kn]}"
  wait "${PID[$kn]}" 2>/dev/null || true
  unset "PID[$kn]"
  K[batch]="checkpoints $ck_a -> ${INFO[checkpoints]}, checkpoint_in_progress ${INFO[checkpoint_in_progress]}, overlay_bytes $ov_a -> ${INFO[overlay_bytes]} of ${INFO[overlay_limit_bytes]}"
  K[batch_ok]=1
  if [[ ${INFO[checkpoints]} != "$ck_a" || ${INFO[checkpoint_in_progress]} != 0 ]]; then
    K[batch_ok]=0
    problem "$kn: a checkpoint ran while the $KEYS_EXTRA_N further keys were written ($ck_a -> ${INFO[checkpoints]}, in progress ${INFO[checkpoint_in_progress]}), so the restart after kill -9 did not replay them all from the log (the timing is not that of a full overlay): raise BENCH_KEYS_OVERLAY_MB or lower BENCH_KEYS_EXTRA_N"
  fi
  total=$((KEYS_N + KEYS_EXTRA_N))

  restart_timed "$kn" r2 $((total - 1)) "kill -9" || return 0
  K[sample_new]=$(check_sample "$kn" "$KEYS_N" "$KEYS_EXTRA_N" "$KEYS_SAMPLE")
  K[sample_old]=$(check_sample "$kn" 0 "$KEYS_N" 100)
  [[ ${K[sample_new]} == "$KEYS_SAMPLE of $KEYS_SAMPLE" ]] ||
    problem "$kn: after the kill -9 restart only ${K[sample_new]} sampled new keys read back right"
  [[ ${K[sample_old]} == "100 of 100" ]] ||
    problem "$kn: after the kill -9 restart only ${K[sample_old]} sampled first keys read back right"
  read -r 'K[rss2]' _ _ <<<"$(rss_kb "$kn")"
  stop_noted "$kn"
  K[stop2]=${shutdown_lines[-1]}
  ((STOP_OK)) && read -r 'K[du2]' 'K[du2_alloc]' <<<"$(disk_bytes "$dir")"
  K[ok]=1
}

keys_table=
if run_part keys; then
  keys_part
  # Still running if the part stopped early.
  [[ -z ${PID[keys-latticed]:-} ]] || stop_noted keys-latticed
  keys_table=$(
    kb() { awk -v k="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.0f", k * 1024 / n; else printf "n/a" }'; }
    ms_aim() { # ms -> "value | aim | met"
      if [[ -n $1 ]]; then echo "$1 ms | <= $AIM_RESTART_MS ms | $(met $(($1 <= AIM_RESTART_MS)))"; else echo "- | <= $AIM_RESTART_MS ms | **NOT MEASURED**"; fi
    }
    echo "| measure | value | aim | |"
    echo "|---|---:|---|---|"
    echo "| load: SET key:<i> v<i>, redis-cli --pipe, into ${K[label1]} | $KEYS_N keys in ${K[load_ms]} ms ($(div "$KEYS_N" "$(div "${K[load_ms]}" 1000 %.3f)" %.0f) keys/s) | | |"
    echo "| DBSIZE | ${K[dbsize]} | $KEYS_N | $(met $((K[dbsize] == KEYS_N))) |"
    echo "| VmRSS (RssAnon / RssFile) | $(mib $((K[rss] * 1024))) ($(mib $((K[rss_anon] * 1024))) / $(mib $((K[rss_file] * 1024)))) | | |"
    echo "| RSS per key | $(kb "${K[rss]}" "${K[dbsize]}") B | | |"
    echo "| RSS per key above the empty server's $(mib $((K[rss0] * 1024))) | $(kb $((K[rss] - K[rss0])) "${K[dbsize]}") B | | |"
    echo "| INFO persistence after the load | ${K[info1]} | | |"
    echo "| clean stop | ${K[stop]} | | |"
    if [[ -n ${K[du]:-} ]]; then
      pk=$(div "${K[du]}" "$KEYS_N" %.1f)
      echo "| data dir after the clean stop, du -sb (allocated: du -s -B1) | ${K[du]} B (${K[du_alloc]} B) | | |"
      echo "| disk per key, du -sb / $KEYS_N | $pk B | < $AIM_DISK_PER_KEY B | $(met "$(awk -v v="$pk" -v a="$AIM_DISK_PER_KEY" 'BEGIN { print (v < a) }')") |"
      echo "| disk per key, allocated | $(div "${K[du_alloc]}" "$KEYS_N" %.1f) B | | |"
      echo "| largest files of the data dir, bytes | ${K[files]} | | |"
    fi
    if [[ -n ${K[r1_get]:-} ]]; then
      echo "| restart after the clean stop as ${K[label2]}: exec to PING answered | ${K[r1_ping]} ms | | |"
      echo "| restart after the clean stop: exec to GET key:$((KEYS_N - 1)) answered | $(ms_aim "${K[r1_get]}") |"
    fi
    if [[ -n ${K[batch]:-} ]]; then
      echo "| further batch: $KEYS_EXTRA_N keys written in ${K[load2_ms]} ms, then kill -9 at once | ${K[batch]} | no checkpoint | $(if ((K[batch_ok])); then echo "all in the log"; else echo "**INVALID: checkpointed**"; fi) |"
    fi
    if [[ -n ${K[r2_get]:-} ]]; then
      echo "| restart after kill -9: exec to PING answered | ${K[r2_ping]} ms | | |"
      echo "| restart after kill -9: exec to GET key:$((KEYS_N + KEYS_EXTRA_N - 1)) answered | $(ms_aim "${K[r2_get]}") |"
      echo "| DBSIZE after the kill -9 restart | ${K[dbsize_r2]} | $((KEYS_N + KEYS_EXTRA_N)) | $(met $((K[dbsize_r2] == KEYS_N + KEYS_EXTRA_N))) |"
      echo "| sampled new keys read back | ${K[sample_new]} | all | $(met "$([[ ${K[sample_new]} == "$KEYS_SAMPLE of $KEYS_SAMPLE" ]] && echo 1 || echo 0)") |"
      echo "| sampled first keys read back | ${K[sample_old]} | all | $(met "$([[ ${K[sample_old]} == "100 of 100" ]] && echo 1 || echo 0)") |"
      echo "| VmRSS after the kill -9 restart | $(mib $((K[rss2] * 1024))) | | |"
      echo "| final clean stop | ${K[stop2]} | | |"
      if [[ -n ${K[du2]:-} ]]; then
        echo "| data dir after it, du -sb (allocated) | ${K[du2]} B (${K[du2_alloc]} B), $(div "${K[du2]}" $((KEYS_N + KEYS_EXTRA_N)) %.1f) B per key | | |"
      fi
    fi
    ((K[ok])) || echo "| **the keys part stopped early: see Problems** | | | |"
  )
fi

# ------------------------------------------------------------------- report

AIMS=()
if run_part sustain; then
  c=${SU_CKPT[sustain-latticed]}
  AIMS+=("sustained run spans >= $MIN_CHECKPOINTS checkpoints (a condition of the measurement): $c, $(met $((c >= MIN_CHECKPOINTS)))")
  AIMS+=("sustained SET -P 16 (no set aim): latticed ${SU_RPS[sustain-latticed]:-FAILED} req/s, $(grep '^| sustain-redis-always ' <<<"$sustain_table" | cut -d'|' -f5 | tr -d ' ')x redis-always, $(grep '^| sustain-redis-everysec ' <<<"$sustain_table" | cut -d'|' -f5 | tr -d ' ')x redis-everysec; $sustain_note")
else
  AIMS+=("sustained run spans >= $MIN_CHECKPOINTS checkpoints: not measured (${SKIP[sustain]})")
fi
if run_part keys; then
  if [[ -n ${K[du]:-} ]]; then
    pk=$(div "${K[du]}" "$KEYS_N" %.1f)
    AIMS+=("disk per key after a clean stop < $AIM_DISK_PER_KEY B (du -sb, $KEYS_N keys): $pk B, $(met "$(awk -v v="$pk" -v a="$AIM_DISK_PER_KEY" 'BEGIN { print (v < a) }')")")
  else
    AIMS+=("disk per key < $AIM_DISK_PER_KEY B: **NOT MEASURED** (see Problems)")
  fi
  for r in r1:"restart after a clean stop" r2:"restart after kill -9 with $KEYS_EXTRA_N keys in the log"; do
    v=${K[${r%%:*}_get]:-}
    if [[ -n $v ]]; then
      AIMS+=("${r#*:}, exec to serving (PING and GET) <= $AIM_RESTART_MS ms: $v ms, $(met $((v <= AIM_RESTART_MS)))")
    else
      AIMS+=("${r#*:} <= $AIM_RESTART_MS ms: **NOT MEASURED** (see Problems)")
    fi
  done
else
  AIMS+=("disk per key, restart times: not measured (${SKIP[keys]})")
fi

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
[[ -n $cpu ]] || cpu=$(lscpu 2>/dev/null | awk -F': *' '/^Model name/ { print $2; exit }' || true)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
fs=$(df -PT "$scratch" | awk 'NR == 2 { print $2 " (" $1 ", mounted on " $7 ")" }')
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || rev="$rev (working tree modified)"
config_warn=
if grep -qs 'could not fetch server CONFIG' "$raw"/*latticed.*.err; then
  config_warn="- redis-benchmark could not read CONFIG GET save/appendonly from latticed (harmless warning)."
fi

section() { # title part body
  echo "## $1"
  echo
  if run_part "$2"; then echo "$3"; else echo "Not run: ${SKIP[$2]}."; fi
  echo
}

{
  echo "# Single-node benchmark"
  echo
  if ((fake)); then
    echo "**SELF-TEST (--fake-latticed): every \"latticed\" here is a redis-server, not latticed; its checkpoints are AOF rewrites.**"
    echo
  fi
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $rev"
  echo "- machine: $(nproc) CPUs ($cpu), ${mem:-? GiB} RAM, kernel $(uname -srm)"
  echo "- data dir: $scratch on ${fs}"
  echo "- $(redis-server --version | cut -d' ' -f1-3), $(redis-benchmark --version)"
  echo "- servers and redis-benchmark share the machine; servers bound to 127.0.0.1"
  echo "- parts run: $(for p in "${ALL_PARTS[@]}"; do run_part "$p" && echo -n "$p "; done)"
  for line in ${main_labels[@]+"${main_labels[@]}"}; do echo "- $line"; done
  if run_part main; then
    echo "- each run: redis-benchmark -c $CLIENTS -n $N -r $KEYSPACE -P <P> -t <test> --csv; latencies in ms"
  fi
  [[ -n $config_warn ]] && echo "$config_warn"
  echo
  echo "## Aims"
  echo
  for a in "${AIMS[@]}"; do echo "- $a"; done
  echo
  section "Throughput and latency" main "$main_table"
  section "I/O per group commit (latticed)" io "INFO persistence read before and after each latticed write run of the table above; deltas over the run (-c $CLIENTS -n $N -r $KEYSPACE).
writes = committed_writes as latticed counts them; requests = the commands redis-benchmark sent.

$io_table"
  section "SADD into one growing set" growth "$GROWTH_REPS repetitions, each on its own key: pre-fill to $GROWTH_FROM members, time $GROWTH_WINDOW SADDs of new random members
(redis-benchmark -c $GROWTH_CLIENTS -P $GROWTH_PIPELINE -r $RAND_SPACE SADD key __rand_int__), fill to $((GROWTH_TO - GROWTH_WINDOW)), time $GROWTH_WINDOW more.
Medians over the repetitions; late / early near 1 means the cost of SADD does not grow with the set.

$growth_table"
  if run_part sustain; then
    sustain_text="Each server fresh, one after the other: redis-benchmark -t set -c $CLIENTS -P $SUSTAIN_PIPELINE -r $SUSTAIN_KEYSPACE, $SUSTAIN_N requests
as $(( (SUSTAIN_N + SUSTAIN_WINDOW - 1) / SUSTAIN_WINDOW )) consecutive windows of $SUSTAIN_WINDOW (-n). INFO persistence polled every $POLL_MS ms and read before and after each window.
A window was during a checkpoint if checkpoint_in_progress was 1 in any of those reads, or the checkpoints counter moved across it.
p99 columns: the median and the largest of those windows' own p99. req/s (sum of windows) = requests / sum of the windows' durations;
wall-clock includes starting each redis-benchmark. Checkpoint durations: checkpoint_last_ms each time the counter had moved and none was in progress.
For the redis-servers the checkpoint columns are their AOF rewrites (auto-aof-rewrite defaults), overlay = AOF bytes since the last rewrite.

$(for s in "${SUSTAIN_SERVERS[@]}"; do echo "- $s: ${LABEL[$s]}"; done)

$sustain_table

$sustain_note

<details><summary>sustain-latticed, window by window</summary>

$sustain_windows

</details>"
  fi
  section "Sustained writes through checkpoints" sustain "${sustain_text:-}"
  section "$(printf "%'d" "$KEYS_N" 2>/dev/null || echo "$KEYS_N") keys" keys "SET key:<i> v<i> for i < $KEYS_N, then $KEYS_EXTRA_N more before kill -9. Restarts are timed from exec until PING answers PONG and then GET of the last key written answers its value.
The restarts run with --overlay-mb $KEYS_OVERLAY_MB, so that the whole further batch stays in the log (checked with the checkpoints counter).

$keys_table"
  if ((${#PROBLEMS[@]})); then
    echo "## Problems"
    echo
    for p in "${PROBLEMS[@]}"; do echo "- **$p**"; done
    echo
  fi
  echo "## Shutdown"
  echo
  for line in ${shutdown_lines[@]+"${shutdown_lines[@]}"}; do echo "- $line"; done
} >"$report"

cat "$report"
log "report written to ${report#"$repo"/}; raw redis-benchmark output in ${raw#"$repo"/}/"
if ((${#PROBLEMS[@]})); then
  for p in "${PROBLEMS[@]}"; do log "PROBLEM: $p"; done
  die "${#PROBLEMS[@]} problem(s), listed above and in the report"
fi
