"""Turns a user's history (internal item ids) into instruction token ids, and items into
answer token ids, within a token budget.

Causal LMs with a chat template get the instruction as the user turn and the answer as the
assistant turn, closed by the end-of-turn token, so that "Star Wars" and "Star Wars (1977)" are
different answers. Without a chat template, the answer follows ``Answer:``. Encoder-decoder
LMs read the instruction in the encoder and the answer in the decoder.
"""

from logging import getLogger


class PromptBudgetError(ValueError):
    """The template cannot fit ``max_prompt_tokens`` even with an empty history."""


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
    ):
        self.tokenizer = tokenizer
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
        self.texts, self._text_lengths = self._capped_texts(texts, int(max_item_tokens))
        self._answers = {}
        overhead = len(self.prompt_ids([]))
        if overhead > self.max_prompt_tokens:
            raise PromptBudgetError(
                f"max_prompt_tokens={self.max_prompt_tokens} is smaller than template "
                f"'{template.id}' itself ({overhead} tokens with no history). Raise "
                "max_prompt_tokens or pick a shorter template."
            )

    def _capped_texts(self, texts, cap):
        """Cut item texts longer than ``max_item_tokens`` tokens; remember token lengths."""
        encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        capped, lengths, cut = [], [], 0
        for text, ids in zip(texts, encoded):
            if len(ids) > cap:
                text = self.tokenizer.decode(ids[:cap]).strip() + "…"
                ids = ids[:cap]
                cut += 1
            capped.append(text)
            lengths.append(len(ids))
        if cut:
            getLogger().info(f"{cut} item texts were cut to max_item_tokens={cap} tokens.")
        return capped, lengths

    # ------------------------------------------------------------- prompt
    def prompt_ids(self, history, **slots):
        """Token ids of the instruction for ``history`` (oldest first), fitted to the budget.

        The oldest items are dropped first; at least the most recent one is kept if it fits.
        """
        history = [int(i) for i in history if int(i) != 0][-self.max_history_items :]
        while True:
            ids = self._encode_prompt(self.render(history, **slots))
            if len(ids) <= self.max_prompt_tokens or not history:
                return ids
            excess = len(ids) - self.max_prompt_tokens
            dropped, freed = 0, 0
            while dropped < len(history) and freed < excess:
                freed += self._text_lengths[history[dropped]] + 3  # "N. " and newline
                dropped += 1
            history = history[max(dropped, 1) :]

    def render(self, history, **slots):
        values = {"history": self.history_text(history)}
        values.update(slots)
        return self.template.render(**{s: values.get(s, "") for s in self.template.slots})

    def history_text(self, history):
        return "\n".join(f"{n}. {self.texts[i]}" for n, i in enumerate(history, 1))

    def _encode_prompt(self, instruction):
        tok = self.tokenizer
        if self.use_chat:
            messages = [{"role": "user", "content": instruction}]
            if self.system_prompt:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return tok(text, add_special_tokens=False)["input_ids"]
        if self.is_encoder_decoder:
            return tok(instruction)["input_ids"]
        return tok(instruction + "\nAnswer:", add_special_tokens=True)["input_ids"]

    # ------------------------------------------------------------- answers
    def answer_ids(self, item):
        """Token ids of item ``item`` written as the answer, end-of-answer token included."""
        item = int(item)
        cached = self._answers.get(item)
        if cached is None:
            cached = self._encode_answer(self.template.response.format(candidate=self.texts[item]))
            self._answers[item] = cached
        return cached

    def _encode_answer(self, text):
        tok = self.tokenizer
        if self.is_encoder_decoder:
            return tok(text)["input_ids"]  # T5-style tokenizers append </s>
        lead = "" if self.use_chat else " "
        ids = tok(lead + text, add_special_tokens=False)["input_ids"]
        return ids + ([tok.eos_token_id] if tok.eos_token_id is not None else [])
