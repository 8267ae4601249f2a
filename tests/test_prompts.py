"""Item text restored from RecBole's token_seq fields, and instruction building."""

import os
import shutil

import pytest
from recbole.config import Config
from recbole.data import create_dataset

from conftest import DATASET_DIR
from recbole_instructrec.prompts.builder import PromptBudgetError, PromptBuilder
from recbole_instructrec.prompts.item_text import ItemTextError, item_text_fields, item_texts
from recbole_instructrec.prompts.templates import TemplateError, get_template, load_templates
from recbole_instructrec.scoring.backbone import embedded_gguf_path


def _dataset(name="tiny", data_path=DATASET_DIR, **settings):
    config = Config(
        model="InstructRec", dataset=name, config_dict={"data_path": data_path, **settings}
    )
    return config, create_dataset(config)


def _text_of(dataset, texts, token):
    return texts[dataset.field2token_id[dataset.iid_field][token]]


def test_item_text_is_the_original_text_not_rejoined_tokens():
    config, dataset = _dataset()
    fields = item_text_fields(config, dataset)
    assert fields == ["title", "year"]
    texts = item_texts(dataset, fields)
    assert _text_of(dataset, texts, "i1") == "Long Road (1981)"
    # HTML entities decoded, whitespace runs collapsed, accents kept.
    assert _text_of(dataset, texts, "i5") == "Tom & Jerry: Laughing Together (1985)"
    assert _text_of(dataset, texts, "i9") == "Amélie's Quiet Garden (1989)"
    assert texts[0] == ""


def test_ml100k_titles_with_release_year():
    config, dataset = _dataset("ml-100k")
    texts = item_texts(dataset, item_text_fields(config, dataset))
    assert _text_of(dataset, texts, "1") == "Toy Story (1995)"
    assert _text_of(dataset, texts, "2") == "GoldenEye (1995)"


def test_fallback_rebuilds_text_from_recbole_tokens(tmp_path, monkeypatch):
    import recbole_instructrec.prompts.item_text as item_text

    config, dataset = _dataset()
    monkeypatch.setattr(item_text, "_raw_columns", lambda *a: None)
    texts = item_texts(dataset, ["title", "year"])
    assert _text_of(dataset, texts, "i1") == "Long Road (1981)"


def test_item_text_fields_setting_picks_fields():
    config, dataset = _dataset(item_text_fields=["title", "genre"])
    texts = item_texts(dataset, item_text_fields(config, dataset))
    assert _text_of(dataset, texts, "i1") == "Long Road (Drama)"


def test_missing_text_field_error_names_the_fields(tmp_path):
    folder = tmp_path / "notext"
    folder.mkdir()
    shutil.copy(f"{DATASET_DIR}/tiny/tiny.inter", folder / "notext.inter")
    with open(folder / "notext.item", "w") as f:
        f.write("item_id:token\tprice:float\n")
        f.write("".join(f"i{i}\t{i}.5\n" for i in range(1, 41)))
    config, dataset = _dataset("notext", str(tmp_path))
    with pytest.raises(ItemTextError) as err:
        item_text_fields(config, dataset)
    assert "price" in str(err.value) and "item_text_fields" in str(err.value)


def test_unknown_item_text_field_is_named():
    config, dataset = _dataset(item_text_fields=["title", "director"])
    with pytest.raises(ItemTextError, match="director"):
        item_text_fields(config, dataset)


class WordTokenizer:
    """Whitespace tokenizer: one token per word, for exact budget arithmetic."""

    chat_template = None
    eos_token_id = 1

    def __init__(self):
        self.vocab = {}

    def _ids(self, text):
        return [self.vocab.setdefault(w, len(self.vocab) + 2) for w in text.split()]

    def __call__(self, text, add_special_tokens=True):
        if isinstance(text, list):
            return {"input_ids": [self._ids(t) for t in text]}
        return {"input_ids": self._ids(text)}

    def decode(self, ids):
        inverse = {v: k for k, v in self.vocab.items()}
        return " ".join(inverse[i] for i in ids)


def _builder(**kwargs):
    texts = ["", "alpha one", "beta two two", "gamma", "delta four four four", "eps"]
    template = get_template(load_templates(), "seq-match-1")
    return PromptBuilder(WordTokenizer(), texts, template, **kwargs)


def test_prompt_keeps_the_most_recent_items_in_order():
    builder = _builder(max_history_items=3)
    text = builder.render([1, 2, 3, 4, 5][-3:])
    assert text.index("gamma") < text.index("delta") < text.index("eps")
    ids = builder.prompt_ids([1, 2, 3, 4, 5])
    decoded = builder.tokenizer.decode(ids)
    assert "alpha" not in decoded and "beta" not in decoded and "eps" in decoded


def test_prompt_truncation_fits_the_budget_dropping_oldest_first():
    full = _builder(max_history_items=10)
    base = len(full.prompt_ids([]))
    budget = base + 6  # room for "N. eps" and "N. delta four four four"? no: 2 + 5 tokens
    builder = _builder(max_history_items=10, max_prompt_tokens=budget)
    ids = builder.prompt_ids([1, 2, 3, 4, 5])
    assert len(ids) <= budget
    decoded = builder.tokenizer.decode(ids)
    assert "eps" in decoded and "alpha" not in decoded
    assert len(full.prompt_ids([1, 2, 3, 4, 5])) > budget


