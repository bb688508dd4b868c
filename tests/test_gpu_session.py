"""The GPU session script starts every stage on the CPU (``--dry-run``), so the one device call
it exists for cannot fail on a typo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_session_dry_run_runs_every_default_stage(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    proc = subprocess.run(["bash", "benchmarks/gpu_session.sh", "--dry-run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "passed" in (tmp_path / "gpu_tests.log").read_text()
    for stage in ("plain", "fa3"):
        line = json.loads((tmp_path / f"bench_{stage}.json").read_text())
        assert line["small"] is True and line["vision_a"]["max_abs_diff"] < 1e-4
    assert "== profile vision_a ==" in (tmp_path / "bench_plain.err").read_text()
    isaac = json.loads((tmp_path / "bench_isaac.json").read_text())
    assert isaac["model"] == "isaac-vision" and isaac["isaac_a"]["max_abs_diff"] < 1e-4


@pytest.mark.slow
def test_gpu_session_dry_run_runs_the_opt_in_glm_moe_and_nemotron_stages(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    proc = subprocess.run(["bash", "benchmarks/gpu_session.sh", "--dry-run", "glm-moe", "nemotron"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tmp_path / "gpu_tests.log").exists()  # only the stages asked for
    for stage, model in (("glm-moe", "glm-4.5v-moe-decoder"), ("nemotron", "nemotron-radio-h")):
        line = json.loads((tmp_path / f"bench_{stage}.json").read_text())
        assert line["model"] == model and line["small"] is True and line["device"] == "cpu"
        assert line["max_abs_diff"] < 1e-4 and line["decoder"]["max_abs_diff"] < 1e-4
        assert {"stage", "dtype", "inputs", "ours", "peer", "ratio", "versions"} <= set(line)
        assert line["decoder"]["ours_decode_tokens_per_s"] > 0 and line["ratio"]["prefill"] > 0
    nemotron = json.loads((tmp_path / "bench_nemotron.json").read_text())
    assert nemotron["inputs"]["pattern"] == "M*-EM" and nemotron["decoder"]["layers"] == 5
    assert nemotron["radio_tiles"]["patches"] == 4 * 16 and nemotron["radio_dynamic"]["images"] == 3


def test_gpu_session_rejects_an_unknown_stage(tmp_path):
    proc = subprocess.run(["bash", "benchmarks/gpu_session.sh", "warp"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OUT": str(tmp_path)})
    assert proc.returncode == 2 and "unknown stage" in proc.stderr
