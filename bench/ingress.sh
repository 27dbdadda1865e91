#!/usr/bin/env bash
# Load script for hookrelay's durable delivery (not part of the test suite).
#
#   bench/ingress.sh
#
# In one run on this machine it reports:
#   (a) ingress accepted/s to a durable 201 (a signed Ave webhook, verified,
#       normalized, stored for 1 destination, ~1 KB event) against a plain
#       `respond` route of the same server, and their ratio;
#   (b) deliveries/s to a loopback receiver answering 200, while the
#       ingress of (a) runs;
#   (c) the drain rate of a backlog (100k events by default) after the
#       destination comes back, and the RSS of the Caddy process meanwhile.
#
# Caddy, the receiver (a second, plain Caddy answering 200) and wrk share
# the machine's cores. Settings (environment):
#   DURATION=10s   each wrk run of (a)
#   CONNS=64       wrk connections
#   THREADS=2      wrk threads
#   BACKLOG=100000 events queued for (c)
#   SYNC=          empty for the default (fsync every 1s), or "always"
#   WORKERS=       the destination's workers; empty for the default (32)
#   PORT_BASE=18300  ports PORT_BASE .. PORT_BASE+3 on 127.0.0.1
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
BACKLOG=${BACKLOG:-100000}
SYNC=${SYNC:-}
WORKERS=${WORKERS:-}
PORT_BASE=${PORT_BASE:-18300}
INGRESS_PORT=$PORT_BASE
ADMIN_PORT=$((PORT_BASE + 1))
RECV_PORT=$((PORT_BASE + 2))
RECV_ADMIN_PORT=$((PORT_BASE + 3))
SECRET=bench-hmac-secret

bench_init ingress
need_wrk
build_caddy

sync_line=
if [ "$SYNC" = always ]; then sync_line="sync always"; fi
workers_line=
if [ -n "$WORKERS" ]; then workers_line="workers $WORKERS"; fi

cat >"$work/relay.Caddyfile" <<EOF
{
$(caddy_globals "$ADMIN_PORT" WARN)
	hookrelay {
		storage embedded $work/queue
		$sync_line
	}
}

