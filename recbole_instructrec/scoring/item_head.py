"""The item head (``score_head: items``): the whole catalogue scored from one hidden state.

The likelihood head scores a candidate by the LM's log-likelihood of its text, one
continuation per candidate. The item head reads the LM's last hidden state where the next item
would begin, projects it, and takes its dot product with one vector per catalogue item: logits
over every item from one position, as SASRec's output layer (after E4SRec, Li et al. 2023, and
HLLM, Chen et al. 2024, which also score items against learned item vectors).

An item's vector is a projection of its **text vector** plus a learned part that starts at zero,
and, with ``item_head_categories``, the sum of its categories' learned vectors (as RecBole's
SASRecF adds its item features): a category is shared by many items, so what a request's genre
words ask for is learned from every item of that genre, not item by item. With
``item_head_collab`` (the hybrid item head), it also adds a learned projection of a trained
RecBole model's item embedding (``collab_model_checkpoint``, kept fixed), as E4SRec and LLaRA
bring collaborative item embeddings to an LLM: what co-occurrence taught that model, every
item's vector starts from.
The text vector is the frozen LM's own reading of the item's text (its last hidden states,
averaged over the text's tokens), computed once per LM and catalogue and cached on disk: an
item never seen in training still has a vector, from its text.

With ``item_head_request_vectors``, the words of a search request (the intention and
preference a person states) are read the same way, by the frozen LM, and standardised with the
catalogue's statistics, so a request lands in the space of the item texts it describes. They
add to the user vector twice: through the item projection itself, times a learned gate (so
"Horror" points at the items whose text reads like it from the first step on), and through a
projection of their own. Both start at zero, and a row without a request gets nothing: the
sequential task scores as without them. The LM's state already reads the request; this gives
the head a short path from what was asked to the items that match it, as product search's
query towers do (DSSM, TEM).
"""

import hashlib
import json
import math
import os
from contextlib import nullcontext

import torch
from torch import nn

from recbole_instructrec.scoring.backbone import DEFAULT_CACHE_DIR


class ItemHead(nn.Module):
    """logits = user(hidden) . (item_proj(text vector) + learned) / sqrt(size) + bias, item 0
    masked.

    The per-item bias holds how often an item comes next at all, so the dot product need not.
    It starts at the centred log of the item's training count (``item_counts``, RecBole's
    training split: no validation or test interaction) when given, else at zero: a learned
    bias moves about ``item_head_learning_rate`` a step, and popularity spans several units of
    log-odds, thousands of steps away."""

    def __init__(
        self,
        text_vectors,
        hidden_size,
        size=256,
        item_counts=None,
        categories=None,
        collab=None,
        request_vectors=False,
    ):
        super().__init__()
        # the frozen text prior: recomputed (or read from the cache) at load, never trained
        self.register_buffer("text_vectors", text_vectors.float(), persistent=False)
        self.user_norm = nn.LayerNorm(hidden_size)
        self.user_proj = nn.Linear(hidden_size, size)
        self.item_proj = nn.Linear(text_vectors.shape[1], size)
        self.item_learned = nn.Parameter(torch.zeros(text_vectors.shape[0], size))
        self.item_bias = nn.Parameter(popularity_prior(item_counts, text_vectors.shape[0]))
        self.scale = 1.0 / math.sqrt(size)
        self.category_vectors, self.categories = None, None
        if categories is not None:
            index, vocabulary = category_index(categories)
            self.categories = vocabulary
            self.register_buffer("category_index", index, persistent=False)
            # zero at the start, as the learned item part, so the text prior leads (and built
            # without a random draw: every other initial weight stays as without categories)
            self.category_vectors = nn.Embedding.from_pretrained(
                torch.zeros(len(vocabulary) + 1, size), freeze=False, padding_idx=0
            )
        self.collab_proj = None
        if collab is not None:
            # fixed, read again from its checkpoint at load; standardised as the text vectors
            # are, so that a step of the projection moves every dimension alike
            self.register_buffer("collab_vectors", standardised(collab.float()), persistent=False)
            # zero at the start and drawn from no generator, as the category vectors
            self.collab_proj = nn.Parameter(torch.zeros(collab.shape[1], size))
        self.request_proj = None
        if request_vectors:
            # zero at the start and drawn from no generator: every other weight stays as
            # without them, and the sequential task scores as without them
            self.request_gate = nn.Parameter(torch.zeros(()))
            self.request_proj = nn.Parameter(torch.zeros(text_vectors.shape[1], size))

    def item_vectors(self):
        vectors = self.item_proj(self.text_vectors) + self.item_learned
        if self.category_vectors is not None:
            vectors = vectors + self.category_vectors(self.category_index).sum(1)
        if self.collab_proj is not None:
            vectors = vectors + self.collab_vectors @ self.collab_proj
        return vectors

    def forward(self, hidden, requests=None):
        """(n, hidden_size) states -> (n, n_items) logits; the padding item 0 is never chosen.
        ``requests``: (n, text vector size) standardised readings of each position's request
        (zeros where there is none), read by ``item_head_request_vectors``."""
        user = self.user_proj(self.user_norm(hidden.to(self.user_proj.weight.dtype)))
        if requests is not None and self.request_proj is not None:
            requests = requests.to(user.dtype)
            # the item projection without its bias: no request, no change
            as_item_text = requests @ self.item_proj.weight.T
            user = user + self.request_gate * as_item_text + requests @ self.request_proj
        logits = (user @ self.item_vectors().T) * self.scale + self.item_bias
        if logits.dtype in (torch.float16, torch.bfloat16):  # the softmax wants the range
            logits = logits.float()
        padding = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        padding[0] = True
        return logits.masked_fill(padding, float("-inf"))


