"""The real embedded SmolLM2-135M-Instruct, end to end on ml-100k."""

import os

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_instructrec import InstructRec
from recbole_instructrec.scoring.backbone import embedded_gguf_path, load_backbone


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    # A shared cache speeds local runs; CI (a clean clone) de-quantizes once here.
    return os.environ.get("INSTRUCTREC_TEST_CACHE") or str(tmp_path_factory.mktemp("llm-cache"))


def test_embedded_model_loads_and_is_cached(cache_dir):
    assert embedded_gguf_path().endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    backbone = load_backbone(None, cache_dir)
    assert backbone.identity == "embedded:SmolLM2-135M-Instruct.Q4_1.gguf"
    assert not backbone.is_encoder_decoder
    cached = [d for d in os.listdir(cache_dir) if d.startswith("SmolLM2")]
    assert cached and os.path.isfile(os.path.join(cache_dir, cached[0], "model.safetensors"))
    # A real pretrained model: it prefers a sensible continuation over a scrambled one.
    tok, model = backbone.tokenizer, backbone.model.eval()
    prompt = tok("The capital of France is")["input_ids"]
    good, bad = tok(" Paris")["input_ids"], tok(" banana")["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[0, -1].log_softmax(-1)
    assert logits[good[0]] > logits[bad[0]]


def test_embedded_model_ranks_ml100k_users_end_to_end(cache_dir):
    config = Config(
        model="InstructRec",
        dataset="ml-100k",
        config_dict={"llm_cache_dir": cache_dir, "lora_r": 4, "eval_batch_size": 100},
    )
    init_seed(config["seed"], True)
    train, valid, test = data_preparation(config, create_dataset(config))
    model = InstructRec(config, train._dataset)
    assert model.prompts.use_chat  # SmolLM2's chat template wraps the instruction

    model.train()
    loss = model.calculate_loss(next(iter(train))[:2])
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert torch.isfinite(loss) and any(g is not None and g.abs().sum() > 0 for g in grads)

    model.eval()
    interaction = next(iter(test))[0]
    with torch.no_grad():
        scores = model.predict(interaction).view(-1, 10)  # ten users, positive first
    assert torch.isfinite(scores).all()
    assert scores.std() > 0


def test_running_list_scores_every_position_like_each_prefix_alone(cache_dir):
    """SmolLM2's BPE tokenizer and chat template: a training pass over one ml-100k user's list
    gives, at every position, the score evaluation computes for that prefix."""
    from recbole_instructrec.scoring.continuation import ContinuationScorer

    config = Config(
        model="InstructRec",
        dataset="ml-100k",
        config_dict={
            "llm_cache_dir": cache_dir,
            "eval_template": "seq-list",
            "lora_r": 0,
            "train_negatives": 4,  # pinned: the negatives' segments are what this checks
        },
    )
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, create_dataset(config))
    model = InstructRec(config, train._dataset).eval()
    row = train._dataset.inter_feat[30]
    history = row[model.ITEM_SEQ][: row[model.ITEM_SEQ_LEN]].tolist()
    training_row = model.prompts.training_row(history + [int(row[model.POS_ITEM_ID])])
    assert len(training_row.cuts) >= 5
    items = model._sample_negatives(training_row.histories, training_row.items)
    negatives = [[model.prompts.piece(n) for n in position[:2]] for position in items]
    scorer = ContinuationScorer(model.llm, max_batch_tokens=100_000)
    with torch.no_grad():
        one_pass = scorer.score_running_lists([training_row], [negatives]).logprob_sums
        for k, cut in enumerate(training_row.cuts):
            plan = model.prompts.plan(training_row.histories[k], [training_row.items[k]])
            ((prefix, (positive,)),) = plan.requests
            alone = scorer.score([prefix], [[positive] + negatives[k]]).logprob_sums[0]
            assert prefix == training_row.ids[:cut]
            assert torch.allclose(one_pass[k], alone, atol=2e-3, rtol=0), (k, one_pass[k], alone)