:$INGRESS_PORT {
	bind 127.0.0.1
	route /relay {
		hook_verify {
			secret $SECRET
			algorithms HS256
		}
		hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
			to http://127.0.0.1:$RECV_PORT/hooks {
				name bench_sink
				timeout 10s
				$workers_line
			}
			retry {
				schedule 1s
			}
		}
	}
	route /plain {
		respond \`{"status":"success","message":"Your webhook event was received successfully","status_code":201}\` 201
	}
}
EOF

cat >"$work/receiver.Caddyfile" <<EOF
{
$(caddy_globals "$RECV_ADMIN_PORT" ERROR)
}

:$RECV_PORT {
	bind 127.0.0.1
	respond 200
}
EOF

start_receiver() {
	"$work/caddy" run --config "$work/receiver.Caddyfile" --adapter caddyfile >"$work/receiver.log" 2>&1 &
	recv_pid=$!
	track "$recv_pid"
	wait_http "http://127.0.0.1:$RECV_ADMIN_PORT/config/"
}

stop_receiver() {
	kill "$recv_pid"
	wait "$recv_pid" 2>/dev/null || true
	untrack "$recv_pid"
	recv_pid=
}

# metric <sample>: the value of one sample of the relay's /metrics, 0 if absent.
metric() {
	curl -fs "http://127.0.0.1:$ADMIN_PORT/metrics" |
		awk -v s="$1" 'index($0, s" ") == 1 { v = $NF } END { printf "%d\n", v + 0 }'
}
delivered() { metric 'hookrelay_delivery_attempts_total{destination="bench_sink",outcome="delivered"}'; }
enqueued() { metric 'hookrelay_events_enqueued_total'; }

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$relay_pid/status"; }

# run_wrk <path> <duration> [<201s per thread>]: prints "requests seconds status_errors socket_errors".
run_wrk() {
	local tag
	tag="run$(date +%s%N)"
	wrk -t"$THREADS" -c"$CONNS" -d"$2" --timeout 30s -s bench/ave.lua \
		"http://127.0.0.1:$INGRESS_PORT$1" -- "$1" "$token" "$tag" ${3:+"$3"} >"$work/wrk.out" 2>&1
	awk '/^RESULT/ { printf "%d %.3f %d %d\n", $2, $3 / 1e6, $4, $5 }' "$work/wrk.out"
}

# wait_drained <timeout s>: until every enqueued message was delivered.
wait_drained() {
	local deadline=$(($(date +%s) + $1))
	while [ "$(delivered)" -lt "$(enqueued)" ]; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "queue not drained after $1 s: delivered $(delivered) of $(enqueued)" >&2
			return 1
		fi
		sleep 0.2
	done
}

start_receiver
"$work/caddy" run --config "$work/relay.Caddyfile" --adapter caddyfile >"$work/relay.log" 2>&1 &
relay_pid=$!
track "$relay_pid"
wait_http "http://127.0.0.1:$ADMIN_PORT/config/"
token=$("$work/caddy" hookrelay token --secret "$SECRET" --ttl 2h)

echo "machine: $(nproc) cores; wrk -t$THREADS -c$CONNS -d$DURATION; sync: ${SYNC:-default (1s)}; workers: ${WORKERS:-default (32)}"
echo "warm-up" >&2
run_wrk /relay 3s >/dev/null
wait_drained 120

# (a) plain respond vs durable 201
read -r p_req p_sec p_err _ < <(run_wrk /plain "$DURATION")
p_rate=$(rate $((p_req - p_err)) "$p_sec")

d0=$(delivered)
t0=$(now)
read -r r_req r_sec r_err r_sock < <(run_wrk /relay "$DURATION")
t1=$(now)
d1=$(delivered)
r_rate=$(rate $((r_req - r_err)) "$r_sec")
echo
echo "(a) ingress, ~1 KB Ave event, 1 destination"
echo "    plain respond 201 route:   $p_rate req/s ($p_req requests in ${p_sec}s)"
echo "    durable 201 (hook_relay):  $r_rate accepted/s ($r_req requests, $r_err non-2xx, $r_sock socket errors, in ${r_sec}s)"
echo "    ratio durable/plain:       $(ratio "$r_rate" "$p_rate")"

live=$(rate $((d1 - d0)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
wait_drained 300
t2=$(now)
d2=$(delivered)
echo "(b) deliveries to a loopback receiver answering 200"
echo "    while (a) ran:             $live deliveries/s ($((d1 - d0)) during the run)"
echo "    catch-up after it:         $((d2 - d1)) more in $(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", b - a }')s"

# (c) backlog: destination down, queue BACKLOG events, bring it back.
stop_receiver
rss_before=$(rss_kb)
( peak=0; while kill -0 "$relay_pid" 2>/dev/null; do
	r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$relay_pid/status" 2>/dev/null || echo 0)
	[ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" >"$work/rss.peak"
	sleep 0.2
done ) &
rss_pid=$!
track "$rss_pid"
e0=$(enqueued)
dl0=$(delivered)
f0=$(now)
per_thread=$(((BACKLOG + THREADS - 1) / THREADS))
# wrk runs for its whole duration even after its threads stopped at their
# count: interrupt it once the backlog is queued.
wrk -t"$THREADS" -c"$CONNS" -d10m --timeout 30s -s bench/ave.lua \
	"http://127.0.0.1:$INGRESS_PORT/relay" -- /relay "$token" "fill$(date +%s%N)" "$per_thread" >"$work/wrk.out" 2>&1 &
wrk_pid=$!
track "$wrk_pid"
while kill -0 "$wrk_pid" 2>/dev/null && [ $(($(enqueued) - e0)) -lt "$BACKLOG" ]; do sleep 0.1; done
kill -INT "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid" || true
untrack "$wrk_pid"
f1=$(now)
read -r _ _ f_err _ < <(awk '/^RESULT/ { print $2, $3, $4, $5 }' "$work/wrk.out")
queued=$(($(enqueued) - e0))
rss_full=$(rss_kb)
start_receiver
back=$(now)
# The destination's circuit breaker probes on a growing cool-down while it
# is down: first note how long the first delivery takes to come.
while [ "$(delivered)" -eq "$dl0" ]; do sleep 0.05; done
first=$(now)
dl_first=$(delivered)
wait_drained 600
done_at=$(now)
drained=$(($(delivered) - dl0))
rss_after=$(rss_kb)
kill "$rss_pid" 2>/dev/null || true
wait "$rss_pid" 2>/dev/null || true
untrack "$rss_pid"
echo "(c) backlog of $queued events (filled at $(rate "$queued" "$(awk -v a="$f0" -v b="$f1" 'BEGIN { print b - a }')")/s with the destination down, $f_err non-2xx)"
echo "    first delivery after the destination came back: $(awk -v a="$back" -v b="$first" 'BEGIN { printf "%.1f", b - a }')s (circuit breaker cool-down)"
echo "    drain rate:                $(rate $((drained - (dl_first - dl0))) "$(awk -v a="$first" -v b="$done_at" 'BEGIN { print b - a }')") deliveries/s ($drained delivered in $(awk -v a="$first" -v b="$done_at" 'BEGIN { printf "%.1f", b - a }')s from the first one)"
echo "    Caddy RSS: before $((rss_before / 1024)) MB, backlog full $((rss_full / 1024)) MB, peak $(($(cat "$work/rss.peak" 2>/dev/null || echo 0) / 1024)) MB, drained $((rss_after / 1024)) MB"
echo "ingress answers over the whole run: $(curl -fs "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^hookrelay_ingress_requests_total/ { printf "%s ", $0 }')"
if grep -q "events not stored" "$work/relay.log"; then
	# "context canceled" is a client that went away mid-request (wrk
	# closes its connections when a run ends): nobody gets that 503.
	echo "503 causes:"
	grep "events not stored" "$work/relay.log" | grep -o '"error":"[^"]*"' | sort | uniq -c
fi
