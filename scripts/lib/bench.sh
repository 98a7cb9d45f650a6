# shellcheck shell=bash
# The common start of the benchmark scripts under scripts/bench/. Source it
# after `cd` to the repository:
#
#   bench_start NAME "$@"
#       Accepts --no-build and -h/--help (prints the script's header comment,
#       up to its `set -euo` line); anything else exits 2. Unless --no-build,
#       installs what is missing (scripts/setup.sh, and python3) and builds.

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
