"""Log-likelihood of many continuations that share one prompt, computed near the token floor.

Every task form reduces to one primitive: for each user, a prompt and a list of continuations
(candidate titles for matching, " Yes"/" No" for pointwise, label letters for reranking), return
``log p(continuation | prompt)`` summed over its tokens, with the token count.

The floor is to run each prompt token and each continuation token through the network once.

* Causal LMs: a user's prompt and all its continuations are packed into one row. A 4-D attention
  mask lets each continuation token see the prompt and the earlier tokens of its own
  continuation only, and position ids restart after the prompt for every continuation, so each
  continuation is scored exactly as if it followed the prompt alone. Several users share one
  forward pass (rows padded to the longest). When a row would exceed ``max_row_tokens``, the
  prompts run once with a KV cache and the continuations follow in chunks against that cache.
* Encoder-decoder LMs: the encoder runs once per user; every continuation is one decoder row
  reading that user's encoder states.

Only the positions that predict a continuation token go through the LM head, which is a large
share of a small model's compute.
"""

from dataclasses import dataclass

import torch


@dataclass
class ContinuationScores:
    """Per user: summed log-probability and token count of each continuation."""

    logprob_sums: list
    token_counts: list


class ContinuationScorer:
    """Scores continuations of shared prompts; see the module docstring.

    Args:
        model: a Hugging Face causal or encoder-decoder LM (optionally wrapped by peft).
        is_encoder_decoder: which of the two layouts to use.
        max_batch_tokens: packed tokens per forward pass (bounds memory, fills the cores).
        max_row_tokens: a user's prompt plus continuations beyond this are chunked.
        first_input_only_token: ids from this one on (item tokens, see
            :mod:`~recbole_instructrec.scoring.item_tokens`) are read but never scored: they
            add nothing to a sum and are not counted.
    """

    def __init__(
        self,
        model,
        is_encoder_decoder=False,
        max_batch_tokens=4096,
        max_row_tokens=2048,
        first_input_only_token=None,
    ):
        self.model = model
        self.first_input_only_token = first_input_only_token
        self.is_encoder_decoder = is_encoder_decoder
        self.max_batch_tokens = max(int(max_batch_tokens), 1)
        self.max_row_tokens = max(int(max_row_tokens), 1)
        self.tokens_computed = 0  # network positions run, padding included; for benchmarks

    @property
    def device(self):
        return next(self.model.parameters()).device

    def score(self, prompts, continuations):
        """``prompts[u]``: token ids; ``continuations[u]``: list of token-id lists (non-empty)."""
        sums = [None] * len(prompts)
        counts = [None] * len(prompts)
        for group in self._user_groups(prompts, continuations):
            group_prompts = [prompts[u] for u in group]
            group_conts = [continuations[u] for u in group]
            if self.is_encoder_decoder:
                group_sums = self._score_seq2seq(group_prompts, group_conts)
            else:
                group_sums = self._score_causal(group_prompts, group_conts)
            for u, s in zip(group, group_sums):
                sums[u] = s
                counts[u] = torch.tensor(
                    [self._scored_length(c) for c in continuations[u]],
                    dtype=s.dtype,
                    device=s.device,
                )
        return ContinuationScores(sums, counts)

    def _scored_length(self, tokens):
        if self.first_input_only_token is None:
            return len(tokens)
        return sum(t < self.first_input_only_token for t in tokens)

    def _is_scored(self, targets):
        if self.first_input_only_token is None:
            return torch.ones_like(targets, dtype=torch.bool)
        return targets < self.first_input_only_token

    def _user_groups(self, prompts, continuations):
        """Consecutive users whose packed rows fit ``max_batch_tokens`` together."""
        sizes = [
            min(len(prompt) + sum(map(len, conts)), self.max_row_tokens)
            for prompt, conts in zip(prompts, continuations)
        ]
        return self._groups_within_budget(sizes)

    def _groups_within_budget(self, sizes):
        """Consecutive rows that, padded to the widest, fit ``max_batch_tokens`` together."""
        group, widest = [], 0
        for i, size in enumerate(sizes):
            if group and max(widest, size) * (len(group) + 1) > self.max_batch_tokens:
                yield group
                group, widest = [], 0
            group.append(i)
            widest = max(widest, size)
        if group:
            yield group

    # ------------------------------------------------------------------ causal
    def _score_causal(self, prompts, continuations):
        too_long = any(
            len(p) + sum(map(len, c)) > self.max_row_tokens for p, c in zip(prompts, continuations)
        )
        if too_long:
            return self._score_causal_chunked(prompts, continuations)
        segments = [
            [(prompt, 0)] + [(cont, j + 1) for j, cont in enumerate(conts)]
            for prompt, conts in zip(prompts, continuations)
        ]
        packed = _pack(segments, [0] * len(prompts), self.device)
        hidden = self._decoder_hidden(packed, packed)
        last_prompt = torch.tensor([len(p) - 1 for p in prompts], device=self.device)
        return self._gather_logprobs(hidden, packed, hidden, last_prompt, continuations)

    def _score_causal_chunked(self, prompts, continuations):
        from transformers import DynamicCache

        prompt_packed = _pack([[(p, 0)] for p in prompts], [0] * len(prompts), self.device)
        cache = DynamicCache()
        prompt_hidden = self._decoder_hidden(prompt_packed, prompt_packed, cache=cache)
        if cache.get_seq_length() == 0:
            # A forward that does not know `cache=` (transformers < 5.24) would take it into its
            # **kwargs and drop it: every chunk would then score without its prompt.
            raise RuntimeError(
                f"{type(self.model.get_decoder()).__name__} did not fill the KV cache it was "
                "given (cache=); chunked scoring needs transformers >= 5.24 (see setup.py)."
            )
        snapshot = [(layer.keys, layer.values) for layer in cache.layers]
        last_prompt = torch.tensor([len(p) - 1 for p in prompts], device=self.device)
        budget = max(self.max_row_tokens - max(map(len, prompts)), 1)
        sums = [[] for _ in prompts]
        for chunk in _continuation_chunks(continuations, budget):
            segments = [
                [(continuations[u][j], j + 1) for j in chunk[u]] for u in range(len(prompts))
            ]
            packed = _pack(segments, [len(p) for p in prompts], self.device)
            hidden = self._decoder_hidden(
                packed, prompt_packed, cache=DynamicCache(ddp_cache_data=snapshot)
            )
            chunk_conts = [[continuations[u][j] for j in chunk[u]] for u in range(len(prompts))]
            for u, s in enumerate(
                self._gather_logprobs(hidden, packed, prompt_hidden, last_prompt, chunk_conts)
            ):
                sums[u].append(s)
        return [torch.cat(parts) for parts in sums]

    def _decoder_hidden(self, queries, prefix, cache=None):
        """Last hidden states of ``queries``; keys are ``prefix`` (cached) + ``queries``."""
        if cache is not None and cache.get_seq_length() > 0:
            key_group = torch.cat([prefix.group, queries.group], dim=1)
            key_pos = torch.cat([prefix.position, queries.position], dim=1)
        else:
            key_group, key_pos = queries.group, queries.position
        dtype = self._compute_dtype()
        mask = _block_attention_mask(
            queries.group, queries.position, queries.limit, key_group, key_pos, dtype
        )
        decoder = self.model.get_decoder()
        self.tokens_computed += queries.input_ids.numel()
        output = decoder(
            input_ids=queries.input_ids,
            attention_mask=mask,
            position_ids=queries.position,
            cache=cache,
            use_cache=cache is not None,
        )
        return output.last_hidden_state

    def _causal_hidden(self, packed):
        self.tokens_computed += packed.input_ids.numel()
        output = self.model.get_decoder()(
            input_ids=packed.input_ids, position_ids=packed.position, use_cache=False
        )
        return output.last_hidden_state

    def _compute_dtype(self):
        return next(self.model.get_decoder().parameters()).dtype

    def _gather_logprobs(self, hidden, packed, prompt_hidden, last_prompt, continuations):
        """Sum of log p(token) for every continuation, from the positions that predict it."""
        rows, predictors, targets, owner = [], [], [], []
        first_rows, first_targets, first_owner = [], [], []
        offset = 0
        for u, conts in enumerate(continuations):
            starts = packed.segment_starts[u]
            for j, cont in enumerate(conts):
                start = starts[j + packed.first_segment[u]]
                first_rows.append(u)
                first_targets.append(cont[0])
                first_owner.append(offset + j)
                for k in range(1, len(cont)):
                    rows.append(u)
                    predictors.append(start + k - 1)
                    targets.append(cont[k])
                    owner.append(offset + j)
            offset += len(conts)
        device = hidden.device
        first_hidden = prompt_hidden[
            torch.tensor(first_rows, device=device), last_prompt[first_rows]
        ]
        logprobs = self._token_logprobs(first_hidden, first_targets)
        owners = torch.tensor(first_owner, device=device)
        if rows:
            inner_hidden = hidden[
                torch.tensor(rows, device=device), torch.tensor(predictors, device=device)
            ]
            logprobs = torch.cat([logprobs, self._token_logprobs(inner_hidden, targets)])
            owners = torch.cat([owners, torch.tensor(owner, device=device)])
        totals = torch.zeros(offset, dtype=logprobs.dtype, device=device)
        totals = totals.index_add(0, owners, logprobs)
        return list(totals.split([len(c) for c in continuations]))

    def _token_logprobs(self, hidden, targets, rows_per_step=512):
        head = self.model.get_output_embeddings()
        targets = torch.tensor(targets, device=hidden.device)
        scored = self._is_scored(targets)
        targets = targets.masked_fill(~scored, 0)
        parts = []
        for start in range(0, hidden.shape[0], rows_per_step):
            logits = _at_least_fp32(head(hidden[start : start + rows_per_step]))
            chosen = logits.gather(1, targets[start : start + rows_per_step, None])[:, 0]
            parts.append(chosen - torch.logsumexp(logits, dim=-1))
        return torch.cat(parts) * scored

    # ------------------------------------------------------------- item head
    def states_before(self, sequences, positions, lengths=None):
        """Last hidden states that predict ``sequences[i][p]``, for each ``p`` in
        ``positions[i]`` (the state at p - 1), from one causal pass per group of sequences:
        where each item of a running list begins (its cuts), or the end of a prompt (its
        length). The item head scores the catalogue from these states.

        With ``lengths`` (``lengths[i][k]`` tokens from ``positions[i][k]``: the positive's
        text), also the sums of their token log-probs and the counts of scored tokens, the
        generation term, from the same pass.

        Returns (states, sums, counts): per sequence a (len(positions[i]), hidden) tensor and,
        with ``lengths``, (len(positions[i]),) tensors (else None)."""
        states = [None] * len(sequences)
        sums = [None] * len(sequences)
        counts = [None] * len(sequences)
        for group in self._groups_within_budget([len(s) for s in sequences]):
            packed = _pack([[(sequences[i], 0)] for i in group], [0] * len(group), self.device)
            hidden = self._causal_hidden(packed)
            for j, i in enumerate(group):
                at = torch.tensor([p - 1 for p in positions[i]], device=hidden.device)
                states[i] = hidden[j, at]
                if lengths is None:
                    continue
                predictors, targets, owners = [], [], []
                for k, (p, n) in enumerate(zip(positions[i], lengths[i])):
                    predictors += range(p - 1, p + n - 1)
                    targets += sequences[i][p : p + n]
                    owners += [k] * n
                logprobs = self._token_logprobs(hidden[j, predictors], targets)
                owner = torch.tensor(owners, device=hidden.device)
                zeros = torch.zeros(len(positions[i]), dtype=logprobs.dtype, device=hidden.device)
                sums[i] = zeros.index_add(0, owner, logprobs)
                scored = self._is_scored(torch.tensor(targets, device=hidden.device))
                counts[i] = zeros.index_add(0, owner, scored.to(zeros.dtype))
        return states, sums, counts

    # --------------------------------------------------------- running lists
    def score_running_lists(self, rows, negatives):
        """Scores of every position of running lists, from one pass per group of rows.

        ``rows``: :class:`~recbole_instructrec.prompts.running_list.RunningListRow`; position
        k of a row continues ``ids[:cuts[k]]`` with its positive (the next ``lengths[k]``
        tokens of ``ids``) and with ``negatives[row][k]`` (token-id lists). A negative is a
        segment of the same row that sees the list before ``cuts[k]`` and restarts its
        positions there, so every score equals :meth:`score` of that prefix.

        Returns a ContinuationScores with one entry per position of every row, in order:
        the positive first, then the negatives.
        """
        if self.is_encoder_decoder:
            raise ValueError(
                "Running lists score every position of a causal LM's sequence in one pass; "
                "an encoder-decoder model scores each prefix on its own (layout instruction)."
            )
        sums, counts = [], []
        sizes = [
            len(r.ids) + sum(len(t) for ns in negs for t in ns) for r, negs in zip(rows, negatives)
        ]
        for group in self._groups_within_budget(sizes):
            group_sums = self._score_running(
                [rows[i] for i in group], [negatives[i] for i in group]
            )
            for i, row_sums in zip(group, group_sums):
                for k, position_sums in enumerate(row_sums):
                    sums.append(position_sums)
                    row, cut = rows[i], rows[i].cuts[k]
                    positive = row.ids[cut : cut + row.lengths[k]]
                    lengths = [self._scored_length(positive)] + [
                        self._scored_length(t) for t in negatives[i][k]
                    ]
                    counts.append(
                        torch.tensor(lengths, dtype=position_sums.dtype, device=self.device)
                    )
        return ContinuationScores(sums, counts)

    def _score_running(self, rows, negatives):
        segments = []
        for row, negs in zip(rows, negatives):
            segment, g = [(row.ids, 0)], 0
            for cut, position_negs in zip(row.cuts, negs):
                for tokens in position_negs:
                    g += 1
                    segment.append((tokens, g, cut))
            segments.append(segment)
        packed = _pack(segments, [0] * len(rows), self.device)
        if any(len(segment) > 1 for segment in segments):
            hidden = self._decoder_hidden(packed, packed)
        else:  # lists alone: plain causal attention (right padding is never attended to)
            hidden = self._causal_hidden(packed)
        # (row, predicting position, target token, owner) for every scored token
        picks, owner = [], 0
        for r, (row, negs) in enumerate(zip(rows, negatives)):
            starts, seg = packed.segment_starts[r], 1
            for cut, length, position_negs in zip(row.cuts, row.lengths, negs):
                picks += [(r, cut + k - 1, row.ids[cut + k], owner) for k in range(length)]
                owner += 1
                for tokens in position_negs:
                    start = starts[seg]
                    picks.append((r, cut - 1, tokens[0], owner))
                    picks += [(r, start + k - 1, tokens[k], owner) for k in range(1, len(tokens))]
                    owner += 1
                    seg += 1
        r_idx, p_idx, targets, owners = zip(*picks)
        device = hidden.device
        chosen = hidden[torch.tensor(r_idx, device=device), torch.tensor(p_idx, device=device)]
        logprobs = self._token_logprobs(chosen, list(targets))
        totals = torch.zeros(owner, dtype=logprobs.dtype, device=device)
        totals = totals.index_add(0, torch.tensor(owners, device=device), logprobs)
        out, cursor = [], 0
        for negs in negatives:
            row_sums = []
            for position_negs in negs:
                width = 1 + len(position_negs)
                row_sums.append(totals[cursor : cursor + width])
                cursor += width
            out.append(row_sums)
        return out

    # ----------------------------------------------------------- seq2seq
    def _score_seq2seq(self, prompts, continuations):
        device = self.device
        pad = 0
        width = max(map(len, prompts))
        enc_ids = torch.full((len(prompts), width), pad, dtype=torch.long, device=device)
        enc_mask = torch.zeros_like(enc_ids)
        for u, p in enumerate(prompts):
            enc_ids[u, : len(p)] = torch.tensor(p, device=device)
            enc_mask[u, : len(p)] = 1
        self.tokens_computed += enc_ids.numel()
        encoder_states = self.model.get_encoder()(
            input_ids=enc_ids, attention_mask=enc_mask
        ).last_hidden_state
        owner = [u for u, conts in enumerate(continuations) for _ in conts]
        flat = [c for conts in continuations for c in conts]
        start_id = self.model.config.decoder_start_token_id
        sums = []
        for chunk in _flat_chunks(flat, self.max_batch_tokens):
            dec_width = max(len(flat[i]) for i in chunk)
            dec_ids = torch.full((len(chunk), dec_width), pad, dtype=torch.long, device=device)
            labels = torch.full_like(dec_ids, -100)
            dec_mask = torch.zeros_like(dec_ids)
            for r, i in enumerate(chunk):
                cont = torch.tensor(flat[i], device=device)
                dec_ids[r, 0] = start_id
                dec_ids[r, 1 : len(cont)] = cont[:-1]
                labels[r, : len(cont)] = cont.masked_fill(~self._is_scored(cont), -100)
                dec_mask[r, : len(cont)] = 1
            rows = torch.tensor([owner[i] for i in chunk], device=device)
            self.tokens_computed += dec_ids.numel()
            out = self.model(
                encoder_outputs=(encoder_states[rows],),
                attention_mask=enc_mask[rows],
                decoder_input_ids=dec_ids,
                decoder_attention_mask=dec_mask,
            )
            logprobs = _at_least_fp32(out.logits).log_softmax(-1)
            picked = logprobs.gather(2, labels.clamp(min=0)[..., None])[..., 0]
            sums.append((picked * (labels != -100)).sum(1))
        totals = torch.cat(sums)
        return list(totals.split([len(c) for c in continuations]))


