#!/usr/bin/env bash
# Load script for fan-out to registered webhooks (not part of the test
# suite).
#
#   bench/fanout.sh
#
# In one run on this machine it reports, for an order event (~500 B of
# raw JSON) that 1, then 100, registered webhooks take:
#   - ingress accepted/s to a durable 201 (hook_relay with webhooks: the
#     event routed by topic and stored once per webhook), against a plain
#     `respond` route of the same server, and their ratio;
#   - the bytes the queue's files grew by per accepted event.
# The webhooks are paused, so that what is stored stays stored and no
# delivery competes with ingress.
#
# Settings (environment):
#   DURATION=10s   each wrk run
#   CONNS=64       wrk connections
#   THREADS=2      wrk threads
#   FANOUT="1 100" the webhook counts measured
#   PORT_BASE=18400  ports PORT_BASE .. PORT_BASE+1 on 127.0.0.1
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
FANOUT=${FANOUT:-1 100}
PORT_BASE=${PORT_BASE:-18400}
PORT=$PORT_BASE
ADMIN_PORT=$((PORT_BASE + 1))
TOKEN=bench-tenant-token

bench_init fanout
need_wrk
build_caddy
SEAL=$(head -c 32 /dev/urandom | base64)
export SEAL

cat >"$work/relay.Caddyfile" <<CADDY
{
$(caddy_globals "$ADMIN_PORT" WARN)
	hookrelay {
		storage embedded $work/queue
		webhooks {
			seal_key {env.SEAL}
			allow_network 127.0.0.0/8
			allow_http
		}
	}
}

:$PORT {
	bind 127.0.0.1
	route /orders {
		hook_relay {
			topic orders/created
			webhooks
		}
	}
	route /plain {
		respond \`{"status":"success","message":"Your webhook event was received successfully","status_code":201}\` 201
	}
	route /v1/* {
		hook_webhooks {
			token $TOKEN bench
		}
	}
}
CADDY

"$work/caddy" run --config "$work/relay.Caddyfile" --adapter caddyfile >"$work/relay.log" 2>&1 &
track $!
wait_http "http://127.0.0.1:$ADMIN_PORT/config/"

# run_wrk <path>: prints "requests seconds status_errors socket_errors".
run_wrk() {
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 30s -s bench/order.lua \
		"http://127.0.0.1:$PORT$1" -- "run$(date +%s%N)" >"$work/wrk.out" 2>&1
	awk '/^RESULT/ { printf "%d %.3f %d %d\n", $2, $3 / 1e6, $4, $5 }' "$work/wrk.out"
}
stored() { du -sb "$work/queue" | awk '{ print $1 }'; }

# webhooks <n>: deletes the registered webhooks, then registers n paused ones.
ids=()
webhooks() {
	for id in "${ids[@]}"; do
		curl -fs -o /dev/null -X DELETE -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/webhooks/$id"
	done
	ids=()
	for _ in $(seq 1 "$1"); do
		id=$(curl -fs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
			-d '{"topic":"orders/created","address":"http://127.0.0.1:9/hooks"}' \
			"http://127.0.0.1:$PORT/v1/webhooks" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
		curl -fs -o /dev/null -X POST "http://127.0.0.1:$ADMIN_PORT/hookrelay/destinations/wh-$id/pause"
		ids+=("$id")
	done
}

echo "machine: $(nproc) cores; wrk -t$THREADS -c$CONNS -d$DURATION; event ~500 B raw JSON"
read -r p_req p_sec p_err _ < <(run_wrk /plain)
p_rate=$(rate $((p_req - p_err)) "$p_sec")
echo "plain respond 201 route:  $p_rate req/s"
for n in $FANOUT; do
	webhooks "$n"
	sleep 3 # the deleted webhooks' deliveries are dropped 2s after a delete
	before=$(stored)
	read -r r_req r_sec r_err r_sock < <(run_wrk /orders)
	sleep 2 # the embedded store writes what it buffered
	after=$(stored)
	ok=$((r_req - r_err))
	r_rate=$(rate "$ok" "$r_sec")
	echo "$n webhook(s): durable 201 $r_rate accepted/s ($r_err non-2xx, $r_sock socket errors);" \
		"ratio to plain $(ratio "$r_rate" "$p_rate");" \
		"store grew $(awk -v d=$((after - before)) -v n="$ok" 'BEGIN { printf "%.0f", (n > 0 ? d / n : 0) }') B per event"
done
