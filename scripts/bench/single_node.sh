#!/usr/bin/env bash
# Single-node benchmark: latticed (--sync always) against redis-server with
# appendfsync always and appendfsync everysec, all on this machine, measured
# with redis-benchmark. Writes the report to .bench/single_node.md.
#
# usage: scripts/bench/single_node.sh [--no-build] [--fake-latticed] [--help]
#
#   --no-build        do not run scripts/setup.sh and scripts/build.sh first
#   --fake-latticed   self-test of this script: start a third redis-server
#                     (appendfsync always) where latticed would run, so the
#                     whole pipeline (start, wait, benchmark, parse, report,
#                     growth test, cleanup) runs without latticed. Implies
#                     skipping scripts/build.sh (setup.sh still runs). The
#                     report then says FAKE everywhere.
#
# Environment (defaults in brackets):
#   BENCH_N               requests per redis-benchmark run [200000]
#   BENCH_CLIENTS         parallel connections (-c) [50]
#   BENCH_KEYSPACE        random key space (-r) [100000]
#   BENCH_PORT_BASE       first loopback port tried; 100 ports scanned [7400]
#   BENCH_RUN_TIMEOUT     seconds before one benchmark run is killed [900]
#   BENCH_START_TIMEOUT   seconds a server gets to answer PING [30]
#   BENCH_GROWTH_FROM     set size where the growth test starts [1000]
#   BENCH_GROWTH_TO       set size where it ends [100000]
#   BENCH_GROWTH_WINDOW   SADDs per timed window [4000]
#   BENCH_GROWTH_REPS     independent repetitions (one key each) [3]
#   BENCH_GROWTH_CLIENTS  -c of the growth windows [10]
#   BENCH_GROWTH_PIPELINE -P of the growth windows [16]
#   LATTICED_BIN          server binary [build/node/latticed]
#   LATTICED_EXTRA_ARGS   extra latticed arguments, split on spaces []
#
# Quick run: BENCH_N=20000 scripts/bench/single_node.sh --no-build
# Self-test: BENCH_N=20000 scripts/bench/single_node.sh --no-build --fake-latticed
#
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
GROWTH_FROM=$(int_env BENCH_GROWTH_FROM 1000)
GROWTH_TO=$(int_env BENCH_GROWTH_TO 100000)
GROWTH_WINDOW=$(int_env BENCH_GROWTH_WINDOW 4000)
GROWTH_REPS=$(int_env BENCH_GROWTH_REPS 3)
GROWTH_CLIENTS=$(int_env BENCH_GROWTH_CLIENTS 10)
GROWTH_PIPELINE=$(int_env BENCH_GROWTH_PIPELINE 16)
LATTICED_BIN=${LATTICED_BIN:-build/node/latticed}
read -r -a LATTICED_EXTRA <<<"${LATTICED_EXTRA_ARGS:-}"

PIPELINES=(1 16)
TESTS=(SET GET INCR SADD HSET)
SERVERS=(latticed redis-always redis-everysec)
# Members of the growth windows are __rand_int__ in [0, RAND_SPACE): the
# largest -r redis-benchmark accepts, so repeats are negligible.
RAND_SPACE=2147483647

((GROWTH_TO - GROWTH_WINDOW > GROWTH_FROM + GROWTH_WINDOW)) ||
  die "BENCH_GROWTH_TO - BENCH_GROWTH_WINDOW must exceed BENCH_GROWTH_FROM + BENCH_GROWTH_WINDOW"

# ---------------------------------------------------------------- preparation

if ((build)); then
  scripts/setup.sh
  if ((fake)); then
    log "--fake-latticed: not building latticed"
  else
    scripts/build.sh
  fi
fi

for tool in redis-server redis-benchmark redis-cli awk timeout; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs it)"
done
if ((!fake)); then
  [[ -x $LATTICED_BIN ]] ||
    die "$LATTICED_BIN is missing or not executable (build it with scripts/build.sh, or use --fake-latticed)"
fi

scratch=$repo/.bench/single_node
report=$repo/.bench/single_node.md
raw=$scratch/raw
rm -rf "$scratch"
mkdir -p "$raw"

declare -A PORT=() PID=() LABEL=()
LABEL[latticed]="latticed (--sync always)"
((fake)) && LABEL[latticed]="FAKE latticed (redis-server appendfsync always)"
LABEL[redis-always]="redis-server (appendonly, appendfsync always)"
LABEL[redis-everysec]="redis-server (appendonly, appendfsync everysec)"

