#!/usr/bin/env bash
# One pass on a lent GPU machine (no network; python3 has torch with CUDA): scripts/gpu_check.sh's
# build, then the beta-VAE recipe sweep on the GPU for a fixed time with the CUDA tests running
# beside it, then the CUDA benchmark alone. Logs and results are packed into $OUT/device.tgz after
# every phase, so a run stopped at its time limit still returns what it finished.
#
#   OUT=/some/dir SWEEP_SECONDS=300 SWEEP_JOBS=12 bash scripts/device_sweep.sh
set -u
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-$PWD/device_out}
WORK=${WORK:-/tmp/vaebench_device}
mkdir -p "$OUT" "$WORK/sweep"
export PYTHONUNBUFFERED=1
export VAEBENCH_BUILD_DIR=${VAEBENCH_BUILD_DIR:-$PWD/build/jit}  # where gpu_check.sh puts a JIT build
pack() { tar -czf "$OUT/device.tgz.tmp" -C "$WORK" --exclude='*.pt' --exclude='*.npz' . && mv "$OUT/device.tgz.tmp" "$OUT/device.tgz"; }
check() { OUT="$WORK/gpu_check" STEPS="$1" bash scripts/gpu_check.sh > "$WORK/gpu_check_$2.log" 2>&1; }

check "environment build" build
# Without the CUDA kernels (a failed build) the sweep still runs: eager noise made on the CPU.
impl=fused
grep -q "^build rc=0" "$WORK/gpu_check/steps.txt" || impl=eager
pack

# The sweep in the background; SIGINT at the deadline lets it stop its variants cleanly.
timeout -s INT "${SWEEP_SECONDS:-300}" python3 -m vaebench sweep --out "$WORK/sweep" --jobs "${SWEEP_JOBS:-12}" \
  --device cuda --no-progress --set steps=300000 --set impl="$impl" > "$WORK/sweep.log" 2>&1 &
sweep_pid=$!
check cuda_tests tests  # correctness only: timings would be disturbed by the sweep
pack
wait "$sweep_pid"
echo "sweep exit $?" >> "$WORK/sweep.log"
python3 -m vaebench sweep --out "$WORK/sweep" --collect-only >> "$WORK/sweep.log" 2>&1
pack

check bench bench  # the GPU to itself
pack
cat "$WORK/gpu_check/steps.txt"
tail -n 20 "$WORK/sweep.log"
