# Shared by the load scripts of bench/ (sourced, not run):
#
#   . "$(dirname "$0")/lib.sh"
#   bench_init <name>     cd to the repository, make $work, clean up on exit
#   need_wrk              install wrk (Debian) when missing
#   build_caddy           build cmd/caddy into $work/caddy, point Caddy's
#                         data and config directories into $work
#   track <pid>           kill <pid> on exit (the scripts' own processes only)
#   untrack <pid>         forget it (after stopping it yourself)
#   wait_http <url>       until it answers 2xx (30 s)
#   rate <n> <seconds>    n/seconds, rounded
#   ratio <a> <b>         a/b with three decimals
#   ratio2 <a> <b>        a/b with two decimals
#   median <numbers...>   their median
#   now                   seconds since the epoch, with nanoseconds
#   caddy_globals <admin port> <log level>
#                         the global options every script's Caddy takes (admin
#                         on loopback, no HTTPS, no trust store), for a heredoc

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_pids=()

bench_init() {
	cd "$bench_root"
	work=$(mktemp -d "/tmp/hookrelay-$1-XXXXXX")
	trap bench_cleanup EXIT
}

bench_cleanup() {
	local p
	for p in "${bench_pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$work"
}

track() { bench_pids+=("$1"); }

untrack() {
	local p keep=()
	for p in "${bench_pids[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	bench_pids=("${keep[@]}")
}

need_wrk() {
	command -v wrk >/dev/null 2>&1 && return 0
	echo "installing wrk (Debian)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; }
}

build_caddy() {
	echo "building cmd/caddy" >&2
	go build -o "$work/caddy" ./cmd/caddy
	export XDG_DATA_HOME=$work/data XDG_CONFIG_HOME=$work/config
}

wait_http() {
	local _
	for _ in $(seq 1 300); do
		curl -fs -o /dev/null "$1" && return 0
		sleep 0.1
	done
	echo "no answer from $1" >&2
	return 1
}

now() { date +%s.%N; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
ratio2() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

caddy_globals() {
	printf '\tadmin 127.0.0.1:%s\n\tauto_https off\n\tskip_install_trust\n\tlog {\n\t\tlevel %s\n\t}\n' "$1" "$2"
}