def test_template_larger_than_budget_is_a_clear_error():
    with pytest.raises(PromptBudgetError, match="max_prompt_tokens"):
        _builder(max_prompt_tokens=3)


def test_long_item_texts_are_capped():
    builder = _builder(max_item_tokens=2)
    assert builder.texts[4] == "delta four…"
    assert len(builder.answer_ids(4)) == 3  # two tokens + end of answer


def test_unknown_template_is_named():
    with pytest.raises(TemplateError, match="no-such-template"):
        get_template(load_templates(), "no-such-template")


# ------------------------------------------------------- the real SmolLM2 tokenizer (BPE)
@pytest.fixture(scope="module")
def smollm2_tokenizer():
    # The tokenizer alone, read from the embedded GGUF's metadata: no weights are de-quantized.
    from transformers import AutoTokenizer

    directory, filename = os.path.split(embedded_gguf_path())
    return AutoTokenizer.from_pretrained(directory, gguf_file=filename)


class FixedPreference:
    def explicit_preference(self, history, user=None):
        return "I mostly enjoy Comedy and Drama"


CUT_TEMPLATES = [t for t in load_templates().values() if t.task_form in ("T0", "T1")]
TITLES = [
    "",
    "Toy Story (1995)",
    "GoldenEye (1995)",
    "'Til There Was You (1997)",
    "Four Rooms (1995)",
    "Get Shorty (1995)",
]


@pytest.mark.parametrize("hybrid", [False, True], ids=["text", "item-tokens"])
@pytest.mark.parametrize("template", CUT_TEMPLATES, ids=lambda t: t.id)
@pytest.mark.parametrize("candidates", [(1, 2), (2, 3)], ids=["letters", "apostrophe"])
def test_cut_prompt_tokenizes_as_the_whole_prompt(smollm2_tokenizer, template, hybrid, candidates):
    # T0/T1 score "shared prefix + continuation"; the model must see exactly the ids of the
    # whole prompt, or a title after the cut is split into tokens it never sees in training.
    builder = PromptBuilder(
        smollm2_tokenizer,
        TITLES,
        template,
        intentions=FixedPreference(),
        first_item_token=len(smollm2_tokenizer) if hybrid else None,
    )
    assert builder.use_chat
    history, intention = [4, 5], "something that makes me laugh"
    slots = {"intention": intention, "preference": FixedPreference().explicit_preference(history)}
    ((prefix, conts),) = builder.plan(history, list(candidates), intention=intention).requests
    x, y = candidates
    if template.task_form == "T0":
        answer = builder._yes_no[0]
        fills = [{"candidate": builder.mention(c)} for c in (x, y)]
    else:
        answer = builder._labels[0]
        fills = [
            {"item_a": builder.mention(a), "item_b": builder.mention(b)}
            for a, b in ((x, y), (y, x))
        ]
    wholes = [builder.prompt_ids(history, **fill, **slots) for fill in fills]
    for whole in wholes:
        assert whole[: len(prefix)] == prefix, smollm2_tokenizer.convert_ids_to_tokens(prefix[-3:])
    # Two T1 candidates meet twice in each order (a cyclic order of two), hence the sets.
    scored = {tuple(prefix + conts[k]) for k in range(0, len(conts), 2)}
    assert scored == {tuple(whole + answer) for whole in wholes}


UNCUT_TEMPLATES = [t for t in load_templates().values() if t.task_form not in ("T0", "T1")]


def _no_cut(*args, **kwargs):
    raise AssertionError("the prompt was cut")


@pytest.mark.parametrize("template", UNCUT_TEMPLATES, ids=lambda t: t.id)
def test_only_t0_and_t1_prompts_are_cut(smollm2_tokenizer, template, monkeypatch):
    # The T0/T1 tokenization fix changed the cut alone; a form that never cuts its prompt
    # scores the same ids before and after it, so its rows in the forms table stand.
    builder = PromptBuilder(smollm2_tokenizer, TITLES, template, intentions=FixedPreference())
    monkeypatch.setattr(PromptBuilder, "_cut", _no_cut)
    monkeypatch.setattr(PromptBuilder, "_tail_ids", _no_cut)
    plan = builder.plan([4, 5], [1, 2, 3], target=1, intention="something that makes me laugh")
    assert plan.requests and all(conts for _, conts in plan.requests)


def test_a_cut_template_fails_the_uncut_check(smollm2_tokenizer, monkeypatch):
    # The check above can fail: a T0 template does go through the cut.
    t0 = next(t for t in CUT_TEMPLATES if t.task_form == "T0")
    builder = PromptBuilder(smollm2_tokenizer, TITLES, t0, intentions=FixedPreference())
    monkeypatch.setattr(PromptBuilder, "_cut", _no_cut)
    with pytest.raises(AssertionError, match="the prompt was cut"):
        builder.plan([4, 5], [1, 2, 3], intention="something that makes me laugh")
