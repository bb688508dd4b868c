#!/usr/bin/env bash
# Every GPU check of the model layer in one command, for a machine with CUDA (the H100/H200 lent
# through `device`): the GPU tests, then the model benchmark plain and with FA3 (and, when asked,
# with torch.compile). Each stage has its own timeout so the default call ends within 8 minutes.
# Writes env.txt, gpu_tests.log and bench_<stage>.json/.err to $OUT (or ./gpu_out).
#
#   bash benchmarks/gpu_session.sh                     # tests plain fa3 isaac (one device call, < 9 min)
#   bash benchmarks/gpu_session.sh compile             # a second call: torch.compile warm-up is long
#   bash benchmarks/gpu_session.sh glm-moe nemotron    # opt-in: GLM-4.5V MoE decoder, RADIO + NemotronH (~2 min each)
#   bash benchmarks/gpu_session.sh --dry-run           # every stage on the CPU with tiny sizes (CI)
#
# Uses the machine's own python3 (torch, transformers, tokenizers, safetensors are there);
# mmprep runs from src/ without installing. Exit status: non-zero when any stage failed.
set -u
cd "$(dirname "$0")/.."
dry=0
stages=()
for a in "$@"; do
  case $a in
    --dry-run) dry=1 ;;
    tests|plain|fa3|compile|isaac|glm-moe|nemotron) stages+=("$a") ;;
    *) echo "unknown stage $a (tests, plain, fa3, compile, isaac, glm-moe, nemotron, --dry-run)" >&2; exit 2 ;;
  esac
done
[ ${#stages[@]} -eq 0 ] && stages=(tests plain fa3 isaac)
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
small=()
[ $dry = 1 ] && small=(--small --device cpu --repeats 1)

$py - <<'EOF' 2>&1 | tee "$out/env.txt"
import platform, torch, transformers
print("torch", torch.__version__, "transformers", transformers.__version__, "python", platform.python_version(),
      "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
import mmprep.models as mm
print("attention backend:", mm.attention_backend("cuda" if torch.cuda.is_available() else "cpu"))
EOF

failed=0
for stage in "${stages[@]}"; do
  start=$SECONDS
  case $stage in
    tests)
      set -o pipefail
      timeout 150 $py -m pytest -q -p no:cacheprovider -m "gpu or not gpu" tests/test_models_gpu.py \
        tests/test_models_flash_plumbing.py 2>&1 | tee "$out/gpu_tests.log" | tail -15 || failed=1
      set +o pipefail
      echo "stage tests: $((SECONDS - start)) s"
      continue ;;
    plain) flags=(--profile) ;;
    fa3) flags=(--fa3) ;;
    compile) flags=(--fa3 --compile) ;;
    isaac) flags=(--model isaac) ;;
    glm-moe) flags=(--model glm-moe) ;;
    nemotron) flags=(--model nemotron) ;;
  esac
  limit=140
  [ "$stage" = compile ] && limit=260  # torch.compile warm-up of the vision and decoder blocks
  case $stage in glm-moe|nemotron) limit=240 ;; esac  # a multi-GB checkpoint saved and loaded first
  if timeout $limit $py benchmarks/bench_model.py "${flags[@]}" "${small[@]}" \
      2>"$out/bench_$stage.err" >"$out/bench_$stage.json"; then
    cat "$out/bench_$stage.json"
  else
    failed=1
    echo "stage $stage FAILED (exit $?)"
    tail -5 "$out/bench_$stage.err"
  fi
  echo "stage $stage: $((SECONDS - start)) s"
done
exit $failed
