r"""
InstructRec
################################################

Reference:
    Junjie Zhang, Ruobing Xie, Yupeng Hou, Wayne Xin Zhao, Leyu Lin and Ji-Rong Wen.
    "Recommendation as Instruction Following: A Large Language Model Empowered Recommendation
    Approach." ACM TOIS 2024 (arXiv:2305.07001).

A user's interaction sequence becomes an instruction (preference P1: the titles of the last
``max_history_items`` items; task: predict the next item). Each candidate item is scored by the
language model's log-likelihood of its title as the answer, and candidates are ranked by that
score. The LM (any Hugging Face causal or encoder-decoder LM) carries LoRA adapters; its base
weights stay frozen.

Hybrid (``item_id_tokens``, after LLaRA: Liao et al., "LLaRA: Large Language-Recommendation
Assistant", SIGIR 2024): every item mention also carries one item token, a RecBole model's item
embedding (``collab_model_checkpoint``, e.g. SASRec) or a jointly learned one, mapped into the
LM's embedding space by a trainable projector that trains with the LoRA.
"""

import contextlib
import copy
from logging import getLogger

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_instructrec.data.training_counts import items_seen_at_least
from recbole_instructrec.model.running_list_loss import running_list_loss
from recbole_instructrec.prompts.builder import PromptBuilder, cap_item_texts
from recbole_instructrec.prompts.intentions import (
    IntentionSource,
    item_categories,
    load_vague_table,
    user_texts,
)
from recbole_instructrec.prompts.item_text import item_text_fields, item_texts
from recbole_instructrec.prompts.running_list import RunningListBuilder
from recbole_instructrec.prompts.templates import (
    TASK_FORMS,
    TemplateError,
    get_template,
    load_templates,
)
from recbole_instructrec.scoring.backbone import load_backbone
from recbole_instructrec.scoring.continuation import ContinuationScorer
from recbole_instructrec.scoring.fusion import FusionError, fuse
from recbole_instructrec.scoring.item_tokens import (
    collab_item_embeddings,
    install_item_tokens,
    learned_item_table,
)
from recbole_instructrec.scoring.lora import attach_lora, prepare_for_training
from recbole_instructrec.scoring.retriever import (
    load_retriever,
    recent_history,
    retrieve_top_k,
)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class InstructRec(SequentialRecommender):
    r"""InstructRec ranks candidates by their likelihood as the answer to an instruction."""

    input_type = InputType.POINTWISE
    # RecBole's get_flops deep-copies the model and runs predict: pointless cost for an LLM.
    count_flops = False

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.llm_path = config["llm_path"]
        self.llm_cache_dir = config["llm_cache_dir"]
        self.llm_dtype = _setting_choice(config, "llm_dtype", DTYPES)
        self.lora_r = config["lora_r"]
        self.lora_alpha = config["lora_alpha"]
        self.lora_dropout = config["lora_dropout"]
        self.lora_target_modules = config["lora_target_modules"]
        self.eval_template = config["eval_template"]
        self.max_history_items = _int_setting(config, "max_history_items", 1)
        self.max_prompt_tokens = _int_setting(config, "max_prompt_tokens", 16)
        self.max_item_tokens = _int_setting(config, "max_item_tokens", 1)
        self.score_normalization = config["score_normalization"]
        _setting_choice(config, "score_normalization", {"mean": 0, "sum": 0})
        self.train_negatives = _int_setting(config, "train_negatives", 1)
        self.ranking_temperature = config["ranking_temperature"]
        self.lm_loss_weight = config["lm_loss_weight"]
        self.max_batch_tokens = config["max_batch_tokens"]
        self.max_row_tokens = config["max_row_tokens"]
        self.load_in_bits = config["load_in_bits"]
        self.gradient_checkpointing = bool(config["gradient_checkpointing"])
        self.item_id_tokens = bool(config["item_id_tokens"])
        self.collab_model_checkpoint = config["collab_model_checkpoint"]
        self.collab_embedding_size = _int_setting(config, "collab_embedding_size", 1)
        self.projector_hidden_size = _int_setting(config, "projector_hidden_size", 1)
        self.item_token_curriculum_steps = _int_setting(config, "item_token_curriculum_steps", 0)
        self.item_token_min_interactions = _int_setting(config, "item_token_min_interactions", 0)
        if self.collab_model_checkpoint and not self.item_id_tokens:
            raise ValueError(
                f"collab_model_checkpoint={self.collab_model_checkpoint!r} is only read by the "
                "hybrid model: set item_id_tokens: True as well (or drop the checkpoint)."
            )

        # define layers: the LM with LoRA adapters (only the adapters train)
        backbone = load_backbone(
            self.llm_path, self.llm_cache_dir, self.llm_dtype, load_in_bits=self.load_in_bits
        )
        prepare_for_training(backbone.model, self.gradient_checkpointing, self.load_in_bits)
        self.llm_source = backbone.source
        self.llm_identity = backbone.identity
        self.is_encoder_decoder = backbone.is_encoder_decoder
        self.llm = attach_lora(
            backbone.model,
            r=self.lora_r,
            alpha=self.lora_alpha,
            dropout=self.lora_dropout,
            target_modules=self.lora_target_modules,
        )
        self.tokenizer = backbone.tokenizer
        self.item_tokens = self._install_item_tokens(dataset, config["seed"])
        _check_context(backbone.model.config, self.max_prompt_tokens, self.max_item_tokens)

        # item texts and instructions
        self.item_text_fields = item_text_fields(config, dataset)
        self.texts = item_texts(dataset, self.item_text_fields)
        self._capped_texts = cap_item_texts(self.tokenizer, self.texts, self.max_item_tokens)
        self.intentions = IntentionSource(
            item_categories(config, dataset),
            load_vague_table(),
            user_texts(config, dataset),
        )
        self.templates = load_templates(config["instruction_templates"])
        self.task_form = config["task_form"]
        template = self._eval_template()
        self._builder_settings = dict(
            is_encoder_decoder=self.is_encoder_decoder,
            max_history_items=self.max_history_items,
            max_prompt_tokens=self.max_prompt_tokens,
            max_item_tokens=self.max_item_tokens,
            use_chat_template=config["use_chat_template"],
            system_prompt=config["system_prompt"],
            intentions=self.intentions,
            normalization=self.score_normalization,
            seed=config["seed"],
            rerank_window=config["rerank_window"],
            first_item_token=self.item_tokens.first_item_token if self.item_tokens else None,
        )
        self._builders = {}
        self.prompts = self._builder(template)
        train_ids = config["train_templates"] or [template.id]
        if isinstance(train_ids, str):
            train_ids = [train_ids]
        self.train_templates = [
            get_template(self.templates, t, "train_templates") for t in train_ids
        ]
        for t in self.train_templates:
            self._builder(t)  # fail at start, not mid-training, on a slot the data cannot fill
        self.running_list = _one_layout(template, self.train_templates) == "running_list"
        self.template_generator = torch.Generator().manual_seed(int(config["seed"] or 0) + 1)
        self._loss_calls = 0  # training batches seen: the item-token curriculum's clock
        self.scorer = self._scorer_for(self.llm)
        self._eval_scorer = None

        # two-stage full ranking: a saved RecBole model proposes, the LLM re-ranks its top-K.
        # Kept out of the module tree: it is neither trained nor saved with the adapters.
        self.candidate_model = config["candidate_model"]
        self.rerank_top_k = config["rerank_top_k"]
        self._retriever = (
            [load_retriever(self.candidate_model, dataset)] if self.candidate_model else []
        )
        # score fusion: standardised LLM scores + fusion_weight x a saved RecBole model's,
        # the weight fitted on validation by the trainer unless given. Also kept out of the
        # module tree.
        self.fusion_model = config["fusion_model"]
        self.fusion_weight = _fusion_weight(config)
        self._fusion_model = (
            [load_retriever(self.fusion_model, dataset, setting="fusion_model")]
            if self.fusion_model
            else []
        )
        self.negative_generator = torch.Generator().manual_seed(int(config["seed"] or 0))
        _check_evaluation(config, self.n_items, bool(self._retriever), bool(self._fusion_model))

    def _eval_template(self):
        template = get_template(self.templates, self.eval_template)
        if self.task_form is None or template.task_form == self.task_form:
            return template
        if self.task_form not in TASK_FORMS:
            raise TemplateError(
                f"task_form={self.task_form!r} is not a task form; use one of {TASK_FORMS}."
            )
        for candidate in self.templates.values():
            if (candidate.task_form, candidate.preference, candidate.intention) == (
                self.task_form,
                template.preference,
                template.intention,
            ):
                return candidate
        raise TemplateError(
            f"task_form={self.task_form} has no template with eval_template={template.id!r}'s "
            f"preference {template.preference} and intention {template.intention}; set "
            "eval_template to a template of that form."
        )

    def _install_item_tokens(self, dataset, seed):
        if not self.item_id_tokens:
            return None
        if self.collab_model_checkpoint:
            table = collab_item_embeddings(self.collab_model_checkpoint, dataset)
        else:
            table = learned_item_table(self.n_items, self.collab_embedding_size, seed)
        known = (
            items_seen_at_least(dataset, self.item_token_min_interactions)
            if self.item_token_min_interactions
            else None
        )
        return install_item_tokens(
            self.llm,
            table,
            train_table=not self.collab_model_checkpoint,
            projector_hidden_size=self.projector_hidden_size,
            known_items=known,
        )

    def _builder(self, template, item_tokens=True):
        """The prompt builder of ``template``; ``item_tokens=False`` gives the text-only one
        of a hybrid model (the curriculum's early steps)."""
        hybrid = bool(self.item_tokens) and item_tokens
        key = (template.id, hybrid)
        if key not in self._builders:
            self.intentions.check_fillable(template)
            settings = dict(self._builder_settings)
            if not hybrid:
                settings["first_item_token"] = None
            builder = RunningListBuilder if template.layout == "running_list" else PromptBuilder
            self._builders[key] = builder(self.tokenizer, self._capped_texts, template, **settings)
        return self._builders[key]

    def train(self, mode=True):
        # Any switch of mode invalidates the merged evaluation copy of the LM.
        self._eval_scorer = None
        return super().train(mode)

    def _scorer_for(self, llm):
        return ContinuationScorer(
            llm,
            is_encoder_decoder=self.is_encoder_decoder,
            max_batch_tokens=self.max_batch_tokens,
            max_row_tokens=self.max_row_tokens,
            first_input_only_token=self.item_tokens.first_item_token if self.item_tokens else None,
        )

    def _inference_scorer(self):
        """In eval mode: a copy of the LM with the adapters merged into its weights, so
        scoring runs no per-layer adapter matmuls. (int8 dynamic quantization and bf16 were
        measured and rejected for CPU: see the README and benchmarks/quantization.py.)"""
        if self.training or self.load_in_bits:
            return self.scorer  # merging into 4/8-bit weights would re-quantize them: lossy
        if self._eval_scorer is None:
            llm = self.llm
            if hasattr(llm, "merge_and_unload"):
                llm = copy.deepcopy(llm).merge_and_unload()
            self._eval_scorer = self._scorer_for(llm.eval())
        return self._eval_scorer

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        pos_items = interaction[self.POS_ITEM_ID].tolist()
        users = self._users(interaction)
        histories = _histories(item_seq, item_seq_len)
        if self.running_list:  # every position of each row's list, in one pass
            return running_list_loss(self, histories, pos_items)
        negatives = self._sample_negatives(histories, pos_items)
        picks = torch.randint(
            len(self.train_templates), (len(histories),), generator=self.template_generator
        ).tolist()
        hybrid = self._curriculum(len(histories))
        plans = [
            self._builder(self.train_templates[k], item_tokens=x).plan(h, [p] + n, target=p, user=u)
            for k, x, h, p, n, u in zip(picks, hybrid, histories, pos_items, negatives, users)
        ]
        scored = self._score_plans(plans, self.scorer)
        scores = torch.stack([s for s, _, _ in scored])
        # Listwise: the positive (column 0) must out-score the sampled negatives, whatever the
        # task form. For matching (T2) a generation term also keeps the LM able to write the
        # positive's title, the paper's seq2seq objective.
        target = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
        loss = F.cross_entropy(scores / self.ranking_temperature, target)
        matching = [
            sums[0] / counts[0]
            for (_, sums, counts), k in zip(scored, picks)
            if self.train_templates[k].task_form == "T2"
        ]
        if matching and self.lm_loss_weight:
            loss = loss - self.lm_loss_weight * torch.stack(matching).mean() * (
                len(matching) / len(picks)
            )
        return loss

    def _curriculum(self, n):
        """Which of ``n`` training examples carry item tokens: a share rising linearly from 0
        to 1 over ``item_token_curriculum_steps`` batches (text first, then hybrid)."""
        self._loss_calls += 1
        if not self.item_tokens or not self.item_token_curriculum_steps:
            return [True] * n
        share = min(self._loss_calls / self.item_token_curriculum_steps, 1.0)
        return (torch.rand(n, generator=self.template_generator) < share).tolist()

    def predict(self, interaction):
        return self.predict_parts(interaction)[0]

    def predict_parts(self, interaction):
        """(the ranking scores, the LLM's own scores): the same tensor unless ``fusion_model``
        is set, so one pass reports a fused model both fused and before fusion."""
        groups, scores = self._llm_predict(interaction)
        if not self._fusion_model:
            return scores, scores
        if self.fusion_weight is None:
            raise FusionError(
                "fusion_model is set but fusion_weight is not fitted yet: train with RecBole's "
                "trainer (it fits the weight on validation), or give fusion_weight=<number>."
            )
        other = self._fusion_scores(interaction)
        fused = torch.empty_like(scores)
        for rows in groups:
            fused[rows] = fuse(scores[rows], other[rows], self.fusion_weight).to(scores.dtype)
        return fused, scores

    def fusion_groups(self, interaction):
        """Per user: (LLM scores, fusion model scores) of its sampled rows, positive first."""
        groups, scores = self._llm_predict(interaction)
        other = self._fusion_scores(interaction)
        return [(scores[rows].cpu(), other[rows].cpu()) for rows in groups]

    def fusion_weight_unfitted(self):
        return bool(self._fusion_model) and self.fusion_weight is None

    @contextlib.contextmanager
    def provisional_fusion_weight(self, weight):
        """``weight`` stands in while the fusion weight is not fitted yet."""
        unfitted = self.fusion_weight_unfitted()
        if unfitted:
            self.fusion_weight = weight
        try:
            yield
        finally:
            if unfitted:
                self.fusion_weight = None

    def _fusion_scores(self, interaction):
        model = self._fusion_model[0].to(interaction[self.ITEM_SEQ].device)
        with torch.no_grad():
            return model.predict(recent_history(interaction, model)).float()

    def _llm_predict(self, interaction):
        """(each user's rows, the LLM's score of every row)."""
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        items = interaction[self.ITEM_ID].tolist()
        users = self._users(interaction)
        # RecBole flattens sampled evaluation into rows, a user's positive first, then its
        # negatives; a user's rows share one prompt. Only intention templates (search tasks)
        # read the positive, to state what the user asks for.
        rows_by_user = {}
        for row, history in enumerate(_histories(item_seq, item_seq_len)):
            rows_by_user.setdefault((users[row], tuple(history)), []).append(row)
        plans = [
            self.prompts.plan(
                list(history), [items[r] for r in rows], target=items[rows[0]], user=user
            )
            for (user, history), rows in rows_by_user.items()
        ]
        scores = torch.empty(len(items), device=item_seq.device)
        groups = [torch.tensor(rows, device=scores.device) for rows in rows_by_user.values()]
        for rows, (user_scores, _, _) in zip(
            groups, self._score_plans(plans, self._inference_scorer())
        ):
            scores[rows] = user_scores.to(scores.dtype)
        return groups, scores

    def full_sort_predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        histories = _histories(item_seq, item_seq_len)
        if self._retriever:
            return self._rerank_retrieved(interaction, item_seq, histories)
        targets = self._full_sort_targets(interaction, len(histories))
        users = self._users(interaction)
        everything = list(range(1, self.n_items))
        plans = [
            self.prompts.plan(h, everything, target=t, user=u)
            for h, t, u in zip(histories, targets, users)
        ]
        scores = torch.full((len(histories), self.n_items), float("-inf"), device=item_seq.device)
        scored = self._score_plans(plans, self._inference_scorer())
        scores[:, 1:] = torch.stack([s for s, _, _ in scored]).to(scores.dtype)
        return scores

    def _rerank_retrieved(self, interaction, item_seq, histories):
        """The retriever's top-K, ordered by the LLM, above every other item, which keeps the
        retriever's order."""
        retriever = self._retriever[0].to(item_seq.device)
        scores, top = retrieve_top_k(retriever, interaction, self.rerank_top_k)
        targets = self._full_sort_targets(interaction, len(histories))
        users = self._users(interaction)
        plans = [
            self.prompts.plan(h, row, target=t, user=u)
            for h, row, t, u in zip(histories, top.tolist(), targets, users)
        ]
        scored = self._score_plans(plans, self._inference_scorer())
        llm = torch.stack([s for s, _, _ in scored]).to(scores.dtype)
        lift = scores.amax(1, keepdim=True) - llm.amin(1, keepdim=True) + 1.0
        return scores.scatter(1, top, llm + lift)

    def _score_plans(self, plans, scorer):
        """(scores per candidate, raw logprob sums, token counts) for every plan, from one
        batched scorer call over all their requests."""
        prompts, continuations, spans = [], [], []
        for plan in plans:
            spans.append((len(prompts), len(prompts) + len(plan.requests)))
            for prefix, conts in plan.requests:
                prompts.append(prefix)
                continuations.append(conts)
        result = scorer.score(prompts, continuations)
        out = []
        for plan, (start, stop) in zip(plans, spans):
            if stop > start:
                sums = torch.cat(result.logprob_sums[start:stop])
                counts = torch.cat(result.token_counts[start:stop])
            else:
                sums = counts = torch.zeros(0, device=self.device)
            out.append((plan.combine(sums, counts), sums, counts))
        return out

    def _users(self, interaction):
        if self.USER_ID in interaction:
            return interaction[self.USER_ID].tolist()
        return [None] * len(interaction)

    def _full_sort_targets(self, interaction, n):
        # Full-sort rows carry the true next item in ITEM_ID; only search templates read it.
        if self.ITEM_ID in interaction:
            return interaction[self.ITEM_ID].tolist()
        return [None] * n

    def checkpoint_identity(self):
        """What a checkpoint must match to be loaded into this model."""
        return {
            "model": type(self).__name__,
            "llm": self.llm_identity,
            "n_items": int(self.n_items),
            "adapter_shapes": {
                n: list(p.shape) for n, p in self.named_parameters() if p.requires_grad
            },
        }

    def rng_state(self):
        return {"negatives": self.negative_generator.get_state()}

    def load_rng_state(self, states):
        if "negatives" in states:
            self.negative_generator.set_state(states["negatives"])

    def _sample_negatives(self, histories, positives):
        """``train_negatives`` uniform items per row, never the positive or a history item."""
        negatives = []
        for history, positive in zip(histories, positives):
            excluded = set(history) | {positive, 0}
            if self.n_items - len(excluded) < self.train_negatives:
                raise ValueError(
                    f"train_negatives={self.train_negatives} is more than the "
                    f"{self.n_items - len(excluded)} items a user can have as negatives; lower it."
                )
            picked = []
            while len(picked) < self.train_negatives:
                draw = torch.randint(
                    1, self.n_items, (2 * self.train_negatives,), generator=self.negative_generator
                ).tolist()
                for item in draw:
                    if item not in excluded and len(picked) < self.train_negatives:
                        picked.append(item)
                        excluded.add(item)
            negatives.append(picked)
        return negatives


