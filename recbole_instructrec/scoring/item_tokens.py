"""Item-ID tokens: collaborative item embeddings inside the LLM's input (the idea of LLaRA).

Every item mention in an instruction (history, listed candidates, the T2 answer) is preceded by
one *item token*: a token id past the text vocabulary, ``first_item_token + item_id``. The
model's input embedding is wrapped so that such an id looks up the item's collaborative
embedding (from a RecBole model's ``item_embedding``, e.g. SASRec trained by ``run_recbole``,
or a table learned jointly) and maps it through a small trainable projector into the LLM's
embedding space. Text tokens are embedded as before, so a hybrid prompt is the text prompt plus
one extra position per item mention.

Item tokens are inputs only: the LM head cannot emit them, so the scorer never uses one as a
target (:class:`~recbole_instructrec.scoring.continuation.ContinuationScorer`'s
``first_input_only_token``). A candidate's answer "<item token> Title" is thus scored as
``log p(Title | instruction, item token)``: the title's likelihood given both what the user did
and where the item sits in collaborative space.
"""

import torch
from torch import nn

from recbole_instructrec.scoring.retriever import load_retriever


class CollabCheckpointError(ValueError):
    """A ``collab_model_checkpoint`` that cannot supply item embeddings; the message says why."""


def collab_item_embeddings(path, dataset):
    """The item embedding table (``dataset.item_num`` rows) of a saved RecBole model."""
    model = load_retriever(path, dataset, setting="collab_model_checkpoint")
    table = getattr(model, "item_embedding", None)
    if not isinstance(table, nn.Embedding):
        raise CollabCheckpointError(
            f"collab_model_checkpoint={path!r} is a {type(model).__name__}, which has no "
            "item_embedding table; use a model that learns one (SASRec, GRU4Rec, BERT4Rec, "
            "BPR, ...)."
        )
    # BERT4Rec keeps an extra [MASK] row after the items.
    return table.weight.detach()[: dataset.item_num].float().clone()


class ItemTokenEmbedding(nn.Module):
    """The LLM's input embedding, extended with projected item embeddings for item tokens.

    Args:
        text_embedding: the LLM's own input embedding (kept, frozen or not, as it was).
        item_table: ``(n_items, d)`` initial item embeddings.
        train_table: learn the table too (jointly learned embeddings) or keep it fixed.
        projector_hidden_size: width of the two-layer projector.
        known_items: optional ``(n_items,)`` bool mask; the other items all share one learned
            "rarely seen" vector instead of their own row, whose values the collaborative model
            barely trained.
    """

    # Which items had their own token in training: saved with the checkpoint, so that a model
    # reloaded on more data (``instructrec recommend`` loads the whole dataset) gates as trained.
    checkpoint_buffers = ("known_items",)

    def __init__(
        self,
        text_embedding,
        item_table,
        train_table=False,
        projector_hidden_size=256,
        known_items=None,
    ):
        super().__init__()
        self.text_embedding = text_embedding
        self.first_item_token = int(text_embedding.num_embeddings)
        self.item_table = nn.Embedding.from_pretrained(item_table.float(), freeze=not train_table)
        if known_items is not None:
            self.register_buffer("known_items", torch.as_tensor(known_items, dtype=torch.bool))
            # Starts at the mean item, the collaborative model's best guess for an unseen one.
            self.rare_item = nn.Parameter(item_table.float()[1:].mean(0).clone())
        else:
            self.known_items = None
        hidden = text_embedding.embedding_dim
        self.projector = nn.Sequential(
            nn.Linear(item_table.shape[1], projector_hidden_size),
            nn.GELU(),
            nn.Linear(projector_hidden_size, hidden),
        )
        # Start item tokens at the size of text tokens: a projection far off the embedding
        # scale would swamp (or vanish under) the prompt before the projector has learned.
        with torch.no_grad():
            weight = text_embedding.weight
            text_rms = weight.float().pow(2).mean().sqrt().item()
            sample = self.projector(self.item_table.weight[1:].to(weight.device))
            projected_rms = sample.pow(2).mean().sqrt().clamp(min=1e-8).item()
        self.register_buffer("scale", torch.tensor(text_rms / projected_rms))
        self.to(text_embedding.weight.device)

    @property
    def weight(self):
        # Heads tied to the input embedding, and code that reads the vocabulary size, see
        # the text embedding, as before.
        return self.text_embedding.weight

    @property
    def num_embeddings(self):
        return self.text_embedding.num_embeddings

    @property
    def embedding_dim(self):
        return self.text_embedding.embedding_dim

    def item_vectors(self, items):
        vectors = self.item_table(items)
        if self.known_items is not None:
            known = self.known_items[items].unsqueeze(-1)
            vectors = torch.where(known, vectors, self.rare_item.to(vectors.dtype))
        return self.projector(vectors) * self.scale

    def forward(self, input_ids):
        is_item = input_ids >= self.first_item_token
        embedded = self.text_embedding(input_ids.masked_fill(is_item, 0))
        if not bool(is_item.any()):
            return embedded
        items = self.item_vectors(input_ids[is_item] - self.first_item_token)
        return embedded.index_put((is_item,), items.to(embedded.dtype))


def install_item_tokens(
    llm, item_table, train_table=False, projector_hidden_size=256, known_items=None
):
    """Wrap ``llm``'s input embedding (after LoRA is attached, so the projector gets no
    adapter); returns the wrapper."""
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    text_embedding = base.get_input_embeddings()
    wrapper = ItemTokenEmbedding(
        text_embedding, item_table, train_table, projector_hidden_size, known_items
    )
    base.set_input_embeddings(wrapper)
    return wrapper


def learned_item_table(n_items, size, seed):
    generator = torch.Generator().manual_seed(int(seed or 0) + 2)
    table = torch.randn((n_items, int(size)), generator=generator) * 0.02
    table[0] = 0.0  # the padding item
    return table
