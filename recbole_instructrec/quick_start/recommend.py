"""Ask for recommendations: a user (an id from the dataset, or titles typed as the history), an
optional free-text instruction, and a trained adapter checkpoint (or none, zero-shot).

The instruction goes into the intention slot of a template with the same task form as the
model's: ``instruction_template`` (default ``vague-match-1``, P1 + I1: history plus a wish), so
a LoRA trained with intention templates follows it. Without an instruction the model's own
evaluation template (sequential recommendation) is used.
"""

import os
import re
import unicodedata
from dataclasses import dataclass, field

import torch
from recbole.config import Config
from recbole.data import create_dataset

from recbole_instructrec.model import InstructRec
from recbole_instructrec.prompts.templates import get_template
from recbole_instructrec.trainer import checkpoint as ckpt

# Settings a checkpoint carries over to the recommender (the rest are training details).
CARRIED = (
    "data_path",
    "llm_path",
    "llm_cache_dir",
    "lora_r",
    "lora_alpha",
    "lora_target_modules",
    "item_id_tokens",
    "collab_model_checkpoint",
    "collab_embedding_size",
    "projector_hidden_size",
    "item_token_min_interactions",
    "item_text_fields",
    "instruction_templates",
    "eval_template",
    "max_history_items",
    "max_prompt_tokens",
    "max_item_tokens",
    "use_chat_template",
    "system_prompt",
    "score_normalization",
    "item_category_field",
    "load_col",
    "seed",
    "USER_ID_FIELD",
    "ITEM_ID_FIELD",
    "TIME_FIELD",
)


@dataclass
class Recommendations:
    items: list  # dicts: rank, item_id, title, score
    history: list  # titles used as the history, oldest first
    unmatched: list = field(default_factory=list)  # typed titles that matched no item
    prompt: str = ""  # the instruction as rendered (before the chat template)


class Recommender:
    """A loaded model ready to answer many requests."""

    def __init__(self, dataset="ml-100k", checkpoint=None, config_dict=None):
        settings = {"state": "ERROR", "show_progress": False, "log_wandb": False}
        if checkpoint:
            header, tensors = ckpt.read_checkpoint(checkpoint)
            stored = header["meta"].get("config", {})
            settings.update({k: stored[k] for k in CARRIED if k in stored})
            dataset = stored.get("dataset", dataset)
            # RecBole's final config holds data_path joined with the dataset name.
            path = settings.get("data_path")
            if path and os.path.basename(os.path.normpath(path)) == dataset:
                settings["data_path"] = os.path.dirname(os.path.normpath(path))
        settings.update(config_dict or {})
        self.config = Config(model="InstructRec", dataset=dataset, config_dict=settings)
        self.dataset = create_dataset(self.config)
        self.model = InstructRec(self.config, self.dataset).to(self.config["device"])
        if checkpoint:
            ckpt.check_compatible(checkpoint, header["meta"], self.model.checkpoint_identity())
            ckpt.load_model_state(self.model, tensors)
        self.model.eval()
        self._by_title = self._title_index()

    def _title_index(self):
        index = {}
        for item, text in enumerate(self.model.texts[1:], 1):
            for key in {_normalize(text), _normalize(re.sub(r"\s*\([^)]*\)$", "", text))}:
                index.setdefault(key, item)
        return index

    def user_history(self, user):
        """A dataset user's items, oldest first."""
        uid_field, iid_field = self.dataset.uid_field, self.dataset.iid_field
        token2id = self.dataset.field2token_id[uid_field]
        if str(user) not in token2id:
            raise KeyError(
                f"user {user!r} is not in dataset '{self.dataset.dataset_name}'; give a user id "
                "from its .inter file, or the history as titles."
            )
        inter = self.dataset.inter_feat  # a DataFrame before data preparation
        users = _column(inter, uid_field)
        rows = users == token2id[str(user)]
        items = _column(inter, iid_field)[rows]
        time_field = self.dataset.time_field
        if time_field in inter:
            items = items[_column(inter, time_field)[rows].argsort(kind="stable")]
        return items.tolist()

    def _retrieved(self, history, include_history):
        """The retriever's top ``rerank_top_k`` items (two-stage candidates), the whole
        history left out unless ``include_history``."""
        from recbole.data.interaction import Interaction

        from recbole_instructrec.scoring.retriever import retrieve_top_k

        recent = history[-self.model.max_seq_length :] or [0]
        seq = torch.zeros((1, self.model.max_seq_length), dtype=torch.long)
        seq[0, : len(recent)] = torch.tensor(recent)
        interaction = Interaction(
            {
                self.model.ITEM_SEQ: seq,
                self.model.ITEM_SEQ_LEN: torch.tensor(
                    [max(len(history[-self.model.max_seq_length :]), 1)]
                ),
            }
        )
        exclude = None if include_history else [history]
        _, top = retrieve_top_k(
            self.model._retriever[0], interaction, self.model.rerank_top_k, exclude=exclude
        )
        return top[0].tolist()

    def match_titles(self, titles):
        """Catalogue items for typed titles (case and punctuation do not matter)."""
        matched, unmatched = [], []
        for title in titles:
            item = self._by_title.get(_normalize(title))
            (matched if item else unmatched).append(item or title)
        return matched, unmatched

    @torch.no_grad()
    def recommend(
        self,
        user=None,
        history_titles=None,
        instruction=None,
        top_k=10,
        candidates=None,
        include_history=False,
        instruction_template="vague-match-1",
    ):
        unmatched = []
        if user is not None:
            history = self.user_history(user)
        else:
            history, unmatched = self.match_titles(history_titles or [])
        builder = self.model.prompts
        if instruction:
            template = get_template(
                self.model.templates, instruction_template, "instruction_template"
            )
            builder = self.model._builder(template)
        if candidates is None and self.model._retriever:
            candidates = self._retrieved(history, include_history)
        pool = list(candidates) if candidates is not None else list(range(1, self.model.n_items))
        if not include_history:
            seen = set(history)
            pool = [i for i in pool if i not in seen]
        plan = builder.plan(history, pool, intention=instruction)
        scores, _, _ = self.model._score_plans([plan], self.model._inference_scorer())[0]
        order = scores.argsort(descending=True)[:top_k].tolist()
        tokens = self.dataset.field2id_token[self.dataset.iid_field]
        items = [
            {
                "rank": rank,
                "item_id": str(tokens[pool[i]]),
                "title": self.model.texts[pool[i]],
                "score": round(float(scores[i]), 4),
            }
            for rank, i in enumerate(order, 1)
        ]
        return Recommendations(
            items=items,
            history=[self.model.texts[i] for i in builder._recent(history)],
            unmatched=unmatched,
            prompt=builder.render(history, intention=instruction or ""),
        )


def _column(frame, name):
    values = frame[name]
    return values.numpy() if hasattr(values, "numpy") else values.to_numpy()


def _normalize(title):
    text = unicodedata.normalize("NFKD", str(title)).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", " ", text.lower())
    return " ".join(text.split())


def format_table(result):
    lines = []
    if result.unmatched:
        lines.append("Titles that matched no item (left out): " + "; ".join(result.unmatched))
    lines.append(f"History ({len(result.history)}): " + " | ".join(result.history[-5:]))
    lines.append(f"{'rank':>4}  {'score':>8}  {'item_id':<12} title")
    for row in result.items:
        lines.append(f"{row['rank']:>4}  {row['score']:>8.4f}  {row['item_id']:<12} {row['title']}")
    return "\n".join(lines)
