#!/usr/bin/env bash
# Durable delivery against Caddy's own reverse_proxy (not part of the test
# suite): the four figures of issue 15 from one run.
#
#   bench/throughput.sh
#
# One Caddy (built from cmd/caddy) serves, on one port:
#   /proxy    reverse_proxy to the receiver: what a shop runs without hookrelay;
#   /plain    respond with the contract's 201 body;
#   /relay    hook_verify (HS256, cached) + hook_normalize ave_tracking +
#             hook_relay: stored (embedded JetStream, fsync every 1s), 201,
#             then delivered to the receiver;
#   /backlog  the same, to a receiver in a separate process;
# and the receiver itself (respond 200) on a second port. Every request is
# one ~600-byte Ave guide of its own (a new event; bench/ave.lua).
#
# Each round runs, one after the other:
#   proxy    wrk on /proxy: requests/s;
#   plain    wrk on /plain: requests/s;
#   relay    wrk on /relay while its deliveries run: accepted/s (durable
#            ingress), then the sustained rate, the accepted count over the
#            time from the start until the destination has every event;
#   cluster  two Caddy nodes on a 3-server NATS cluster (streams R3, fsync
#            every 1s), one wrk on each node with half the connections,
#            delivering to the same receiver: accepted/s of both;
#   drain    with the separate receiver stopped, BACKLOG events on
#            /backlog; then the receiver starts, and the deliveries/s from
#            the first delivery to the last, and the peak RSS of the
#            Caddy process (embedded queue included).
# It prints each round's figures with wrk's p99 latency, then the medians
# and the four ratios:
#   (1) sustained stored+delivered events/s / reverse_proxy requests/s
#   (2) durable ingress accepted/s (deliveries running) / plain respond
#   (3) backlog drain deliveries/s / 15,000 (and the peak RSS)
#   (4) cluster ingress accepted/s / one embedded node's (relay)
# A ratio is given as the median of the rounds' own ratios, and as the
# ratio of the medians.
#
# Settings (environment):
#   RUNS=3          rounds
#   DURATION=10s    each wrk run
#   CONNS=64        wrk connections (the cluster's two wrk take half each)
#   THREADS=2       wrk threads
#   BACKLOG=100000  events of the drain
#   CLUSTER=1       0 skips the cluster (no nats-server built)
#   WORKERS=        the destinations' workers; empty for the default
#   PORT_BASE=18600 ports PORT_BASE .. PORT_BASE+32 on 127.0.0.1
#   PHASES="proxy plain relay cluster drain"  the phases run (for a quick
#                   look at one; the ratios need them all)
#   PROFILE=<dir>   keep pprof profiles of the relay's Caddy from the first
#                   round: relay.cpu and relay.allocs (a base to diff with
#                   is relay.allocs0) of the relay run, drain.cpu and
#                   drain.allocs (base drain.allocs0) of the drain; nodeN.cpu
#                   and natsN.cpu of the cluster's Caddy nodes and servers
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
BACKLOG=${BACKLOG:-100000}
CLUSTER=${CLUSTER:-1}
PHASES=${PHASES:-proxy plain relay cluster drain}
has() { [[ " $PHASES " == *" $1 "* ]]; }
if ! has cluster; then CLUSTER=0; fi
PORT_BASE=${PORT_BASE:-18600}
PORT=$PORT_BASE
ADMIN=$((PORT_BASE + 1))
RECV=$((PORT_BASE + 2))
SEP=$((PORT_BASE + 3))
SEP_ADMIN=$((PORT_BASE + 4))
NODE_PORT=$((PORT_BASE + 10)) # node i: NODE_PORT+2i ingress, +2i+1 admin
NATS_PORT=$((PORT_BASE + 20)) # server i: NATS_PORT+i clients, NATS_PORT+10+i routes
SECRET=bench-hmac-secret
BODY201='{"status":"success","message":"Your webhook event was received successfully","status_code":201}'

bench_init throughput
need_wrk
build_caddy