def _histories(item_seq, item_seq_len):
    """Each row's history, oldest first (RecBole right-pads item_id_list)."""
    return [seq[:n] for seq, n in zip(item_seq.tolist(), item_seq_len.tolist())]


def _one_layout(eval_template, train_templates):
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


def _int_setting(config, key, minimum):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key}={value!r} must be an integer of at least {minimum}.")
    return value


def _check_context(hf_config, max_prompt_tokens, max_item_tokens):
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


def _fusion_weight(config):
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


def _check_evaluation(config, n_items, has_retriever, has_fusion=False):
    """Say so when an evaluation setting would silently cost far more than intended, or a
    setting would silently do nothing."""
    modes = config["eval_args"]["mode"]
    modes = modes.values() if isinstance(modes, dict) else [modes]
    limit = config["full_sort_max_items"]
    for mode in modes:
        if has_fusion and mode in ("full", "uni0", "pop0"):
            raise FusionError(
                f"fusion_model fuses scores of sampled candidates, but eval_args mode is "
                f"'{mode}' (full ranking). Use a sampled mode (e.g. uni9), or for full ranking "
                "drop fusion_model and set candidate_model (two-stage re-ranking)."
            )
        if mode in ("full", "uni0", "pop0") and not has_retriever and limit and n_items > limit:
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


def _setting_choice(config, key, choices):
    value = config[key]
    if value not in choices:
        raise ValueError(f"{key}={value!r} is not supported; use one of {sorted(choices)}.")
    return choices[value]
