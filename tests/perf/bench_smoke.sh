#!/usr/bin/env bash
# bench_smoke.sh — integration smoke test of ringmq-bench against a real broker: 300 pairs at 10 msg/s for
# 6 s, subscribers offline for 2 s mid-run; passes when ringmq-bench exits 0 and reports 0 lost.
#
# Usage: bench_smoke.sh PATH-TO-ringmq-bench
# Broker: $RINGMQD (set by meson's test_env), started here with 2 workers on a free loopback port and a
# private control socket; readiness is `$RINGMQCTL --socket S status --json` reporting workers_up == 2.
# BENCH_SMOKE_BROKER=mosquitto runs the same test against Debian's mosquitto (persistence on) instead.
set -euo pipefail

bench=${1:?usage: bench_smoke.sh PATH-TO-ringmq-bench}
broker=${BENCH_SMOKE_BROKER:-ringmq}
tmp=$(mktemp -d /tmp/ringmq-bench-smoke.XXXXXX)
pid=""

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port=$(free_port)
case "$broker" in
ringmq)
	: "${RINGMQD:?RINGMQD is not set (run through meson test)}"
	: "${RINGMQCTL:?RINGMQCTL is not set (run through meson test)}"
	"$RINGMQD" --workers 2 --port "$port" --listen-host 127.0.0.1 --control-socket "$tmp/s.sock" \
		>"$tmp/broker.log" 2>&1 &
	pid=$!
	ready=""
	for _ in $(seq 100); do
		if "$RINGMQCTL" --socket "$tmp/s.sock" status --json 2>/dev/null |
			python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin).get("workers_up") == 2 else 1)' \
			2>/dev/null; then
			ready=1
			break
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	;;
mosquitto)
	cat >"$tmp/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $tmp/
max_queued_messages 100000
max_inflight_messages 100
set_tcp_nodelay true
log_dest stderr
log_type error
CONF
	mosquitto -c "$tmp/mosquitto.conf" >"$tmp/broker.log" 2>&1 &
	pid=$!
	ready=""
	for _ in $(seq 100); do
		if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then
			ready=1
			break
		fi
		sleep 0.1
	done
	;;
*)
	echo "bench_smoke: unknown BENCH_SMOKE_BROKER=$broker" >&2
	exit 2
	;;
esac
if [ -z "$ready" ]; then
	echo "bench_smoke: $broker did not become ready on port $port" >&2
	cat "$tmp/broker.log" >&2 || true
	exit 1
fi

rc=0
"$bench" --port "$port" --pairs 300 --rate 10 --warmup 1 --duration 6 --offline 2 --drain 10 \
	--interval 2 --json "$tmp/result.json" || rc=$?
if [ "$rc" -ne 0 ]; then
	echo "bench_smoke: ringmq-bench exited $rc against $broker" >&2
	tail -n 30 "$tmp/broker.log" >&2 || true
	exit 1
fi
python3 - "$tmp/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["totals"]
assert r["result"] == "ok", r["result"]
assert t["lost"] == 0, t
assert t["acked"] > 0 and t["received"] >= t["acked"], t
assert r["connections"]["sessions_lost"] == 0, r["connections"]
print("bench_smoke: ok: %d sent, %d acked, %d received, 0 lost, %d duplicates" %
      (t["sent"], t["acked"], t["received"], t["duplicates"]))
PY
