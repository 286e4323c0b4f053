#!/usr/bin/env bash
# The GPU check (issue 12): every table to a file under one folder, in under 8 minutes on an H100/H200.
#
#   PYTHONPATH=. bash bench/gpu_check.sh [OUT]        # default OUT: out/gpu_check
#
# Steps, each under its own time limit (their sum is 440 s), each writing OUT/<step>.txt:
#   machine     nvidia-smi, Python, torch, CUDA
#   throughput  bench/throughput.py: 256/512/1024 px x batches 1-16 x fp32/bf16 (L-BFGS), and the
#               engine's overhead over the floor at 256 px
#   switches    bench/throughput.py at 512 px, bf16, Adam: each fast-path switch on in turn
#               (channels_last, cudnn_benchmark, compile), batches 1 and 8
#   engine      bench/engine.py at 512 and 1024 px, fewer repeats
#   tests       the gpu-marked tests
#   manifest    a 16-pair manifest (512 px, 100 iterations, batches of 8) on --executor dask-local
# A step whose imports are missing (pydantic for the engine; pytest; Prefect and Dask for the
# manifest) is skipped with the reason. Python packages the machine lacks can come in a folder
# named by EXTRA_SITE (put on PYTHONPATH), e.g. made with `pip install --target DIR pydantic`
# for the GPU machine's Python version. OUT/summary.txt lists every step, its exit code and time.
set -u
OUT=${1:-out/gpu_check}
PY=${PYTHON:-python3}
export PYTHONPATH=".${EXTRA_SITE:+:$EXTRA_SITE}${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
: > "$OUT/summary.txt"

note() { echo "$*" | tee -a "$OUT/summary.txt"; }

# step NAME SECONDS COMMAND...: run it with a time limit, its output in OUT/NAME.txt
step() {
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    note "== $name (limit ${limit} s): $*"
    timeout --signal=INT --kill-after=15 "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    note "   exit $rc after $((SECONDS - start)) s$([ $rc = 124 ] && echo ' (time limit: the table is partial)')"
}

# can MODULE... : whether Python imports them all; if not, say which step is skipped
can() {
    local step=$1
    shift
    local missing
    missing=$($PY -c "
import importlib.util, sys
print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))" "$@")
    [ -z "$missing" ] && return 0
    note "== $step skipped: cannot import $missing"
    return 1
}

step machine 20 bash -c "nvidia-smi; $PY -c 'import sys, torch; print(sys.version); \
print(\"torch\", torch.__version__, \"CUDA\", torch.version.cuda, \"cuDNN\", torch.backends.cudnn.version()); \
print(torch.cuda.get_device_name() if torch.cuda.is_available() else \"no CUDA device\")'"

if can throughput pydantic torch torchvision; then
    step throughput 160 $PY bench/throughput.py --repeats 1 --short 3 --timed 12 --overhead-repeats 2
    step switches 100 $PY bench/throughput.py --sizes 512 --precisions bf16 --batches 1 8 --optimizer adam \
        --switches channels_last cudnn_benchmark compile --repeats 1 --short 3 --timed 20 --overhead-size 0
    step engine 40 $PY bench/engine.py --sizes 512 1024 --repeats 2 --iterations 10
fi

if can tests pytest pydantic; then
    if $PY -c "import tests.conftest" 2> "$OUT/tests-conftest.txt"; then
        step tests 50 $PY -m pytest -q -m gpu -o addopts="" -p no:randomly -ra tests
    else  # the suite's fixtures need moto, s3fs, Prefect ...: run the engine's own gpu tests without them
        note "   tests/conftest.py does not import here (OUT/tests-conftest.txt): only tests/nst_core/test_fastpath.py"
        step tests 50 $PY -m pytest -q -m gpu -o addopts="" -p no:randomly -ra --noconftest \
            tests/nst_core/test_fastpath.py
    fi
fi

if can manifest pydantic click rich prefect prefect_dask distributed pandas; then
    $PY - "$OUT/manifest" <<'EOF'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

folder = Path(sys.argv[1])
folder.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
for kind in ("content", "style"):
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)).save(folder / f"{kind}{i}.png")
rows = [f"content{c}.png,style{s}.png" for c in range(4) for s in range(4)]
(folder / "pairs.csv").write_text("content,style\n" + "\n".join(rows) + "\n")
EOF
    step manifest 70 $PY -c "from flows.cli import main; main()" run "$OUT/manifest/pairs.csv" \
        --out "$OUT/manifest/renders" --executor dask-local --batch-size 8 --weights random:0 \
        --image-size 512 --iterations 100 --precision bf16 --channels-last --quiet
fi
note "== done in $SECONDS s; tables in $OUT"
