"""A saved RecBole model (e.g. SASRec trained by ``run_recbole``) as the first stage of a
two-stage ranking: its top-K items are re-ranked by the LLM.

RecBole checkpoints are pickles holding RecBole's Config; they are unpickled with an allowlist
(:mod:`.safe_unpickle`), so a crafted file cannot run code. InstructRec's own checkpoints are
not pickles at all (safetensors + JSON).
"""

import os

import torch

from recbole_instructrec.scoring.safe_unpickle import RestrictedPickle, UnsafeCheckpointError


class RetrieverError(ValueError):
    """A ``candidate_model`` that cannot serve this dataset; the message says why."""


def load_retriever(path, dataset, setting="candidate_model"):
    from recbole.utils import get_model

    if not os.path.isfile(str(path)):
        raise RetrieverError(
            f"{setting}={path!r} does not exist. Give the .pth file that run_recbole saved "
            "under checkpoint_dir for the retriever (e.g. saved/SASRec-<time>.pth)."
        )
    try:
        checkpoint = torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=RestrictedPickle
        )
        config = checkpoint["config"]
        state = checkpoint["state_dict"]
    except UnsafeCheckpointError as err:
        raise RetrieverError(f"{setting}={path!r}: {err}") from err
    except Exception as err:
        raise RetrieverError(
            f"{setting}={path!r} is not a RecBole checkpoint ({type(err).__name__}: {err}). "
            "It must be a .pth file written by RecBole's trainer."
        ) from err
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


def retrieve_top_k(retriever, interaction, k, exclude=None):
    """(all scores, indices of the top ``k`` items): the padding item never counts, and
    ``exclude`` (one list of item ids per row) is left out too.

    Under RecBole's own ``full`` evaluation a sequential model ranks every item, already-seen
    ones included (RecBole masks no history for sequential models), so evaluation passes no
    ``exclude``: the two stages then rank under exactly the retriever's rules.
    """
    with torch.no_grad():
        scores = retriever.full_sort_predict(interaction).float().clone()
    scores[:, 0] = float("-inf")
    for row, items in enumerate(exclude or []):
        if len(items):
            scores[row, torch.as_tensor(list(items), device=scores.device)] = float("-inf")
    return scores, scores.topk(min(int(k), scores.shape[1] - 1), dim=1).indices
