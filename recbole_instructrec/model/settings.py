"""InstructRec's settings, read and checked: every check names the setting and how to fix it.
What each setting is (its type, default and help) is declared in :mod:`.setting_declarations`.

The model (:mod:`.instructrec`) reads ``config[...]`` in its ``__init__`` through these; they
run before anything expensive, so a wrong setting stops a run at start, not mid-training.
"""

from logging import getLogger

import torch

from recbole_instructrec.model.setting_declarations import SETTINGS
from recbole_instructrec.prompts.templates import TASK_FORMS, TemplateError, get_template
from recbole_instructrec.scoring.fusion import FusionError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FULL_RANKING_MODES = ("full", "uni0", "pop0")


def int_setting(config, key, minimum, or_else=""):
    """``config[key]`` as an integer of at least ``minimum``; ``or_else`` names what else the
    setting accepts, for the error message."""
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        also = f", or {or_else}" if or_else else ""
        raise ValueError(f"{key}={value!r} must be an integer of at least {minimum}{also}.")
    return value


def setting_choice(config, key, choices):
    value = config[key]
    if value not in choices:
        raise ValueError(f"{key}={value!r} is not supported; use one of {sorted(choices)}.")
    return choices[value]


def check_context(hf_config, max_prompt_tokens, max_item_tokens):
    """The longest prompt plus the longest answer must fit the model's positions."""
    limit = getattr(hf_config, "max_position_embeddings", None) or getattr(
        hf_config, "n_positions", None
    )
    if limit and max_prompt_tokens + max_item_tokens + 2 > limit:
        raise ValueError(
            f"max_prompt_tokens={max_prompt_tokens} + max_item_tokens={max_item_tokens} exceed "
            f"the model's context of {limit} positions; lower them so that their sum is at most "
            f"{limit - 2}."
        )


# eval_template: ~ picks the running list where it can train every position in one pass (a
# causal LM, its own templates); otherwise the paper's one prompt per training prefix.
RUNNING_LIST_TEMPLATE = "seq-list"
INSTRUCTION_TEMPLATE = "seq-match-1"


def eval_template_id(config, templates, is_encoder_decoder):
    """``eval_template``, or when unset (~) the default for this model and these settings:
    ``seq-list`` for a causal LM, ``seq-match-1`` for an encoder-decoder model (it reads the
    history in the encoder, so it keeps one prompt per prefix), with a ``task_form``, or with
    ``train_templates`` of the instruction layout."""
    if config["eval_template"] is not None:
        return config["eval_template"]
    ids = config["train_templates"] or []
    ids = [ids] if isinstance(ids, str) else ids
    trained = [get_template(templates, t, "train_templates") for t in ids]
    if (
        is_encoder_decoder
        or config["task_form"] is not None
        or any(t.layout != "running_list" for t in trained)
    ):
        return INSTRUCTION_TEMPLATE
    return RUNNING_LIST_TEMPLATE


def eval_template(templates, eval_template_id, task_form):
    """The evaluation template: ``eval_template``, or with ``task_form`` set, the template of
    that form with ``eval_template``'s preference and intention."""
    template = get_template(templates, eval_template_id)
    if task_form is None or template.task_form == task_form:
        return template
    if task_form not in TASK_FORMS:
        raise TemplateError(f"task_form={task_form!r} is not a task form; use one of {TASK_FORMS}.")
    for candidate in templates.values():
        if (candidate.task_form, candidate.preference, candidate.intention) == (
            task_form,
            template.preference,
            template.intention,
        ):
            return candidate
    raise TemplateError(
        f"task_form={task_form} has no template with eval_template={template.id!r}'s "
        f"preference {template.preference} and intention {template.intention}; set "
        "eval_template to a template of that form."
    )


def train_templates(config, templates, eval_template):
    """``train_templates`` (one id or a list; default: the evaluation template)."""
    ids = config["train_templates"] or [eval_template.id]
    if isinstance(ids, str):
        ids = [ids]
    return [get_template(templates, t, "train_templates") for t in ids]


