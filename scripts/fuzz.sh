#!/usr/bin/env bash
# libFuzzer runs of the JOSE parsers and the HTTP/1.1 request parser (Fuzz/TokenParser,
# Fuzz/JWKSParser, Fuzz/HTTP1Parser).
#
#   scripts/fuzz.sh [SECONDS]   build every fuzzer with -sanitize=fuzzer (.build-fuzz) and run
#                               each for SECONDS (default 60) on a temporary copy of its seed
#                               corpus; a crashing input is saved under Fuzz/crashes/ and the
#                               script exits non-zero.
#   scripts/fuzz.sh --replay    build the plain executables (.build-fuzzreplay) and replay the
#                               committed corpus through the same invariants (`make test`).
#
# Environment: FUZZ_ARGS adds libFuzzer flags (e.g. FUZZ_ARGS="-jobs=2 -workers=2");
# FUZZ_REPLAY_SCRATCH=.build makes --replay reuse an existing plain build (default .build-fuzzreplay).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# name:corpus-dir:max_len
TARGETS=("TokenParser:token:20000" "JWKSParser:jwks:65536" "HTTP1Parser:http1:16384")

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}

replay() {
    local scratch=${FUZZ_REPLAY_SCRATCH:-.build-fuzzreplay} target name kind
    for target in "${TARGETS[@]}"; do
        IFS=: read -r name kind _ <<<"$target"
        swift build -q --product "Fuzz$name" --scratch-path "$scratch"
    done
    for target in "${TARGETS[@]}"; do
        IFS=: read -r name kind _ <<<"$target"
        "$scratch/debug/Fuzz$name" "Fuzz/corpus/$kind"
    done
}

fuzz() {
    local seconds=$1 scratch=.build-fuzz target name kind max_len work bin log status=0 code
    for target in "${TARGETS[@]}"; do
        IFS=: read -r name kind _ <<<"$target"
        echo "==> building Fuzz$name (-sanitize=fuzzer)"
        swift build -q -c debug --product "Fuzz$name" --sanitize=fuzzer -Xswiftc -DFUZZING --scratch-path "$scratch"
    done
    bin="$scratch/debug"
    work=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-fuzz.XXXXXX")
    # shellcheck disable=SC2064  # expand $work now: it is local to this function
    trap "rm -rf '$work'" EXIT

    local -a extra=()
    if [[ -n "${FUZZ_ARGS:-}" ]]; then read -r -a extra <<<"$FUZZ_ARGS"; fi

    for target in "${TARGETS[@]}"; do
        IFS=: read -r name kind max_len <<<"$target"
        mkdir -p "$work/$kind/corpus" "$work/$kind/artifacts"
        cp -R "Fuzz/corpus/$kind/." "$work/$kind/corpus/"
        log="$work/$kind/fuzz.log"
        echo "==> Fuzz$name: ${seconds}s, -max_len=$max_len, seeds: $(find "Fuzz/corpus/$kind" -type f | wc -l)"
        code=0
        # Swift's runtime backtracer would claim SIGILL (a failed precondition) before
        # libFuzzer's handler, and libFuzzer would then save no crashing input.
        SWIFT_BACKTRACE=enable=no "$bin/Fuzz$name" "$work/$kind/corpus" \
            -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
            -dict="Fuzz/dict/$kind.dict" -artifact_prefix="$work/$kind/artifacts/" \
            -print_final_stats=1 ${extra[@]+"${extra[@]}"} >"$log" 2>&1 || code=$?
        # libFuzzer's own summary lines plus the final stats.
        grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE))|^Done [0-9]+ runs|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" \
            | sed 's/^/    /' || true
        grep -E 'cov: [0-9]+' "$log" | tail -n 1 | sed 's/^/    last: /' || true
        if [[ $code -ne 0 ]] || compgen -G "$work/$kind/artifacts/*" >/dev/null; then
            status=1
            mkdir -p "Fuzz/crashes/$kind"
            echo "!!! Fuzz$name FAILED (exit $code). Log tail:"
            grep -E 'invariant violated|Fatal error|ERROR: libFuzzer|SUMMARY|deadly signal|==ERROR' "$log" | head -n 5 | sed 's/^/    /' || true
            tail -n 25 "$log" | sed 's/^/    | /'
            cp "$log" "Fuzz/crashes/$kind/fuzz-$(date +%Y%m%d-%H%M%S).log"
            local artifact
            for artifact in "$work/$kind/artifacts"/*; do
                [[ -e "$artifact" ]] || continue
                cp "$artifact" "Fuzz/crashes/$kind/"
                echo "    saved Fuzz/crashes/$kind/$(basename "$artifact")"
                echo "    reproduce: $scratch/debug/Fuzz$name Fuzz/crashes/$kind/$(basename "$artifact")"
            done
        else
            echo "    result: OK, no crash (new inputs stay in the temporary corpus)"
        fi
    done
    return "$status"
}

case "${1:-}" in
    -h | --help) usage 0 ;;
    --replay) [[ $# -eq 1 ]] || usage; replay ;;
    "") fuzz 60 ;;
    *)
        [[ $# -eq 1 && "$1" =~ ^[1-9][0-9]*$ ]] || usage
        fuzz "$1"
        ;;
esac
