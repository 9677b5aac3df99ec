#!/usr/bin/env bash
# libFuzzer runs of the JOSE parsers, the HTTP/1.1 request parser and the route-pattern/rules
# parser (Fuzz/TokenParser, Fuzz/JWKSParser, Fuzz/HTTP1Parser, Fuzz/RulesParser).
#
#   scripts/fuzz.sh [SECONDS]   build every fuzzer with -sanitize=fuzzer (.build-fuzz) and run
#                               each for SECONDS (default 60), one after the other, on a
#                               temporary copy of its seed corpus; a crashing input is saved
#                               under Fuzz/crashes/ and the script exits non-zero.
#   scripts/fuzz.sh --replay    build the plain executables (.build-fuzzreplay) and replay the
#                               committed corpus through the same invariants (`make test`).
#
# Environment:
#   FUZZ_SANITIZE=address,undefined  sanitizers added to the fuzzer build, built apart in
#       .build-fuzz-<names> (e.g. .build-fuzz-address-undefined). `address` is swiftc's
#       -sanitize=fuzzer,address. swiftc has no -sanitize=undefined on Linux: `undefined` instruments
#       the C that clang compiles into the Swift modules (the static inline shims of Sources/C*)
#       with -fsanitize=undefined, halting on the first report; it needs `address`, whose
#       runtime holds UBSan's handlers. Swift code traps on overflow, bounds and unwraps in
#       every debug build, sanitizer or not.
#   FUZZ_KEEP=1      after each run, merge the inputs that add coverage into Fuzz/corpus/<kind>/
#       (libFuzzer -merge=1: only the minimised growth; new files are named by their SHA-1).
#   FUZZ_TARGETS="RulesParser HTTP1Parser"  run only these targets (default: all, in order).
#   FUZZ_ARGS        more libFuzzer flags (e.g. FUZZ_ARGS="-jobs=2 -workers=2").
#   FUZZ_REPLAY_SCRATCH=.build makes --replay reuse an existing plain build (default .build-fuzzreplay).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# name:corpus-dir:max_len
TARGETS=("TokenParser:token:20000" "JWKSParser:jwks:65536" "HTTP1Parser:http1:16384" "RulesParser:rules:4096")

usage() {
    sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}

# FUZZ_TARGETS narrows TARGETS to the names it lists (a typo is an error, not an empty run).
select_targets() {
    [[ -n "${FUZZ_TARGETS:-}" ]] || return 0
    local -a wanted selected=()
    local want target found
    read -r -a wanted <<<"${FUZZ_TARGETS//,/ }"
    for want in "${wanted[@]}"; do
        found=
        for target in "${TARGETS[@]}"; do
            if [[ "${target%%:*}" == "$want" ]]; then selected+=("$target"); found=1; fi
        done
        [[ -n "$found" ]] || { echo "fuzz.sh: unknown target in FUZZ_TARGETS: $want" >&2; exit 2; }
    done
    TARGETS=("${selected[@]}")
}

