# shellcheck shell=bash
# The common start of the benchmark scripts under scripts/bench/. Source it
# after `cd` to the repository:
#
#   bench_start NAME "$@"
#       Accepts --no-build and -h/--help (prints the script's header comment,
#       up to its `set -euo` line); anything else exits 2. Unless --no-build,
#       installs what is missing (scripts/setup.sh, and python3) and builds.
#   bench_cluster_dir NAME
#       A temporary directory for the benchmark's cluster: sets $work and
#       exports LATTICE_CLUSTER_DIR=$work/cluster; on exit the cluster is
#       stopped and the directory removed.

bench_start() {
  local name=$1 build=1 arg
  shift
  for arg in "$@"; do
    case "$arg" in
      --no-build) build=0 ;;
      -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
      *) echo "$name: unknown argument '$arg'" >&2; exit 2 ;;
    esac
  done
  if ((build)); then
    scripts/setup.sh
    command -v python3 >/dev/null || apt-get install -y --no-install-recommends python3
    scripts/build.sh
  fi
}

bench_cluster_dir() {
  work=$(mktemp -d "/tmp/lattice-bench-$1.XXXXXX")
  export LATTICE_CLUSTER_DIR=$work/cluster
  trap 'scripts/cluster.sh down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
}
