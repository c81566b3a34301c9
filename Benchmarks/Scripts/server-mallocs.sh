#!/usr/bin/env bash
# Malloc-level figures of a benchmark server, with Scripts/malloc-counter.c preloaded into it:
#
#   Scripts/server-mallocs.sh message IMPL [--tls]   mallocs and bytes per echoed 64-byte message
#                                                     (100 connections in ping-pong, steady state)
#   Scripts/server-mallocs.sh idle IMPL [--tls]      heap held per idle connection (1,000 held after
#                                                     one round trip each, after 10 as a warm-up)
#
# IMPL is pheromones or nio; --tls serves and loads over TLS (the tls scenario's client). Build
# pheromones-bench first (swift build -c release --product pheromones-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:?message or idle}
impl=${2:?pheromones or nio}
tls=${3:-}
bench=.build/release/pheromones-bench
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
cc -O2 -shared -fPIC -o "$work/counter.so" Scripts/malloc-counter.c

serve=(serve --impl "$impl" --port 0)
load=()
if [ "$tls" = --tls ]; then serve+=(--tls); load+=(--tls full); fi
LD_PRELOAD="$work/counter.so" "$bench" "${serve[@]}" >"$work/server.out" 2>"$work/server.err" &
server=$!
for _ in $(seq 50); do grep -q "listening on port" "$work/server.out" && break; sleep 0.1; done
port=$(grep -o "listening on port [0-9]*" "$work/server.out" | grep -o "[0-9]*$")

if [ "$what" = message ]; then
    "$bench" load --mode pingpong --port "$port" --connections 100 "${load[@]}" --warmup 1 --duration 3 \
        --server-pid "$server" >"$work/load.out" &
    loader=$!
    sleep 1.5; kill -USR2 "$server"; sleep 2; kill -USR2 "$server"
    wait "$loader"
else
    "$bench" load --mode conns --port "$port" --connections 10 "${load[@]}" --hold 0.2 >/dev/null
    sleep 0.5; kill -USR2 "$server"; sleep 0.2
    "$bench" load --mode conns --port "$port" --connections 1000 "${load[@]}" --hold 4 \
        --server-pid "$server" >"$work/load.out" &
    loader=$!
    sleep 3; kill -USR2 "$server"
    wait "$loader"
fi
sleep 0.2
python3 - "$what" "$impl${tls:+ TLS}" "$work/server.err" "$work/load.out" <<'PY'
import json, sys
what, name, err, load = sys.argv[1:]
samples = [line.split() for line in open(err) if line.startswith("mallocs ")]
result = json.loads(open(load).read().splitlines()[-1])
(count0, bytes0, live0), (count1, bytes1, live1) = [(int(s[1]), int(s[3]), int(s[5])) for s in samples[:2]]
if what == "message":
    messages = result["messagesPerSecond"] * 2.0  # the 2 s between the samples, at the measured rate
    print(f"{name}: {(count1 - count0) / messages:.2f} mallocs and {(bytes1 - bytes0) / messages:,.0f} bytes per message "
          f"({result['messagesPerSecond']:,.0f} msg/s, server CPU {result['serverMicrosecondsPerMessage']:.2f} µs/msg)")
else:
    answered = result["answered"]
    print(f"{name}: {(live1 - live0) / answered:,.0f} bytes of heap held per idle connection "
          f"(RSS {result['serverBytesPerConnection']:,.0f} B per connection, {answered} answered)")
PY
