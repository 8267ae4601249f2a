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

A template with a ``request`` (the search tasks) ends the list with what the user asks for, as
a user turn of its own, and the answer turn continues with the item::

    <instruction> Toy Story (1995)\n Heat (1995)\n <end of turn, user: "I want: Horror", assistant>
    <candidate>\n

So a search prompt is a sequential prompt plus a request: a training row keeps the sequential
signals of its list and adds one search signal at its end, in the same pass. A P0 template
(product search) has no list: the request follows the instruction at once.
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
    requested: bool = False  # the last position answers a search request
    request_text: str = None  # what that request states (item_head_request_vectors reads it)


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
        self._turn = None
        self.header = self._encode(self._format(self.template.render()))
        self.reads_history = template.preference != "P0"

    def render(self, history, **slots):
        """The instruction, the list and the request as the model reads them (item tokens as
        <item:ID>)."""
        lines = [self.mention(i) for i in self._fitted(self._recent(history))]
        text = "\n".join([self._render([], **slots), *lines])
        if self.template.request:
            text += "\n" + self.template.render_request(**slots)
        return _ITEM_MARK.sub(lambda m: f"<item:{m.group(1)}> ", text)

    def request_ids(self, **slots):
        """Token ids that end the list and ask for what the user wants: an end of the answer
        turn, a user turn with the request and a new answer turn (with a chat template), or a
        "Request:" line."""
        if not self.template.request:
            return []
        before, after = self._request_turn
        return self._encode_tail(before + self.template.render_request(**slots) + after)

    @property
    def _request_turn(self):
        """(text before, text after) the request: the chat template's end of the answer turn,
        the user turn around the request and a new answer turn, rendered once."""
        if self._turn is None:
            if not self.use_chat:
                self._turn = ("Request: ", "\n")
            else:
                marker, asked = "\u2063LIST\u2063", "\u2063REQUEST\u2063"
                messages = [
                    {"role": "user", "content": self.template.render()},
                    {"role": "assistant", "content": marker},
                    {"role": "user", "content": asked},
                ]
                if self.system_prompt is not None:
                    messages.insert(0, {"role": "system", "content": self.system_prompt})
                text = self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
                tail = text[text.index(marker) + len(marker) :]
                self._turn = tuple(tail.split(asked, 1))
        return self._turn

    def piece(self, item):
        """Token ids of ``item`` as one line of the list (also its answer continuation)."""
        item = int(item)
        if self.compact_mentions:  # one position, no text: no newline is needed to end it
            return [self.first_item_token + item]
        if item not in self._pieces:
            self._pieces[item] = self._encode_tail(self.mention(item) + "\n")
        return self._pieces[item]

    def answer_ids(self, item):
        return self.piece(item)

    def prompt_ids(self, history, **slots):
        request = self.request_ids(**slots)
        history = self._fitted(self._recent(history), len(request)) if self.reads_history else []
        return self.header + [t for item in history for t in self.piece(item)] + request

    def plan(self, history, candidates, target=None, user=None, intention=None):
        slots = self._user_slots(self._recent(history), target, user, intention)
        prefix = self.prompt_ids(history, **slots)
        pieces = [self.piece(c) for c in candidates]
        return Plan(
            [(prefix, pieces)],
            self._normalized,
            [int(c) for c in candidates],
            self.request_text(**slots),
        )

    def request_text(self, **slots):
        """The words a request states (its intention and preference slots), without the
        template's own; None for a template without a request (sequential recommendation)."""
        if not self.template.request:
            return None
        words = [str(slots[k]) for k in ("preference", "intention") if slots.get(k)]
        return " ".join(words) or None

    def training_row(self, window, **slots):
        """The list of ``window`` (item ids, oldest first) with a signal at every position
        after the first: position k predicts ``window[k]`` from ``window[:k]``.

        With a request (``slots`` fill it), the last item follows the request instead: the
        row's last signal is the search task's, the others stay sequential. Leading items are
        dropped until the longest prefix fits ``max_prompt_tokens``, as evaluation would drop
        them, so every prefix is one that evaluation computes."""
        request = self.request_ids(**slots)
        asked = self.request_text(**slots)
        window = [int(i) for i in window if int(i) != 0]
        if not self.reads_history:  # product search: the request, then the item, no list
            ids = self.header + request + self.piece(window[-1])
            cut = len(self.header) + len(request)
            return RunningListRow(
                ids, [cut], [len(ids) - cut], window[-1:], [window[:-1]], request_text=asked
            )
        window = window[:-1][-self.max_history_items :] + window[-1:]
        kept = self._fitted(window[:-1], len(request))
        window = window[len(window) - 1 - len(kept) :]
        ids, cuts, lengths = list(self.header), [], []
        for k, item in enumerate(window):
            piece = self.piece(item)
            if k == len(window) - 1:
                ids += request
            if k:
                cuts.append(len(ids))
                lengths.append(len(piece))
            ids += piece
        histories = [window[:k] for k in range(1, len(window))]
        return RunningListRow(ids, cuts, lengths, window[1:], histories, request_text=asked)

    def _fitted(self, history, reserved=0):
        """``history`` without its oldest items until header + list (+ ``reserved`` tokens of
        a request) fit the budget."""
        total = len(self.header) + reserved + sum(len(self.piece(i)) for i in history)
        start = 0
        while total > self.max_prompt_tokens and start < len(history):
            total -= len(self.piece(history[start]))
            start += 1
        return history[start:]
