#!/usr/bin/env bash
# One pass on a lent GPU machine (no network; python3 has torch with CUDA): build the
# extension with its CUDA kernels, run the beta-VAE recipe sweep on the GPU for a fixed time
# while the CUDA tests run beside it, then time the CUDA benchmark alone. Everything that comes
# back goes under $OUT. Every step is time-boxed and none stops the next.
#
#   SWEEP_SECONDS=290 SWEEP_JOBS=10 bash scripts/device_sweep.sh
set -u
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
SWEEP_SECONDS=${SWEEP_SECONDS:-290}
SWEEP_JOBS=${SWEEP_JOBS:-10}
status() { echo "[device] $1: exit $2" | tee -a "$OUT/status.txt"; }

{ nvidia-smi; python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"; nvcc --version | tail -2; } > "$OUT/env.txt" 2>&1
status env $?

# Build: the CUDA kernels for Hopper; a CPU-only build if that fails, so the sweep still runs.
start=$(date +%s)
TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 timeout 240 python3 -m pip install -q --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1
rc=$?; status "build (cuda) $(( $(date +%s) - start ))s" $rc
impl=fused
if ! python3 -c "import torch, vaebench._C; from vaebench._extension import has_cuda_kernels; assert has_cuda_kernels()" >> "$OUT/build.log" 2>&1; then
  VAEBENCH_CUDA=0 MAX_JOBS=16 timeout 120 python3 -m pip install -q --no-build-isolation --no-deps -e . >> "$OUT/build.log" 2>&1
  status "build (cpu only)" $?
  impl=eager  # noise made on the CPU and copied (bit-identical), see vaebench.models.sample_latent
fi

# The sweep, in the background; SIGINT lets it stop its variants cleanly at the deadline.
timeout -s INT "$SWEEP_SECONDS" python3 -m vaebench sweep --out /tmp/sweep --jobs "$SWEEP_JOBS" --device cuda \
  --no-progress --set steps=300000 --set impl="$impl" > "$OUT/sweep.log" 2>&1 &
sweep_pid=$!

# CUDA tests beside it (correctness only: timings here would be disturbed).
timeout 240 python3 -m pytest -q -rs -p no:cacheprovider -m "not cuda_emulated" -k "cuda or gpu" tests/ > "$OUT/cuda_tests.log" 2>&1
status cuda_tests $?

wait $sweep_pid
status sweep $?
sleep 3
python3 -m vaebench sweep --out /tmp/sweep --collect-only >> "$OUT/sweep.log" 2>&1
status sweep_collect $?
tar -czf "$OUT/sweep.tgz" -C /tmp/sweep --exclude='*.pt' --exclude='*.npz' . 2>/dev/null
status sweep_tar $?

# The CUDA benchmark on an otherwise idle GPU.
timeout 100 python3 -m vaebench bench --device cuda --out /tmp/bench --no-progress > "$OUT/bench.log" 2>&1
status bench $?
cp /tmp/bench/bench*.csv "$OUT/" 2>/dev/null
exit 0
