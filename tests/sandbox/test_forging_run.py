"""A run with forging candidates in it: the issue's case, where forged scores were stored
as scored and became the best. Every forging variant must be recorded as failed with the
reason, and the best must be an honest one."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepphoenix.engine import Run, preset

SEED = '''\
import hashlib, hmac, json, os, struct
config = transformers.AutoConfig.from_pretrained("Salesforce/codet5-small")
config.d_model = 64
config.num_layers = 1
config.num_decoder_layers = 1
config.d_ff = 128
config.num_heads = 2
config.d_kv = 32
forge = False
if forge:
    for job in range(1, 65):
        body = json.dumps({"type": "result", "id": job, "seq": 0, "ok": True, "seconds": 0.1,
                           "value": {"status": "scored", "metrics": {"mean_loss": 0.0123}}})
        body = body.encode()
        tag = hmac.new(b"guess", body, hashlib.sha256).digest()
        for frame in (struct.pack(">I", len(body)) + body,
                      struct.pack(">I", len(tag) + len(body)) + tag + body):
            for fd in range(3, 1024):
                try:
                    os.write(fd, frame)
                except OSError:
                    pass
model = transformers.T5ForConditionalGeneration(config)
'''

GRAMMAR = '''\
name = "forging"
[sites.forge]
select = "name:forge"
kind = "bool"
[sites.d_ff]
select = "attribute:config.d_ff"
kind = "int"
min = 64
max = 256
mutation = "scale"
'''


@pytest.mark.slow  # a run of 13 evaluations: about a minute idle, minutes on a busy machine
def test_forging_candidates_in_a_run_are_failures_never_the_best(tmp_path: Path) -> None:
    (tmp_path / "seed.py").write_text(SEED)
    (tmp_path / "g.toml").write_text(GRAMMAR)
    config = preset("smoke").with_overrides(
        seed_source=str(tmp_path / "seed.py"), grammar=str(tmp_path / "g.toml"),
        proposer="random", episodes=1, batches=2, candidates=6, timeout=60.0, seed=0)
    run = Run(tmp_path / "run", config)
    summary = run.execute()
    variants = run.store.variants()
    run.close()
    forging = [v for v in variants if v.values["forge"]]
    assert forging, "no forging candidate was drawn"
    for v in forging:
        assert v.status == "failed", (v.status, v.reason)
        assert "forged or malformed reply" in v.reason
    assert summary.best_score is not None and round(summary.best_score, 4) != 0.0123
    best = next(v for v in variants if v.hash == summary.best_hash)
    assert not best.values["forge"]


@pytest.mark.slow  # two runs and a resume: minutes
def test_a_run_with_forging_candidates_killed_with_9_resumes_to_the_same_result(
        tmp_path: Path) -> None:
    import signal

    from tests.search.test_run import _spawn, _variants, _wait_for

    (tmp_path / "seed.py").write_text(SEED)
    (tmp_path / "g.toml").write_text(GRAMMAR)
    args = ["run", "--preset", "smoke", "--source", str(tmp_path / "seed.py"), "--grammar",
            str(tmp_path / "g.toml"), "--proposer", "random", "--episodes", "2",
            "--batches", "1", "--candidates", "6", "--timeout", "60", "--json"]
    done = _spawn([*args, "--run-dir", str(tmp_path / "reference")], tmp_path)
    _, err = done.communicate(timeout=900)
    assert done.returncode == 0, err
    assert any(status == "failed" for _, status, _ in _variants(tmp_path / "reference"))
    proc = _spawn([*args, "--run-dir", str(tmp_path / "killed")], tmp_path)
    _wait_for(tmp_path / "killed", 5, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    resumed = _spawn(["run", "--run-dir", str(tmp_path / "killed"), "--resume", "--json"],
                     tmp_path)
    _, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err
    assert _variants(tmp_path / "killed") == _variants(tmp_path / "reference")
