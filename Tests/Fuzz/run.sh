#!/usr/bin/env bash
# Builds the libFuzzer targets (with AddressSanitizer) and runs each one for a given time.
#
#   Tests/Fuzz/run.sh [seconds-per-target] [target...]
#
# Defaults: 30 seconds, every target. Exits non-zero if any target crashes, traps, leaks or breaks
# one of its properties; the input that did it is saved under .build-fuzz/artifacts/<target>/.
# Environment: FUZZ_SANITIZERS (default "fuzzer address"; "fuzzer" alone runs faster, for long
# runs), FUZZ_JOBS (build jobs), FUZZ_ARGS (extra libFuzzer flags).
#
# The targets live in Tests/Fuzz/Sources and exist only when PHEROMONES_FUZZ=1 (see Package.swift),
# so `swift build` and `swift test` never build them. Seeds are in Tests/Fuzz/Corpus/<target>/;
# new inputs a run finds go to .build-fuzz/corpus/<target>/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

seconds=${1:-30}
shift || true
all_targets=(
    FuzzLengthFieldFramer
    FuzzNativeEnvelope
    FuzzJSONObjectFramer
    FuzzJSONEnvelope
    FuzzBase64
    FuzzGreeting
    FuzzSocketAddress
    FuzzByteBuffer
)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

sanitizers=(${FUZZ_SANITIZERS:-fuzzer address})
scratch=$root/.build-fuzz/${FUZZ_SANITIZERS:-fuzzer address}
scratch=${scratch// /-}
sanitize_flags=()
for sanitizer in "${sanitizers[@]}"; do sanitize_flags+=(--sanitize="$sanitizer"); done
jobs_flag=()
if [ -n "${FUZZ_JOBS:-}" ]; then jobs_flag=(--jobs "$FUZZ_JOBS"); fi

echo "== fuzz: build (${sanitizers[*]})"
for target in "${targets[@]}"; do
    PHEROMONES_FUZZ=1 swift build -c release "${sanitize_flags[@]}" "${jobs_flag[@]}" \
        --scratch-path "$scratch" --product "$target"
done
bin=$(PHEROMONES_FUZZ=1 swift build -c release "${sanitize_flags[@]}" --scratch-path "$scratch" --show-bin-path)

failed=()
for target in "${targets[@]}"; do
    corpus=$root/.build-fuzz/corpus/$target
    artifacts=$root/.build-fuzz/artifacts/$target
    mkdir -p "$corpus" "$artifacts"
    echo "== fuzz: $target for ${seconds}s"
    # The committed seeds are read, never written: new inputs go to the scratch corpus (first).
    if ! "$bin/$target" "$corpus" "$root/Tests/Fuzz/Corpus/$target" \
        -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$artifacts/" \
        ${FUZZ_ARGS:-} 2>&1 | tee "$root/.build-fuzz/$target.log" | grep -v '^#[0-9]*.*\(NEW\|REDUCE\|pulse\)'; then
        :
    fi
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "error: fuzz targets failed: ${failed[*]} (inputs in .build-fuzz/artifacts/)" >&2
    exit 1
fi
echo "== fuzz: every target ran ${seconds}s without a failure"
