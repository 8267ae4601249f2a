"""Shared-prefix scoring equals the naive one-prompt-per-candidate computation."""

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from conftest import DATASET_DIR
from recbole_instructrec import InstructRec
from recbole_instructrec.scoring.backbone import load_backbone
from recbole_instructrec.scoring.continuation import ContinuationScorer


def naive_logprob(model, prompt, continuation, is_encoder_decoder=False):
    """log p(continuation | prompt): one full forward pass per candidate."""
    with torch.no_grad():
        if is_encoder_decoder:
            start = model.config.decoder_start_token_id
            out = model(
                input_ids=torch.tensor([prompt]),
                decoder_input_ids=torch.tensor([[start] + continuation[:-1]]),
            )
            logprobs = out.logits[0].log_softmax(-1)
            return sum(logprobs[k, t].item() for k, t in enumerate(continuation))
        logits = model(torch.tensor([prompt + continuation])).logits[0].log_softmax(-1)
        return sum(logits[len(prompt) - 1 + k, t].item() for k, t in enumerate(continuation))


def _random_requests(vocab, n_users=3, seed=0):
    g = torch.Generator().manual_seed(seed)

    def ids(lo, hi):
        n = int(torch.randint(lo, hi, (1,), generator=g))
        return torch.randint(4, vocab, (n,), generator=g).tolist()

    prompts = [ids(5, 30) for _ in range(n_users)]
    continuations = [
        [ids(1, 6) for _ in range(int(torch.randint(1, 9, (1,), generator=g)))]
        for _ in range(n_users)
    ]
    return prompts, continuations


@pytest.mark.parametrize(
    "limits",
    [
        {},  # everything in one packed pass
        {"max_batch_tokens": 40},  # users split across passes
        {"max_row_tokens": 35},  # prompt cached, continuations in chunks
        {"max_row_tokens": 8, "max_batch_tokens": 8},  # one continuation per chunk
    ],
)
@pytest.mark.parametrize("backbone_fixture", ["tiny_llm", "tiny_t5"])
def test_shared_prefix_scores_equal_naive(request, backbone_fixture, limits):
    backbone = load_backbone(request.getfixturevalue(backbone_fixture))
    model = backbone.model.eval()
    prompts, continuations = _random_requests(model.config.vocab_size)
    scorer = ContinuationScorer(model, backbone.is_encoder_decoder, **limits)
    with torch.no_grad():
        result = scorer.score(prompts, continuations)
    for prompt, conts, sums, counts in zip(
        prompts, continuations, result.logprob_sums, result.token_counts
    ):
        expected = [naive_logprob(model, prompt, c, backbone.is_encoder_decoder) for c in conts]
        assert torch.allclose(sums, torch.tensor(expected), atol=1e-4), (sums, expected)
        assert counts.tolist() == [len(c) for c in conts]


@pytest.mark.parametrize("limits", [{}, {"max_row_tokens": 8, "max_batch_tokens": 8}])
@pytest.mark.parametrize("backbone_fixture", ["tiny_llm", "tiny_t5"])
def test_shared_prefix_is_exact_in_float64(request, backbone_fixture, limits):
    # In float64 the rounding that separates the two paths in float32 vanishes; what is left
    # would be a real error (a wrong mask, position or padding), so the bound is 1e-9.
    backbone = load_backbone(request.getfixturevalue(backbone_fixture))
    model = backbone.model.eval().to(torch.float64)
    prompts, continuations = _random_requests(model.config.vocab_size, seed=1)
    scorer = ContinuationScorer(model, backbone.is_encoder_decoder, **limits)
    with torch.no_grad():
        result = scorer.score(prompts, continuations)
    for prompt, conts, sums in zip(prompts, continuations, result.logprob_sums):
        expected = [naive_logprob(model, prompt, c, backbone.is_encoder_decoder) for c in conts]
        assert sums.dtype == torch.float64
        assert torch.allclose(sums, torch.tensor(expected, dtype=torch.float64), atol=1e-9)


def test_shared_prefix_computes_each_token_once(tiny_llm):
    backbone = load_backbone(tiny_llm)
    prompts, continuations = _random_requests(backbone.model.config.vocab_size, n_users=1)
    scorer = ContinuationScorer(backbone.model.eval())
    with torch.no_grad():
        scorer.score(prompts, continuations)
    floor = len(prompts[0]) + sum(map(len, continuations[0]))
    assert scorer.tokens_computed == floor


def _tiny_model(tmp_path, llm_path, **settings):
    config = Config(
        model="InstructRec",
        dataset="tiny",
        config_dict={"data_path": DATASET_DIR, "llm_path": llm_path, **settings},
    )
    init_seed(config["seed"], True)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    return InstructRec(config, train._dataset), test


@pytest.mark.parametrize("backbone_fixture", ["tiny_llm", "tiny_t5"])
def test_predict_matches_naive_per_candidate(request, tmp_path, backbone_fixture):
    model, test_data = _tiny_model(tmp_path, request.getfixturevalue(backbone_fixture))
    model.eval()
    interaction = next(iter(test_data))[0]
    with torch.no_grad():
        scores = model.predict(interaction)
    seqs = interaction[model.ITEM_SEQ]
    lengths = interaction[model.ITEM_SEQ_LEN]
    items = interaction[model.ITEM_ID]
    assert scores.shape == items.shape
    for row in range(0, len(items), 3):
        prompt = model.prompts.prompt_ids(seqs[row, : lengths[row]].tolist())
        answer = model.prompts.answer_ids(items[row].item())
        expected = naive_logprob(model.llm, prompt, answer, model.is_encoder_decoder) / len(answer)
        assert abs(scores[row].item() - expected) < 1e-4


def test_full_sort_predict_agrees_with_predict(tmp_path, tiny_llm):
    model, test_data = _tiny_model(tmp_path, tiny_llm)
    model.eval()
    interaction = next(iter(test_data))[0]
    with torch.no_grad():
        sampled = model.predict(interaction)
        first_user = interaction[: 1 + 9]  # uni9: a user's positive and its 9 negatives
        full = model.full_sort_predict(first_user[:1])
    assert full.shape == (1, model.n_items)
    assert full[0, 0] == float("-inf")
    items = first_user[model.ITEM_ID]
    assert torch.allclose(full[0, items], sampled[:10], atol=1e-4)
