"""The README's headline and every table of docs/results.md are rendered from
benchmarks/results, never typed: a committed table that differs from its file fails here."""

import os

from conftest import benchmark_script


def _renderer():
    return benchmark_script("render")


def test_the_committed_tables_match_the_result_files():
    assert _renderer().main(["--check"]) == 0


def _edited_copy(tmp_path, path, old, new):
    text = open(path, encoding="utf-8").read()
    assert old in text  # there is a rendered number to edit
    copy = tmp_path / os.path.basename(path)
    copy.write_text(text.replace(old, new, 1), encoding="utf-8")
    return str(copy)


def test_an_edited_number_in_the_readme_is_caught(tmp_path):
    renderer = _renderer()
    readme = _edited_copy(tmp_path, renderer.README, "| SASRec |", "| SASRec (edited) |")
    assert renderer.main(["--check"], readme=readme) == 1


def test_an_edited_number_in_docs_results_is_caught(tmp_path):
    renderer = _renderer()
    doc = _edited_copy(tmp_path, renderer.RESULTS_DOC, "| 0.5992 |", "| 0.5993 |")
    assert renderer.main(["--check"], results_doc=doc) == 1


def test_every_table_names_its_file_commit_and_command():
    renderer = _renderer()
    for name in renderer.TABLES:
        lines = renderer.render_table(name)
        assert lines[0].startswith(("From `benchmarks/", "(`benchmarks/")), name
        if lines[0].startswith("From"):
            assert "commit `" in lines[0] and "command `" in lines[0], name