@dataclass
class _Packed:
    input_ids: torch.Tensor  # (B, L), 0 where padded
    position: torch.Tensor  # (B, L) position ids
    group: torch.Tensor  # (B, L): 0 prompt, j>0 continuation j, -1 padding
    limit: torch.Tensor  # (B, L): a token sees prompt keys at positions below this
    segment_starts: list  # per row, start index of each segment
    first_segment: list  # per row, index of the first continuation segment


def _pack(segments, position_offsets, device):
    """Rows of (token ids, group[, start]) segments. A continuation's positions start at
    ``start`` (default: right after the row's prompt, plus the row's offset), and it sees the
    prompt's keys before that position only, so it is scored exactly as if it followed that
    much of the prompt alone."""
    width = max(sum(len(segment[0]) for segment in row) for row in segments)
    n = len(segments)
    input_ids = torch.zeros((n, width), dtype=torch.long)
    position = torch.zeros((n, width), dtype=torch.long)
    group = torch.full((n, width), -1, dtype=torch.long)
    limit = torch.ones((n, width), dtype=torch.long)  # padding sees the first key: no NaN
    starts, first_segment = [], []
    for r, row in enumerate(segments):
        cursor, row_starts = 0, []
        prompt_len = sum(len(segment[0]) for segment in row if segment[1] == 0)
        for tokens, g, *start in row:
            length = len(tokens)
            row_starts.append(cursor)
            input_ids[r, cursor : cursor + length] = torch.tensor(tokens, dtype=torch.long)
            base = 0 if g == 0 else (start[0] if start else prompt_len + position_offsets[r])
            position[r, cursor : cursor + length] = torch.arange(base, base + length)
            group[r, cursor : cursor + length] = g
            # the prompt is causal; a continuation sees the prompt before its own start
            limit[r, cursor : cursor + length] = (
                position[r, cursor : cursor + length] + 1 if g == 0 else base
            )
            cursor += length
        starts.append(row_starts)
        first_segment.append(1 if row and row[0][1] == 0 else 0)
    return _Packed(
        input_ids.to(device),
        position.to(device),
        group.to(device),
        limit.to(device),
        starts,
        first_segment,
    )