stop_server() { # name; prints how it went
  local name=$1 pid=${PID[$1]:-} t0 rc=0
  [[ -n $pid ]] || return 0
  t0=$(_node_now_ms)
  kill_and_wait "$pid" 30 || rc=$?
  unset "PID[$name]"
  if ((rc == 0)); then
    echo "$name stopped on SIGTERM in $(($(_node_now_ms) - t0)) ms, exit status ${NODE_LAST_EXIT:-unknown}"
  else
    echo "$name did NOT stop within 30 s of SIGTERM and was killed"
  fi
}

cleanup() {
  local rc=$? name
  trap - EXIT INT TERM
  for name in "${!PID[@]}"; do
    stop_server "$name" >&2 || true
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

start_server() { # name
  local name=$1 dir=$scratch/$1 port
  mkdir -p "$dir"
  free_port "$PORT_BASE" $((PORT_BASE + 99)) >/dev/null || die "no free port"
  port=$NODE_LAST_PORT
  case "$name" in
    latticed)
      if ((fake)); then
        redis_cmd always "$port" "$dir"
      else
        CMD=("$LATTICED_BIN" --node-id n1 --bind 127.0.0.1 --port "$port" --data-dir "$dir"
          --sync always --log-level info ${LATTICED_EXTRA[@]+"${LATTICED_EXTRA[@]}"})
      fi
      ;;
    redis-always) redis_cmd always "$port" "$dir" ;;
    redis-everysec) redis_cmd everysec "$port" "$dir" ;;
  esac
  log "starting $name on 127.0.0.1:$port: ${CMD[*]}"
  "${CMD[@]}" >"$scratch/$name.log" 2>&1 &
  PID[$name]=$!
  PORT[$name]=$port
  if ! wait_for_ping 127.0.0.1 "$port" "$START_TIMEOUT" "${PID[$name]}"; then
    tail -n 20 "$scratch/$name.log" >&2 || true
    die "$name did not come up (log: $scratch/$name.log)"
  fi
}

check_alive() { # name
  if ! _node_alive "${PID[$1]}"; then
    tail -n 20 "$scratch/$1.log" >&2 || true
    die "$1 (pid ${PID[$1]}) died (log: $scratch/$1.log)"
  fi
}

for s in "${SERVERS[@]}"; do
  start_server "$s"
done

# ------------------------------------------------------------- measurements