def valid_templates(config, templates, eval_template):
    """``valid_templates``: the templates whose validation scores are averaged (one id or a
    list; ``~``: the evaluation template alone). Each reads the evaluation template's layout."""
    ids = config["valid_templates"]
    if ids is None:
        return []
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, list) or not ids:
        raise ValueError(
            f"valid_templates={ids!r} must be a template id or a non-empty list of them, e.g. "
            "[seq-list, psearch-list, vague-list]; ~ validates on eval_template alone."
        )
    chosen = [get_template(templates, t, "valid_templates") for t in ids]
    other = [t.id for t in chosen if t.layout != eval_template.layout]
    if other:
        raise ValueError(
            f"valid_templates names {other}, which are not of eval_template="
            f"{eval_template.id!r}'s layout ({eval_template.layout}): a model is validated in "
            "the layout it is trained and tested in. Pick templates of that layout."
        )
    return chosen


def one_layout(eval_template, train_templates):
    """Training and evaluation read one prompt layout (see prompts/templates.yaml)."""
    layouts = {t.layout for t in [eval_template, *train_templates]}
    if len(layouts) > 1:
        raise ValueError(
            f"eval_template={eval_template.id!r} and train_templates="
            f"{[t.id for t in train_templates]} mix the layouts {sorted(layouts)}: a model "
            "evaluates in the layout it trained in. Pick templates of one layout (running_list: "
            "seq-list)."
        )
    return layouts.pop()


def generation_only(train_negatives, train_templates):
    """``train_negatives: 0`` trains the positive's generation loss alone (the paper's
    seq2seq objective). Only the matching form (T2) writes the answer as text; the other forms
    rank candidates against each other and need negatives to learn anything."""
    if train_negatives:
        return False
    other = [t.id for t in train_templates if t.task_form != "T2"]
    if other:
        raise ValueError(
            f"train_negatives=0 trains the generation loss alone, which only matching (T2) "
            f"templates have; train_templates {other} rank candidates against each other. "
            "Set train_negatives to 1 or more, or train T2 templates."
        )
    return True


DEFAULT_NEGATIVE_POSITIONS = 2


def negative_positions(config, running_list, train_negatives):
    """``train_negative_positions``: how many positions of each running-list row get the
    negatives (the listwise loss); None = every position.

    ~ is 2 where it applies (the running list with negatives): in the main job's training time
    that trains several times the signals of every position (docs/results.md, "a mixed
    objective"). ``all`` asks for every position."""
    key = "train_negative_positions"
    value = config[key]
    if value is None:
        return DEFAULT_NEGATIVE_POSITIONS if running_list and train_negatives else None
    if value == "all":
        return None
    int_setting(
        config,
        key,
        1,
        f"'all' (every position), or ~ ({DEFAULT_NEGATIVE_POSITIONS} in the running list)",
    )
    if not running_list:
        raise ValueError(
            f"{key}={value} picks positions of a running list (eval_template: seq-list); the "
            "instruction layout has one position a prompt. Drop it, or train seq-list."
        )
    if not train_negatives:
        raise ValueError(
            f"{key}={value} places negatives, and train_negatives=0 samples none; set "
            "train_negatives to 1 or more, or drop it."
        )
    return value


# the search templates ``train_request_templates: ~`` mixes in, and the share ``~`` gives them:
# on the ml-100k search tasks this mix lifts every task it trains without a measurable loss on
# the sequential one (docs/results.md, "Search tasks")
DEFAULT_REQUEST_TEMPLATES = ["psearch-list", "vague-list", "explicit-list", "search-list"]
DEFAULT_REQUEST_SHARE = 0.5


# likelihood: a candidate's score is the LM's log-likelihood of its text (the paper's);
# items: the item head's logit (recbole_instructrec.scoring.item_head)
SCORE_HEADS = {"likelihood": "likelihood", "items": "items"}
ITEM_MENTIONS = {"text": "text", "compact": "compact", "both": "both"}


def check_item_mentions(item_mentions, score_head):
    """Compact mentions (and both: the item head's item token before the text) read the item
    head's text vectors: only the item head has them."""
    if item_mentions in ("compact", "both") and score_head != "items":
        raise ValueError(
            f"item_mentions={item_mentions} writes each item's token from the item head's text "
            f"vectors, and score_head={score_head!r} has none. Use score_head: items with "
            f"item_mentions: {item_mentions}, or item_mentions: text."
        )


def check_item_head(running_list, eval_template):
    """``score_head: items`` reads the state where the next item of a running list begins."""
    if not running_list:
        raise ValueError(
            f"score_head=items scores the catalogue from the position where a running list's "
            f"next item begins; eval_template={eval_template!r} is of the instruction layout. "
            "Use eval_template: seq-list (the default for a causal LM), or score_head: "
            "likelihood."
        )


