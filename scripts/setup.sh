#!/usr/bin/env bash
# Installs every build, test and demo dependency from Debian packages.
# Idempotent: runs `apt-get update` and installs only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libasio-dev capnproto libcapnp-dev liblmdb-dev libxxhash-dev libspdlog-dev
  doctest-dev libcli11-dev libbenchmark-dev
  redis-server redis-tools netcat-openbsd iptables procps python3
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