# run_bench name tag redis-benchmark-args...
# Runs one redis-benchmark (-e: error replies are printed, so they can be
# detected; redis-benchmark itself does not fail on them) and sets
# B_STATUS (ok | errors | failed), B_RPS, B_P50, B_P99 (ms).
# Output is kept in .bench/single_node/raw/<name>.<tag>.{csv,err}.
run_bench() {
  local name=$1 tag=$2 out err row rc=0
  shift 2
  out=$raw/$name.$tag.csv
  err=$raw/$name.$tag.err
  B_STATUS=failed B_RPS= B_P50= B_P99=
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
  IFS=, read -r _ B_RPS _ _ B_P50 _ B_P99 _ <<<"$row" || true
  if ! [[ ${B_RPS:-} =~ ^[0-9]+(\.[0-9]+)?$ && ${B_P50:-} =~ ^[0-9.]+$ && ${B_P99:-} =~ ^[0-9.]+$ ]]; then
    log "$name $tag: cannot parse redis-benchmark output (see $out)"
    B_RPS= B_P50= B_P99=
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

# Main table. For each (pipeline, test) the three servers run back to back,
# so slow drift of the machine affects them alike. Each run: -c CLIENTS,
# -n N, -r KEYSPACE; SET/GET/INCR hit random keys, SADD/HSET add random
# members/fields to one key (redis-benchmark's myset/myhash).
declare -A R_STATUS=() R_RPS=() R_P50=() R_P99=()
for P in "${PIPELINES[@]}"; do
  for t in "${TESTS[@]}"; do
    for s in "${SERVERS[@]}"; do
      tl=${t,,}
      run_bench "$s" "$tl.P$P" -c "$CLIENTS" -n "$N" -r "$KEYSPACE" -P "$P" -t "$tl"
      k="$t|$P|$s"
      R_STATUS[$k]=$B_STATUS R_RPS[$k]=$B_RPS R_P50[$k]=$B_P50 R_P99[$k]=$B_P99
      if [[ $B_STATUS == ok ]]; then
        log "$t -P $P $s: $(fmt_rps "$B_RPS") req/s, p50 $B_P50 ms, p99 $B_P99 ms"
      fi
    done
  done
done

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

main_table=$(
  echo "| test | -P | latticed req/s | latticed p50 / p99 ms | redis-always req/s | redis-always p50 / p99 ms | redis-everysec req/s | redis-everysec p50 / p99 ms | latticed / redis-always | latticed / redis-everysec |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for t in "${TESTS[@]}"; do
    for P in "${PIPELINES[@]}"; do
      l="$t|$P|latticed" a="$t|$P|redis-always" e="$t|$P|redis-everysec"
      echo "| $t | $P | $(cell_rps "$l") | $(cell_lat "$l") | $(cell_rps "$a") | $(cell_lat "$a") | $(cell_rps "$e") | $(cell_lat "$e") | $(cell_ratio "$l" "$a") | $(cell_ratio "$l" "$e") |"
    done
  done
)

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

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

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

GROWTH_SERVERS=(latticed redis-everysec)
declare -A G_EARLY=() G_LATE=() G_EARLY_ALL=() G_LATE_ALL=() G_MINNEW=()
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

growth_cell() { if [[ -n $1 ]]; then fmt_rps "$1"; else echo FAILED; fi; }
growth_table=$(
  echo "| server | early req/s (set ${GROWTH_FROM}..$((GROWTH_FROM + GROWTH_WINDOW))) | late req/s (set $((GROWTH_TO - GROWTH_WINDOW))..${GROWTH_TO}) | late / early | each repetition, early | each repetition, late | min share of new members |"
  echo "|---|---:|---:|---:|---|---|---:|"
  for s in "${GROWTH_SERVERS[@]}"; do
    if [[ -n ${G_EARLY[$s]} && -n ${G_LATE[$s]} ]]; then rr=$(ratio "${G_LATE[$s]}" "${G_EARLY[$s]}"); else rr=n/a; fi
    echo "| $s | $(growth_cell "${G_EARLY[$s]}") | $(growth_cell "${G_LATE[$s]}") | $rr | ${G_EARLY_ALL[$s]% } | ${G_LATE_ALL[$s]% } | ${G_MINNEW[$s]} |"
  done
)

# ------------------------------------------------------------------- report

# Not in a command substitution: kill_and_wait must run in this shell to reap
# the server and learn its exit status.
shutdown_lines=()
for s in "${SERVERS[@]}"; do
  stop_server "$s" >"$scratch/stop.$s.txt"
  shutdown_lines+=("$(<"$scratch/stop.$s.txt")")
done

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
[[ -n $cpu ]] || cpu=$(lscpu 2>/dev/null | awk -F': *' '/^Model name/ { print $2; exit }' || true)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
fs=$(df -PT "$scratch" | awk 'NR == 2 { print $2 " (" $1 ", mounted on " $7 ")" }')
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || rev="$rev (working tree modified)"
config_warn=
if grep -qs 'could not fetch server CONFIG' "$raw"/latticed.*.err; then
  config_warn="- redis-benchmark could not read CONFIG GET save/appendonly from latticed (harmless warning)."
fi

{
  echo "# Single-node benchmark"
  echo
  ((fake)) && echo "**SELF-TEST (--fake-latticed): the \"latticed\" column is a redis-server, not latticed.**" && echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $rev"
  echo "- machine: $(nproc) CPUs ($cpu), ${mem:-? GiB} RAM, kernel $(uname -srm)"
  echo "- data dir: $scratch on ${fs}"
  echo "- $(redis-server --version | cut -d' ' -f1-3), $(redis-benchmark --version)"
  echo "- servers and redis-benchmark share the machine; servers bound to 127.0.0.1"
  for s in "${SERVERS[@]}"; do echo "- $s: ${LABEL[$s]}"; done
  echo "- each run: redis-benchmark -c $CLIENTS -n $N -r $KEYSPACE -P <P> -t <test> --csv; latencies in ms"
  [[ -n $config_warn ]] && echo "$config_warn"
  echo
  echo "## Throughput and latency"
  echo
  echo "$main_table"
  echo
  echo "## SADD into one growing set"
  echo
  echo "$GROWTH_REPS repetitions, each on its own key: pre-fill to $GROWTH_FROM members, time $GROWTH_WINDOW SADDs of new random members"
  echo "(redis-benchmark -c $GROWTH_CLIENTS -P $GROWTH_PIPELINE -r $RAND_SPACE SADD key __rand_int__), fill to $((GROWTH_TO - GROWTH_WINDOW)), time $GROWTH_WINDOW more."
  echo "Medians over the repetitions; late / early near 1 means the cost of SADD does not grow with the set."
  echo
  echo "$growth_table"
  echo
  echo "## Shutdown"
  echo
  for line in "${shutdown_lines[@]}"; do echo "- $line"; done
} >"$report"

cat "$report"
log "report written to ${report#"$repo"/}; raw redis-benchmark output in ${raw#"$repo"/}/"
