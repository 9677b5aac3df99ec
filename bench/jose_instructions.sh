#!/usr/bin/env bash
# The JOSE layer's overhead per algorithm in instructions, not time: callgrind counts the
# instructions of JWTVerifier.verify (parse, header, key selection, signature, claims) and of
# the raw library call alone on pre-decoded inputs (jose-bench --profile-verify /
# --profile-raw). Instruction counts do not move with the load of a shared machine, so this
# is the reproducible check of the "overhead ≤ 10 %" target; jose-bench's timings sit beside it.
#
# Each side runs twice (N and 2N operations) and the per-operation figure is the difference
# divided by N, which cancels the program's start-up (fixture loading, key import).
#
#   bench/jose_instructions.sh [path/to/jose-bench]   (default: the release build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin=${1:-$(swift build -c release --show-bin-path)/jose-bench}
[[ -x $bin ]] || { echo "jose_instructions: no jose-bench at $bin (swift build -c release --product jose-bench)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "jose_instructions: valgrind is not installed; skipped" >&2; exit 0; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# valgrind 3.19 (Debian 12) cannot read the DWARF 5 that Swift 6 emits; symbols are enough.
cp "$bin" "$tmp/jose-bench"
strip -g "$tmp/jose-bench"
# jose-bench finds its fixtures relative to its source file (#filePath), so the copy works.

instructions() { # $1: --profile-verify | --profile-raw, $2: algorithm, $3: operations
    valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$tmp/jose-bench" "$1" "$2" "$3" 2>&1 |
        awk '/Collected :/ { gsub(",", "", $4); print $4 }'
}

printf 'jose-bench instructions per verification (callgrind, %s)\n' "$(valgrind --version)"
printf '%-6s %12s %12s %9s\n' alg ours raw overhead
for alg in EdDSA ES256 ES512 RS256 PS256; do
    n=200
    [[ $alg == ES512 ]] && n=40
    ours=$(($(instructions --profile-verify "$alg" $((2 * n))) - $(instructions --profile-verify "$alg" "$n")))
    raw=$(($(instructions --profile-raw "$alg" $((2 * n))) - $(instructions --profile-raw "$alg" "$n")))
    awk -v a="$alg" -v o="$ours" -v r="$raw" -v n="$n" \
        'BEGIN { printf "%-6s %12d %12d %+8.1f%%\n", a, o / n, r / n, (o / r - 1) * 100 }'
done
