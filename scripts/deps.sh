#!/usr/bin/env bash
# Installs the Debian packages ringmq needs to build, test and benchmark, if any is missing.
# Sourced by scripts/run, scripts/test and scripts/fuzz.
RINGMQ_BUILD_PKGS="meson ninja-build pkg-config gcc liburing-dev libconfig-dev libjansson-dev libsystemd-dev libhiredis-dev libpq-dev libssl-dev libcrypt-dev librdkafka-dev libmicrohttpd-dev"
RINGMQ_TEST_PKGS="check mosquitto mosquitto-clients python3 python3-paho-mqtt libclang-rt-14-dev redis-server redis-tools openssl postgresql postgresql-client kcat"
# The Kafka that the cluster tests and scripts/run --cluster start (scripts/kafka): Java 17 runs it, Maven fetches
# its jars once (scripts/kafka/fetch). Preinstalled on the usual machines; these are Debian's packages for them.
RINGMQ_KAFKA_PKGS="openjdk-17-jre-headless maven"
# scripts/fuzz: clang 14 with libFuzzer (its runtime is in libclang-rt-14-dev)
RINGMQ_FUZZ_PKGS="clang libclang-rt-14-dev"

ringmq_need_pkgs() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "ringmq: installing missing Debian packages: ${missing[*]}" >&2
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq >&2 || { echo "ringmq: apt-get update failed" >&2; return 1; }
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