def popularity_prior(item_counts, n_items):
    """Centred log(1 + training count) per item (zeros without counts); item 0 stays 0."""
    if item_counts is None:
        return torch.zeros(n_items)
    prior = torch.log1p(torch.as_tensor(item_counts, dtype=torch.float32))
    prior[1:] -= prior[1:].mean()
    prior[0] = 0.0
    return prior


def category_index(categories):
    """(n_items, most categories of an item) ids into the sorted vocabulary of ``categories``
    (a list of category words per item), 0 where an item has fewer; and that vocabulary."""
    vocabulary = sorted({c for words in categories for c in words})
    ids = {c: i + 1 for i, c in enumerate(vocabulary)}
    width = max(1, max(map(len, categories)))
    index = torch.zeros(len(categories), width, dtype=torch.long)
    for item, words in enumerate(categories):
        index[item, : len(words)] = torch.tensor([ids[c] for c in words], dtype=torch.long)
    return index, vocabulary


def text_vectors(model, tokenizer, texts, identity, cache_dir=None, batch_tokens=2048):
    """(n_items, hidden_size) mean last hidden state of ``model`` over each text's tokens,
    standardised per dimension over the catalogue (item 0, the padding, stays zero)."""
    return standardised(text_readings(model, tokenizer, texts, identity, cache_dir, batch_tokens))


def text_readings(model, tokenizer, texts, identity, cache_dir=None, batch_tokens=2048):
    """The mean last hidden states of :func:`text_vectors` before standardisation (their
    statistics standardise a request's reading too).

    Cached under ``cache_dir`` (~ = the LM cache) by a hash of the LM's ``identity`` and the
    texts, so a changed catalogue or LM never reads a stale file."""
    key = hashlib.sha256(
        json.dumps([identity, list(texts), "mean states"]).encode("utf-8")
    ).hexdigest()
    folder = os.path.join(os.path.expanduser(cache_dir or DEFAULT_CACHE_DIR), "item-text-vectors")
    path = os.path.join(folder, f"{key[:24]}.pt")
    if os.path.exists(path):
        return torch.load(path, weights_only=True)
    readings = _mean_states(model, tokenizer, texts, batch_tokens)
    os.makedirs(folder, exist_ok=True)
    staging = f"{path}.{os.getpid()}.tmp"
    torch.save(readings, staging)
    os.replace(staging, path)  # another process may write the same file: the last one wins
    return readings


