"""Every InstructRec setting, declared once: its name, type, default and what it does.

``properties/InstructRec.yaml``, which RecBole reads for the defaults, is rendered from this
table: ``python -m recbole_instructrec.model.setting_declarations``, run from the repository
root, writes it, and a test fails when the two differ. The code reads the settings through
:mod:`.settings`, which checks the values; this table says what each one is.

A type is one or more of ``int``, ``float``, ``bool``, ``str``, ``list``, ``dict``, joined by
`` | ``; ``~`` (YAML's null) means "decided for you", and each help says how.
"""

import os
import sys
import textwrap
from dataclasses import dataclass

import yaml

HEADER = (
    "# InstructRec defaults, rendered from recbole_instructrec/model/setting_declarations.py\n"
    "# (edit the declarations there, not this file). Precedence: RecBole defaults < this file\n"
    "# < your config files < config dict < command line (--key=value).\n"
)
VALUE_COLUMN = 28
WIDTH = 99
_TYPES = {
    "int": int,
    "float": (float, int),
    "bool": bool,
    "str": (str, os.PathLike),
    "list": list,
    "dict": dict,
    "~": type(None),
}


@dataclass(frozen=True)
class Setting:
    name: str
    type: str
    default: str  # as YAML writes it, so the file reads as declared ("~", "0.0", "[Hit, NDCG]")
    help: str
    recbole: bool = False  # RecBole's own setting, with our default: RecBole checks its values

    @property
    def value(self):
        return yaml.safe_load(self.default)

    def type_error(self, value=None, given=False):
        """Why ``value`` (the default unless ``given``) is not of the declared type, or None."""
        names = [t.strip() for t in self.type.split("|")]
        unknown = [t for t in names if t not in _TYPES]
        if unknown:
            return f"{self.name}: unknown type {unknown} (use {sorted(_TYPES)})"
        value = value if given else self.value

        def fits(name):
            if name in ("int", "float") and isinstance(value, bool):
                return False  # YAML's True is no number, though Python's bool is an int
            return isinstance(value, _TYPES[name])

        if any(fits(t) for t in names):
            return None
        if given:
            return (
                f"{self.name}={value!r} must be {self.type.replace('~', '~ (unset)')}: {self.help}"
            )
        return f"{self.name}: default {self.default!r} is not {self.type}"


@dataclass(frozen=True)
class Section:
    title: str


