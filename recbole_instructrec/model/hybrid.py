"""The hybrid model's item tokens (``item_id_tokens``, after LLaRA): installing them in the LM
and the curriculum that moves training from text-only to hybrid prompts.

Every item mention also carries one item token: a RecBole model's item embedding
(``collab_model_checkpoint``, e.g. SASRec) or a jointly learned one, mapped into the LM's
embedding space by a trainable projector (:mod:`..scoring.item_tokens`).

Compact mentions (``item_mentions: compact``, with the item head) use the same tokens without
the text: an item is one input position, its item head text vector (the frozen LM's reading of
its text) through the projector, or the collaborative embedding where ``item_id_tokens`` asks
for one. A list of 50 items then costs 50 positions instead of about 800 tokens.

The hybrid item head (``item_head_collab``) adds the same checkpoint's item embeddings, through
a learned projection, to the item head's output vectors (:mod:`..scoring.item_head`).
"""

import torch

from recbole_instructrec.data.training_counts import items_seen_at_least
from recbole_instructrec.model import settings
from recbole_instructrec.model.settings import int_setting
from recbole_instructrec.scoring.item_tokens import (
    collab_item_embeddings,
    install_item_tokens,
    learned_item_table,
)


class HybridItemTokens:
    """A mixin: item-token settings, their installation, and the curriculum."""

    def _read_item_token_settings(self, config):
        self.item_id_tokens = bool(config["item_id_tokens"])
        self.collab_model_checkpoint = config["collab_model_checkpoint"]
        self.collab_embedding_size = int_setting(config, "collab_embedding_size", 1)
        self.projector_hidden_size = int_setting(config, "projector_hidden_size", 1)
        self.item_token_curriculum_steps = int_setting(config, "item_token_curriculum_steps", 0)
        self.item_token_min_interactions = int_setting(config, "item_token_min_interactions", 0)
        if self.collab_model_checkpoint and not (self.item_id_tokens or config["item_head_collab"]):
            raise ValueError(
                f"collab_model_checkpoint={self.collab_model_checkpoint!r} is only read by the "
                "hybrid models: set item_id_tokens: True (its item tokens) or item_head_collab: "
                "True (its item head vectors) as well, or drop the checkpoint."
            )

    def _item_head_collab(self, config, dataset):
        """The item embeddings the hybrid item head adds (``item_head_collab``), or None."""
        if not settings.head_collab(config, self.score_head):
            return None
        # loading builds the RecBole model, whose initial weights draw from torch's generator:
        # drawn on a copy, so every other initial weight stays as without the hybrid
        with torch.random.fork_rng(devices=[]):
            return collab_item_embeddings(self.collab_model_checkpoint, dataset)

    def _install_item_tokens(self, dataset, seed):
        compact = self.item_mentions in ("compact", "both")  # tokens from the text vectors
        if not self.item_id_tokens and not compact:
            return None
        if compact and not self.item_id_tokens:
            return install_item_tokens(
                self.llm,
                self.item_head.text_vectors,
                projector_hidden_size=self.projector_hidden_size,
            )
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

    def _curriculum(self, n):
        """Which of ``n`` training examples carry item tokens: a share rising linearly from 0
        to 1 over ``item_token_curriculum_steps`` batches (text first, then hybrid)."""
        self._loss_calls += 1
        if not self.item_tokens or not self.item_token_curriculum_steps:
            return [True] * n
        share = min(self._loss_calls / self.item_token_curriculum_steps, 1.0)
        return (torch.rand(n, generator=self.template_generator) < share).tolist()
