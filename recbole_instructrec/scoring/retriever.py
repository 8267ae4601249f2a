"""A saved RecBole model (e.g. SASRec trained by ``run_recbole``) as the first stage of a
two-stage ranking: its top-K items are re-ranked by the LLM.

RecBole checkpoints are pickles holding RecBole's Config; torch's safe loader reads them with
an explicit allowlist (:mod:`.recbole_checkpoint`), so a crafted file cannot run code.
InstructRec's own checkpoints are not pickles at all (safetensors + JSON).
"""

import os

import torch

from recbole_instructrec.scoring.recbole_checkpoint import (
    UnsafeCheckpointError,
    load_recbole_checkpoint,
)


class RetrieverError(ValueError):
    """A ``candidate_model`` that cannot serve this dataset; the message says why."""


def read_checkpoint(path, setting="candidate_model", map_location="cpu"):
    """A RecBole checkpoint's dict (config, state_dict, ...), read by torch's safe loader."""
    if not os.path.isfile(str(path)):
        raise RetrieverError(
            f"{setting}={path!r} does not exist. Give the .pth file that run_recbole saved "
            "under checkpoint_dir for the retriever (e.g. saved/SASRec-<time>.pth)."
        )
    try:
        checkpoint = load_recbole_checkpoint(path, map_location=map_location)
        missing = {"config", "state_dict"} - set(checkpoint)
        if missing:
            raise KeyError(f"no {sorted(missing)}")
    except UnsafeCheckpointError as err:
        raise RetrieverError(f"{setting}={path!r}: {err}") from err
    except Exception as err:
        raise RetrieverError(
            f"{setting}={path!r} is not a RecBole checkpoint ({type(err).__name__}: {err}). "
            "It must be a .pth file written by RecBole's trainer."
        ) from err
    return checkpoint


def load_retriever(path, dataset, setting="candidate_model"):
    from recbole.utils import get_model

    checkpoint = read_checkpoint(path, setting)
    config, state = checkpoint["config"], checkpoint["state_dict"]
    if config["dataset"] != dataset.dataset_name:
        raise RetrieverError(
            f"{setting}={path!r} was trained on dataset '{config['dataset']}', not "
            f"'{dataset.dataset_name}'; train the retriever on the same dataset."
        )
    model = get_model(config["model"])(config, dataset)
    expected = state.get("item_embedding.weight")
    if expected is not None and expected.shape[0] != dataset.item_num:
        raise RetrieverError(
            f"{setting}={path!r} knows {expected.shape[0]} items but this dataset has "
            f"{dataset.item_num}: it was trained with other filtering settings; train it "
            "with the same dataset settings as InstructRec."
        )
    model.load_state_dict(state)
    model.load_other_parameter(checkpoint.get("other_parameter"))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def recent_history(interaction, retriever):
    """``interaction`` with each history cut to the retriever's own ``MAX_ITEM_LIST_LENGTH``
    (its most recent items). A retriever trained on shorter histories than InstructRec's has
    no position embeddings beyond its own length, and it learned from its most recent items."""
    from recbole.data.interaction import Interaction

    limit = getattr(retriever, "max_seq_length", None)
    seq_field, len_field = retriever.ITEM_SEQ, retriever.ITEM_SEQ_LEN
    sequences = interaction[seq_field]
    if limit is None or sequences.shape[1] <= limit:
        return interaction
    lengths = interaction[len_field]
    kept = lengths.clamp(max=limit)
    # Histories are left-aligned (padding at the end): a row's recent items end at its length.
    positions = (lengths - kept)[:, None] + torch.arange(limit, device=sequences.device)[None]
    recent = sequences.gather(1, positions.clamp(max=sequences.shape[1] - 1))
    recent = torch.where(positions < lengths[:, None], recent, torch.zeros_like(recent))
    return Interaction({**interaction.interaction, seq_field: recent, len_field: kept})


def as_trained(interaction):
    """A saved RecBole model scores in float32, as it was trained and as RecBole evaluates it,
    even inside InstructRec's autocast (``enable_amp``): in bfloat16 its near-tied items would
    swap, and the two-stage top K or the fused scores would no longer be the model's own."""
    device = interaction[next(iter(interaction.interaction))].device
    return torch.autocast(device.type, enabled=False)


def retrieve_top_k(retriever, interaction, k, exclude=None):
    """(all scores, indices of the top ``k`` items): the padding item never counts, and
    ``exclude`` (one list of item ids per row) is left out too.

    Under RecBole's own ``full`` evaluation a sequential model ranks every item, already-seen
    ones included (RecBole masks no history for sequential models), so evaluation passes no
    ``exclude``: the two stages then rank under exactly the retriever's rules.
    """
    with torch.no_grad(), as_trained(interaction):
        scores = retriever.full_sort_predict(recent_history(interaction, retriever)).float()
        scores = scores.clone()
    scores[:, 0] = float("-inf")
    for row, items in enumerate(exclude or []):
        if len(items):
            scores[row, torch.as_tensor(list(items), device=scores.device)] = float("-inf")
    return scores, scores.topk(min(int(k), scores.shape[1] - 1), dim=1).indices
