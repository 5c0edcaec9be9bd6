#!/usr/bin/env bash
# bench_failover.sh — integration test of ringmq-bench's --brokers: two independent ringmqd (no cluster) on free
# loopback ports, A and B.
#
#  1. One address: `--brokers B` and `--host 127.0.0.1 --port PB` give the same run: exit 0, 0 lost, no
#     reconnect, the same config.host/port/brokers in the JSON.
#  1b. TLS on both nodes (--brokers TA,TB --sub-offset 0): every handshake verified against its own address's
#     host, 0 lost.
#  2. Placement: `--brokers A,B` with the default --sub-offset (1) puts every subscriber on the other node than
#     its publisher; the nodes are not a cluster, so nothing is received although everything is PUBACKed.
#  3. Failover: `--brokers A,B --sub-offset 0` (pair i entirely on node i mod 2); A gets SIGKILL when the
#     measured window begins (the --markers line). Every client of A must come back on B (reconnects_pub/_sub)
#     and its subscriber receive there again; B's pairs are untouched (no reconnect, 0 lost). Messages queued
#     on A die with it, so loss is allowed for A's pairs (exit 0 or 1, never 2).
#
# Usage: bench_failover.sh PATH-TO-ringmq-bench; $RINGMQD and $RINGMQCTL come from meson's test_env.
set -euo pipefail

bench=${1:?usage: bench_failover.sh PATH-TO-ringmq-bench}
: "${RINGMQD:?RINGMQD is not set (run through meson test)}"
: "${RINGMQCTL:?RINGMQCTL is not set (run through meson test)}"
tmp=$(mktemp -d /tmp/ringmq-bench-failover.XXXXXX)
pid_a="" pid_b="" pid_bench=""