DECLARATIONS = (
    Section("language model"),
    Setting(
        "llm_path",
        "str | ~",
        "~",
        "HF directory, hub id, .gguf file; ~ = embedded SmolLM2-135M-Instruct",
    ),
    Setting(
        "llm_cache_dir",
        "str | ~",
        "~",
        "where a de-quantized GGUF is cached; ~ = ~/.cache/recbole_instructrec",
    ),
    Setting(
        "llm_dtype",
        "str",
        "float32",
        "float32 | bfloat16 | float16 (half precision only pays off on GPU)",
    ),
    Setting(
        "load_in_bits",
        "int | ~",
        "~",
        "4 | 8: QLoRA, base weights quantized by bitsandbytes (CUDA only)",
    ),
    Section("LoRA (peft); base weights are frozen"),
    Setting("lora_r", "int", "8", "0 = no adapter (zero-shot)"),
    Setting("lora_alpha", "int", "16", "the adapters' update is scaled by lora_alpha / lora_r"),
    Setting(
        "lora_dropout",
        "float",
        "0.0",
        "0: peft skips a dropout mask on every adapted layer's input",
    ),
    Setting(
        "lora_target_modules", "str | list", "all-linear", "or a list such as [q_proj, v_proj]"
    ),
    Section("instructions"),
    Setting(
        "item_text_fields",
        "list | str | ~",
        "~",
        "~ = a title-like field (+ release_year), e.g. [title, brand]",
    ),
    Setting(
        "item_text_categories",
        "bool | ~",
        "~",
        'True: an item\'s text ends with its categories (item_category_field), "Scream (1996), Horror, Thriller", so items name what people ask for; ~ = True where the dataset has a category field',
    ),
    Setting(
        "instruction_templates",
        "str | ~",
        "~",
        "a YAML file with your own templates (same format as ours)",
    ),
    Setting(
        "eval_template",
        "str | ~",
        "~",
        "template used for scoring (see prompts/templates.yaml); ~ = seq-list (the running list: every position of a window trained in one pass) for a causal LM, seq-match-1 (the paper's one prompt per training prefix) for an encoder-decoder model, with task_form, or with instruction-layout train_templates",
    ),
    Setting(
        "task_form",
        "str | ~",
        "~",
        "T0 pointwise | T1 pairwise | T2 matching | T3 reranking: picks the template of that form with eval_template's preference/intention",
    ),
    Setting(
        "train_templates",
        "list | str | ~",
        "~",
        "~ = eval_template; a list of ids: one drawn at random per example",
    ),
    Setting(
        "item_category_field",
        "str | ~",
        "~",
        "categories for intentions (I1/I2) and P2; ~ = class/genre/categories",
    ),
    Setting(
        "user_preference_field",
        "str | ~",
        "~",
        "a user text field for P2 (explicit preference); ~ = history summary",
    ),
    Setting("rerank_window", "int", "20", "T3: candidates listed per prompt (labels A..T)"),
    Setting(
        "max_history_items", "int", "10", "P1: the last N items of the history, most recent last"
    ),
    Setting("max_prompt_tokens", "int", "384", "oldest history items are dropped to fit"),
    Setting("max_item_tokens", "int", "32", "longer item texts are cut"),
    Setting(
        "use_chat_template", "bool", "True", "wrap the instruction in the tokenizer's chat template"
    ),
    Setting(
        "system_prompt",
        "str | ~",
        "~",
        "~ = the chat template's own default; '' = an empty system turn (SmolLM2: 16 tokens fewer per prompt)",
    ),
    Section("scoring"),
    Setting(
        "score_head",
        "str",
        "likelihood",
        "likelihood: a candidate's score is the LM's log-likelihood of its text (the paper's); items: the item head, the LM's state where the next item begins against one vector per item (its text's vector + a learned part): the whole catalogue from one position, trained with a full softmax at every position (running list only; train_negatives plays no part)",
    ),
    Setting("item_head_size", "int", "256", "width of the item head's user and item vectors"),
    Setting(
        "item_head_categories",
        "bool",
        "False",
        "True: an item's vector also sums its categories' learned vectors (item head, on a dataset with item categories)",
    ),
    Setting(
        "item_head_collab",
        "bool",
        "False",
        "True: an item's vector also adds a learned projection of collab_model_checkpoint's item embeddings (kept fixed): the hybrid item head",
    ),
    Setting(
        "item_head_request_vectors",
        "bool",
        "False",
        "True: a search request's words, read by the frozen LM as item texts are, add to the item head's user vector (through the item projection, times a learned gate, and a projection of their own; both start at zero): a short path from what is asked to the items that match it",
    ),
    Setting(
        "item_head_learning_rate",
        "float",
        "0.001",
        "the item head's own pace (its item vectors and biases); learning_rate stays the adapters'",
    ),
    Setting(
        "item_mentions",
        "str",
        "text",
        "text: a history item is its text's tokens; compact (item head only): one input position, its text vector projected into the LM's embedding space (or its collaborative embedding with item_id_tokens): a list costs a position an item; both (item head only): that position, then the item's text",
    ),
    Setting(
        "score_normalization", "str", "mean", "mean (per-token log-prob) | sum (sequence log-prob)"
    ),
    Setting("max_batch_tokens", "int", "4096", "packed tokens per forward pass"),
    Setting(
        "max_row_tokens", "int", "2048", "one user's prompt + candidates beyond this are chunked"
    ),
    Setting(
        "candidate_model",
        "str | ~",
        "~",
        "a RecBole checkpoint (e.g. saved/SASRec-*.pth): full ranking re-ranks its top rerank_top_k items with the LLM",
    ),
    Setting(
        "rerank_top_k",
        "int",
        "20",
        "full ranking with candidate_model: how many of its top items the LLM re-ranks",
    ),
    Setting(
        "full_sort_max_items",
        "int",
        "5000",
        "above this, full ranking without candidate_model is refused",
    ),
    Setting(
        "fusion_model",
        "str | ~",
        "~",
        "a RecBole checkpoint whose scores are fused with the LLM's (sampled evaluation): z(LLM) + fusion_weight * z(model), per user",
    ),
    Setting("fusion_weight", "float | ~", "~", "~ = fitted on the validation users after training"),
    Setting(
        "instruction_guidance",
        "float | ~",
        "~",
        "instructrec recommend with an instruction: add this weight times z(LLM with it - LLM without it) to the standardised ranking score; ~ = 1 for a fused model (fusion_model), whose fusion model cannot read the instruction, and 0 otherwise",
    ),
    Section("hybrid: collaborative item tokens (LLaRA-style)"),
    Setting(
        "item_id_tokens",
        "bool",
        "False",
        "every item mention also carries one token from item embeddings",
    ),
    Setting(
        "collab_model_checkpoint",
        "str | ~",
        "~",
        "a RecBole checkpoint (e.g. saved/SASRec-*.pth) whose item_embedding feeds the tokens (kept fixed); ~ = a table learned jointly",
    ),
    Setting(
        "collab_embedding_size", "int", "64", "width of the jointly learned table (no checkpoint)"
    ),
    Setting(
        "projector_hidden_size",
        "int",
        "256",
        "the trainable 2-layer projector into the LM's embedding space",
    ),
    Setting(
        "item_token_curriculum_steps",
        "int",
        "0",
        "batches over which examples move from text-only to hybrid",
    ),
    Setting(
        "item_token_min_interactions",
        "int",
        "0",
        "items seen fewer times in training share one learned token",
    ),
    Section("training"),
    Setting(
        "train_negatives",
        "int",
        "4",
        "uniform negatives per training row, sampled in the model; 0 = the positive's generation loss alone (the paper's objective; T2 only): against negatives at every position, level on ml-100k and far behind on amazon-games (benchmarks/experiments/training-objectives)",
    ),
    Setting(
        "train_negative_positions",
        "int | str | ~",
        "~",
        "running list: positions of each row that get the negatives (and the listwise loss), drawn at random; the others train the generation loss alone. ~ = 2 (a step costs about a third of every position's); all = every position",
    ),
    Setting(
        "train_request_templates",
        "list | str | ~",
        "~",
        "running list: search templates mixed into training; a row that draws one ends with its request (built from that row's next item). ~ = [psearch-list, vague-list, explicit-list, search-list] where the dataset has item categories, [] elsewhere",
    ),
    Setting(
        "train_request_share",
        "float | ~",
        "~",
        "share of training rows that end with a request (0 to 1); ~ = 0.5 where there are request templates. 0 = sequential rows only",
    ),
    Setting(
        "train_request_weight",
        "float",
        "0.3",
        "item head: weight of the search signals' mean loss beside the sequential signals' mean (a request row has one search signal among up to 50 sequential ones). 0.3 is fitted on ml-100k validation users over the next-item, specific and vague tasks (benchmarks/experiments/item-head)",
    ),
    Setting(
        "ranking_temperature", "float", "0.25", "softmax temperature of the listwise ranking loss"
    ),
    Setting(
        "lm_loss_weight",
        "float",
        "0.5",
        "weight of the positive's generation loss beside the ranking loss",
    ),
    Setting(
        "train_steps_per_epoch",
        "int | ~",
        "110",
        "batches per epoch (RecBole turns every prefix into a sample); ~ = a whole epoch. With seq-list, about 10 training signals a row; 110 steps keep the main job within 20 minutes on an Intel Xeon's 2 cores, not on every CPU (benchmarks/experiments/main-job)",
    ),
    Setting(
        "gradient_accumulation_steps",
        "int",
        "1",
        "batches whose gradients add up before an optimizer step",
    ),
    Setting(
        "gradient_checkpointing",
        "bool",
        "False",
        "recompute activations in backward: less memory, ~30% slower",
    ),
    Setting(
        "enable_amp",
        "bool | ~",
        "~",
        "RecBole's mixed precision switch: autocast training and evaluation in amp_dtype; ~ = on where bf16 is native (a CPU with avx512_bf16 or AMX, a CUDA GPU that supports it), off elsewhere (emulated: slower)",
    ),
    Setting(
        "amp_dtype",
        "str",
        "bfloat16",
        "bfloat16 | float16 (float16 wants enable_scaler: True, on CUDA)",
    ),
    Setting("eval_progress", "bool", "True", "tqdm bar during evaluation"),
    Setting(
        "train_neg_sample_args",
        "dict | ~",
        "~",
        "negatives come from the model (see train_negatives)",
        recbole=True,
    ),
    Setting(
        "loss_type",
        "str",
        "CE",
        "RecBole's loss type; InstructRec computes its own loss (calculate_loss)",
        recbole=True,
    ),
    Setting(
        "epochs",
        "int",
        "1",
        "epochs of train_steps_per_epoch batches, validated after each",
        recbole=True,
    ),
    Setting("train_batch_size", "int", "4", "training rows per batch", recbole=True),
    Setting(
        "learning_rate",
        "float",
        "0.0003",
        "the adapters' (and any projector's) learning rate",
        recbole=True,
    ),
    Setting(
        "eval_batch_size",
        "int",
        "250",
        "rows; a multiple of 1 + negatives (10 under uni9)",
        recbole=True,
    ),
    Setting("eval_step", "int", "1", "validate every eval_step epochs", recbole=True),
    Setting(
        "valid_templates",
        "list | str | ~",
        "~",
        "templates whose validation scores are averaged: the score that picks the best epoch (and a bench row's validation-grid point) weighs each task alike, e.g. [seq-list, psearch-list, vague-list]. ~ = eval_template alone",
    ),
    Setting(
        "valid_max_users",
        "int | ~",
        "100",
        "validate on a seeded sample of users (~ = all); test uses all users",
    ),
    Setting(
        "resume_checkpoint",
        "str | ~",
        "~",
        "run_recbole: a checkpoint (saved/*.resume.safetensors) to go on training from",
    ),
    Setting(
        "stopping_step", "int", "3", "stop after this many validations without gain", recbole=True
    ),
    Section("protocol: the paper's leave-one-out with 9 random negatives"),
    Setting(
        "load_col",
        "dict | ~",
        "~",
        "load every column: item text comes from the .item file",
        recbole=True,
    ),
    Setting(
        "eval_args",
        "dict",
        "  split: {'LS': 'valid_and_test'}\n  order: TO\n  group_by: user\n  mode: {valid: uni9, test: uni9}",
        "RecBole's split, order, grouping and candidate draw: the paper's leave-one-out with 9 random negatives (uni9)",
        recbole=True,
    ),
    Setting("metrics", "list", "[Hit, NDCG]", "RecBole's metrics", recbole=True),
    Setting("topk", "list", "[1, 3, 5, 10]", "cut-offs of the metrics", recbole=True),
    Setting(
        "valid_metric",
        "str",
        "NDCG@5",
        "the validation score that picks the best epoch",
        recbole=True,
    ),
)

