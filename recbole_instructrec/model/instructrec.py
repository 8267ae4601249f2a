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

Beside this file: :mod:`.settings` reads and checks the settings, :mod:`.hybrid` adds item
tokens (``item_id_tokens``, after LLaRA: Liao et al., "LLaRA: Large Language-Recommendation
Assistant", SIGIR 2024), :mod:`.score_fusion` fuses the scores with a saved RecBole model's
(``fusion_model``), :mod:`.two_stage` re-ranks a saved RecBole model's top K for full ranking
(``candidate_model``), :mod:`.running_list_loss` builds the running-list layout's training
rows, and :mod:`.losses` holds the losses both layouts share.
``score_head: items`` scores the whole catalogue from one hidden state instead
(:mod:`..scoring.item_head`).
"""

import copy

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_instructrec.data.training_counts import target_counts
from recbole_instructrec.model import settings
from recbole_instructrec.model.hybrid import HybridItemTokens
from recbole_instructrec.model.losses import listwise_loss, positive_logprob
from recbole_instructrec.model.negatives import sample_negatives
from recbole_instructrec.model.running_list_loss import (
    LikelihoodLoss,
    NegativeDraw,
    RowSource,
    item_head_loss,
    running_list_loss,
)
from recbole_instructrec.model.score_fusion import ScoreFusion
from recbole_instructrec.model.setting_declarations import check_types
from recbole_instructrec.model.two_stage import TwoStageRanking
from recbole_instructrec.prompts.builder import PromptBuilder, cap_item_texts
from recbole_instructrec.prompts.intentions import (
    IntentionSource,
    item_categories,
    load_vague_table,
    user_texts,
)
from recbole_instructrec.prompts.item_text import item_text_fields, item_texts, with_categories
from recbole_instructrec.prompts.running_list import RunningListBuilder
from recbole_instructrec.prompts.templates import get_template, load_templates
from recbole_instructrec.scoring.backbone import load_backbone
from recbole_instructrec.scoring.continuation import ContinuationScorer
from recbole_instructrec.scoring.item_head import build_item_head, plan_scores
from recbole_instructrec.scoring.lora import attach_lora, prepare_for_training


class InstructRec(HybridItemTokens, ScoreFusion, TwoStageRanking, SequentialRecommender):
    r"""InstructRec ranks candidates by their likelihood as the answer to an instruction."""

    input_type = InputType.POINTWISE
    # RecBole's get_flops deep-copies the model and runs predict: pointless cost for an LLM.
    count_flops = False

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        check_types(config)  # each setting of ours is of its declared type, before any is used

        # load parameters info
        self.llm_path = config["llm_path"]
        self.llm_cache_dir = config["llm_cache_dir"]
        self.llm_dtype = settings.setting_choice(config, "llm_dtype", settings.DTYPES)
        self.lora_r = config["lora_r"]
        self.lora_alpha = config["lora_alpha"]
        self.lora_dropout = config["lora_dropout"]
        self.lora_target_modules = config["lora_target_modules"]
        self.max_history_items = settings.int_setting(config, "max_history_items", 1)
        self.max_prompt_tokens = settings.int_setting(config, "max_prompt_tokens", 16)
        self.max_item_tokens = settings.int_setting(config, "max_item_tokens", 1)
        self.score_normalization = config["score_normalization"]
        settings.setting_choice(config, "score_normalization", {"mean": 0, "sum": 0})
        self.train_negatives = settings.int_setting(config, "train_negatives", 0)
        self.ranking_temperature = config["ranking_temperature"]
        self.lm_loss_weight = config["lm_loss_weight"]
        self.max_batch_tokens = config["max_batch_tokens"]
        self.max_row_tokens = config["max_row_tokens"]
        self.load_in_bits = config["load_in_bits"]
        self.gradient_checkpointing = bool(config["gradient_checkpointing"])
        self.score_head = settings.setting_choice(config, "score_head", settings.SCORE_HEADS)
        self.item_head_size = settings.int_setting(config, "item_head_size", 1)
        self.item_head_learning_rate = settings.positive_number(config, "item_head_learning_rate")
        self.item_mentions = settings.setting_choice(
            config, "item_mentions", settings.ITEM_MENTIONS
        )
        settings.check_item_mentions(self.item_mentions, self.score_head)
        self._read_item_token_settings(config)

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

        # item texts and instructions
        self.item_text_fields = item_text_fields(config, dataset)
        categories = item_categories(config, dataset)
        # titles: what a person reads and types; texts: what the prompts mention
        self.titles = item_texts(dataset, self.item_text_fields)
        self.texts = self.titles
        if settings.text_categories(config, categories):
            self.texts = with_categories(self.texts, categories, "item_text_categories")
        self._capped_texts = cap_item_texts(self.tokenizer, self.texts, self.max_item_tokens)
        self.item_head, self.request_reader = None, None
        head_categories = settings.head_categories(config, self.score_head, categories)
        head_collab = self._item_head_collab(config, dataset)
        head_requests = settings.head_request_vectors(config, self.score_head)
        if self.score_head == "items":
            self.item_head, self.request_reader = build_item_head(
                self.llm,
                self.tokenizer,
                self.texts,
                self.llm_identity,
                self.llm_cache_dir,
                self.item_head_size,
                target_counts(dataset),
                categories if head_categories else None,
                head_collab,
                head_requests,
            )
        # compact (and both) mentions read the item head's text vectors: installed after it
        self.item_tokens = self._install_item_tokens(dataset, config["seed"])
        settings.check_context(backbone.model.config, self.max_prompt_tokens, self.max_item_tokens)
        self.intentions = IntentionSource(
            categories, load_vague_table(), user_texts(config, dataset)
        )
        self.templates = load_templates(config["instruction_templates"])
        self.task_form = config["task_form"]
        self.eval_template = settings.eval_template_id(
            config, self.templates, self.is_encoder_decoder
        )
        self.logger.info(f"eval_template: {self.eval_template}")
        template = settings.eval_template(self.templates, self.eval_template, self.task_form)
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
            compact_mentions=self.item_mentions == "compact",
        )
        self._builders = {}
        self.prompts = self._builder(template)
        self.train_templates = settings.train_templates(config, self.templates, template)
        for t in self.train_templates:
            self._builder(t)  # fail at start, not mid-training, on a slot the data cannot fill
        self.running_list = settings.one_layout(template, self.train_templates) == "running_list"
        self.valid_templates = settings.valid_templates(config, self.templates, template)
        for t in self.valid_templates:
            self._builder(t)
        self.generation_only = settings.generation_only(self.train_negatives, self.train_templates)
        self.train_negative_positions = settings.negative_positions(
            config, self.running_list, self.train_negatives
        )
        self.request_weight = settings.request_weight(config)
        self.request_templates, self.request_share = settings.request_templates(
            config, self.templates, self.running_list, categories is not None
        )
        for t in self.request_templates:
            self._builder(t)
        if self.item_head is not None:
            settings.check_item_head(self.running_list, self.eval_template)
        settings.check_read(config, self.running_list, self.score_head)
        self.template_generator = torch.Generator().manual_seed(int(config["seed"] or 0) + 1)
        self.request_generator = torch.Generator().manual_seed(int(config["seed"] or 0) + 2)
        self._loss_calls = 0  # training batches seen: the item-token curriculum's clock
        # predictions trained (one per prompt, or one per running-list position); the trainer
        # logs it and a checkpoint records it
        self.training_signals = 0
        self.scorer = self._scorer_for(self.llm)
        self._eval_scorer = None

        # saved RecBole models: a retriever for two-stage full ranking, a model to fuse with
        self._init_two_stage(config, dataset)
        self._init_score_fusion(config, dataset)
        self.negative_generator = torch.Generator().manual_seed(int(config["seed"] or 0))
        # what the running-list losses read (they share the generators above)
        self.row_source = RowSource(
            self._builder,
            self.train_templates,
            self.template_generator,
            self.intentions,
            self.request_share,
            self.request_templates,
            self.request_generator,
        )
        self.likelihood_loss = LikelihoodLoss(
            NegativeDraw(
                self._sample_negatives, self.train_negative_positions, self.negative_generator
            ),
            self.generation_only,
            self.ranking_temperature,
            self.lm_loss_weight,
        )
        settings.check_evaluation(
            config, self.n_items, bool(self._retriever), bool(self._fusion_model)
        )

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        pos_items = interaction[self.POS_ITEM_ID].tolist()
        users = self._users(interaction)
        histories = _histories(item_seq, item_seq_len)
        if self.running_list:  # every position of each row's list, in one pass
            if self.item_head is not None:
                loss, signals = item_head_loss(
                    self.row_source,
                    self.scorer,
                    self.item_head,
                    histories,
                    pos_items,
                    users,
                    self.request_weight,
                    self.lm_loss_weight,
                    self.request_reader,
                )
            else:
                loss, signals = running_list_loss(
                    self.row_source, self.scorer, self.likelihood_loss, histories, pos_items, users
                )
            self.training_signals += signals
            return loss
        self.training_signals += len(histories)
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
        if self.generation_only:
            return -positive_logprob([s for _, s, _ in scored], [c for _, _, c in scored])
        # Listwise: the positive (column 0) must out-score the sampled negatives, whatever the
        # task form. For matching (T2) a generation term also keeps the LM able to write the
        # positive's title, the paper's seq2seq objective.
        loss = listwise_loss(torch.stack([s for s, _, _ in scored]), self.ranking_temperature)
        matching = [x for x, k in zip(scored, picks) if self.train_templates[k].task_form == "T2"]
        if matching and self.lm_loss_weight:
            generation = positive_logprob([s for _, s, _ in matching], [c for _, _, c in matching])
            loss = loss - self.lm_loss_weight * generation * (len(matching) / len(picks))
        return loss

    def predict(self, interaction):
        return self.predict_parts(interaction)[0]  # fused when fusion_model is set

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

    def use_eval_template(self, template_id, held_out_phrasings=False):
        """Score with another template from now on (the benchmark's instruction tasks): the
        trained adapters stay, only the prompt changes. ``held_out_phrasings`` words vague
        intentions with the phrasings training never draws."""
        template = get_template(self.templates, template_id, "eval_template")
        self.prompts = self._builder(template, held_out_phrasings=held_out_phrasings)
        return self.prompts

    def _builder(self, template, item_tokens=True, held_out_phrasings=False):
        """The prompt builder of ``template``; ``item_tokens=False`` gives the text-only one
        of a hybrid model (the curriculum's early steps)."""
        hybrid = bool(self.item_tokens) and item_tokens
        key = (template.id, hybrid, held_out_phrasings)
        if key not in self._builders:
            self.intentions.check_fillable(template)
            builder_settings = dict(self._builder_settings, held_out_phrasings=held_out_phrasings)
            if not hybrid:
                builder_settings["first_item_token"] = None
            builder = RunningListBuilder if template.layout == "running_list" else PromptBuilder
            self._builders[key] = builder(
                self.tokenizer, self._capped_texts, template, **builder_settings
            )
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
        measured and rejected for CPU: see benchmarks/quantization.py.)"""
        if self.training or self.load_in_bits:
            return self.scorer  # merging into 4/8-bit weights would re-quantize them: lossy
        if self._eval_scorer is None:
            llm = self.llm
            if hasattr(llm, "merge_and_unload"):
                llm = copy.deepcopy(llm).merge_and_unload()
            self._eval_scorer = self._scorer_for(llm.eval())
        return self._eval_scorer

    def _score_plans(self, plans, scorer):
        """(scores per candidate, raw logprob sums, token counts) for every plan, from one
        batched scorer call over all their requests (the item head: one position a plan)."""
        if self.item_head is not None:
            return plan_scores(self.item_head, scorer, plans, self.request_reader)
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

    def _sample_negatives(self, histories, positives):
        """``train_negatives`` uniform items per row, never the positive or a history item."""
        return sample_negatives(
            histories, positives, self.n_items, self.train_negatives, self.negative_generator
        )

    def _users(self, interaction):
        if self.USER_ID in interaction:
            return interaction[self.USER_ID].tolist()
        return [None] * len(interaction)

    def _full_sort_targets(self, interaction, n):
        # Full-sort rows carry the true next item in ITEM_ID; only search templates read it.
        if self.ITEM_ID in interaction:
            return interaction[self.ITEM_ID].tolist()
        return [None] * n

    def parameter_groups(self):
        """What the optimizer trains: the adapters (and any projector) at ``learning_rate``,
        the item head at ``item_head_learning_rate``: its per-item vectors and biases each
        see a few gradients an epoch, as SASRec's item embeddings do, and want its pace."""
        head = list(self.item_head.parameters()) if self.item_head is not None else []
        in_head = {id(p) for p in head}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in in_head]
        groups = [{"params": rest}] if rest else []
        if head:
            groups.append({"params": head, "lr": float(self.item_head_learning_rate)})
        return groups

    def resolved_settings(self):
        """What the settings left to ``~`` resolved to, which a checkpoint keeps as its own
        field (RecBole's config keeps what the user gave): ``instructrec recommend`` and
        ``serve`` rebuild the prompts that were trained."""
        return {"eval_template": self.eval_template}

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


def _histories(item_seq, item_seq_len):
    """Each row's history, oldest first (RecBole right-pads item_id_list)."""
    return [seq[:n] for seq, n in zip(item_seq.tolist(), item_seq_len.tolist())]
