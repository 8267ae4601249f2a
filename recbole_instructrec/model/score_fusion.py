"""Score fusion inside the model: the LLM's scores plus ``fusion_weight`` times a saved RecBole
model's (``fusion_model``), each standardised per user (:mod:`..scoring.fusion`).

The fusion model is kept out of the module tree: it is neither trained nor saved with the
adapters. The weight is fitted on validation by the trainer unless ``fusion_weight`` is given.
"""

import contextlib

import torch

from recbole_instructrec.model import settings
from recbole_instructrec.scoring.fusion import FusionError, fuse
from recbole_instructrec.scoring.retriever import as_trained, load_retriever, recent_history


class ScoreFusion:
    """InstructRec's fusion with a saved RecBole model: a mixin that reads the LLM's own scores
    from the model's ``_llm_predict``."""

    def _init_score_fusion(self, config, dataset):
        self.fusion_model = config["fusion_model"]
        self.fusion_weight = settings.fusion_weight(config)
        self._fusion_model = (
            [load_retriever(self.fusion_model, dataset, setting="fusion_model")]
            if self.fusion_model
            else []
        )

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
        with torch.no_grad(), as_trained(interaction):
            return model.predict(recent_history(interaction, model)).float()
