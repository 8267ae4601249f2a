"""Turns a user's history (internal item ids) into scoring requests for any task form.

Every task form becomes "a shared prefix + continuations", scored by one primitive
(:class:`~recbole_instructrec.scoring.continuation.ContinuationScorer`):

* T2 matching: prefix = the instruction; one continuation per candidate: its text as the answer.
* T3 reranking: prefix = the instruction with the candidates listed as (A), (B), ... in a seeded
  shuffled order; continuations = the labels; a candidate's score is log p(its label). All
  candidates are scored from the prompt's last position: one pass, as LlamaRec does.
* T0 pointwise: the instruction is cut just before the candidate slot (before the whitespace
  that precedes it, so prefix + continuation are exactly the ids of the whole prompt); the prefix
  (history) is shared and each candidate continues it with "<candidate and the rest of the
  prompt> Yes" and "... No".
  log p(..Yes) - log p(..No) = log P(Yes) - log P(No): the shared tokens cancel exactly.
* T1 pairwise: the same cut at {item_a}; each candidate meets its two neighbours of a seeded
  cyclic order, in both orders (A/B), and its score is its mean log-odds of being chosen.

Causal LMs with a chat template get the instruction as the user turn and the answer as the
assistant turn; T2 answers end with the end-of-turn token, so "Star Wars" and "Star Wars (1977)"
differ. Without a chat template, the answer follows ``Answer:``. Encoder-decoder LMs read the
whole instruction in the encoder (no cut) and the answer in the decoder.
"""

import re
import string
from dataclasses import dataclass
from logging import getLogger

import torch

from recbole_instructrec.prompts import intentions as intention_text

LABELS = string.ascii_uppercase
_SENTINEL = "\u2063CANDIDATE\u2063"
_SENTINEL_B = "\u2063SECOND\u2063"
# An item mention's collaborative token (hybrid prompts) travels through the text as
# "\ue000<item id>\ue001" (private-use characters) until tokenization.
_ITEM_MARK = re.compile("\ue000(\\d+)\ue001")
# The last whitespace run of a text and what follows it: whitespace after a non-space character
# always starts a new pre-token, so text cut there tokenizes as it does uncut.
_BEFORE_LAST_SPACE = re.compile(r"\s*\S*\Z")


@dataclass
class CappedTexts:
    """Item texts cut to ``max_item_tokens`` tokens, with their token lengths."""

    texts: list
    lengths: list


def cap_item_texts(tokenizer, texts, max_item_tokens):
    """Cut item texts longer than ``max_item_tokens`` tokens (marked with "…")."""
    cap = int(max_item_tokens)
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    capped, lengths, cut = [], [], 0
    for text, ids in zip(texts, encoded):
        if len(ids) > cap:
            text = tokenizer.decode(ids[:cap]).strip() + "…"
            ids = ids[:cap]
            cut += 1
        capped.append(text)
        lengths.append(len(ids))
    if cut:
        getLogger().info(f"{cut} item texts were cut to max_item_tokens={cap} tokens.")
    return CappedTexts(capped, lengths)


class PromptBudgetError(ValueError):
    """The template cannot fit ``max_prompt_tokens`` even with an empty history."""


@dataclass
class Plan:
    """Requests for one user: (prefix ids, continuation id lists); ``combine`` maps the flat
    (logprob sums, token counts) of all continuations to one score per candidate."""

    requests: list
    combine: object
    candidates: list = None  # the candidate item ids, in order (running list: the item head's)
    request_text: str = None  # the words a search request states (item_head_request_vectors)


