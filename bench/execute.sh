#!/usr/bin/env bash
# Load script for DEUNA's dynamic webhooks (not part of the test suite).
#
#   bench/execute.sh
#
# One merchant process (a Caddy that answers the tip JSON of seed 001's
# KFC Web example) on loopback, and one relay Caddy in front of it with:
#   /proxy/tip  reverse_proxy to the merchant: the baseline;
#   /api/v1/merchants/kfc-web/webhooks/tip/execute: the dynamic webhook
#               (merchant called, its answer rendered with the KFC Web
#               tip template, fields merged, answer reduced and signed).
# Both get the same DEUNA order (~600 B). The two paths are measured
# alternately, ROUNDS times each, with wrk; the script prints each run's
# p50/p90/p99 latency and req/s, then the medians and the ratios
# execute/reverse_proxy.
#
# Settings (environment):
#   DURATION=5s  each wrk run
#   ROUNDS=3     runs of each path, alternated
#   LOADS="1 16" wrk connection counts (1: latency of one caller at a time)
#   PORT_BASE=18500  ports PORT_BASE .. PORT_BASE+3 on 127.0.0.1
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
LOADS=${LOADS:-1 16}
PORT_BASE=${PORT_BASE:-18500}
PORT=$PORT_BASE
ADMIN_PORT=$((PORT_BASE + 1))
MERCHANT_PORT=$((PORT_BASE + 2))
MERCHANT_ADMIN=$((PORT_BASE + 3))
TOKEN=bench-merchant-token

bench_init execute
need_wrk
build_caddy
SEAL=$(head -c 32 /dev/urandom | base64)
export SEAL

cat >"$work/merchant.Caddyfile" <<CADDY
{
$(caddy_globals "$MERCHANT_ADMIN" WARN)
}
:$MERCHANT_PORT {
	bind 127.0.0.1
	header Content-Type application/json
	respond \`{"uuid":"u-1","business_id":"b-9","tip":"1.20"}\` 200
}
CADDY

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
	handle_path /proxy/* {
		reverse_proxy 127.0.0.1:$MERCHANT_PORT
	}
	route /api/* {
		hook_webhooks {
			token $TOKEN kfc-web
		}
	}
}
CADDY

start() {
	"$work/caddy" run --config "$work/$1.Caddyfile" --adapter caddyfile >"$work/$1.log" 2>&1 &
	track $!
	wait_http "http://127.0.0.1:$2/config/" && return
	echo "$1 did not start" >&2
	cat "$work/$1.log" >&2
	exit 1
}
start merchant "$MERCHANT_ADMIN"
start relay "$ADMIN_PORT"

# The KFC Web tip webhook: the merchant's tip added to the order total.
cat >"$work/tip.json" <<JSON
{
	"event_name": "tip",
	"url": "http://127.0.0.1:$MERCHANT_PORT/tip",
	"fields_update": {"fields": ["total"], "custom_fields": ["tip"]},
	"response_body": {"fields": ["order_id", "total"], "custom_fields": ["tip"]},
	"response_template": "{\"order\":{\"order_id\":{{ json .request.order.order_id }},\"total\":\"{{ add .request.order.total .result.tip }}\",\"custom_fields\":{\"tip\":{{ json .result.tip }}}}}",
	"response_data": {"uuid": "u-1", "tip": "1.20"},
	"request_data": {"order": {"order_id": "A1", "total": "10.10", "custom_fields": {}}}
}
JSON
curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	--data-binary @"$work/tip.json" "http://127.0.0.1:$PORT/api/v1/merchants/kfc-web/webhooks"

execute=/api/v1/merchants/kfc-web/webhooks/tip/execute
answer=$(curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	-d '{"order":{"order_id":"A1","total":"10.10","custom_fields":{}}}' "http://127.0.0.1:$PORT$execute")
echo "execute answers: $answer"

# run_wrk <conns> <path>: prints "req_per_s p50_us p90_us p99_us errors".
run_wrk() {
	wrk -t1 -c"$1" -d"$DURATION" --timeout 10s -s bench/execute.lua \
		"http://127.0.0.1:$PORT$2" -- "$TOKEN" >"$work/wrk.out" 2>&1
	awk '/^RESULT/ { printf "%.0f %d %d %d %d\n", ($2 - $4) / ($3 / 1e6), $6, $7, $8, $4 + $5 }' "$work/wrk.out"
}
# column_median <file> <column>: the median of that column of run_wrk's lines.
column_median() {
	local v
	mapfile -t v < <(awk -v c="$2" '{ print $c }' "$1")
	median "${v[@]}"
}

echo "machine: $(nproc) cores; wrk -t1 -d$DURATION; $ROUNDS alternated runs per path"
for c in $LOADS; do
	: >"$work/proxy.$c"
	: >"$work/exec.$c"
	for r in $(seq 1 "$ROUNDS"); do
		run_wrk "$c" /proxy/tip >>"$work/proxy.$c"
		run_wrk "$c" "$execute" >>"$work/exec.$c"
		printf 'c=%-3s round %d  reverse_proxy %s\n' "$c" "$r" "$(tail -1 "$work/proxy.$c")"
		printf 'c=%-3s round %d  execute       %s\n' "$c" "$r" "$(tail -1 "$work/exec.$c")"
	done
	pr=$(column_median "$work/proxy.$c" 1) p50=$(column_median "$work/proxy.$c" 2) p99=$(column_median "$work/proxy.$c" 4)
	er=$(column_median "$work/exec.$c" 1) e50=$(column_median "$work/exec.$c" 2) e99=$(column_median "$work/exec.$c" 4)
	echo "c=$c medians: reverse_proxy ${pr} req/s p50 ${p50}us p99 ${p99}us;" \
		"execute ${er} req/s p50 ${e50}us p99 ${e99}us;" \
		"latency ratio execute/reverse_proxy p50 $(ratio2 "$e50" "$p50")" \
		"p99 $(ratio2 "$e99" "$p99");" \
		"throughput ratio $(ratio2 "$er" "$pr")"
done