@torch.no_grad()
def _mean_states(model, tokenizer, texts, batch_tokens):
    """Texts read in batches of similar length (longest first, at most ``batch_tokens`` padded
    tokens a batch), so a long title pads only its neighbours: on amazon-games' 16,860 titles
    an unsorted batch is mostly padding. The order changes no vector: each text is read alone
    under its own causal mask."""
    decoder = model.get_decoder()
    device = next(decoder.parameters()).device
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] or [0] for t in texts]
    width = model.config.hidden_size
    out = torch.zeros(len(texts), width)
    order = sorted(range(1, len(texts)), key=lambda i: -len(ids[i]))  # text 0: the padding
    start = 0
    while start < len(order):
        longest = len(ids[order[start]])
        batch = order[start : start + max(1, batch_tokens // longest)]
        start += len(batch)
        input_ids = torch.zeros(len(batch), longest, dtype=torch.long)
        mask = torch.zeros(len(batch), longest)
        for row, item in enumerate(batch):
            input_ids[row, : len(ids[item])] = torch.tensor(ids[item])
            mask[row, : len(ids[item])] = 1
        # right padding under causal attention: a text's own positions never see the padding
        hidden = decoder(input_ids=input_ids.to(device), use_cache=False).last_hidden_state
        hidden = hidden.float().cpu() * mask[..., None]
        out[batch] = hidden.sum(1) / mask.sum(1, keepdim=True)
    return out


def standardised(vectors, statistics=None):
    """Each dimension at mean 0 and standard deviation 1 over items 1.. (or at the
    ``statistics`` (mean, std) of another table), item 0 (the padding) at zero."""
    mean, std = statistics or text_statistics(vectors)
    out = vectors.clone()
    out[1:] = (out[1:] - mean) / std
    out[0] = 0.0
    return out


def text_statistics(readings):
    """(mean, std) per dimension over items 1.. of a reading table (item 0: the padding)."""
    return readings[1:].mean(0), readings[1:].std(0).clamp(min=1e-6)


class RequestReader:
    """The frozen LM's reading of a request's words (``item_head_request_vectors``), as the
    item texts are read, with the adapters switched off, and standardised with the catalogue
    readings' ``statistics``: the request lands in the item text vectors' space. Readings are
    kept per text (the requests of a dataset are a few hundred texts; a typed one is read
    once)."""

    def __init__(self, llm, tokenizer, statistics, keep=4096, batch_tokens=2048):
        self.llm, self.tokenizer, self.statistics = llm, tokenizer, statistics
        self.keep, self.batch_tokens = keep, batch_tokens
        self._read = {}

    def __call__(self, texts, device=None):
        """(len(texts), size) readings; zeros where a text is None or empty (no request)."""
        missing = sorted({t for t in texts if t and t not in self._read})
        if missing:
            self._read_texts(missing)
        size = self.statistics[0].shape[0]
        out = torch.zeros(len(texts), size)
        for row, text in enumerate(texts):
            if text:
                out[row] = self._read[text]
        return out.to(device) if device is not None else out

    @torch.no_grad()
    def _read_texts(self, texts):
        base, adapters_off = _frozen_base(self.llm)
        with adapters_off:
            readings = _mean_states(base, self.tokenizer, ["", *texts], self.batch_tokens)
        if len(self._read) + len(texts) > self.keep:
            self._read.clear()
        # row 0 is the padding text, as in a catalogue table
        for text, reading in zip(texts, standardised(readings, self.statistics)[1:]):
            self._read[text] = reading


def _frozen_base(llm):
    """(the base LM, a context that switches its LoRA adapters off): the frozen LM that reads
    item texts and requests alike."""
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    return base, llm.disable_adapter() if hasattr(llm, "disable_adapter") else nullcontext()


def build_item_head(
    llm,
    tokenizer,
    texts,
    identity,
    cache_dir=None,
    size=256,
    item_counts=None,
    categories=None,
    collab=None,
    request_vectors=False,
):
    """An :class:`ItemHead` over ``texts`` (one per item id), its text vectors read by the
    base LM with any LoRA adapters switched off; ``categories`` (category words per item id)
    adds their learned vectors, ``collab`` (an item embedding table) its projection. With
    ``request_vectors``, also the :class:`RequestReader` that reads requests for it (else
    None)."""
    base, adapters_off = _frozen_base(llm)
    with adapters_off:
        readings = text_readings(base, tokenizer, texts, identity, cache_dir)
    statistics = text_statistics(readings)
    head = ItemHead(
        standardised(readings, statistics),
        base.config.hidden_size,
        size,
        item_counts,
        categories,
        collab,
        request_vectors,
    )
    reader = RequestReader(llm, tokenizer, statistics) if request_vectors else None
    return head, reader


def plan_scores(head, scorer, plans, reader=None):
    """Each plan's candidates scored by the item head from the state at the end of its
    prompt: one position per user, whatever the number of candidates (``reader``: each plan's
    request read for ``item_head_request_vectors``). Returns (scores, None, None) per plan,
    the shape of the likelihood head's (scores, logprob sums, token counts)."""
    prefixes = [plan.requests[0][0] for plan in plans]
    states, _, _ = scorer.states_before(prefixes, [[len(p)] for p in prefixes])
    states = torch.cat(states)
    requests = None
    if reader is not None:
        requests = reader([plan.request_text for plan in plans], states.device)
    logits = head(states, requests)
    out = []
    for row, plan in zip(logits, plans):
        candidates = torch.tensor(plan.candidates, dtype=torch.long, device=row.device)
        out.append((row[candidates], None, None))
    return out
