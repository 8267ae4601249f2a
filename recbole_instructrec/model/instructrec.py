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
"""

import copy

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_instructrec.prompts.builder import PromptBuilder
from recbole_instructrec.prompts.item_text import item_text_fields, item_texts
from recbole_instructrec.prompts.templates import get_template, load_templates
from recbole_instructrec.scoring.backbone import load_backbone
from recbole_instructrec.scoring.continuation import ContinuationScorer
from recbole_instructrec.scoring.lora import attach_lora

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
        self.max_history_items = config["max_history_items"]
        self.max_prompt_tokens = config["max_prompt_tokens"]
        self.max_item_tokens = config["max_item_tokens"]
        self.score_normalization = config["score_normalization"]
        self.train_negatives = config["train_negatives"]
        self.ranking_temperature = config["ranking_temperature"]
        self.lm_loss_weight = config["lm_loss_weight"]
        self.max_batch_tokens = config["max_batch_tokens"]
        self.max_row_tokens = config["max_row_tokens"]

        # define layers: the LM with LoRA adapters (only the adapters train)
        backbone = load_backbone(self.llm_path, self.llm_cache_dir, self.llm_dtype)
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
        self.templates = load_templates(config["instruction_templates"])
        self.prompts = PromptBuilder(
            self.tokenizer,
            item_texts(dataset, self.item_text_fields),
            get_template(self.templates, self.eval_template),
            is_encoder_decoder=self.is_encoder_decoder,
            max_history_items=self.max_history_items,
            max_prompt_tokens=self.max_prompt_tokens,
            max_item_tokens=self.max_item_tokens,
            use_chat_template=config["use_chat_template"],
            system_prompt=config["system_prompt"],
        )
        self.scorer = self._scorer_for(self.llm)
        self._eval_scorer = None
        self.negative_generator = torch.Generator().manual_seed(int(config["seed"] or 0))

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
        )

    def _inference_scorer(self):
        """In eval mode: a copy of the LM with the adapters merged into its weights, so
        scoring runs no per-layer adapter matmuls. (int8 dynamic quantization was measured
        and rejected: see benchmarks/results/quantization.md.)"""
        if self.training:
            return self.scorer
        if self._eval_scorer is None:
            llm = self.llm
            if hasattr(llm, "merge_and_unload"):
                llm = copy.deepcopy(llm).merge_and_unload()
            self._eval_scorer = self._scorer_for(llm.eval())
        return self._eval_scorer

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        pos_items = interaction[self.POS_ITEM_ID]
        histories = _histories(item_seq, item_seq_len)
        negatives = self._sample_negatives(histories, pos_items.tolist())
        candidates = [[p] + n for p, n in zip(pos_items.tolist(), negatives)]
        result = self.scorer.score(
            [self.prompts.prompt_ids(h) for h in histories],
            [[self.prompts.answer_ids(i) for i in row] for row in candidates],
        )
        scores = torch.stack(result.normalized(self.score_normalization))
        # Listwise: the positive must out-score the sampled negatives. The generation term keeps
        # the LM able to write the positive's title, the paper's seq2seq objective.
        target = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
        ranking_loss = F.cross_entropy(scores / self.ranking_temperature, target)
        sums = torch.stack([s[0] for s in result.logprob_sums])
        counts = torch.stack([c[0] for c in result.token_counts])
        lm_loss = -(sums / counts).mean()
        return ranking_loss + self.lm_loss_weight * lm_loss

    def predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        test_item = interaction[self.ITEM_ID]
        # RecBole flattens sampled evaluation into rows (positive + negatives per user); rows
        # with the same history share one prompt.
        rows_by_history = {}
        for row, history in enumerate(_histories(item_seq, item_seq_len)):
            rows_by_history.setdefault(tuple(history), []).append(row)
        items = test_item.tolist()
        result = self._inference_scorer().score(
            [self.prompts.prompt_ids(h) for h in rows_by_history],
            [
                [self.prompts.answer_ids(items[r]) for r in rows]
                for rows in rows_by_history.values()
            ],
        )
        scores = torch.empty(len(items), device=item_seq.device)
        for rows, user_scores in zip(
            rows_by_history.values(), result.normalized(self.score_normalization)
        ):
            scores[torch.tensor(rows, device=scores.device)] = user_scores.to(scores.dtype)
        return scores

    def full_sort_predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        histories = _histories(item_seq, item_seq_len)
        all_items = [self.prompts.answer_ids(i) for i in range(1, self.n_items)]
        result = self._inference_scorer().score(
            [self.prompts.prompt_ids(h) for h in histories], [all_items] * len(histories)
        )
        scores = torch.full((len(histories), self.n_items), float("-inf"), device=item_seq.device)
        scores[:, 1:] = torch.stack(result.normalized(self.score_normalization)).to(scores.dtype)
        return scores

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


def _setting_choice(config, key, choices):
    value = config[key]
    if value not in choices:
        raise ValueError(f"{key}={value!r} is not supported; use one of {sorted(choices)}.")
    return choices[value]
