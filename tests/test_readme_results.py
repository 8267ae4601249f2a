"""The README's headline tables are rendered from benchmarks/results, never typed."""

import importlib.util
import os

from conftest import ROOT


def _renderer():
    path = os.path.join(ROOT, "benchmarks", "render_headline.py")
    spec = importlib.util.spec_from_file_location("render_headline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_headline_matches_the_result_files():
    assert _renderer().main(["--check"]) == 0


def test_an_edited_number_in_the_readme_is_caught(tmp_path, monkeypatch):
    renderer = _renderer()
    text = open(renderer.README, encoding="utf-8").read()
    block = renderer.render()
    assert "| SASRec |" in block  # the block has rows to edit
    edited = tmp_path / "README.md"
    edited.write_text(text.replace("| SASRec |", "| SASRec (edited) |", 1), encoding="utf-8")
    monkeypatch.setattr(renderer, "README", str(edited))
    assert renderer.main(["--check"]) == 1
