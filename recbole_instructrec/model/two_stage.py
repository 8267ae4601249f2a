"""Two-stage full ranking inside the model: a saved RecBole model (``candidate_model``)
proposes its top ``rerank_top_k`` items and the LLM re-ranks them.

The retriever is kept out of the module tree: it is neither trained nor saved with the
adapters.
"""

import torch

from recbole_instructrec.scoring.retriever import load_retriever, retrieve_top_k


class TwoStageRanking:
    """InstructRec's full ranking through a retriever: a mixin that scores with the model's
    prompts and scorer."""

    def _init_two_stage(self, config, dataset):
        self.candidate_model = config["candidate_model"]
        self.rerank_top_k = config["rerank_top_k"]
        self._retriever = (
            [load_retriever(self.candidate_model, dataset)] if self.candidate_model else []
        )

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
