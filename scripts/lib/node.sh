# shellcheck shell=bash
# Small shared helpers for scripts that start and stop servers speaking RESP
# (latticed, redis-server). Source it; it defines functions only and does not
# change the caller's shell options:
#
#   source "$(dirname "$0")/../lib/node.sh"     # path relative to the caller
#
#   wait_for_ping HOST PORT TIMEOUT_S [PID]
#       Polls `redis-cli PING` until the answer is PONG or TIMEOUT_S seconds
#       (decimals allowed) have passed. With PID, gives up at once when that
#       process has exited (a server that failed to start). Returns 0 on PONG,
#       1 on timeout, 2 if PID died.
#   port_in_use HOST PORT
#       Returns 0 if something listens on PORT (checked with `ss -ltn`, or by
#       trying to connect to HOST:PORT when ss is missing).
#   free_port [START [END [HOST]]]
#       Prints the first port in START..END (default 7400..7499) on which
#       nothing listens. Ports listed in the array NODE_RESERVED_PORTS are
#       skipped, and the port printed is appended to it, so successive calls
#       in the same shell give distinct ports even before the servers start.
#       Call it without a command substitution to keep the reservation:
#           free_port 7400 7499 >/dev/null; port=$NODE_LAST_PORT
#       ($(free_port) works too, but runs in a subshell and reserves nothing.)
#       Returns 1 if the range is exhausted.
#   wait_cluster_formed COUNT TIMEOUT_S
#       Polls CLUSTER NODES on 127.0.0.11.. (scripts/cluster.sh's nodes, port
#       7379) until each of the COUNT nodes lists COUNT alive members, all heard
#       from directly (none "never"). Returns 1 on timeout.
#   kill_and_wait PID TIMEOUT_S
#       Sends SIGTERM, waits up to TIMEOUT_S seconds for the process to exit,
#       then sends SIGKILL. Reaps it if it is a child of this shell (its exit
#       status is left in NODE_LAST_EXIT, empty if unknown). Returns 0 if the
#       process was gone or exited on SIGTERM, 1 if SIGKILL was needed, 2 if it
#       survived even that.

if [[ -n ${_LATTICE_NODE_SH_LOADED:-} ]]; then
  return 0
fi
_LATTICE_NODE_SH_LOADED=1

NODE_RESERVED_PORTS=(${NODE_RESERVED_PORTS[@]+"${NODE_RESERVED_PORTS[@]}"})
NODE_LAST_PORT=
NODE_LAST_EXIT=

# Milliseconds since the epoch.
_node_now_ms() {
  if [[ -n ${EPOCHREALTIME:-} ]]; then
    local t=${EPOCHREALTIME/[.,]/}   # microseconds
    echo $((t / 1000))
  else
    date +%s%3N
  fi
}

# Seconds (decimals allowed) -> milliseconds.
_node_s_to_ms() {
  awk -v s="$1" 'BEGIN { if (s !~ /^[0-9]+(\.[0-9]+)?$/) exit 1; printf "%d\n", s * 1000 }'
}

# True while PID exists and is not a zombie (an exited child not yet reaped).
_node_alive() {
  local pid=$1 stat
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/stat ]]; then
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1  # it may exit meanwhile
    stat=${stat##*) }            # drop "pid (comm) ", comm may hold spaces
    [[ ${stat%% *} != Z ]] || return 1
  fi
  return 0
}

wait_for_ping() {
  if (($# < 3)); then
    echo "usage: wait_for_ping HOST PORT TIMEOUT_S [PID]" >&2
    return 64
  fi
  local host=$1 port=$2 timeout_s=$3 pid=${4:-} timeout_ms deadline reply
  timeout_ms=$(_node_s_to_ms "$timeout_s") || {
    echo "wait_for_ping: bad timeout '$timeout_s'" >&2
    return 64
  }
  deadline=$(($(_node_now_ms) + timeout_ms))
  while :; do
    # `timeout` guards against a server that accepts but never answers.
    reply=$(timeout 2 redis-cli --no-auth-warning -h "$host" -p "$port" PING 2>/dev/null) || reply=
    if [[ $reply == PONG || $reply == +PONG ]]; then
      return 0
    fi
    if [[ -n $pid ]] && ! _node_alive "$pid"; then
      echo "wait_for_ping: process $pid exited before $host:$port answered PING" >&2
      return 2
    fi
    if (($(_node_now_ms) >= deadline)); then
      echo "wait_for_ping: $host:$port did not answer PING within ${timeout_s}s" >&2
      return 1
    fi
    sleep 0.05
  done
}

port_in_use() {
  local host=${1:-127.0.0.1} port=$2
  if command -v ss >/dev/null 2>&1; then
    [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]]
    return
  fi
  # No ss: a successful connect means someone listens.
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

free_port() {
  local start=${1:-7400} end=${2:-7499} host=${3:-127.0.0.1} port reserved skip
  for ((port = start; port <= end; port++)); do
    skip=0
    for reserved in ${NODE_RESERVED_PORTS[@]+"${NODE_RESERVED_PORTS[@]}"}; do
      if [[ $reserved == "$port" ]]; then
        skip=1
        break
      fi
    done
    ((skip)) && continue
    if ! port_in_use "$host" "$port"; then
      NODE_RESERVED_PORTS+=("$port")
      NODE_LAST_PORT=$port
      echo "$port"
      return 0
    fi
  done
  echo "free_port: no free port in $start..$end on $host" >&2
  return 1
}

kill_and_wait() {
  if (($# < 2)); then
    echo "usage: kill_and_wait PID TIMEOUT_S" >&2
    return 64
  fi
  local pid=$1 timeout_s=$2 timeout_ms deadline rc=0
  NODE_LAST_EXIT=
  timeout_ms=$(_node_s_to_ms "$timeout_s") || {
    echo "kill_and_wait: bad timeout '$timeout_s'" >&2
    return 64
  }
  if _node_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(($(_node_now_ms) + timeout_ms))
    while _node_alive "$pid" && (($(_node_now_ms) < deadline)); do
      sleep 0.05
    done
    if _node_alive "$pid"; then
      echo "kill_and_wait: $pid still running ${timeout_s}s after SIGTERM; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      rc=1
    fi
  fi
  # Reap it if it is our child (fails harmlessly otherwise).
  if wait "$pid" 2>/dev/null; then
    NODE_LAST_EXIT=0
  else
    local status=$?
    # 127: not a child of this shell, so its status is unknown.
    ((status == 127)) || NODE_LAST_EXIT=$status
  fi
  # A non-child killed with SIGKILL: give the kernel a moment to remove it.
  deadline=$(($(_node_now_ms) + 5000))
  while _node_alive "$pid" && (($(_node_now_ms) < deadline)); do
    sleep 0.05
  done
  if _node_alive "$pid"; then
    echo "kill_and_wait: $pid survived SIGKILL" >&2
    return 2
  fi
  return $rc
}

wait_cluster_formed() {
  local count=$1 timeout_s=$2 deadline out i
  deadline=$(($(_node_now_ms) + $(_node_s_to_ms "$timeout_s")))
  for ((i = 1; i <= count; i++)); do
    until out=$(redis-cli -h "127.0.0.$((10 + i))" -p 7379 CLUSTER NODES 2>/dev/null) &&
      [[ $(grep -c ' alive ' <<<"$out") == "$count" ]] && ! grep -q ' never' <<<"$out"; do
      (($(_node_now_ms) < deadline)) || return 1
      sleep 0.1
    done
  done
}
