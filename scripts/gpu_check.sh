#!/usr/bin/env bash
# The GPU check: on a machine with CUDA, the tests marked gpu and the GPU benchmark table, in at most 8 minutes.
#
#   scripts/gpu_check.sh [OUT.md]      (default gpu_check.md; run from anywhere, in the project's venv)
#
# 1. swinir-app benchmark --gpu-check OUT.md: SwinIR-M x4 (classical-x4) at 128x128 LR in fp32, bf16 and fp16
#    against the official network, and a tiled 2048x2048 x4 upscale with its peak memory (at most 270 s).
# 2. python -m pytest -m gpu: the CUDA paths (at most 190 s); their summary is appended to OUT.md.
# Without CUDA it refuses in one line, exit 2. Exit 0 only if both steps passed.
set -u
cd "$(dirname "$0")/.."
out=${1:-gpu_check.md}
py=${PYTHON:-python}
if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "error: gpu_check: CUDA is not available on this machine; run it where a GPU is lent (docs/performance.md#gpu-check)" >&2
    exit 2
fi
start=$SECONDS
timeout 270 "$py" -m swinir_app.benchmark --gpu-check "$out"
bench=$?
log=$(mktemp)
timeout 190 "$py" -m pytest -m gpu -q -p no:cacheprovider tests/ >"$log" 2>&1
tests=$?
tail -n 40 "$log"
{
    printf '\n## Tests marked gpu: exit %s\n\n```text\n' "$tests"
    grep -E "passed|failed|skipped|error|PASSED|FAILED|SKIPPED|ERROR" "$log" | tail -n 30
    printf '```\n\nbenchmark exit %s; %s s in all\n' "$bench" "$((SECONDS - start))"
} >>"$out"
rm -f "$log"
echo "gpu check: benchmark exit $bench, tests exit $tests, $((SECONDS - start)) s; written to $out" >&2
[ "$bench" -eq 0 ] && [ "$tests" -eq 0 ]
