#!/usr/bin/env bash
# Installs the Debian packages gatehouse needs to build, test, demo or benchmark, if missing.
# Usage: scripts/install-deps.sh [build|bench]   (build is the default)
set -euo pipefail

packages=(libcurl4-openssl-dev libssl-dev libsodium-dev libevent-dev pkg-config python3-venv shellcheck)
if [[ "${1:-build}" == "bench" ]]; then
    packages+=(wrk nginx valgrind)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3-venv is only needed when python3 is Debian's; a python3 with a working venv is fine.
if python3 -c 'import venv, ensurepip' 2>/dev/null; then
    filtered=()
    for p in "${missing[@]}"; do [[ "$p" == python3-venv ]] || filtered+=("$p"); done
    missing=("${filtered[@]+"${filtered[@]}"}")
fi
((${#missing[@]} == 0)) && exit 0

echo "installing: ${missing[*]}"
sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
