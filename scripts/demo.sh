#!/usr/bin/env bash
# `make demo`: the example FastAPI app under uvicorn with gatehouse in front of it.
# Stops both on Ctrl-C (or after DEMO_SECONDS, if set).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${GATEHOUSE_BIN:-.build/release/gatehouse}
app_port=${DEMO_APP_PORT:-8000}
proxy_port=${DEMO_PROXY_PORT:-8080}
admin_port=${DEMO_ADMIN_PORT:-9901}
logs=.demo
mkdir -p "$logs"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

.venv/bin/python -m uvicorn app:app --app-dir deploy/example --host 127.0.0.1 --port "$app_port" \
    >"$logs/app.log" 2>&1 &
pids+=($!)

GATEHOUSE_UPSTREAM="http://127.0.0.1:$app_port" \
GATEHOUSE_LISTEN="127.0.0.1:$proxy_port" \
GATEHOUSE_ADMIN_LISTEN="127.0.0.1:$admin_port" \
GATEHOUSE_LOG_FORMAT=text \
GATEHOUSE_SHUTDOWN_DELAY=0s \
    "$bin" >"$logs/gatehouse.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 \
        && curl -fsS "http://127.0.0.1:$app_port/" >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
if ! curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null; then
    echo "gatehouse did not become ready; see $logs/gatehouse.log" >&2
    cat "$logs/gatehouse.log" >&2
    exit 1
fi

cat <<MSG

gatehouse is running on http://127.0.0.1:$proxy_port in front of FastAPI on 127.0.0.1:$app_port.
Logs: $logs/gatehouse.log (access log) and $logs/app.log. Try:

  curl -i http://127.0.0.1:$proxy_port/
  curl -i http://127.0.0.1:$proxy_port/items
  curl -i -X POST http://127.0.0.1:$proxy_port/items -H 'content-type: application/json' -d '{"name":"tea"}'
  curl -N http://127.0.0.1:$proxy_port/events            # Server-Sent Events, streamed as sent
  curl -i http://127.0.0.1:$admin_port/readyz             # readiness (admin port)

Press Ctrl-C to stop.
MSG

if [[ -n "${DEMO_SECONDS:-}" ]]; then
    sleep "$DEMO_SECONDS"
else
    wait "${pids[1]}"
fi