def number_setting(config, key, minimum, above, what):
    """``config[key]`` as a float above ``minimum`` (``above``) or at least it; ``what`` ends
    the message: what the number means, or an example."""
    value = config[key]
    bound = f"above {minimum}" if above else f"of at least {minimum}"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (value <= minimum if above else value < minimum)
    ):
        raise ValueError(f"{key}={value!r} must be a number {bound}{what}")
    return float(value)


def positive_number(config, key):
    """``config[key]`` as a float above 0 (a learning rate)."""
    return number_setting(config, key, 0, True, ", e.g. 0.001.")


def request_weight(config):
    """``train_request_weight``: the item head's weight of the search signals' mean loss beside
    the sequential signals' mean; a number of at least 0."""
    return number_setting(
        config,
        "train_request_weight",
        0,
        False,
        ": the weight of the search signals' mean loss beside the sequential signals' (1: two "
        "tasks alike).",
    )


def request_templates(config, templates, running_list, has_categories):
    """``train_request_templates`` and ``train_request_share``: the search tasks mixed into
    running-list training, and the share of rows that end with one of their requests.

    ``~`` templates: the four search templates where requests can be built (the running list
    on a dataset with item categories), none elsewhere. ``~`` share: 0.5 of the rows where
    there are templates. Returns (templates, share); ([], 0.0) when there are none."""
    ids = config["train_request_templates"]
    share = config["train_request_share"]
    if ids is None:
        ids = DEFAULT_REQUEST_TEMPLATES if running_list and has_categories else []
    if isinstance(ids, str):
        ids = [ids]
    if share is None:
        share = DEFAULT_REQUEST_SHARE if ids else 0
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ValueError(
            f"train_request_share={share!r} must be a number from 0 to 1: the share of "
            "training rows that end with a search request (0: sequential rows only)."
        )
    chosen = [get_template(templates, t, "train_request_templates") for t in ids]
    not_requests = [t.id for t in chosen if t.layout != "running_list" or not t.request]
    if not_requests:
        raise ValueError(
            f"train_request_templates names {not_requests}, which have no request: line of "
            "the running list. Use running-list search templates such as psearch-list, "
            "vague-list, explicit-list or search-list."
        )
    if chosen and share and not running_list:
        raise ValueError(
            f"train_request_templates={ids} add search rows to the running list, and "
            "eval_template is of the instruction layout. Train seq-list, or list instruction "
            "templates in train_templates instead."
        )
    if share and not chosen:
        raise ValueError(
            f"train_request_share={share} asks for search rows, but train_request_templates is "
            "empty; list some, e.g. [psearch-list, vague-list, explicit-list, search-list], or "
            "set train_request_share: 0."
        )
    return (chosen, float(share)) if chosen and share else ([], 0.0)


def text_categories(config, categories):
    """``item_text_categories``: True writes each item's categories after its text; ``~`` does
    so where the dataset has a category field (the words people ask for: the search tasks
    gain from them, docs/results.md "Search tasks")."""
    value = config["item_text_categories"]
    if value is None:
        return categories is not None
    if not isinstance(value, bool):
        raise ValueError(
            f"item_text_categories={value!r} must be True, False or ~ (on where the dataset "
            "has a category field)."
        )
    return value


def _item_head_part(config, key, score_head, part):
    """``config[key]``, a bool that adds ``part`` to the item head's vectors: refused without
    the item head."""
    value = config[key]  # a bool: its declared type is checked first
    if value and score_head != "items":
        raise ValueError(
            f"{key}=True adds {part} to the item head's item vectors, and "
            f"score_head={score_head!r} has none. Use score_head: items, or {key}: False."
        )
    return value


def head_categories(config, score_head, categories):
    """``item_head_categories``: True adds each item's category vectors to its item head
    vector; it needs the item head and a dataset with item categories."""
    value = _item_head_part(config, "item_head_categories", score_head, "category vectors")
    if value and categories is None:
        raise ValueError(
            "item_head_categories=True needs item categories, and this dataset has no "
            "category field. Name one with item_category_field (and load it with load_col), "
            "or set item_head_categories: False."
        )
    return value


