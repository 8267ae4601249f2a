"""benchmarks/paper_setting.py runs end to end on CPU at a tiny scale (the GPU run is the same
script with its defaults)."""

import json

from conftest import DATASET_DIR, benchmark_script


def test_the_paper_setting_runs_every_row_on_a_tiny_dataset(tmp_path, tiny_llm):
    script = benchmark_script("paper_setting")
    argv = ["--datasets", "tiny", "--amazon-path", DATASET_DIR, "--llm-path", tiny_llm]
    argv += ["--steps", "2", "--baseline-epochs", "1", "--llm-dtype", "float32", "--batch", "4"]
    records = script.main(argv + ["--out", str(tmp_path), "--tag", "rehearsal"])
    assert [r["model"] for r in records] == list(script.ROWS)
    for record in records:
        assert 0.0 <= record["metrics"]["hit@1"] <= 1.0, record["model"]
    with open(tmp_path / "bench-rehearsal-tiny.json", encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["run"]["command"].startswith("python benchmarks/paper_setting.py")
    hashes = {r["candidates_sha256"] for r in saved["results"]}
    assert len(hashes) == 1  # every row on the same stored candidates
