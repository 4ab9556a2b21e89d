#!/usr/bin/env bash
# The bf16-vs-fp32 pair of the `cpu` recipe (sweep group "precision": beta 4, three seeds in each
# precision) on a lent GPU machine, time-boxed: scripts/gpu_check.sh's build, then the pair trained
# on the GPU and, where the host CPU has native bf16, a shorter pair on its CPU cores beside it
# (one thread per variant, as on the 2-core CPU). Each sweep is stopped at SECONDS_LIMIT; the
# trajectories written so far are collected (sweep_precision.csv compares the precisions step by
# step). Everything but weights is packed into $OUT/device_precision.tgz.
#
#   OUT=/some/dir GPU_STEPS=40000 CPU_STEPS=6000 SECONDS_LIMIT=420 bash scripts/device_precision.sh
# A dry run of the script itself without a GPU (a tiny MLP, a few minutes on 2 cores):
#   GPU_DEVICE=cpu SKIP_BUILD=1 GPU_STEPS=8 CPU_STEPS=8 EXTRA="--set arch=mlp --set latent_dim=3 \
#     --set mlp_hidden=16 --set train_size=256 --set trajectory_size=200 --set eval_size=200 \
#     --set pca_points=50 --set trajectory_every=4" bash scripts/device_precision.sh
set -u
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-$PWD/device_out}
WORK=${WORK:-/tmp/vaebench_precision}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
export VAEBENCH_BUILD_DIR=${VAEBENCH_BUILD_DIR:-$PWD/build/jit}  # where gpu_check.sh puts a JIT build
pack() { tar -czf "$OUT/device_precision.tgz.tmp" -C "$WORK" --exclude='*.pt' --exclude='*.npz' . &&
         mv "$OUT/device_precision.tgz.tmp" "$OUT/device_precision.tgz"; }

{ nvidia-smi -L; lscpu | grep -E '^Model name|^CPU\(s\)'; lscpu | grep -o -w -E 'avx512_bf16|amx_bf16' | sort -u; } \
  > "$WORK/env.log" 2>&1
impl=fused
if [ -z "${SKIP_BUILD:-}" ]; then
  OUT="$WORK/gpu_check" STEPS="environment build" PYTHON="$PY" bash scripts/gpu_check.sh > "$WORK/build.log" 2>&1
  # Without the CUDA kernels (a failed build) the pair still trains: eager noise.
  grep -q "^build rc=0" "$WORK/gpu_check/steps.txt" || impl=eager
fi
cpu_bf16=$("$PY" -c "from vaebench.experiments.training import bf16_supported; print(int(bf16_supported('cpu')))")
echo "impl=$impl cpu_bf16=$cpu_bf16" | tee -a "$WORK/env.log"
pack

limit=${SECONDS_LIMIT:-420}
# shellcheck disable=SC2086  # EXTRA holds several --set arguments
timeout -s INT "$limit" "$PY" -m vaebench sweep --only precision --out "$WORK/gpu" --jobs 6 \
  --device "${GPU_DEVICE:-cuda}" --no-progress --set steps="${GPU_STEPS:-40000}" --set impl="$impl" ${EXTRA:-} \
  > "$WORK/gpu.log" 2>&1 &
if [ "$cpu_bf16" = 1 ]; then
  # shellcheck disable=SC2086
  timeout -s INT "$limit" "$PY" -m vaebench sweep --only precision --out "$WORK/cpu" --jobs 6 --device cpu \
    --no-progress --set steps="${CPU_STEPS:-6000}" --set trajectory_every=1000 --set impl="$impl" ${EXTRA:-} \
    > "$WORK/cpu.log" 2>&1 &
fi
wait
for d in gpu cpu; do
  [ -d "$WORK/$d" ] || continue
  "$PY" -m vaebench sweep --out "$WORK/$d" --collect-only >> "$WORK/$d.log" 2>&1
  [ -f "$WORK/$d/sweep_precision.csv" ] && cp "$WORK/$d/sweep_precision.csv" "$OUT/precision_$d.csv"
  tail -n 12 "$WORK/$d.log"
done
pack
