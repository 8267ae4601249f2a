"""The running-list layout: the instruction, then the history as a list the answer continues.

A template with ``layout: running_list`` (``seq-list``) asks for the list of the items a user
interacted with, and the history follows it, one item per line, in the model's answer turn::

    <instruction>          header: the chat-formatted instruction
    Toy Story (1995)\\n     one piece per item: its text and a newline, tokenized alone
    Heat (1995)\\n
    <candidate>\\n          the continuation scored for a candidate

Every token sequence is the header followed by whole pieces, each piece tokenized on its own.
So the prompt for a history is a token prefix of the list that holds that history and more:
one forward pass over a user's list gives, at every position, exactly the scores that
evaluation computes for the history up to it (``ContinuationScorer.score_running_lists``).
The newline ends an item, so "Star Wars" and "Star Wars (1977)" differ as answers.
"""

from dataclasses import dataclass

from recbole_instructrec.prompts.builder import _ITEM_MARK, Plan, PromptBuilder


@dataclass
class RunningListRow:
    """One training row: ``ids`` (header + pieces) and, per position, where its prefix ends
    (``cuts``), the positive's piece length (``lengths``) and the positive item (``items``)."""

    ids: list
    cuts: list
    lengths: list
    items: list
    histories: list


class RunningListBuilder(PromptBuilder):
    """A :class:`PromptBuilder` for ``layout: running_list`` templates (causal LMs only)."""

    def __init__(self, tokenizer, texts, template, **settings):
        if settings.get("is_encoder_decoder"):
            raise ValueError(
                f"Template {template.id!r} (layout running_list) continues a list in the "
                "decoder of a causal LM; encoder-decoder models read the history in the encoder. "
                "Use an instruction-layout template such as seq-match-1 with this model."
            )
        super().__init__(tokenizer, texts, template, **settings)
        self._pieces = {}
        self.header = self._encode(self._format(self.template.render()))

    def render(self, history, **slots):
        """The instruction, then the list as the model reads it (item tokens as <item:ID>)."""
        lines = [self.mention(i) for i in self._fitted(self._recent(history))]
        text = "\n".join([self._render([], **slots), *lines])
        return _ITEM_MARK.sub(lambda m: f"<item:{m.group(1)}> ", text)

    def piece(self, item):
        """Token ids of ``item`` as one line of the list (also its answer continuation)."""
        item = int(item)
        if item not in self._pieces:
            self._pieces[item] = self._encode_tail(self.mention(item) + "\n")
        return self._pieces[item]

    def answer_ids(self, item):
        return self.piece(item)

    def prompt_ids(self, history, **slots):
        history = self._fitted(self._recent(history))
        return self.header + [t for item in history for t in self.piece(item)]

    def plan(self, history, candidates, target=None, user=None, intention=None):
        prefix = self.prompt_ids(history)
        return Plan([(prefix, [self.piece(c) for c in candidates])], self._normalized)

    def training_row(self, window):
        """The list of ``window`` (item ids, oldest first) with a signal at every position
        after the first: position k predicts ``window[k]`` from ``window[:k]``.

        Leading items are dropped until the longest prefix fits ``max_prompt_tokens``, as
        evaluation would drop them, so every prefix is one that evaluation computes."""
        window = [int(i) for i in window if int(i) != 0]
        window = window[:-1][-self.max_history_items :] + window[-1:]
        kept = self._fitted(window[:-1])
        window = window[len(window) - 1 - len(kept) :]
        ids, cuts, lengths = list(self.header), [], []
        for k, item in enumerate(window):
            piece = self.piece(item)
            if k:
                cuts.append(len(ids))
                lengths.append(len(piece))
            ids += piece
        histories = [window[:k] for k in range(1, len(window))]
        return RunningListRow(ids, cuts, lengths, window[1:], histories)

    def _fitted(self, history):
        """``history`` without its oldest items until header + list fit the budget."""
        total = len(self.header) + sum(len(self.piece(i)) for i in history)
        start = 0
        while total > self.max_prompt_tokens and start < len(history):
            total -= len(self.piece(history[start]))
            start += 1
        return history[start:]