relay_route() { # <path> <destination> <url>
	cat <<EOF
	route $1 {
		hook_verify {
			secret $SECRET
			algorithms HS256
		}
		hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
			to $3 {
				name $2
				timeout 10s
				${WORKERS:+workers $WORKERS}
			}
			retry {
				schedule 1s
			}
		}
	}
EOF
}

cat >"$work/relay.Caddyfile" <<EOF
{
$(caddy_globals "$ADMIN" WARN)
	hookrelay {
		storage embedded $work/queue
	}
}

:$RECV {
	bind 127.0.0.1
	respond 200
}

:$PORT {
	bind 127.0.0.1
$(relay_route /relay sink "http://127.0.0.1:$RECV/hooks")
$(relay_route /backlog backlog "http://127.0.0.1:$SEP/hooks")
	route /proxy {
		reverse_proxy 127.0.0.1:$RECV
	}
	route /plain {
		respond \`$BODY201\` 201
	}
}
EOF

cat >"$work/receiver.Caddyfile" <<EOF
{
$(caddy_globals "$SEP_ADMIN" ERROR)
}

:$SEP {
	bind 127.0.0.1
	respond 200
}
EOF

# metric <admin port> <sample>: one sample of a Caddy's /metrics, 0 if absent.
metric() {
	curl -fs "http://127.0.0.1:$1/metrics" |
		awk -v s="$2" 'index($0, s" ") == 1 { v = $NF } END { printf "%d\n", v + 0 }'
}
metricf() {
	curl -fs "http://127.0.0.1:$1/metrics" |
		awk -v s="$2" 'index($0, s" ") == 1 { v = $NF } END { printf "%.6f\n", v + 0 }'
}
attempt_sum() { metricf "$1" "hookrelay_delivery_attempt_duration_seconds_sum{destination=\"$2\"}"; }
attempt_count() { metric "$1" "hookrelay_delivery_attempt_duration_seconds_count{destination=\"$2\"}"; }
delivered() { metric "$1" "hookrelay_delivery_attempts_total{destination=\"$2\",outcome=\"delivered\"}"; }
enqueued() { metric "$1" hookrelay_events_enqueued_total; }
sum() { local s=0 v; for v in "$@"; do s=$((s + v)); done; echo "$s"; }

# wait_delivered <timeout s> <count> <admin port> <destination> [<admin port> <destination>]...:
# until the destinations' delivered counters add up to count.
wait_delivered() {
	local deadline=$(($(date +%s) + $1)) want=$2 got
	shift 2
	while :; do
		got=0
		local a=("$@") i
		for ((i = 0; i < ${#a[@]}; i += 2)); do got=$((got + $(delivered "${a[i]}" "${a[i + 1]}"))); done
		[ "$got" -ge "$want" ] && return 0
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "not delivered after $1 s: $got of $want" >&2
			return 1
		fi
		sleep 0.05
	done
}

# run_wrk <port> <path> <threads> <conns> <duration> <out> [<201s per thread>]:
# writes "requests seconds status_errors socket_errors p99_ms" to out.
run_wrk() {
	local tag="r$(date +%s%N)-$1"
	wrk -t"$3" -c"$4" -d"$5" --timeout 30s -s bench/ave.lua "http://127.0.0.1:$1$2" -- "$2" "$token" "$tag" ${7:+"$7"} >"$6.raw" 2>&1 || true
	awk '/^RESULT/ { printf "%d %.3f %d %d %.1f\n", $2, $3 / 1e6, $4, $5, $6 / 1000 }' "$6.raw" >"$6"
	[ -s "$6" ] || { echo "wrk failed:" >&2; cat "$6.raw" >&2; return 1; }
}

start_caddy() { # <config> <log> <admin port>; sets caddy_pid
	"$work/caddy" run --config "$1" --adapter caddyfile >"$2" 2>&1 &
	caddy_pid=$!
	track "$caddy_pid"
	wait_http "http://127.0.0.1:$3/config/"
}

start_caddy "$work/relay.Caddyfile" "$work/relay.log" "$ADMIN"
relay_pid=$caddy_pid
token=$("$work/caddy" hookrelay token --secret "$SECRET" --ttl 4h)
sep_pid=
start_receiver() {
	start_caddy "$work/receiver.Caddyfile" "$work/receiver.log" "$SEP_ADMIN"
	sep_pid=$caddy_pid
}
stop_receiver() {
	kill "$sep_pid"
	wait "$sep_pid" 2>/dev/null || true
	untrack "$sep_pid"
	sep_pid=
}

nodes=() node_pids=() nats_pids=()
if [ "$CLUSTER" = 1 ]; then
	echo "building nats-server" >&2
	go build -o "$work/nats-server" github.com/nats-io/nats-server/v2
	routes="nats://127.0.0.1:$((NATS_PORT + 11)), nats://127.0.0.1:$((NATS_PORT + 12)), nats://127.0.0.1:$((NATS_PORT + 13))"
	urls=
	for i in 1 2 3; do
		cat >"$work/nats$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:$((NATS_PORT + i))
prof_port: $((NATS_PORT + 20 + i))
jetstream {
	store_dir: "$work/nats$i"
	sync_interval: 1s
}
cluster {
	name: bench
	listen: 127.0.0.1:$((NATS_PORT + 10 + i))
	routes: [$routes]
}
EOF
		"$work/nats-server" -c "$work/nats$i.conf" >"$work/nats$i.log" 2>&1 &
		track $!
		nats_pids+=($!)
		urls="$urls nats://127.0.0.1:$((NATS_PORT + i))"
	done
	for i in 1 2; do
		cat >"$work/node$i.Caddyfile" <<EOF
{
$(caddy_globals "$((NODE_PORT + 2 * i + 1))" WARN)
	hookrelay {
		storage nats$urls {
			replicas ${REPLICAS:-3}
		}
	}
}

:$((NODE_PORT + 2 * i)) {
	bind 127.0.0.1
$(relay_route /relay sink "http://127.0.0.1:$RECV/hooks")
}
EOF
		XDG_DATA_HOME=$work/node$i/data XDG_CONFIG_HOME=$work/node$i/config \
			start_caddy "$work/node$i.Caddyfile" "$work/node$i.log" "$((NODE_PORT + 2 * i + 1))"
		nodes+=("$i")
		node_pids+=("$caddy_pid")
	done
	# Until the streams exist and take events.
	for _ in $(seq 1 300); do
		c=$(curl -s -o /dev/null -w '%{http_code}' -H "Ave-Hub-signature: $token" -H 'Content-Type: application/json' \
			--data '{"tipo":"json","body":[{"id_envio":"warm","cod_estado":"4","nombre_estado":"EN ENTREGA","fecha_estado":"2022-12-11 11:04:43"}]}' \
			"http://127.0.0.1:$((NODE_PORT + 2))/relay" || true)
		[ "$c" = 201 ] && break
		sleep 0.2
	done
fi

start_receiver
echo "warm-up" >&2
run_wrk "$PORT" /relay "$THREADS" "$CONNS" 3s "$work/w"
run_wrk "$PORT" /proxy "$THREADS" "$CONNS" 2s "$work/w"
wait_delivered 120 "$(enqueued "$ADMIN")" "$ADMIN" sink "$ADMIN" backlog
if [ ${#nodes[@]} -gt 0 ]; then
	run_wrk "$((NODE_PORT + 2))" /relay 1 $((CONNS / 2)) 3s "$work/w"
fi

# profile_start <name> [<cpu seconds>] / profile_end <name>: pprof of the
# relay's Caddy into PROFILE, when set.
prof_pid=
profile_start() {
	[ -n "${PROFILE:-}" ] || return 0
	mkdir -p "$PROFILE"
	curl -fs -o "$PROFILE/$1.allocs0" "http://127.0.0.1:$ADMIN/debug/pprof/allocs"
	local secs=${2:-$((${DURATION%s} - 2))}
	curl -fs -o "$PROFILE/$1.cpu" "http://127.0.0.1:$ADMIN/debug/pprof/profile?seconds=$secs" &
	prof_pid=$!
}
profile_end() {
	[ -n "${PROFILE:-}" ] || return 0
	wait "$prof_pid" || true
	curl -fs -o "$PROFILE/$1.allocs" "http://127.0.0.1:$ADMIN/debug/pprof/allocs"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# cpu <pid>...: the CPU seconds the processes used so far.
cpu() {
	local p t=0
	for p in "$@"; do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
per_event() { awk -v c="$1" -v n="$2" 'BEGIN { printf "%.0f", (n > 0 ? 1e6 * c / n : 0) }'; }

phase_proxy() {
	local n s e c0
	c0=$(cpu "$relay_pid")
	run_wrk "$PORT" /proxy "$THREADS" "$CONNS" "$DURATION" "$work/proxy"
	read -r n s e _ p_p99 <"$work/proxy"
	proxy=$(rate $((n - e)) "$s")
	proxy_cpu=$(per_event "$(minus "$(cpu "$relay_pid")" "$c0")" $((n - e)))
}

phase_plain() {
	local n s e
	run_wrk "$PORT" /plain "$THREADS" "$CONNS" "$DURATION" "$work/plain"
	read -r n s e _ pl_p99 <"$work/plain"
	plain=$(rate $((n - e)) "$s")
}

# relay: ingress with its deliveries running, then until all are delivered.
phase_relay() {
	local n s e t0 t2 e1 c0
	[ "$round" = 1 ] && profile_start relay
	c0=$(cpu "$relay_pid")
	t0=$(now)
	run_wrk "$PORT" /relay "$THREADS" "$CONNS" "$DURATION" "$work/relay"
	[ "$round" = 1 ] && profile_end relay
	e1=$(enqueued "$ADMIN")
	wait_delivered 300 "$e1" "$ADMIN" sink "$ADMIN" backlog
	t2=$(now)
	read -r n s e _ r_p99 <"$work/relay"
	ingress=$(rate $((n - e)) "$s")
	sus=$(rate $((n - e)) "$(minus "$t2" "$t0")")
	relay_cpu=$(per_event "$(minus "$(cpu "$relay_pid")" "$c0")" $((n - e)))
	[ "$e" -eq 0 ] || echo "relay: $e non-2xx answers" >&2
}

# cluster: one wrk per node, half the connections each.
phase_cluster() {
	local i n s e p99 ce1 wrk_pids=() wait_args=() c0 cn0 acc=0
	c0=$(cpu "${node_pids[@]}")
	cn0=$(cpu "${nats_pids[@]}")
	for i in "${nodes[@]}"; do
		run_wrk "$((NODE_PORT + 2 * i))" /relay 1 $((CONNS / 2)) "$DURATION" "$work/node$i.w" &
		wrk_pids+=($!)
	done
	if [ -n "${PROFILE:-}" ] && [ "$round" = 1 ]; then
		local secs=$((${DURATION%s} - 2))
		mkdir -p "$PROFILE"
		for i in 1 2 3; do
			curl -fs -o "$PROFILE/nats$i.cpu" "http://127.0.0.1:$((NATS_PORT + 20 + i))/debug/pprof/profile?seconds=$secs" &
		done
		for i in "${nodes[@]}"; do
			curl -fs -o "$PROFILE/node$i.cpu" "http://127.0.0.1:$((NODE_PORT + 2 * i + 1))/debug/pprof/profile?seconds=$secs" &
		done
	fi
	wait "${wrk_pids[@]}"
	cl=0 cl_p99=0 ce1=0
	for i in "${nodes[@]}"; do
		read -r n s e _ p99 <"$work/node$i.w"
		cl=$((cl + $(rate $((n - e)) "$s")))
		acc=$((acc + n - e))
		cl_p99=$(awk -v a="$cl_p99" -v b="$p99" 'BEGIN { print (b > a ? b : a) }')
		[ "$e" -eq 0 ] || echo "cluster node $i: $e non-2xx answers" >&2
		wait_args+=("$((NODE_PORT + 2 * i + 1))" sink)
		ce1=$((ce1 + $(enqueued $((NODE_PORT + 2 * i + 1)))))
	done
	# Let the cluster deliver what it took before the next phase.
	wait_delivered 300 "$ce1" "${wait_args[@]}" || true
	local got=0
	for i in "${nodes[@]}"; do got=$((got + $(delivered $((NODE_PORT + 2 * i + 1)) sink))); done
	cl_cpu="Caddy nodes $(per_event "$(minus "$(cpu "${node_pids[@]}")" "$c0")" "$acc"), NATS servers $(per_event "$(minus "$(cpu "${nats_pids[@]}")" "$cn0")" "$acc"); delivered twice so far: $((got - ce1))"
}

# drain: the separate receiver stopped, BACKLOG events, the receiver back.
phase_drain() {
	local b0 b1 bd0 bd1 per_thread wrk_pid first last as0 ac0 took c0
	stop_receiver
	echo 0 >"$work/rss.peak"
	(
		peak=0
		while kill -0 "$relay_pid" 2>/dev/null; do
			r=$(rss_kb "$relay_pid")
			if [ "${r:-0}" -gt "$peak" ]; then peak=$r && echo "$peak" >"$work/rss.peak"; fi
			sleep 0.2
		done
	) &
	rss_pid=$!
	track "$rss_pid"
	b0=$(enqueued "$ADMIN")
	bd0=$(delivered "$ADMIN" backlog)
	per_thread=$(((BACKLOG + THREADS - 1) / THREADS))
	wrk -t"$THREADS" -c"$CONNS" -d10m --timeout 30s -s bench/ave.lua "http://127.0.0.1:$PORT/backlog" \
		-- /backlog "$token" "fill$(date +%s%N)" "$per_thread" >"$work/fill.raw" 2>&1 &
	wrk_pid=$!
	track "$wrk_pid"
	while kill -0 "$wrk_pid" 2>/dev/null && [ $(($(enqueued "$ADMIN") - b0)) -lt "$BACKLOG" ]; do sleep 0.1; done
	kill -INT "$wrk_pid" 2>/dev/null || true
	wait "$wrk_pid" 2>/dev/null || true
	untrack "$wrk_pid"
	b1=$(enqueued "$ADMIN")
	backlog=$((b1 - b0))
	start_receiver
	while [ "$(delivered "$ADMIN" backlog)" -eq "$bd0" ]; do sleep 0.02; done
	first=$(now)
	[ "$round" = 1 ] && profile_start drain 4
	bd1=$(delivered "$ADMIN" backlog)
	as0=$(attempt_sum "$ADMIN" backlog)
	ac0=$(attempt_count "$ADMIN" backlog)
	c0=$(cpu "$relay_pid")
	cr0=$(cpu "$sep_pid")
	wait_delivered 900 $((bd0 + backlog)) "$ADMIN" backlog
	last=$(now)
	[ "$round" = 1 ] && profile_end drain
	took=$(awk -v s0="$as0" -v s1="$(attempt_sum "$ADMIN" backlog)" -v c0="$ac0" -v c1="$(attempt_count "$ADMIN" backlog)" \
		'BEGIN { printf "%.2f", (c1 > c0 ? 1000 * (s1 - s0) / (c1 - c0) : 0) }')
	drain=$(rate $((bd0 + backlog - bd1)) "$(minus "$last" "$first")")
	drain_cpu="relay $(per_event "$(minus "$(cpu "$relay_pid")" "$c0")" $((bd0 + backlog - bd1))), receiver $(per_event "$(minus "$(cpu "$sep_pid")" "$cr0")" $((bd0 + backlog - bd1))); an attempt took ${took}ms on average"
	kill "$rss_pid" 2>/dev/null || true
	wait "$rss_pid" 2>/dev/null || true
	untrack "$rss_pid"
	rss=$(($(cat "$work/rss.peak") / 1024))
}

echo "machine: $(nproc) cores, $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); wrk -t$THREADS -c$CONNS -d$DURATION; $RUNS rounds; backlog $BACKLOG; phases: $PHASES"
printf '%-6s %18s %18s %28s %18s %20s %9s\n' round "proxy req/s" "plain req/s" "relay acc/s (sustained)" "cluster acc/s" "drain del/s" "peak RSS"
r1=() r2=() r3=() r4=() proxies=() plains=() ingresses=() sustained=() clusters=() drains=() rsss=()
notes=()
for round in $(seq 1 "$RUNS"); do
	proxy=0 p_p99=- plain=0 pl_p99=- ingress=0 sus=0 r_p99=- cl=- cl_p99=- drain=0 backlog=0 rss=0
	proxy_cpu=- relay_cpu=- cl_cpu=- drain_cpu=-
	for ph in proxy plain relay cluster drain; do
		if has "$ph" && { [ "$ph" != cluster ] || [ ${#nodes[@]} -gt 0 ]; }; then "phase_$ph"; fi
	done
	printf '%-6s %18s %18s %28s %18s %20s %9s\n' "$round" "$proxy (${p_p99}ms)" "$plain (${pl_p99}ms)" \
		"$ingress ($sus) ${r_p99}ms" "$cl ${cl_p99}ms" "$drain ($backlog)" "$rss MB"
	notes+=("round $round CPU µs per event: proxy (Caddy, receiver included) $proxy_cpu; relay (ingress+delivery, receiver included) $relay_cpu; cluster $cl_cpu; drain $drain_cpu")
	proxies+=("$proxy") plains+=("$plain") ingresses+=("$ingress") sustained+=("$sus") drains+=("$drain") rsss+=("$rss")
	r1+=("$(ratio "$sus" "$proxy")") r2+=("$(ratio "$ingress" "$plain")") r3+=("$(ratio "$drain" 15000)")
	if [ "$cl" != "-" ]; then clusters+=("$cl") r4+=("$(ratio "$cl" "$ingress")"); fi
done
echo "(in parentheses: wrk's p99 latency; the relay's sustained rate; the backlog's size)"
printf '%s\n' "${notes[@]}"

m_proxy=$(median "${proxies[@]}")
m_plain=$(median "${plains[@]}")
m_ingress=$(median "${ingresses[@]}")
m_sus=$(median "${sustained[@]}")
m_drain=$(median "${drains[@]}")
echo
echo "medians: proxy $m_proxy req/s, plain $m_plain req/s, relay $m_ingress accepted/s, sustained $m_sus events/s, drain $m_drain deliveries/s${clusters:+, cluster $(median "${clusters[@]}") accepted/s}"
echo "(1) sustained stored+delivered / reverse_proxy:    $(median "${r1[@]}") (ratio of medians $(ratio "$m_sus" "$m_proxy"); goal >= 1.0)"
echo "(2) durable ingress, deliveries running / respond: $(median "${r2[@]}") (ratio of medians $(ratio "$m_ingress" "$m_plain"); goal >= 0.60)"
echo "(3) backlog drain / 15,000 deliveries/s:           $(median "${r3[@]}") ($m_drain deliveries/s; peak RSS $(printf '%s\n' "${rsss[@]}" | sort -n | tail -1) MB, goal < 300)"
if [ ${#r4[@]} -gt 0 ]; then
	echo "(4) cluster (2 Caddy, 3 NATS, R3) / embedded:      $(median "${r4[@]}") (ratio of medians $(ratio "$(median "${clusters[@]}")" "$m_ingress"); goal >= 0.7)"
fi
if grep -q "events not stored" "$work"/*.log 2>/dev/null; then
	echo "503 causes:"
	grep -h "events not stored" "$work"/*.log | grep -o '"error":"[^"]*"' | sort | uniq -c
fi
