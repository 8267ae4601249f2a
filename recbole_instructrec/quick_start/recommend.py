"""Ask for recommendations: a user (an id from the dataset, or titles typed as the history), an
optional free-text instruction, and a trained adapter checkpoint (or none, zero-shot).

The instruction goes into the intention slot of a template in the model's layout:
``instruction_template`` (default ``vague-list`` for a running-list model, the history then the
wish as a user turn of its own, as ``train_request_templates`` trains it; ``vague-match-1`` for
the instruction layout), so a LoRA trained with search requests reads it where it learned to. Without an instruction the model's own
evaluation template (sequential recommendation) is used.

A model trained with ``fusion_model`` is served fused, with the weight fitted in training (the
checkpoint records it): the fusion model reads the same history, but not the instruction.

``instruction_guidance`` (default: 1 for a fused model, 0 otherwise) gives the instruction a
say of its own, whatever the model learned: the candidates are also scored without the
instruction, and the ranking score becomes
``z(score) + instruction_guidance * z(LLM with the instruction - LLM without it)``. The
difference is what the instruction changed, with the user's general taste taken out (the idea
of classifier-free guidance). It costs a second scoring pass per request with an instruction.
"""

import os
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import torch
from recbole.config import Config
from recbole.data import create_dataset

from recbole_instructrec.model import InstructRec
from recbole_instructrec.prompts.templates import get_template
from recbole_instructrec.scoring.fusion import FusionError, fuse
from recbole_instructrec.scoring.ranking import ranked_order
from recbole_instructrec.scoring.retriever import recent_history
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
    "item_text_categories",
    "score_head",
    "item_head_size",
    "item_head_categories",
    "item_head_collab",
    "item_head_request_vectors",
    "item_mentions",
    "instruction_templates",
    "eval_template",
    "max_history_items",
    "max_prompt_tokens",
    "max_item_tokens",
    "use_chat_template",
    "system_prompt",
    "score_normalization",
    "item_category_field",
    "fusion_model",
    "fusion_weight",
    "load_col",
    "seed",
    "USER_ID_FIELD",
    "ITEM_ID_FIELD",
    "TIME_FIELD",
)


# instruction_guidance: ~ for a fused model. Measured on ml-100k (README, "Instructions with the
# hybrid"): at 0 the fused model's genre shares do not move at all; at 1 both asked genres rise.
AUTO_GUIDANCE_FUSED = 1.0


@dataclass
class Recommendations:
    items: list  # dicts: rank, item_id, title, score
    history: list  # titles used as the history, oldest first
    unmatched: list = field(default_factory=list)  # typed titles that matched no item
    prompt: str = ""  # the instruction as rendered (before the chat template)


@dataclass
class ScoredPool:
    """One request's candidates and their scores, before ranking: the LLM's, and the fusion
    model's when ``fusion_model`` is set (the ranking fuses them with ``fusion_weight``)."""

    pool: list  # item ids
    llm_scores: torch.Tensor
    fusion_scores: torch.Tensor = None
    # the LLM's scores of the same pool without the instruction (instruction guidance)
    uninstructed_scores: torch.Tensor = None
    history: list = field(default_factory=list)  # titles used as the history, oldest first
    unmatched: list = field(default_factory=list)
    prompt: str = ""
    user: str = None  # the request's user, named if a score cannot be ranked


