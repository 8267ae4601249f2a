"""Every table of the README, of each experiment's README and the index of experiments in
docs/results.md are rendered from the result files and the experiments' READMEs, never typed: a
committed block that differs from its source fails here."""

import glob
import os

import pytest

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


def test_an_edited_number_in_an_experiment_readme_is_caught(tmp_path):
    renderer = _renderer()
    readme = os.path.join(renderer.EXPERIMENTS, "item-head", "README.md")
    copy = _edited_copy(tmp_path, readme, "| 0.6532 |", "| 0.6533 |")
    assert renderer.main(["--check"], experiment_readmes=[copy]) == 1
    assert renderer.main(["--check"], experiment_readmes=[readme]) == 0


def test_an_edited_answer_in_the_index_is_caught(tmp_path):
    renderer = _renderer()
    answer = renderer.experiment_summary("item-head")[2]
    first_words = " ".join(answer.split()[:4])
    doc = _edited_copy(tmp_path, renderer.RESULTS_DOC, first_words, first_words + " not")
    assert renderer.main(["--check"], results_doc=doc) == 1


def test_the_index_lists_every_experiment_with_its_question():
    renderer = _renderer()
    text = open(renderer.RESULTS_DOC, encoding="utf-8").read()
    folders = glob.glob(os.path.join(renderer.EXPERIMENTS, "*", "README.md"))
    assert len(folders) >= 10
    for path in folders:
        name = os.path.basename(os.path.dirname(path))
        assert f"../benchmarks/experiments/{name}/README.md" in text, name
        question = renderer.experiment_summary(name)[1]
        assert renderer.relinked(question, f"../benchmarks/experiments/{name}/") in text, name


def test_an_experiment_without_a_question_is_refused_by_name(tmp_path, monkeypatch):
    renderer = _renderer()
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "README.md").write_text("# Bare\n\nNo question here.\n")
    monkeypatch.setattr(renderer, "EXPERIMENTS", str(tmp_path))
    with pytest.raises(SystemExit, match=r"bare/README.md: no paragraph opens with '\*\*Question"):
        renderer.experiment_summary("bare")


def test_a_result_file_named_in_a_block_renders_as_its_kind():
    renderer = _renderer()
    bench = renderer.render_table("item-head/bench-ml-100k-uni9-sasrec.json")
    assert bench[0].startswith("From `benchmarks/experiments/item-head/results/")
    assert bench[2].startswith("| model | HR@1 |") and bench[4].startswith("| SASRec |")
    paired = renderer.render_table("item-head/item-heads-sequential.json")
    assert "[95 % CI]" in paired[2]
    with pytest.raises(SystemExit, match="no-such-table"):
        renderer.render_table("no-such-table")


def test_every_table_names_its_file_commit_and_command():
    renderer = _renderer()
    for name in renderer.TABLES:
        lines = renderer.render_table(name)
        assert lines[0].startswith(("From `benchmarks/experiments/", "(`benchmarks/")), name
        if lines[0].startswith("From"):
            assert "commit `" in lines[0] and "command `" in lines[0], name


def _broken_links(page, text, renderer):
    """The relative link targets of ``text``, read as the Markdown page ``page``, that name no
    file or folder of the repository."""
    folder = os.path.dirname(page)
    targets = [m.group(1).partition("#")[0] for m in renderer.RELATIVE_LINK.finditer(text)]
    inside = os.path.join(renderer.ROOT, "")
    return [
        t
        for t in targets
        if not os.path.exists(os.path.join(folder, t))
        or not os.path.abspath(os.path.join(folder, t)).startswith(inside)
    ]


def _markdown_pages(renderer):
    pages = [renderer.README, renderer.EXPERIMENTS_INDEX]
    pages += glob.glob(os.path.join(renderer.ROOT, "docs", "*.md"))
    return pages + glob.glob(renderer.EXPERIMENT_READMES)


def test_every_relative_link_of_the_docs_names_a_file_of_the_repository():
    renderer = _renderer()
    pages = _markdown_pages(renderer)
    assert len(pages) >= 15
    for page in pages:
        text = open(page, encoding="utf-8").read()
        assert _broken_links(page, text, renderer) == [], os.path.relpath(page, renderer.ROOT)


def test_an_answer_copied_into_the_index_without_its_links_rewritten_breaks_them(monkeypatch):
    """The failing counterpart: the request-readings answer links to docs/design.md from its own
    folder; copied into docs/results.md as it stands, that link names no file."""
    renderer = _renderer()
    rewritten = "\n".join(renderer.render_index("../benchmarks/experiments/", detailed=True))
    assert _broken_links(renderer.RESULTS_DOC, rewritten, renderer) == []
    monkeypatch.setattr(renderer, "relinked", lambda text, experiment_link: text)
    as_written = "\n".join(renderer.render_index("../benchmarks/experiments/", detailed=True))
    assert "../../../docs/design.md" in " ".join(
        _broken_links(renderer.RESULTS_DOC, as_written, renderer)
    )
