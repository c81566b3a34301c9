#!/usr/bin/env bash
# Builds the libFuzzer targets with AddressSanitizer and runs each one for a given time.
#
#   Tests/Fuzz/run.sh [seconds-per-target] [target...]
#
# Defaults: 30 seconds, every target. Exits non-zero if any target crashes, traps, leaks, hangs
# (10 s on one input) or breaks one of its properties; the input that did it is saved under
# .build-fuzz/artifacts/<target>/ and the log is .build-fuzz/logs/<target>.log.
#
# Environment:
#   FUZZ_SANITIZERS  "fuzzer address" (the default) or "fuzzer" (no AddressSanitizer: several
#                    times faster, for long runs; Swift's own checks still trap)
#   FUZZ_ARGS        extra libFuzzer flags, such as "-runs=10000000" or "-jobs=2"
#
# The targets are Tests/Fuzz/Sources/Fuzz*; they exist only when PHEROMONES_FUZZ=1 (Package.swift),
# so `swift build` and `swift test` never build them. Each run starts from the committed seeds in
# Tests/Fuzz/Corpus/<target>/ (read only) and the inputs earlier runs found, kept (not committed)
# in .build-fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

seconds=${1:-30}
if [ "$#" -gt 0 ]; then shift; fi
all_targets=(
    FuzzLengthFieldFramer
    FuzzNativeEnvelope
    FuzzJSONObjectFramer
    FuzzJSONEnvelope
    FuzzBase64
    FuzzGreeting
    FuzzSocketAddress
    FuzzByteBuffer
    FuzzTLSRecords
    FuzzNoiseMessages
    FuzzGossipControl
)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

read -r -a sanitizers <<< "${FUZZ_SANITIZERS:-fuzzer address}"
sanitize_flags=()
for sanitizer in "${sanitizers[@]}"; do sanitize_flags+=("--sanitize=$sanitizer"); done
scratch=$root/.build-fuzz/$(IFS=-; echo "${sanitizers[*]}")
build=(env PHEROMONES_FUZZ=1 swift build -c release "${sanitize_flags[@]}" --scratch-path "$scratch")

echo "== fuzz: build (${sanitizers[*]})"
for target in "${targets[@]}"; do
    "${build[@]}" --product "$target"
done
bin=$("${build[@]}" --show-bin-path)

mkdir -p "$root/.build-fuzz/logs"
# Swift's crash backtracer reads the crashed process's memory in a way AddressSanitizer reports as
# a crash of its own; libFuzzer's handler already prints the stack and saves the input.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
failed=()
summary=()
for target in "${targets[@]}"; do
    corpus=$root/.build-fuzz/corpus/$target
    artifacts=$root/.build-fuzz/artifacts/$target
    log=$root/.build-fuzz/logs/$target.log
    mkdir -p "$corpus" "$artifacts"
    echo "== fuzz: $target for ${seconds}s"
    status=0
    # New inputs go to the first corpus folder, so the committed seeds are never written.
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    "$bin/$target" "$corpus" "$root/Tests/Fuzz/Corpus/$target" \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} > "$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        summary+=("$(printf '%-24s FAILED (exit %s), see %s' "$target" "$status" "$log")")
        # The report: libFuzzer's and the sanitizer's lines, the property, the input's location.
        grep -E 'Fatal error|ERROR:|SUMMARY:' "$log" | head -n 5 || true
        grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse|RELOAD)' "$log" | tail -n 40
    else
        summary+=("$(printf '%-24s %12s runs %8s runs/s' "$target" "${runs:-?}" "${rate:-?}")")
    fi
done

echo "== fuzz: summary (${seconds}s per target, ${sanitizers[*]})"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "error: fuzz targets failed: ${failed[*]} (inputs in .build-fuzz/artifacts/)" >&2
    exit 1
fi