class Recommender:
    """A loaded model ready to answer many requests."""

    def __init__(self, dataset="ml-100k", checkpoint=None, config_dict=None):
        settings = {"state": "ERROR", "show_progress": False, "log_wandb": False}
        fitted_weight = None
        if checkpoint:
            header, tensors = ckpt.read_checkpoint(checkpoint)
            stored = header["meta"].get("config", {})
            settings.update({k: stored[k] for k in CARRIED if k in stored})
            # what ~ resolved to in training (kept apart from RecBole's config)
            resolved = header["meta"].get("resolved_settings", {})
            settings.update({k: v for k, v in resolved.items() if settings.get(k) is None})
            dataset = stored.get("dataset", dataset)
            fitted_weight = header["meta"].get("fusion_weight")
            # RecBole's final config holds data_path joined with the dataset name.
            path = settings.get("data_path")
            if path and os.path.basename(os.path.normpath(path)) == dataset:
                settings["data_path"] = os.path.dirname(os.path.normpath(path))
        settings.update(config_dict or {})
        if settings.get("fusion_model") and settings.get("fusion_weight") is None:
            settings["fusion_weight"] = fitted_weight  # a fused model is served as it was tested
        self.config = Config(model="InstructRec", dataset=dataset, config_dict=settings)
        self.dataset = create_dataset(self.config)
        self.model = InstructRec(self.config, self.dataset).to(self.config["device"])
        if checkpoint:
            ckpt.check_compatible(checkpoint, header["meta"], self.model.checkpoint_identity())
            ckpt.load_model_state(self.model, tensors)
        if self.model.fusion_weight_unfitted():
            raise FusionError(
                f"fusion_model={self.model.fusion_model!r} is set but no fitted fusion_weight "
                f"came with {'checkpoint ' + repr(checkpoint) if checkpoint else 'the settings'} "
                "(checkpoints written before the weight was fitted do not hold it): give "
                "fusion_weight=<number> (training logs it as 'fusion_weight = ...'), or "
                "fusion_weight=0 to rank by the LLM alone."
            )
        guidance = self.config["instruction_guidance"]
        if guidance is None:  # a fused model would otherwise all but ignore the instruction
            guidance = AUTO_GUIDANCE_FUSED if self.model._fusion_model else 0.0
        self.instruction_guidance = _guidance(guidance)
        # a typed instruction is read in the layout the model was trained in
        running_list = self.model.prompts.template.layout == "running_list"
        self.instruction_template = "vague-list" if running_list else "vague-match-1"
        self.model.eval()
        self._by_title = self._title_index()
        # interactions per item and normalised titles, made on the first title search
        self._popularity = self._normalized = None

    def _title_index(self):
        index = {}
        for item, text in enumerate(self.model.titles[1:], 1):
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

    def _history_interaction(self, history):
        """A one-row batch holding the most recent ``max_seq_length`` items, as RecBole's
        sequential models read it."""
        from recbole.data.interaction import Interaction

        recent = history[-self.model.max_seq_length :] or [0]
        seq = torch.zeros((1, self.model.max_seq_length), dtype=torch.long)
        seq[0, : len(recent)] = torch.tensor(recent)
        return Interaction(
            {
                self.model.ITEM_SEQ: seq,
                self.model.ITEM_SEQ_LEN: torch.tensor([max(len(recent), 1)]),
            }
        )

    def _retrieved(self, history, include_history):
        """The retriever's top ``rerank_top_k`` items (two-stage candidates), the whole
        history left out unless ``include_history``."""
        from recbole_instructrec.scoring.retriever import retrieve_top_k

        exclude = None if include_history else [history]
        _, top = retrieve_top_k(
            self.model._retriever[0],
            self._history_interaction(history),
            self.model.rerank_top_k,
            exclude=exclude,
        )
        return top[0].tolist()

    def _fusion_scores(self, history, pool):
        model = self.model._fusion_model[0]
        interaction = recent_history(self._history_interaction(history), model)
        scores = model.full_sort_predict(interaction).float()
        return scores[0, torch.as_tensor(pool, dtype=torch.long)].cpu()

    def match_titles(self, titles):
        """Catalogue items for typed titles (case and punctuation do not matter)."""
        matched, unmatched = [], []
        for title in titles:
            item = self._by_title.get(_normalize(title))
            (matched if item else unmatched).append(item or title)
        return matched, unmatched

    def search_titles(self, query, limit=10):
        """Items whose title holds ``query`` (matched as :meth:`match_titles` does: case and
        punctuation do not matter): titles that start with it first, each group the most
        interacted-with first. An empty query gives the most popular items."""
        words = _normalize(query)
        if self._popularity is None:
            items = _column(self.dataset.inter_feat, self.dataset.iid_field)
            self._popularity = np.bincount(items, minlength=self.model.n_items).tolist()
            self._normalized = [_normalize(text) for text in self.model.titles]
        found = []
        for item in range(1, len(self._normalized)):
            title = self._normalized[item]
            if words in title:
                found.append((not title.startswith(words), -self._popularity[item], title, item))
        return [item for *_, item in sorted(found)[:limit]]

    @torch.no_grad()
    def recommend(
        self,
        user=None,
        history_titles=None,
        instruction=None,
        top_k=10,
        candidates=None,
        include_history=False,
        instruction_template=None,
        guidance=None,
    ):
        return self.recommend_many([_request(locals())])[0]

    @torch.no_grad()
    def recommend_many(self, requests):
        """:meth:`recommend` of several requests (dicts of its keyword arguments), their prompts
        scored together in one packed pass (:meth:`score_many`)."""
        requests = [dict(r) for r in requests]
        top_ks = [r.pop("top_k", 10) for r in requests]
        scored = self.score_many(requests)
        return [
            self.rank(s, k, guidance=r.get("guidance")) for s, k, r in zip(scored, top_ks, requests)
        ]

    @torch.no_grad()
    def score(
        self,
        user=None,
        history_titles=None,
        instruction=None,
        candidates=None,
        include_history=False,
        instruction_template=None,
        guidance=None,
    ):
        """The candidates of one request and their scores, unranked (:meth:`recommend` is
        ``rank(score(...))``; apart, one scoring pass serves several weights). With an
        instruction and ``guidance`` (default: ``instruction_guidance``) above 0, the pool is
        also scored without the instruction."""
        return self.score_many([_request(locals())])[0]

    @torch.no_grad()
    def score_many(self, requests):
        """:meth:`score` of several requests (dicts of its keyword arguments): every request's
        prompts go to the scorer in one call, which packs them into shared forward passes."""
        prepared = [self._prepare(**request) for request in requests]
        plans = [plan for p in prepared for plan in p["plans"]]
        scored = self.model._score_plans(plans, self.model._inference_scorer()) if plans else []
        results, cursor = [], 0
        for p in prepared:
            own = scored[cursor : cursor + len(p["plans"])]
            cursor += len(p["plans"])
            history, pool = p["history"], p["pool"]
            results.append(
                ScoredPool(
                    user=p["user"],
                    pool=pool,
                    llm_scores=own[0][0].float().cpu(),
                    uninstructed_scores=own[1][0].float().cpu() if len(own) > 1 else None,
                    fusion_scores=(
                        self._fusion_scores(history, pool) if self.model._fusion_model else None
                    ),
                    history=[self.model.titles[i] for i in p["builder"]._recent(history)],
                    unmatched=p["unmatched"],
                    prompt=p["builder"].render(history, intention=p["instruction"] or ""),
                )
            )
        return results

    def _prepare(
        self,
        user=None,
        history_titles=None,
        instruction=None,
        candidates=None,
        include_history=False,
        instruction_template=None,
        guidance=None,
    ):
        """One request's history, candidate pool and scoring plans (with the instruction, and
        without it when guidance weighs its effect)."""
        unmatched = []
        if user is not None:
            history = self.user_history(user)
        else:
            history, unmatched = self.match_titles(history_titles or [])
        builder = self.model.prompts
        if instruction:
            template = get_template(
                self.model.templates,
                instruction_template or self.instruction_template,
                "instruction_template",
            )
            builder = self.model._builder(template)
        if candidates is None and self.model._retriever:
            candidates = self._retrieved(history, include_history)
        pool = list(candidates) if candidates is not None else list(range(1, self.model.n_items))
        if not include_history:
            seen = set(history)
            pool = [i for i in pool if i not in seen]
        plans = [builder.plan(history, pool, intention=instruction)]
        if instruction and self._guidance_weight(guidance) > 0:
            plans.append(self.model.prompts.plan(history, pool))
        return dict(
            user=user,
            history=history,
            pool=pool,
            plans=plans,
            builder=builder,
            unmatched=unmatched,
            instruction=instruction,
        )

    def _guidance_weight(self, guidance):
        """A request's instruction guidance: its own, validated, or the recommender's."""
        return self.instruction_guidance if guidance is None else _guidance(guidance)

    def rank(self, scored, top_k=10, fusion_weight=None, guidance=None):
        """The top ``top_k`` of a :meth:`score` result. A fused model ranks by the standardised
        LLM scores plus ``fusion_weight`` (default: the model's) times the fusion model's;
        its items then also show the LLM's own score. ``guidance`` (default:
        ``instruction_guidance``) weighs the instruction's own effect, when it was scored."""
        fused = scored.fusion_scores is not None
        if fused:
            weight = self.model.fusion_weight if fusion_weight is None else fusion_weight
            scores = fuse(scored.llm_scores, scored.fusion_scores, weight)
        else:
            scores = scored.llm_scores
        guidance = self._guidance_weight(guidance)
        if guidance and scored.uninstructed_scores is not None:
            effect = scored.llm_scores - scored.uninstructed_scores
            scores = fuse(scores, effect, guidance)
        order = ranked_order(scores.cpu().numpy(), "InstructRec", scored.user or "given by titles")[
            :top_k
        ].tolist()
        tokens = self.dataset.field2id_token[self.dataset.iid_field]
        items = []
        for rank, i in enumerate(order, 1):
            item = scored.pool[i]
            row = {
                "rank": rank,
                "item_id": str(tokens[item]),
                "title": self.model.titles[item],
                "score": round(float(scores[i]), 4),
            }
            if fused:
                row["llm_score"] = round(float(scored.llm_scores[i]), 4)
            items.append(row)
        return Recommendations(
            items=items, history=scored.history, unmatched=scored.unmatched, prompt=scored.prompt
        )


def _guidance(value):
    try:
        number = float(value or 0)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= 0:
        raise ValueError(
            f"instruction_guidance={value!r} must be a number >= 0 (0: the instruction only "
            "fills the prompt; 1: its own effect weighs as much as the model's ranking)."
        )
    return number


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
    fused = any("llm_score" in row for row in result.items)
    llm_column = f"  {'llm':>8}" if fused else ""
    lines.append(f"{'rank':>4}  {'score':>8}{llm_column}  {'item_id':<12} title")
    for row in result.items:
        llm = f"  {row['llm_score']:>8.4f}" if fused else ""
        lines.append(
            f"{row['rank']:>4}  {row['score']:>8.4f}{llm}  {row['item_id']:<12} {row['title']}"
        )
    return "\n".join(lines)


def _request(arguments):
    """A method's keyword arguments (its ``locals()`` on entry) as one request dict."""
    return {key: value for key, value in arguments.items() if key != "self"}