def _at_least_fp32(logits):
    """Half-precision logits are widened for the softmax; float64 ones keep their precision."""
    return logits if logits.dtype == torch.float64 else logits.float()


def _block_attention_mask(q_group, q_pos, q_limit, k_group, k_pos, dtype):
    """Additive (B, 1, Lq, Lk) mask: a query sees the prompt's keys below its limit and the
    earlier keys of its own continuation. Padding queries see nothing useful but stay finite
    (no NaN)."""
    sees_prompt = (k_group[:, None, :] == 0) & (k_pos[:, None, :] < q_limit[:, :, None])
    own = (
        (q_group[:, :, None] > 0)
        & (k_group[:, None, :] == q_group[:, :, None])
        & (k_pos[:, None, :] <= q_pos[:, :, None])
    )
    allowed = (k_group[:, None, :] >= 0) & (sees_prompt | own)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def _continuation_chunks(continuations, budget):
    """Split every user's continuations into aligned chunks of at most ``budget`` tokens."""
    positions = [0] * len(continuations)
    while any(pos < len(conts) for pos, conts in zip(positions, continuations)):
        chunk = []
        for u, conts in enumerate(continuations):
            picked, used = [], 0
            while positions[u] < len(conts) and (
                not picked or used + len(conts[positions[u]]) <= budget
            ):
                used += len(conts[positions[u]])
                picked.append(positions[u])
                positions[u] += 1
            chunk.append(picked)
        yield chunk


def _flat_chunks(flat, max_tokens):
    chunk, widest = [], 0
    for i, cont in enumerate(flat):
        if chunk and max(widest, len(cont)) * (len(chunk) + 1) > max_tokens:
            yield chunk
            chunk, widest = [], 0
        chunk.append(i)
        widest = max(widest, len(cont))
    if chunk:
        yield chunk
