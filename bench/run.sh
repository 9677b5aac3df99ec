#!/usr/bin/env bash
# Throughput and latency of gatehouse next to nginx, both as reverse proxies in front of
# the same fast upstream (an nginx that answers `200 ok`), measured with wrk in one run.
#
#   swift build -c release && bench/run.sh
#
# Settings (environment):
#   GATEHOUSE_BIN      gatehouse binary          (default .build/release/gatehouse)
#   BENCH_SECONDS      length of one wrk run     (default 10)
#   BENCH_ROUNDS       nginx/gatehouse pairs     (default 3; the median of each is reported)
#   BENCH_CONNECTIONS  wrk connections           (default 64; wrk threads: 2)
#   Other GATEHOUSE_* variables reach gatehouse unchanged (e.g. GATEHOUSE_LOG_LEVEL).
#
# Everything runs on 127.0.0.1. nginx configs, logs and pid files live in a temp dir that
# is removed on exit, when every process started here is stopped. wrk's raw output and a
# summary are kept in bench/results/<UTC timestamp>/ (gitignored).
#
# The client, the proxy under test and the upstream share this machine's cores, so compare
# the ratios between the two proxies rather than absolute numbers.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

GATEHOUSE_BIN=${GATEHOUSE_BIN:-.build/release/gatehouse}
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-64}
BENCH_THREADS=2

die() {
    echo "bench: $*" >&2
    exit 1
}

for tool in nginx wrk curl python3 awk; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ -x $GATEHOUSE_BIN ]] || die "no gatehouse binary at $GATEHOUSE_BIN (swift build -c release, or set GATEHOUSE_BIN)"
[[ $BENCH_SECONDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive integer"
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
[[ $BENCH_CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS must be a positive integer"

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

results="bench/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$results"

# Four free loopback ports, held open together so they differ.
read -r upstream_port nginx_port gatehouse_port admin_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')

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
    # gatehouse writes an access log line per request; so does this nginx.
    access_log $tmp/proxy-access.log;
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

cp "$tmp/upstream.conf" "$tmp/proxy.conf" "$results/"

start_nginx() { # $1: name
    nginx -e "$tmp/$1-error.log" -p "$tmp" -c "$tmp/$1.conf" >"$tmp/$1.out" 2>&1 &
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
    die "$1 did not answer $3 within 30 s"
}

start_nginx upstream
wait_for upstream "${pids[-1]}" "http://127.0.0.1:$upstream_port/"
start_nginx proxy
wait_for proxy "${pids[-1]}" "http://127.0.0.1:$nginx_port/"

GATEHOUSE_UPSTREAM="http://127.0.0.1:$upstream_port" \
    GATEHOUSE_LISTEN="127.0.0.1:$gatehouse_port" \
    GATEHOUSE_ADMIN_LISTEN="127.0.0.1:$admin_port" \
    GATEHOUSE_LOG_FORMAT="${GATEHOUSE_LOG_FORMAT:-json}" \
    "$GATEHOUSE_BIN" serve >"$tmp/gatehouse.out" 2>"$tmp/gatehouse.err" &
pids+=("$!")
wait_for gatehouse "${pids[-1]}" "http://127.0.0.1:$admin_port/readyz"

declare -A url=(
    [nginx]="http://127.0.0.1:$nginx_port/"
    [gatehouse]="http://127.0.0.1:$gatehouse_port/"
)
for target in nginx gatehouse; do
    body=$(curl -fsS --max-time 5 "${url[$target]}") || die "$target: request failed"
    [[ $body == ok ]] || die "$target answered '$body' instead of 'ok'"
done

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

median() { # numbers as arguments
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

declare -A rps_list p50_list p99_list
problems=0

run_wrk() { # $1: target, $2: output file, $3: seconds
    wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"$3"s --latency "${url[$1]}" >"$2"
}

echo "bench: warming up (2 s each)"
for target in nginx gatehouse; do
    run_wrk "$target" "$results/warmup-$target.txt" 2
done

for ((round = 1; round <= BENCH_ROUNDS; round++)); do
    if ((round % 2)); then order=(nginx gatehouse); else order=(gatehouse nginx); fi
    for target in "${order[@]}"; do
        out="$results/round$round-$target.txt"
        echo "bench: round $round/$BENCH_ROUNDS: $target (${BENCH_SECONDS}s)"
        run_wrk "$target" "$out" "$BENCH_SECONDS"
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
        p50=$(awk '$1 == "50%" { print $2 }' "$out")
        p99=$(awk '$1 == "99%" { print $2 }' "$out")
        [[ -n $rps && -n $p50 && -n $p99 ]] || die "could not parse wrk output $out"
        rps_list[$target]+="$rps "
        p50_list[$target]+="$(to_ms "$p50") "
        p99_list[$target]+="$(to_ms "$p99") "
        if grep -Eq 'Non-2xx or 3xx responses|Socket errors' "$out"; then
            echo "bench: WARNING: $target had errors in round $round:" >&2
            grep -E 'Non-2xx or 3xx responses|Socket errors' "$out" >&2
            problems=1
        fi
    done
done

declare -A rps_med p50_med p99_med
for target in nginx gatehouse; do
    # shellcheck disable=SC2086 # word splitting of the collected numbers is intended
    {
        rps_med[$target]=$(median ${rps_list[$target]})
        p50_med[$target]=$(median ${p50_list[$target]})
        p99_med[$target]=$(median ${p99_list[$target]})
    }
done

{
    echo "gatehouse bench, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "wrk -t$BENCH_THREADS -c$BENCH_CONNECTIONS -d${BENCH_SECONDS}s --latency, $BENCH_ROUNDS round(s), median shown"
    echo "machine: $(nproc) cores; $(nginx -v 2>&1); gatehouse $("$GATEHOUSE_BIN" --version 2>/dev/null || echo '?') ($GATEHOUSE_BIN)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)"
    echo
    printf '%-10s %12s %10s %10s\n' target "requests/s" "p50 ms" "p99 ms"
    for target in nginx gatehouse; do
        printf '%-10s %12s %10s %10s\n' "$target" "${rps_med[$target]}" "${p50_med[$target]}" "${p99_med[$target]}"
    done
    echo
    awk -v g="${rps_med[gatehouse]}" -v n="${rps_med[nginx]}" 'BEGIN { printf "gatehouse/nginx throughput: %.2f\n", g / n }'
    awk -v g="${p99_med[gatehouse]}" -v n="${p99_med[nginx]}" 'BEGIN { printf "gatehouse/nginx p99:        %.2f\n", (n > 0 ? g / n : 0) }'
    if ((problems)); then
        echo "WARNING: wrk reported errors or non-2xx responses; see the raw files"
    fi
} | tee "$results/summary.txt"

echo "bench: raw output in $results/"