class PromptBuilder:
    def __init__(
        self,
        tokenizer,
        texts,
        template,
        is_encoder_decoder=False,
        max_history_items=10,
        max_prompt_tokens=384,
        max_item_tokens=32,
        use_chat_template=True,
        system_prompt=None,
        intentions=None,
        normalization="mean",
        seed=0,
        rerank_window=20,
        first_item_token=None,
        held_out_phrasings=False,
        compact_mentions=False,
    ):
        self.tokenizer = tokenizer
        self.held_out_phrasings = bool(held_out_phrasings)
        self.first_item_token = first_item_token
        # an item is its item token alone (item_mentions: compact): no text
        self.compact_mentions = bool(compact_mentions) and first_item_token is not None
        self.template = template
        self.is_encoder_decoder = is_encoder_decoder
        self.max_history_items = int(max_history_items)
        self.max_prompt_tokens = int(max_prompt_tokens)
        self.use_chat = (
            use_chat_template
            and not is_encoder_decoder
            and getattr(tokenizer, "chat_template", None) is not None
        )
        self.system_prompt = system_prompt
        self.intentions = intentions
        self.normalization = normalization
        self.seed = int(seed or 0)
        self.rerank_window = min(int(rerank_window), len(LABELS))
        # A CappedTexts is shared by every builder of a model: one tokenization of the catalogue.
        capped = (
            texts
            if isinstance(texts, CappedTexts)
            else cap_item_texts(tokenizer, texts, max_item_tokens)
        )
        self.texts, self._text_lengths = capped.texts, capped.lengths
        if first_item_token is not None:
            self._text_lengths = [n + 1 for n in self._text_lengths]
        self._answers = {}
        self._labels = [self._answer_tokens(label, end=False) for label in LABELS]
        self._yes_no = [self._answer_tokens("Yes", end=False), self._answer_tokens("No", end=False)]
        overhead = len(self._encode(self._format(self._render([], sample_slots=True))))
        if overhead > self.max_prompt_tokens:
            raise PromptBudgetError(
                f"max_prompt_tokens={self.max_prompt_tokens} is smaller than template "
                f"'{template.id}' itself ({overhead} tokens with no history). Raise "
                "max_prompt_tokens or pick a shorter template."
            )

    # ----------------------------------------------------------------- plans
    def plan(self, history, candidates, target=None, user=None, intention=None):
        """Scoring requests for ``candidates`` (item ids) of a user with ``history``.

        ``target`` (the true next item) only fills I1/I2 intention slots, unless ``intention``
        (text a person typed) is given; ``user`` only fills the P2 preference slot when the
        dataset has a user text field.
        """
        history = self._recent(history)
        slots = self._user_slots(history, target, user, intention)
        form = self.template.task_form
        if form == "T2":
            prefix = self.prompt_ids(history, **slots)
            conts = [self.answer_ids(c) for c in candidates]
            return Plan([(prefix, conts)], self._normalized)
        if form == "T3":
            return self._rerank_plan(history, candidates, slots)
        if form == "T0":
            return self._pointwise_plan(history, candidates, slots)
        return self._pairwise_plan(history, candidates, slots)

    def _normalized(self, sums, counts):
        if self.normalization == "sum":
            return sums
        return sums / counts.clamp(min=1)

    def _rerank_plan(self, history, candidates, slots):
        order = self._shuffled(history, len(candidates))
        requests, owner = [], []
        for start in range(0, len(order), self.rerank_window):
            window = order[start : start + self.rerank_window]
            listing = "\n".join(
                f"({LABELS[k]}) {self.mention(candidates[i])}" for k, i in enumerate(window)
            )
            prefix = self.prompt_ids(history, candidates=listing, **slots)
            requests.append((prefix, [self._labels[k] for k in range(len(window))]))
            owner += window

        def combine(sums, counts):
            scores = torch.empty_like(sums)
            scores[torch.tensor(owner, device=sums.device)] = sums
            return scores

        return Plan(requests, combine)

    def _pointwise_plan(self, history, candidates, slots):
        if self.is_encoder_decoder:
            requests = [
                (self.prompt_ids(history, candidate=self.mention(c), **slots), self._yes_no)
                for c in candidates
            ]
        else:
            prefix, suffix = self._cut(history, slots)
            conts = []
            for c in candidates:
                tail = self._tail_ids(suffix, self.mention(c))
                conts += [tail + self._yes_no[0], tail + self._yes_no[1]]
            requests = [(prefix, conts)]
        return Plan(requests, lambda sums, counts: sums[0::2] - sums[1::2])

    def _pairwise_plan(self, history, candidates, slots):
        n = len(candidates)
        order = self._shuffled(history, n)
        pairs = []
        for k in range(n):
            x, y = order[k], order[(k + 1) % n]
            if x != y:
                pairs += [(x, y), (y, x)]
        if not pairs:  # one candidate: nothing to compare
            return Plan([], lambda sums, counts: torch.zeros(n))
        if self.is_encoder_decoder:
            requests = [
                (
                    self.prompt_ids(
                        history,
                        item_a=self.mention(candidates[a]),
                        item_b=self.mention(candidates[b]),
                        **slots,
                    ),
                    self._labels[:2],
                )
                for a, b in pairs
            ]
        else:
            prefix, suffix = self._cut(history, slots)
            conts = []
            for a, b in pairs:
                tail = self._tail_ids(
                    suffix, self.mention(candidates[a]), self.mention(candidates[b])
                )
                conts += [tail + self._labels[0], tail + self._labels[1]]
            requests = [(prefix, conts)]

        def combine(sums, counts):
            a_wins = sums[0::2] - sums[1::2]  # log-odds that the A item is chosen
            totals = torch.zeros(n, dtype=sums.dtype, device=sums.device)
            seen = torch.zeros(n, dtype=sums.dtype, device=sums.device)
            for p, (a, b) in enumerate(pairs):
                totals[a] += a_wins[p]
                totals[b] -= a_wins[p]
                seen[a] += 1
                seen[b] += 1
            return totals / seen.clamp(min=1)

        return Plan(requests, combine)

    def _shuffled(self, history, n):
        """A seeded order of ``n`` candidate positions: the same user always gets the same
        order, and the positive (RecBole puts it first) has no favoured position."""
        draw = intention_text.stable_draw(self.seed, history)
        generator = torch.Generator().manual_seed(draw)
        return torch.randperm(n, generator=generator).tolist()

    def _user_slots(self, history, target, user, intention=None):
        """Slot values: a typed ``intention`` as it is, otherwise the target's (search tasks)
        with a vague wording picked per user and history (``held_out_phrasings`` picks from
        the wordings training never sees)."""
        needed = set(self.template.slots)
        if not needed & {"intention", "preference"}:
            return {}
        source = self._require_intentions()
        draw = intention_text.stable_draw(self.seed, history, target)
        slots = intention_text.request_slots(
            source,
            self.template,
            history,
            target,
            user,
            draw=draw,
            held_out=self.held_out_phrasings,
            typed=intention,
        )
        return {k: v for k, v in slots.items() if k in needed}

    def _require_intentions(self):
        if self.intentions is None:
            raise ValueError(
                f"Template '{self.template.id}' needs intention/preference text, but no "
                "intention source was given."
            )
        return self.intentions

    # ------------------------------------------------------------- prompt
    def prompt_ids(self, history, **slots):
        """Token ids of the whole instruction for ``history`` (oldest first), fitted to the
        budget: the oldest items are dropped first."""
        history = self._recent(history)
        while True:
            ids = self._encode(self._format(self._render(history, **slots)))
            if len(ids) <= self.max_prompt_tokens or not history:
                return ids
            history = history[self._items_to_drop(history, len(ids)) :]

    def _cut(self, history, slots):
        """(shared prefix ids, the rest of the text) for T0/T1 on causal LMs; the rest keeps
        the markers _SENTINEL (candidate / item A) and _SENTINEL_B.

        The text is cut before the whitespace that precedes the first candidate slot, not at
        the slot: a BPE tokenizer merges the space into the next word ("ĠToy"), and a cut at the
        slot would end the prefix with a lone "Ġ" and split the title into tokens ("T", "oy")
        the whole prompt never has. Characters glued to the slot (an opening quote) go to the
        rest too, as a title can merge with them: a quote and the apostrophe of 'Til become
        one token."""
        filler = {"candidate": _SENTINEL, "item_a": _SENTINEL, "item_b": _SENTINEL_B}
        while True:
            text = self._format(self._render(history, **filler, **slots))
            head = text[: text.index(_SENTINEL)]
            cut = _BEFORE_LAST_SPACE.search(head).start()
            prefix = self._encode(head[:cut])
            if len(prefix) <= self.max_prompt_tokens or not history:
                return prefix, text[cut:]
            history = history[self._items_to_drop(history, len(prefix)) :]

    def _tail_ids(self, tail, first, second=""):
        return self._encode_tail(tail.replace(_SENTINEL, first, 1).replace(_SENTINEL_B, second))

    def _items_to_drop(self, history, length):
        excess, dropped, freed = length - self.max_prompt_tokens, 0, 0
        while dropped < len(history) and freed < excess:
            freed += self._text_lengths[history[dropped]] + 3  # "N. " and a newline
            dropped += 1
        return max(dropped, 1)

    def _recent(self, history):
        return [int(i) for i in history if int(i) != 0][-self.max_history_items :]

    def render(self, history, **slots):
        """The instruction as a person reads it (item tokens shown as <item:ID>)."""
        text = self._render(self._recent(history), **slots)
        return _ITEM_MARK.sub(lambda m: f"<item:{m.group(1)}> ", text)

    def _render(self, history, sample_slots=False, **slots):
        values = {"history": self.history_text(history)}
        if sample_slots:  # the overhead check: a typical filling of every slot
            values.update({s: "x" for s in self.template.slots if s != "history"})
        values.update(slots)
        return self.template.render(**{s: values.get(s, "") for s in self.template.slots})

    def history_text(self, history):
        return "\n".join(f"{n}. {self.mention(i)}" for n, i in enumerate(history, 1))

    def mention(self, item):
        """An item as the instruction names it: its text, after its item token if hybrid."""
        item = int(item)
        if self.first_item_token is None:
            return self.texts[item]
        if self.compact_mentions:
            return f"\ue000{item}\ue001"
        return f"\ue000{item}\ue001{self.texts[item]}"

    def _format(self, instruction):
        if self.use_chat:
            messages = [{"role": "user", "content": instruction}]
            # '' is an empty system turn: it drops the template's default system text.
            if self.system_prompt is not None:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        if self.is_encoder_decoder:
            return instruction
        return instruction + "\nAnswer:"

    def _encode(self, text):
        return self._tokenize(text, add_special_tokens=not self.use_chat)

    def _encode_tail(self, text):
        return self._tokenize(text, add_special_tokens=False)

    def _tokenize(self, text, add_special_tokens):
        """Token ids of ``text``; each item mark becomes its item token, placed before the
        first token of the text that follows it. The text tokens are exactly those of the
        text without marks, so a hybrid prompt is the text prompt plus the item tokens."""
        marks, plain, cursor = [], [], 0
        for match in _ITEM_MARK.finditer(text):
            plain.append(text[cursor : match.start()])
            marks.append((sum(map(len, plain)), int(match.group(1))))
            cursor = match.end()
        plain = "".join(plain) + text[cursor:]
        if not marks:
            return self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
        encoded = self.tokenizer(
            plain,
            add_special_tokens=add_special_tokens,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        ids, special = encoded["input_ids"], encoded["special_tokens_mask"]
        text_tokens = [k for k in range(len(ids)) if not special[k]]
        after_text = text_tokens[-1] + 1 if text_tokens else 0
        inserts = {}
        for position, item in marks:
            at = next(
                (k for k in text_tokens if encoded["offset_mapping"][k][1] > position), after_text
            )
            inserts.setdefault(at, []).append(self.first_item_token + item)
        out = []
        for k in range(len(ids) + 1):
            out += inserts.get(k, [])
            if k < len(ids):
                out.append(ids[k])
        return out

    # ------------------------------------------------------------- answers
    def answer_ids(self, item):
        """Token ids of item ``item`` written as the T2 answer, end-of-answer token included."""
        item = int(item)
        cached = self._answers.get(item)
        if cached is None:
            text = self.template.response.format(candidate=self.mention(item))
            cached = self._answer_tokens(text)
            if not self.is_encoder_decoder and self.tokenizer.eos_token_id is not None:
                cached = cached + [self.tokenizer.eos_token_id]
            self._answers[item] = cached
        return cached

    def _answer_tokens(self, text, end=True):
        if self.is_encoder_decoder:  # T5-style tokenizers append </s> with special tokens
            return self._tokenize(text, add_special_tokens=end)
        lead = "" if self.use_chat else " "
        return self._tokenize(lead + text, add_special_tokens=False)
