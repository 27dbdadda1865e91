#!/usr/bin/env bash
# Cost of ordered delivery (not part of the test suite); needs only Go.
#
#   bench/ordered.sh
#
# In one run on this machine it reports:
#   (a) events delivered per second to a loopback receiver answering 200,
#       from the first enqueue until the receiver has every event, for the
#       same events (1000 keys, shuffled across keys, in order within each
#       key) through an unordered destination and through an ordered one
#       (order_by data.shipment_id, default lanes and workers): each run's
#       figure, the medians and their ratio. The runs alternate (unordered
#       first, then ordered first, ...) so that a drift of the machine
#       weighs on both; each run's ratio compares two runs made one after
#       the other. The ordered runs fail if the receiver saw a key's events
#       out of order.
#   (b) with BACKLOG ordered events waiting on a destination that answers
#       503 (its retry an hour away): the heap in use and RSS of the
#       process (which also runs the embedded queue) and the destination's
#       in_flight, which must stay within its lanes.
#
# Both are Go benchmarks of package relay (relay/order_bench_test.go), run
# from one test binary built here. Settings (environment):
#   RUNS=3          runs of each mode in (a)
#   EVENTS=20000    events per run of (a)
#   BACKLOG=100000  events of (b)
set -euo pipefail
shopt -s inherit_errexit
. "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
EVENTS=${EVENTS:-20000}
BACKLOG=${BACKLOG:-100000}

bench_init ordered

echo "building the relay test binary" >&2
go test -c -o "$work/relay.test" ./relay/

# bench <name regexp> <env assignment>: runs one benchmark once, prints its
# result line; on failure prints the output and exits.
bench() {
	local out=$work/bench.out
	if ! (cd relay && env "$2" "$work/relay.test" -test.run '^$' -test.bench "$1" \
		-test.benchtime 1x -test.count 1 -test.timeout 30m) >"$out" 2>&1; then
		cat "$out" >&2
		echo "benchmark $1 failed" >&2
		exit 1
	fi
	grep '^Benchmark' "$out" | tail -n 1
}

# metric <unit> <result line>: the value reported with that unit.
metric() { awk -v u="$1" '{ for (i = 2; i <= NF; i++) if ($i == u) { print $(i - 1); exit } }' <<<"$2"; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
echo "go: $(go version)"
echo
echo "(a) $EVENTS events over 1000 keys to a loopback receiver answering 200, $RUNS runs each"
unordered=()
ordered=()
ratios=()
run_mode() { # <mode>: one run, its rate appended to the mode's array
	local line rate
	line=$(bench "^BenchmarkOrderedVsUnordered\$/^$1\$" "HOOKRELAY_ORDER_EVENTS=$EVENTS")
	rate=$(metric events/s "$line")
	printf '    run %d %-10s %8.0f events/s   (enqueued at %.0f/s)\n' "$run" "$1" "$rate" "$(metric enqueued/s "$line")"
	if [ "$1" = ordered ]; then ordered+=("$rate"); else unordered+=("$rate"); fi
}
for run in $(seq 1 "$RUNS"); do
	if [ $((run % 2)) -eq 1 ]; then
		run_mode unordered
		run_mode ordered
	else
		run_mode ordered
		run_mode unordered
	fi
	ratios+=("$(ratio "${ordered[-1]}" "${unordered[-1]}")")
	echo "    run $run ratio ordered/unordered: ${ratios[-1]}"
done
mu=$(median "${unordered[@]}" | awk '{ printf "%.0f", $1 }')
mo=$(median "${ordered[@]}" | awk '{ printf "%.0f", $1 }')
echo "    median unordered:  $mu events/s (${unordered[*]})"
echo "    median ordered:    $mo events/s (${ordered[*]})"
echo "    ratio of the medians ordered/unordered: $(ratio "$mo" "$mu")"
echo "    median of the runs' ratios:             $(median "${ratios[@]}" | awk '{ printf "%.3f", $1 }')"

echo
echo "(b) $BACKLOG ordered events waiting on a destination answering 503"
line=$(bench '^BenchmarkOrderedBacklog100k$' "HOOKRELAY_ORDER_BACKLOG=$BACKLOG")
num() { printf '%.0f' "$(metric "$1" "$line")"; }
echo "    heap in use:  $(metric heap-MB "$line") MB ($(metric heap-growth-MB "$line") MB more than before the enqueue)"
echo "    RSS:          $(metric rss-MB "$line") MB (the process, embedded queue included)"
echo "    in_flight:    $(num in_flight) (at most $(num max_in_flight) in any sample) with 32 lanes; blocked lanes: $(num blocked_lanes)"
echo "    enqueued at:  $(num enqueued/s) events/s"
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
