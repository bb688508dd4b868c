#!/usr/bin/env bash
# Every GPU check of the model layer in one command, for a machine with CUDA (the H100 lent
# through `device`, 10 minutes a call): the GPU tests, then the model benchmark plain, with FA3
# and with torch.compile. Writes gpu_tests.log and bench_*.json to $OUT (or ./gpu_out).
#
#   bash benchmarks/gpu_session.sh tests plain fa3     # one device call (under 10 minutes)
#   bash benchmarks/gpu_session.sh compile             # a second call: torch.compile warm-up is long
#   bash benchmarks/gpu_session.sh                     # all four stages (over one call's limit)
#
# Uses the machine's own python3 (torch, transformers, tokenizers, safetensors are there);
# mmprep runs from src/ without installing.
set -u
cd "$(dirname "$0")/.."
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

$py - <<'EOF' 2>&1 | tee "$out/env.txt"
import torch, transformers
print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
import mmprep.models as mm
print("attention backend:", mm.attention_backend("cuda"))
EOF

stages=${*:-tests plain fa3 compile}
for stage in $stages; do
  case $stage in
    tests) timeout 180 $py -m pytest -q -p no:cacheprovider tests/test_models_gpu.py \
             tests/test_models_flash_plumbing.py 2>&1 | tee "$out/gpu_tests.log"
           continue ;;
    plain) flags= ;;
    fa3) flags=--fa3 ;;
    compile) flags="--fa3 --compile" ;;
    *) echo "unknown stage $stage (tests, plain, fa3, compile)" >&2; exit 2 ;;
  esac
  timeout 200 $py benchmarks/bench_model.py $flags 2>"$out/bench_$stage.err" | tee "$out/bench_$stage.json"
  tail -3 "$out/bench_$stage.err"
done