# FUZZ_SANITIZE (a comma list) → SwiftPM flags in SANITIZE_FLAGS and the scratch path suffix.
SANITIZE_FLAGS=()
SANITIZE_SUFFIX=
parse_sanitizers() {
    local -a names
    local name has_address="" has_undefined=""
    [[ -n "${FUZZ_SANITIZE:-}" ]] || return 0
    read -r -a names <<<"${FUZZ_SANITIZE//,/ }"
    for name in "${names[@]}"; do
        case "$name" in
            # Not SwiftPM's --sanitize=address: it passes swiftc one -sanitize= per sanitizer, in
            # an order that changes from run to run, and the last one wins (half the builds would
            # lose the coverage, the other half ASan). One -sanitize=fuzzer,address, last, and
            # -fsanitize=address for clang (C targets and the shims clang compiles into Swift).
            address) has_address=1; SANITIZE_FLAGS+=(-Xswiftc "-sanitize=fuzzer,address" -Xcc -fsanitize=address) ;;
            undefined)
                has_undefined=1
                # -Xcc reaches clang for C targets and swiftc's clang importer, which compiles
                # the shims' static inline functions into the Swift modules.
                SANITIZE_FLAGS+=(-Xcc -fsanitize=undefined -Xcc -fno-sanitize-recover=undefined) ;;
            *) echo "fuzz.sh: FUZZ_SANITIZE: unsupported sanitizer '$name' (address, undefined)" >&2; exit 2 ;;
        esac
        SANITIZE_SUFFIX+="-$name"
    done
    if [[ -n "$has_undefined" && -z "$has_address" ]]; then
        echo "fuzz.sh: FUZZ_SANITIZE=undefined needs address too (its runtime provides UBSan's handlers)" >&2
        exit 2
    fi
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
    local seconds=$1 scratch=".build-fuzz$SANITIZE_SUFFIX" target name kind max_len work bin log status=0 code
    local ubsan_options lsan_options
    for target in "${TARGETS[@]}"; do
        IFS=: read -r name kind _ <<<"$target"
        echo "==> building Fuzz$name (-sanitize=fuzzer${FUZZ_SANITIZE:+,$FUZZ_SANITIZE}) in $scratch"
        # ld.gold warns once per ASan symbol it cannot export; the warnings are harmless.
        swift build -q -c debug --product "Fuzz$name" --sanitize=fuzzer ${SANITIZE_FLAGS[@]+"${SANITIZE_FLAGS[@]}"} \
            -Xswiftc -DFUZZING --scratch-path "$scratch" 2> >(grep -v "Cannot export local symbol" >&2)
    done
    bin="$scratch/debug"
    work=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-fuzz.XXXXXX")
    # shellcheck disable=SC2064  # expand $work now: it is local to this function
    trap "rm -rf '$work'" EXIT

    local -a extra=()
    if [[ -n "${FUZZ_ARGS:-}" ]]; then read -r -a extra <<<"$FUZZ_ARGS"; fi
    # Sanitizer builds: UBSan stops at its first report; LeakSanitizer skips the false leaks
    # listed in Fuzz/lsan.supp (Swift enum payloads it cannot see through).
    ubsan_options=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    lsan_options=${LSAN_OPTIONS:-suppressions=$PWD/Fuzz/lsan.supp:print_suppressions=0}

    for target in "${TARGETS[@]}"; do
        IFS=: read -r name kind max_len <<<"$target"
        mkdir -p "$work/$kind/corpus" "$work/$kind/artifacts"
        cp -R "Fuzz/corpus/$kind/." "$work/$kind/corpus/"
        log="$work/$kind/fuzz.log"
        echo "==> Fuzz$name: ${seconds}s, -max_len=$max_len, seeds: $(find "Fuzz/corpus/$kind" -type f | wc -l)"
        code=0
        # Swift's runtime backtracer would claim SIGILL (a failed precondition) before
        # libFuzzer's handler, and libFuzzer would then save no crashing input.
        SWIFT_BACKTRACE=enable=no UBSAN_OPTIONS="$ubsan_options" LSAN_OPTIONS="$lsan_options" \
            "$bin/Fuzz$name" "$work/$kind/corpus" \
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
        elif [[ "${FUZZ_KEEP:-}" == 1 ]]; then
            echo "    result: OK, no crash"
            keep "$bin/Fuzz$name" "$kind" "$max_len" "$work/$kind"
        else
            echo "    result: OK, no crash (new inputs stay in the temporary corpus; FUZZ_KEEP=1 keeps them)"
        fi
    done
    return "$status"
}

# Merges the inputs of a run that add coverage to Fuzz/corpus/<kind> into it: libFuzzer's
# -merge=1 with the committed corpus first, so only the minimised growth is written, each new
# input named by its SHA-1. Committed files are never removed or renamed.
keep() {
    local bin=$1 kind=$2 max_len=$3 dir=$4 before after
    before=$(find "Fuzz/corpus/$kind" -type f | wc -l)
    if ! SWIFT_BACKTRACE=enable=no LSAN_OPTIONS="$lsan_options" "$bin" -merge=1 -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        "Fuzz/corpus/$kind" "$dir/corpus" >"$dir/merge.log" 2>&1; then
        echo "!!! merge into Fuzz/corpus/$kind failed. Log tail:"
        tail -n 10 "$dir/merge.log" | sed 's/^/    | /'
        return 1
    fi
    after=$(find "Fuzz/corpus/$kind" -type f | wc -l)
    grep -E '^MERGE-OUTER: [0-9]+ new files' "$dir/merge.log" | sed 's/^/    /' || true
    echo "    kept: Fuzz/corpus/$kind $before -> $after files"
}

select_targets
parse_sanitizers

case "${1:-}" in
    -h | --help) usage 0 ;;
    --replay) [[ $# -eq 1 ]] || usage; replay ;;
    "") fuzz 60 ;;
    *)
        [[ $# -eq 1 && "$1" =~ ^[1-9][0-9]*$ ]] || usage
        fuzz "$1"
        ;;
esac
