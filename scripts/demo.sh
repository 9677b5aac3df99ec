#!/usr/bin/env bash
# `make demo`: the example FastAPI app under uvicorn, the development issuer (a Better
# Auth-shaped JWKS), and gatehouse in front of the app verifying tokens. The app listens on a
# Unix socket in a temporary directory (uvicorn --uds), not on a TCP port, and gatehouse reaches
# it as GATEHOUSE_UPSTREAM=unix:<path>.
# Stops both on Ctrl-C (or after DEMO_SECONDS, if set).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${GATEHOUSE_BIN:-.build/release/gatehouse}
proxy_port=${DEMO_PROXY_PORT:-8080}
admin_port=${DEMO_ADMIN_PORT:-9901}
issuer_port=${DEMO_ISSUER_PORT:-3000}
logs=.demo
mkdir -p "$logs"
# A short path of its own: a socket's path must fit in 107 bytes.
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-demo.XXXXXX")
app_socket=$run_dir/uvicorn.sock

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$run_dir"
}
trap cleanup EXIT INT TERM

# One identity secret for this run, shared by gatehouse (which signs every request it forwards)
# and the app (gatehouse-fastapi checks the signature before trusting any identity header).
GATEHOUSE_IDENTITY_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export GATEHOUSE_IDENTITY_SECRET
.venv/bin/python -m uvicorn app:app --app-dir deploy/example --uds "$app_socket" \
    >"$logs/app.log" 2>&1 &
pids+=($!)

"$bin" dev-issuer --key-file "$logs/dev-key.json" --listen "127.0.0.1:$issuer_port" >"$logs/issuer.log" 2>&1 &
pids+=($!)

BETTER_AUTH_URL="http://127.0.0.1:$issuer_port" \
GATEHOUSE_UPSTREAM="unix:$app_socket" \
GATEHOUSE_LISTEN="127.0.0.1:$proxy_port" \
GATEHOUSE_ADMIN_LISTEN="127.0.0.1:$admin_port" \
GATEHOUSE_LOG_FORMAT=text \
GATEHOUSE_SHUTDOWN_DELAY=0s \
GATEHOUSE_SESSIONS=both \
    "$bin" >"$logs/gatehouse.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 \
        && curl -fsS --unix-socket "$app_socket" http://app/ >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
if ! curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null; then
    echo "gatehouse did not become ready; see $logs/gatehouse.log" >&2
    cat "$logs/gatehouse.log" >&2
    exit 1
fi

token=$("$bin" mint --key-file "$logs/dev-key.json" --issuer "http://127.0.0.1:$issuer_port" \
    --sub user-42 --email ada@example.com --name "Ada Lovelace")
# A Better Auth session (the dev issuer answers get-session for it): the session cookie's value,
# which is also what the bearer plugin hands out as set-auth-token.
session=$("$bin" mint --key-file "$logs/dev-key.json" --session --sub user-42 --email ada@example.com --name "Ada Lovelace" 2>/dev/null)
# Checked here, so a broken demo says so instead of printing commands that fail.
for credential in "Authorization: Bearer $token" "Cookie: better-auth.session_token=$session" "Authorization: Bearer $session"; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "$credential" "http://127.0.0.1:$proxy_port/me")
    if [[ $status != 200 ]]; then
        echo "a freshly minted credential was refused ($status); see $logs/gatehouse.log" >&2
        exit 1
    fi
done

cat <<MSG

gatehouse is running on http://127.0.0.1:$proxy_port in front of FastAPI on the Unix socket
$app_socket (no TCP port: nothing reaches FastAPI around gatehouse),
verifying tokens against the development issuer's JWKS at http://127.0.0.1:$issuer_port/api/auth/jwks.
Logs: $logs/gatehouse.log (access log), $logs/app.log, $logs/issuer.log.

A token (Better Auth's shape, valid 15 minutes; make more with
  $bin mint --key-file $logs/dev-key.json --issuer http://127.0.0.1:$issuer_port --sub someone
  [--alg ES256, ES512, RS256 or PS256: a key for it is added and served at once]):

  TOKEN=$token

A Better Auth session (GATEHOUSE_SESSIONS=both; the dev issuer answers get-session for it,
valid 7 days; make more with $bin mint --key-file $logs/dev-key.json --session --sub someone):
  SESSION=$session
Works (FastAPI sees X-User-Id, X-User-Email and X-Auth-Method: jwt or session):
  curl -i -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$proxy_port/me
  curl -i -b "better-auth.session_token=\$SESSION" http://127.0.0.1:$proxy_port/me        # the session cookie
  curl -i -H "Authorization: Bearer \$SESSION" http://127.0.0.1:$proxy_port/me           # the bearer plugin's token
  curl -i -X POST -b "better-auth.session_token=\$SESSION" -H "Origin: http://127.0.0.1:$issuer_port" -H "Content-Type: application/json" -d '{"name":"tea","price":1.5}' http://127.0.0.1:$proxy_port/items
  curl -N -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$proxy_port/events    # SSE, streamed as sent

Refused by gatehouse before FastAPI sees it:
  curl -i http://127.0.0.1:$proxy_port/me                                          # 401 Not authenticated
  curl -i -H "Authorization: Bearer \${TOKEN}x" http://127.0.0.1:$proxy_port/me    # 401 invalid_token
  curl -i -H "Authorization: Bearer \$TOKEN" -H "X-User-Id: admin" http://127.0.0.1:$proxy_port/me   # forged header removed
  curl -i -X POST -b "better-auth.session_token=\$SESSION" -H "Content-Type: application/json" -d '{"name":"tea","price":1.5}' http://127.0.0.1:$proxy_port/items   # 403: a cookie write needs a trusted Origin

Around gatehouse, straight to the app's socket, forged headers get nowhere (no valid signature):
  curl -i --unix-socket $app_socket -H "X-User-Id: admin" http://app/me                # 401
Readiness (admin port): curl -i http://127.0.0.1:$admin_port/readyz

Press Ctrl-C to stop.
MSG

if [[ -n "${DEMO_SECONDS:-}" ]]; then
    sleep "$DEMO_SECONDS"
else
    wait "${pids[1]}"
fi
