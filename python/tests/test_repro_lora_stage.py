"""The LoRA-stage reproduction (qslaw_tools.repro.lora_stage, run by the
README's main command) end to end at a few steps: every stage compiles,
trains, exports ONNX that onnxruntime scores, and the table has one row per
setting. The numbers of the real run are in docs/Training.md."""
import json

import pytest

pytest.importorskip("onnxruntime")

from qslaw_tools.repro import lora_stage  # noqa: E402


def test_lora_stage_pipeline_runs(tmp_path, capsys):
    rc = lora_stage.main(["--out", str(tmp_path), "--bits", "2", "--warmup-steps", "4",
                          "--scale-steps", "4", "--lora-steps", "3", "--accumulation", "2",
                          "--limit", "8"])
    assert rc == 0
    r = json.load(open(tmp_path / "results.json"))
    settings = [(row["setting"], row["bits"]) for row in r["rows"]]
    assert settings == [("full-precision LoRA", "fp32"), ("LoRA on RTN (QLoRA-style)", 2),
                        ("QSLAW stages 1-2 (no LoRA)", 2), ("QSLAW stages 1-3 (+ LoRA)", 2)]
    for row in r["rows"]:
        assert 0 <= row["vqa_mean"] <= 1 and row["ppl_mean"] > 1
    assert "| QSLAW stages 1-3 (+ LoRA) | 2 |" in capsys.readouterr().out