SETTINGS = {d.name: d for d in DECLARATIONS if isinstance(d, Setting)}


def check_types(config):
    """Each of InstructRec's own settings in ``config`` is of its declared type (RecBole checks
    its own); a wrong one is refused with its name, type and help."""
    for setting in SETTINGS.values():
        if not setting.recbole:
            error = setting.type_error(config[setting.name], given=True)
            if error:
                raise ValueError(error)


def render(declarations=DECLARATIONS):
    """The text of properties/InstructRec.yaml."""
    lines = [HEADER.rstrip("\n")]
    for d in declarations:
        if isinstance(d, Section):
            lines += ["", f"# --- {d.title} ".ljust(WIDTH - 10, "-")]
            continue
        about = f"{d.type}: {d.help}"
        if "\n" in d.default:  # a mapping written as a block: its help goes above it
            lines += _comment(about, "", WIDTH)
            lines += [f"{d.name}:", *d.default.split("\n")]
            continue
        head = f"{d.name}: {d.default}"
        column = max(VALUE_COLUMN, len(head) + 2)
        wrapped = _comment(about, " " * column, WIDTH)
        lines.append(head.ljust(column) + wrapped[0][column:])
        lines += wrapped[1:]
    return "\n".join(lines) + "\n"


def _comment(text, indent, width):
    return textwrap.wrap(
        text,
        width,
        initial_indent=indent + "# ",
        subsequent_indent=indent + "# ",
        break_on_hyphens=False,
    )


def main(path="properties/InstructRec.yaml"):
    """Writes the properties file (run from the repository root) from the declarations."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(render())
    print(f"wrote {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
