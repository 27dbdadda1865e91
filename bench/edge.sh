#!/usr/bin/env bash
# Ingress at the edge vs Caddy's plain respond, on the same server, same run.
#
# Starts one Caddy (built from cmd/caddy) serving two routes on one port:
#   /ingress  hook_verify (HS256, a reused token: cache hit) + hook_normalize
#             ave_tracking, then respond with the contract's 201 body (no
#             hook_relay: this measures verification and validation, not the
#             queue; bench/ingress.sh measures the durable route);
#   /respond  respond with the same 201 body.
# Drives each with wrk (POST of the same 1-guide payload and token) and prints
# requests/s for both and the ratio ingress/respond.
#
#   bench/edge.sh                    # 15s per route, 2 threads, 64 connections
#   DURATION=30s CONNS=128 bench/edge.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}

bench_init edge
need_wrk
build_caddy

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
admin=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
secret=bench-secret-0123456789abcdef0123456789
cat > "$work/Caddyfile" <<CADDY
{
	admin 127.0.0.1:$admin
	auto_https off
	persist_config off
}
http://127.0.0.1:$port {
	bind 127.0.0.1
	route /ingress {
		hook_verify {
			secret $secret
			algorithms HS256
		}
		hook_normalize ave_tracking
		header Content-Type application/json
		respond \`{"status":"success","message":"Your webhook event was received successfully","status_code":201}\` 201
	}
	route /respond {
		header Content-Type application/json
		respond \`{"status":"success","message":"Your webhook event was received successfully","status_code":201}\` 201
	}
}
CADDY
"$work/caddy" run --config "$work/Caddyfile" >"$work/caddy.log" 2>&1 &
track $!
wait_http "http://127.0.0.1:$admin/config/" || { cat "$work/caddy.log" >&2; exit 1; }

token=$(HOOKRELAY_DEV_SECRET=$secret "$work/caddy" hookrelay token --ttl 2h)
cp examples/ave-tracking.json "$work/body.json"
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
local f = io.open(os.getenv("BODY_FILE"), "r")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Ave-Hub-signature"] = os.getenv("TOKEN")
LUA

check=$(curl -s -o /dev/null -w '%{http_code}' -H "Ave-Hub-signature: $token" --data @"$work/body.json" "http://127.0.0.1:$port/ingress")
[ "$check" = 201 ] || { echo "ingress answered $check, not 201" >&2; cat "$work/caddy.log" >&2; exit 1; }

run() {
	BODY_FILE="$work/body.json" TOKEN="$token" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$work/post.lua" "http://127.0.0.1:$port/$1" >"$work/$1.txt"
	if grep -q "Non-2xx" "$work/$1.txt"; then echo "$1: non-2xx answers:" >&2; cat "$work/$1.txt" >&2; exit 1; fi
	awk '/Requests\/sec/ {print $2}' "$work/$1.txt"
}
run respond >/dev/null # warm-up
respond=$(run respond)
ingress=$(run ingress)
echo "machine: $(nproc) cores; wrk -t$THREADS -c$CONNS -d$DURATION; payload $(wc -c <"$work/body.json") bytes, 1 guide"
echo "respond  req/s: $respond"
echo "ingress  req/s: $ingress   (hook_verify HS256 cached + hook_normalize ave_tracking)"
echo "ratio ingress/respond: $(ratio2 "$ingress" "$respond")"
