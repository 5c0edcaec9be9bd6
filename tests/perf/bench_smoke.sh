#!/usr/bin/env bash
# bench_smoke.sh — integration smoke test of ringmq-bench against a real broker: 300 pairs at 10 msg/s for
# 6 s, subscribers offline for 2 s mid-run; passes when ringmq-bench exits 0 and reports 0 lost.
#
# Usage: bench_smoke.sh PATH-TO-ringmq-bench
# Broker: $RINGMQD (set by meson's test_env), started here with 2 workers on a free loopback port and a
# private control socket; readiness is `$RINGMQCTL --socket S status --json` reporting workers_up == 2.
# BENCH_SMOKE_BROKER=mosquitto runs the same test against Debian's mosquitto (persistence on) instead.
#
# BENCH_SMOKE_TLS=1: the bench's TLS path instead, against a mutual-TLS listener (certificates from
# $RINGMQ_SRCDIR/scripts/gen-certs; client certificate CN = user name): 100 pairs over TLS with session
# resumption and the subscribers offline for 1 s (0 lost, no TLS error, the reconnects resumed), then
# --mode connect with --tls-resume (connects in the window, all resumed). With mosquitto, a second, plain
# listener with a password file checks --username/--password: the right password connects, a wrong one is
# refused. Exit 77 (skip) when mosquitto is not installed. With ringmq it passes --tls-port and the --tls-*
# keys, and --password-file.
set -euo pipefail

bench=${1:?usage: bench_smoke.sh PATH-TO-ringmq-bench}
broker=${BENCH_SMOKE_BROKER:-ringmq}
tls=${BENCH_SMOKE_TLS:-}
if [ "$broker" = mosquitto ] && ! command -v mosquitto >/dev/null; then
	echo "bench_smoke: mosquitto is not installed: skipped" >&2
	exit 77
fi
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
tls_port=$(free_port)
if [ -n "$tls" ]; then
	: "${RINGMQ_SRCDIR:?RINGMQ_SRCDIR is not set (run through meson test)}"
	"$RINGMQ_SRCDIR/scripts/gen-certs" --quiet --client bench "$tmp/pki"
	pki=$tmp/pki
	printf 'bench:bench-secret\n' >"$tmp/passwd"
	mosquitto_passwd -U "$tmp/passwd"
fi
case "$broker" in
ringmq)
	: "${RINGMQD:?RINGMQD is not set (run through meson test)}"
	: "${RINGMQCTL:?RINGMQCTL is not set (run through meson test)}"
	tls_args=()
	if [ -n "$tls" ]; then
		tls_args=(--tls-port "$tls_port" --tls-certfile "$pki/server.pem" --tls-keyfile "$pki/server.key"
			--tls-cafile "$pki/ca.pem" --tls-client-auth required --tls-identity cn
			--password-file "$tmp/passwd" --allow-anonymous false)
	fi
	"$RINGMQD" --workers 2 --port "$port" --listen-host 127.0.0.1 --control-socket "$tmp/s.sock" \
		"${tls_args[@]}" >"$tmp/broker.log" 2>&1 &
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
	# As root, mosquitto would become user "mosquitto", who cannot read $tmp: it stays who we are.
	{
		echo "user $(id -un)"
		echo "listener $port 127.0.0.1"
		if [ -n "$tls" ]; then
			echo "password_file $tmp/passwd"
			echo "allow_anonymous false"
			echo "listener $tls_port 127.0.0.1"
			echo "cafile $pki/ca.pem"
			echo "certfile $pki/server.pem"
			echo "keyfile $pki/server.key"
			echo "require_certificate true"
			echo "use_identity_as_username true"
		else
			echo "allow_anonymous true"
		fi
	} >"$tmp/mosquitto.conf"
	cat >>"$tmp/mosquitto.conf" <<CONF
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
		if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null &&
			{ [ -z "$tls" ] || python3 -c "import socket; socket.create_connection(('127.0.0.1', $tls_port), 1)" \
				2>/dev/null; }; then
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

if [ -n "$tls" ]; then
	tls_opts=(--port "$tls_port" --cafile "$pki/ca.pem" --cert "$pki/client-bench.pem" --key "$pki/client-bench.key"
		--tls-resume)
	rc=0
	"$bench" "${tls_opts[@]}" --pairs 100 --rate 10 --warmup 1 --duration 4 --offline 1 --drain 10 --interval 2 \
		--json "$tmp/tls.json" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "bench_smoke: ringmq-bench over TLS exited $rc against $broker" >&2
		tail -n 30 "$tmp/broker.log" >&2 || true
		exit 1
	fi
	"$bench" "${tls_opts[@]}" --mode connect --clients 4 --warmup 1 --duration 2 --interval 1 \
		--json "$tmp/conn.json" || rc=$?
	"$bench" --port "$port" --mode connect --clients 2 --warmup 0.5 --duration 1 --interval 1 \
		--username bench --password bench-secret --json "$tmp/auth.json" || rc=$?
	# A wrong password: every CONNACK refuses, nothing connects, exit 2 ("no-connects").
	bad=0
	"$bench" --port "$port" --mode connect --clients 2 --warmup 0 --duration 1 --interval 1 \
		--username bench --password wrong --json "$tmp/bad.json" >/dev/null || bad=$?
	if [ "$rc" -ne 0 ] || [ "$bad" -ne 2 ]; then
		echo "bench_smoke: connect loops against $broker: exit $rc (want 0), wrong password exit $bad (want 2)" >&2
		tail -n 30 "$tmp/broker.log" >&2 || true
		exit 1
	fi
	python3 - "$tmp" <<'PY'
import json, os, sys
d = sys.argv[1]
r = json.load(open(os.path.join(d, "tls.json")))
t, tls = r["totals"], r["tls"]
assert r["result"] == "ok" and t["lost"] == 0 and t["acked"] > 0, (r["result"], t)
assert tls["enabled"] and tls["errors"] == 0, tls
# 200 first connections are full handshakes; the 100 subscribers coming back from --offline resume theirs.
assert tls["full_handshakes"] >= 200 and tls["resumed_handshakes"] >= 100, tls
c = json.load(open(os.path.join(d, "conn.json")))
cn = c["connects"]
assert c["result"] == "ok" and cn["count"] > 0 and cn["resumed"] == cn["count"], cn
assert c["tls"]["errors"] == 0, c["tls"]
a = json.load(open(os.path.join(d, "auth.json")))
assert a["result"] == "ok" and a["connects"]["count"] > 0 and a["connects"]["refused"] == 0, a["connects"]
b = json.load(open(os.path.join(d, "bad.json")))
assert b["result"] == "no-connects" and b["connects"]["count"] == 0 and b["connects"]["refused"] > 0, b["connects"]
print("bench_smoke: TLS ok: %d sent over TLS, 0 lost, %d full + %d resumed handshakes; connect loop %.0f/s "
      "resumed; %.0f/s with a password, %d refused with a wrong one" %
      (t["sent"], tls["full_handshakes"], tls["resumed_handshakes"], cn["per_s"], a["connects"]["per_s"],
       b["connects"]["refused"]))
PY
	exit 0
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