def head_collab(config, score_head):
    """``item_head_collab``: True adds a projection of ``collab_model_checkpoint``'s item
    embeddings to each item head vector; it needs the item head and that checkpoint."""
    value = _item_head_part(config, "item_head_collab", score_head, "collaborative embeddings")
    if value and not config["collab_model_checkpoint"]:
        raise ValueError(
            "item_head_collab=True reads the item embeddings of collab_model_checkpoint, which "
            "is not set. Give collab_model_checkpoint=<a saved RecBole model, e.g. "
            "saved/SASRec-*.pth>, or set item_head_collab: False."
        )
    return value


def head_request_vectors(config, score_head):
    """``item_head_request_vectors``: True adds the frozen LM's reading of a search request's
    words to the item head's user vector; it needs the item head."""
    return _item_head_part(config, "item_head_request_vectors", score_head, "request readings")


# Settings that only one layout or head reads: (who reads it, given (running_list, score_head)).
READ_ONLY_BY = {
    "item_token_curriculum_steps": (
        "the instruction layout (it moves prompts from text-only to hybrid)",
        lambda running_list, head: not running_list,
    ),
    "ranking_temperature": (
        "the likelihood head's listwise loss",
        lambda running_list, head: head == "likelihood",
    ),
    "score_normalization": (
        "the likelihood head (a candidate's text log-likelihood)",
        lambda running_list, head: head == "likelihood",
    ),
    "train_request_weight": ("the item head's loss", lambda running_list, head: head == "items"),
    "item_head_size": ("the item head", lambda running_list, head: head == "items"),
    "item_head_learning_rate": ("the item head", lambda running_list, head: head == "items"),
}


def check_read(config, running_list, score_head):
    """A setting moved from its declared default that the chosen layout and head never read is
    refused: it would change nothing, silently."""
    for key, (reader, reads) in READ_ONLY_BY.items():
        if config[key] != SETTINGS[key].value and not reads(running_list, score_head):
            layout = "running list" if running_list else "instruction layout"
            raise ValueError(
                f"{key}={config[key]!r} is read only by {reader}, and this run trains the "
                f"{layout} with score_head={score_head}: it would change nothing. Drop it, or "
                "choose the layout or head that reads it."
            )


def fusion_weight(config):
    weight = config["fusion_weight"]
    if weight is None:
        return None
    if not config["fusion_model"]:
        raise FusionError(
            f"fusion_weight={weight!r} weighs the scores of fusion_model, which is not set; "
            "give fusion_model=<a saved RecBole checkpoint>, or drop fusion_weight."
        )
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise FusionError(
            f"fusion_weight={weight!r} must be a number >= 0 (0: the LLM alone), or ~ to fit "
            "it on validation."
        )
    return float(weight)


def check_evaluation(config, n_items, has_retriever, has_fusion=False):
    """Say so when an evaluation setting would silently cost far more than intended, or a
    setting would silently do nothing."""
    modes = config["eval_args"]["mode"]
    modes = modes.values() if isinstance(modes, dict) else [modes]
    limit = config["full_sort_max_items"]
    for mode in modes:
        if has_fusion and mode in FULL_RANKING_MODES:
            raise FusionError(
                f"fusion_model fuses scores of sampled candidates, but eval_args mode is "
                f"'{mode}' (full ranking). Use a sampled mode (e.g. uni9), or for full ranking "
                "drop fusion_model and set candidate_model (two-stage re-ranking)."
            )
        if mode in FULL_RANKING_MODES and not has_retriever and limit and n_items > limit:
            raise ValueError(
                f"eval_args mode '{mode}' scores all {n_items - 1} items for every user with the "
                f"LLM, more than full_sort_max_items={limit}. Use candidate_model=<a saved "
                "RecBole model> for two-stage full ranking, a sampled mode such as uni99, or "
                "raise full_sort_max_items if you can afford it."
            )
    for phase in ("valid", "test"):
        args = config[f"{phase}_neg_sample_args"] or {}
        sample_num = args.get("sample_num")
        if isinstance(sample_num, int) and config["eval_batch_size"] % (sample_num + 1):
            getLogger().warning(
                f"eval_batch_size={config['eval_batch_size']} is not a multiple of "
                f"{sample_num + 1} (a user's positive + {sample_num} negatives): RecBole packs "
                "whole users into each batch, so batches hold "
                f"{config['eval_batch_size'] // (sample_num + 1) * (sample_num + 1)} rows."
            )
            break
