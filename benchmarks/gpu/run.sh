#!/usr/bin/env bash
# The prepared GPU check (issue: GPU on CuPy): one command on a bare GPU machine.
#   Here, first:  bash benchmarks/gpu/prepare.sh     (exports DeZero's snapshot and the suite
#                                                     into .gpu-carry/, which git ignores)
#   Then run it through the device tool with carry [".gpu-carry"]:
#     bash benchmarks/gpu/run.sh        (logs go to $OUT, or benchmarks/results/gpu-<date>/)
# Steps, each with its own time limit so one slow step cannot eat the others' time:
#   1. environment (nvidia-smi, versions)      2. mibun's GPU tests (tests/test_backends.py)
#   3. the op suite on CuPy (check_op)          4. DeZero's tests/gpu through the suite
#   5. the benchmarks against PyTorch CUDA
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-benchmarks/results/gpu-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
py=python3
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $py -c "import cupy, numpy, torch; print('cupy', cupy.__version__, 'numpy', numpy.__version__, 'torch', torch.__version__, torch.cuda.is_available())"
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

timeout "${T_TESTS:-240}" $py -m pytest -q -p no:cacheprovider tests/test_backends.py \
  tests/functions -k "cupy or test_backends" --no-header -rs > "$out/tests.txt" 2>&1
echo "mibun GPU tests: $(tail -1 "$out/tests.txt")"

if [ -d .gpu-carry/dezero-suite ] && [ -d .gpu-carry/dezero-src ]; then
  DEZERO_REPO="$PWD/.gpu-carry/dezero-src" timeout "${T_DEZERO:-200}" $py \
    .gpu-carry/dezero-suite/run_dezero_tests.py --target mibun --target-path "$PWD/src" \
    --gpu yes --files $(cd .gpu-carry/dezero-src/tests/gpu && ls gpu_test_*.py | tr '\n' ' ') \
    > "$out/dezero-gpu.txt" 2>&1
  echo "DeZero GPU tests: $(tail -1 "$out/dezero-gpu.txt")"
else
  echo "DeZero GPU tests: not run (.gpu-carry missing: run benchmarks/gpu/prepare.sh here)"
fi

timeout "${T_BENCH:-150}" $py benchmarks/gpu/bench.py --repeat "${REPEAT:-20}" \
  > "$out/bench.txt" 2>&1
cat "$out/bench.txt"
