"""benchmarks/serve_load.py at a tiny scale: it starts `instructrec serve` as its own process,
drives it with concurrent clients, batched and one by one, and writes JSON and Markdown."""

import json

import pytest

pytest.importorskip("fastapi", reason="the load benchmark needs FastAPI: pip install '.[serve]'")
pytest.importorskip("uvicorn", reason="the load benchmark needs uvicorn: pip install '.[serve]'")
pytest.importorskip("httpx", reason="the load benchmark needs httpx: pip install '.[dev]'")

from conftest import DATASET_DIR, benchmark_script  # noqa: E402


def test_serve_load_reports_every_cell_without_errors(tmp_path, tiny_llm, sasrec_checkpoint):
    serve_load = benchmark_script("serve_load")
    serve_load.main(
        [
            "--dataset",
            "tiny",
            "--set",
            f"data_path={DATASET_DIR}",
            "--set",
            f"llm_path={tiny_llm}",
            "--settings",
            "two-stage",
            "--candidate-model",
            sasrec_checkpoint,
            "--top-n",
            "5",
            "--concurrency",
            "1,3",
            "--one-by-one",
            "3",
            "--max-requests",
            "4",
            "--out",
            str(tmp_path),
            "--tag",
            "load",
        ]
    )
    result = json.loads((tmp_path / "load.json").read_text())
    cells = result["cells"]
    assert [(c["mode"], c["concurrency"]) for c in cells] == [
        ("batched", 1),
        ("batched", 3),
        ("one by one", 3),
    ]
    for cell in cells:
        assert cell["requests"] == cell["answered"] == 4
        assert cell["error_count"] == 0 and cell["lost"] == 0
        assert cell["candidates"] == 5
        assert cell["p50_ms"] <= cell["p95_ms"] <= cell["p99_ms"]
    assert cells[2]["max_batch_size"] == 1  # one by one: every request its own pass
    (speedup,) = result["speedup_over_one_by_one"]
    assert speedup["concurrency"] == 3 and speedup["speedup"] > 0
    markdown = (tmp_path / "load.md").read_text()
    assert "| two-stage | one by one | 3 |" in markdown and "lost requests: 0" in markdown