stop() {
	local p=$1
	if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
		kill -TERM "$p" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	fi
}
cleanup() {
	stop "$pid_bench"
	stop "$pid_a"
	stop "$pid_b"
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	echo "bench_failover: $*" >&2
	for f in "$tmp"/*.log "$tmp"/*.err; do
		[ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
	done
	exit 1
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_broker NAME PORT: one worker, its own control socket. Sets $started to the supervisor's pid (a child of
# this shell, so it can be waited for); returns once all workers are up.
start_broker() {
	local name=$1 port=$2 tls_port=$3
	"$RINGMQD" --workers 1 --port "$port" --listen-host 127.0.0.1 --control-socket "$tmp/$name.sock" \
		--tls-port "$tls_port" --tls-certfile "$tmp/pki/server.pem" --tls-keyfile "$tmp/pki/server.key" \
		>"$tmp/$name.log" 2>&1 &
	started=$!
	for _ in $(seq 100); do
		if "$RINGMQCTL" --socket "$tmp/$name.sock" status --json 2>/dev/null |
			python3 -c 'import json, sys; sys.exit(json.load(sys.stdin).get("workers_up") != 1)' 2>/dev/null
		then
			return 0
		fi
		kill -0 "$started" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}

: "${RINGMQ_SRCDIR:?RINGMQ_SRCDIR is not set (run through meson test)}"
"$RINGMQ_SRCDIR/scripts/gen-certs" --quiet "$tmp/pki"
port_a=$(free_port)
port_b=$(free_port)
tls_a=$(free_port)
tls_b=$(free_port)
started=""
start_broker a "$port_a" "$tls_a" || { pid_a=$started; fail "broker A did not come up on port $port_a"; }
pid_a=$started
start_broker b "$port_b" "$tls_b" || { pid_b=$started; fail "broker B did not come up on port $port_b"; }
pid_b=$started
A=127.0.0.1:$port_a
B=127.0.0.1:$port_b
common=(--rate 20 --warmup 0.5 --interval 1 --json-pairs)

# 1. One address, both ways of saying it.
rc=0
"$bench" --brokers "$B" --pairs 10 --duration 1 --drain 5 "${common[@]}" --json "$tmp/one-brokers.json" \
	>"$tmp/one-brokers.out" 2>"$tmp/one-brokers.err" || rc=$?
[ "$rc" -eq 0 ] || fail "--brokers $B exited $rc (want 0)"
"$bench" --host 127.0.0.1 --port "$port_b" --pairs 10 --duration 1 --drain 5 "${common[@]}" \
	--json "$tmp/one-hostport.json" >"$tmp/one-hostport.out" 2>"$tmp/one-hostport.err" || rc=$?
[ "$rc" -eq 0 ] || fail "--host/--port exited $rc (want 0)"

# 1b. TLS across both nodes.
rc=0
"$bench" --brokers "127.0.0.1:$tls_a,127.0.0.1:$tls_b" --sub-offset 0 --cafile "$tmp/pki/ca.pem" --pairs 10 \
	--duration 1 --drain 5 "${common[@]}" --json "$tmp/tls.json" >"$tmp/tls.out" 2>"$tmp/tls.err" || rc=$?
[ "$rc" -eq 0 ] || fail "--brokers over TLS exited $rc (want 0)"

# 2. Default offset over two independent nodes: every pair crosses, so nothing arrives.
rc=0
"$bench" --brokers "$A,$B" --pairs 4 --duration 1 --drain 0.5 "${common[@]}" --json "$tmp/cross.json" \
	>"$tmp/cross.out" 2>"$tmp/cross.err" || rc=$?
[ "$rc" -eq 1 ] || fail "--brokers A,B across independent nodes exited $rc (want 1: PUBACKed, never delivered)"

# 3. Failover. stdout goes through a FIFO held open on fd 3 so the kill follows the MEASURE BEGIN line itself.
mkfifo "$tmp/out.fifo"
"$bench" --brokers "$A,$B" --sub-offset 0 --pairs 20 --duration 4 --drain 2 --markers "${common[@]}" \
	--json "$tmp/failover.json" >"$tmp/out.fifo" 2>"$tmp/failover.err" &
pid_bench=$!
exec 3<"$tmp/out.fifo"
began=""
while IFS= read -r -u 3 line; do
	if [ "$line" = "MEASURE BEGIN" ]; then
		began=1
		break
	fi
done
[ -n "$began" ] || fail "ringmq-bench ended before its measured window began"
kill -KILL "$pid_a"
wait "$pid_a" 2>/dev/null || true
pid_a=""
cat <&3 >"$tmp/failover.out" &
pid_cat=$!
rc=0
wait "$pid_bench" || rc=$?
pid_bench=""
wait "$pid_cat" || true
exec 3<&-
[ "$rc" -eq 0 ] || [ "$rc" -eq 1 ] || fail "failover run exited $rc (want 0 or 1)"

python3 - "$tmp" "$A" "$B" <<'PY' || fail "JSON checks failed"
import json, os, sys
d, A, B = sys.argv[1:4]
load = lambda n: json.load(open(os.path.join(d, n)))

# 1. One address.
one, hp = load("one-brokers.json"), load("one-hostport.json")
for r in (one, hp):
    t, c = r["totals"], r["connections"]
    assert r["result"] == "ok" and t["lost"] == 0 and t["acked"] > 0 and t["received"] >= t["acked"], t
    assert c["reconnects_pub"] == 0 and c["reconnects_sub"] == 0 and t["unacked_on_disconnect"] == 0, (c, t)
    assert all(p["pub_broker"] == 0 and p["sub_broker"] == 0 for p in r["pairs"]), r["pairs"]
for k in ("host", "port", "brokers", "sub_offset"):
    assert one["config"][k] == hp["config"][k], (k, one["config"][k], hp["config"][k])
assert one["config"]["brokers"] == [B] and one["config"]["sub_offset"] == 0, one["config"]

# 1b. TLS: 20 clients, 20 verified handshakes, nothing lost.
s = load("tls.json")
assert s["result"] == "ok" and s["totals"]["lost"] == 0 and s["totals"]["acked"] > 0, s["totals"]
assert s["tls"]["enabled"] and s["tls"]["errors"] == 0 and s["tls"]["full_handshakes"] == 20, s["tls"]
assert sorted({p["pub_broker"] for p in s["pairs"]}) == [0, 1], s["pairs"]

# 2. Placement: publisher i on i mod 2, subscriber on (i + 1) mod 2, and indeed nothing crossed.
x = load("cross.json")
assert x["config"]["brokers"] == [A, B] and x["config"]["sub_offset"] == 1, x["config"]
for p in x["pairs"]:
    i = p["pair"]
    assert p["pub_broker"] == i % 2 and p["sub_broker"] == (i + 1) % 2, p
assert x["totals"]["acked"] > 0 and x["totals"]["received"] == 0, x["totals"]

# 3. Failover.
f = load("failover.json")
t, c = f["totals"], f["connections"]
assert f["config"]["sub_offset"] == 0, f["config"]
assert c["reconnects_pub"] > 0 and c["reconnects_sub"] > 0, c
assert t["received_after_reconnect"] > 0, t
for p in f["pairs"]:
    if p["pair"] % 2 == 0:
        # A's pair: both ends now on B, back at least once, received before the kill and after it.
        assert p["pub_broker"] == 1 and p["sub_broker"] == 1, p
        assert p["reconnects_pub"] >= 1 and p["reconnects_sub"] >= 1, p
        assert p["received_after_reconnect"] > 0, p
        assert p["received"] > p["received_after_reconnect"], p
    else:
        # B's pair: never moved, nothing lost.
        assert p["pub_broker"] == 1 and p["sub_broker"] == 1, p
        assert p["reconnects_pub"] == 0 and p["reconnects_sub"] == 0 and p["received_after_reconnect"] == 0, p
        assert p["lost"] == 0, p
assert c["reconnects_pub"] == sum(p["reconnects_pub"] for p in f["pairs"]), c
assert c["reconnects_sub"] == sum(p["reconnects_sub"] for p in f["pairs"]), c
print("bench_failover: ok: one address %d acked, 0 lost; across nodes %d acked, 0 received; after SIGKILL of A "
      "%d+%d reconnects, %d received after them, %d lost with A's queues, %d unacked on disconnect" %
      (one["totals"]["acked"], x["totals"]["acked"], c["reconnects_pub"], c["reconnects_sub"],
       t["received_after_reconnect"], t["lost"], t["unacked_on_disconnect"]))
PY
