"""`instructrec serve`: a live server (uvicorn, in this process) on dataset/tiny with a tiny
Llama, every endpoint, batched requests against `Recommender` alone, the bounded queue, and
every bad input of issue 22 (each a 4xx JSON error naming the field, the server serving on)."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi", reason="the server tests need FastAPI: pip install '.[serve]'")
pytest.importorskip("uvicorn", reason="the server tests need uvicorn: pip install '.[serve]'")
httpx = pytest.importorskip("httpx", reason="the server tests need httpx: pip install '.[dev]'")

from conftest import DATASET_DIR, tiny_config  # noqa: E402
from live_server import LiveServer, wait_for  # noqa: E402
from recbole_instructrec.quick_start.cli import instructrec_main  # noqa: E402
from recbole_instructrec.quick_start.recommend import Recommender  # noqa: E402
from recbole_instructrec.quick_start.serve import (  # noqa: E402
    MAX_INSTRUCTION_CHARS,
    StartError,
    create_app,
    load_recommender,
)

WISH = "something that makes me laugh"


@pytest.fixture(scope="module")
def recommender(tmp_path_factory, tiny_llm):
    return Recommender("tiny", None, tiny_config(tmp_path_factory.mktemp("serve"), tiny_llm))


@pytest.fixture(scope="module")
def live(recommender):
    with LiveServer(create_app(recommender, max_batch=8, max_queue=16)) as server:
        yield server


def item_ids(recommender, tokens):
    return [recommender.dataset.token2id(recommender.dataset.iid_field, t) for t in tokens]


def assert_serving(live):
    """The server still answers, a good request included."""
    assert live.client.get("/health").json()["status"] == "ok"
    response = live.client.post("/recommend", json={"user": "u1", "top_k": 2})
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 2


# ------------------------------------------------------------------ endpoints
def test_health_info_and_openapi(live, recommender):
    health = live.client.get("/health").json()
    assert health["status"] == "ok" and health["queued"] == 0
    info = live.client.get("/info").json()
    assert info["dataset"] == "tiny"
    assert info["n_items"] == recommender.model.n_items - 1 == 40
    assert info["n_users"] > 0 and info["max_batch"] == 8 and info["max_queue"] == 16
    assert info["candidate_model"] is None and info["checkpoint"] is None
    assert info["max_instruction_chars"] == MAX_INSTRUCTION_CHARS
    schema = live.client.get("/openapi.json").json()
    assert {"/recommend", "/items", "/users", "/health", "/info"} <= set(schema["paths"])
    request_schema = schema["components"]["schemas"]["RecommendRequest"]
    assert {"user", "history_titles", "instruction", "top_k", "candidates"} <= set(
        request_schema["properties"]
    )
    assert "422" in schema["paths"]["/recommend"]["post"]["responses"]
    docs = live.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_items_looks_titles_up_and_users_are_listed(live):
    found = live.client.get("/items", params={"query": "long"}).json()["items"]
    assert {"item_id": "i1", "title": "Long Road (1981)", "categories": ["Drama"]} in found
    assert found and all(r["title"].startswith("Long") for r in found)
    inside = live.client.get("/items", params={"query": "ROAD"}).json()["items"]
    assert "Long Road (1981)" in [r["title"] for r in inside]
    assert live.client.get("/items", params={"query": "zzz qqq"}).json()["items"] == []
    assert len(live.client.get("/items", params={"limit": 5}).json()["items"]) == 5
    users = live.client.get("/users", params={"query": "u1"}).json()["users"]
    assert users[0]["user"] == "u1" and users[0]["interactions"] > 0


def test_page_and_its_files_are_served(live):
    page = live.client.get("/")
    assert page.status_code == 200 and 'id="instruction"' in page.text
    for path in ("/static/app.js", "/static/style.css"):
        assert live.client.get(path).status_code == 200
    assert "http" not in page.text.replace('href="/', "")  # nothing from outside the server


def test_recommend_by_user_and_by_titles(live, recommender):
    response = live.client.post("/recommend", json={"user": "u2", "instruction": WISH, "top_k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["rank"] for r in body["items"]] == [1, 2, 3, 4, 5]
    scores = [r["score"] for r in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert all(r["categories"] and r["llm_score"] is None for r in body["items"])
    assert WISH in body["prompt"] and body["instruction"] == WISH
    history = recommender.user_history("u2")
    assert body["candidates"] == 40 - len(set(history))
    assert set(body["timing"]) == {"queued_ms", "scoring_ms", "total_ms", "batch_size"}
    titles = live.client.post(
        "/recommend", json={"history_titles": ["long road", "No Such Film"], "top_k": 3}
    ).json()
    assert titles["history"] == ["Long Road (1981)"] and titles["unmatched"] == ["No Such Film"]
    by_int = live.client.post("/recommend", json={"user": "u2", "instruction": WISH, "top_k": 5})
    assert by_int.json()["items"] == body["items"]


# ------------------------------------------------------------------ batching
def test_requests_arriving_together_share_one_pass_and_equal_served_alone(live, recommender):
    requests = [
        {"user": "u1", "top_k": 5},
        {"user": "u2", "instruction": WISH, "top_k": 5},
        {"history_titles": ["long road", "Cursed Harbor", "No Such Film"], "top_k": 4},
        {"user": "u3", "candidates": ["i1", "i2", "i3", "i4", "i5", "i6"], "top_k": 3},
        {"user": "u2", "instruction": "an old film", "guidance": 1.0, "top_k": 6},
        {"user": "u4", "include_history": True, "top_k": 40},
    ]
    batcher = live.app.state.batcher
    with ThreadPoolExecutor(len(requests)) as pool:
        with batcher.hold():
            futures = [pool.submit(live.client.post, "/recommend", json=r) for r in requests]
            wait_for(lambda: batcher.queued == len(requests), "every request to queue")
        responses = [f.result() for f in futures]
    for request, response in zip(requests, responses):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["timing"]["batch_size"] == len(requests)  # one pass for all of them
        alone = dict(request)
        if "candidates" in alone:
            alone["candidates"] = item_ids(recommender, alone["candidates"])
        expected = recommender.recommend(**alone)
        assert body["history"] == expected.history
        assert body["unmatched"] == expected.unmatched
        assert body["prompt"] == expected.prompt
        got = [(r["rank"], r["item_id"], r["title"]) for r in body["items"]]
        assert got == [(r["rank"], r["item_id"], r["title"]) for r in expected.items]
        assert [r["score"] for r in body["items"]] == pytest.approx(
            [r["score"] for r in expected.items], abs=2e-4
        )


def test_a_full_queue_answers_503_with_retry_after_and_serves_on(recommender):
    with LiveServer(create_app(recommender, max_batch=4, max_queue=2)) as live:
        batcher = live.app.state.batcher
        with ThreadPoolExecutor(2) as pool:
            with batcher.hold():
                queued = [
                    pool.submit(live.client.post, "/recommend", json={"user": u, "top_k": 1})
                    for u in ("u1", "u2")
                ]
                wait_for(lambda: batcher.queued == 2, "two queued requests")
                refused = live.client.post("/recommend", json={"user": "u3", "top_k": 1})
                assert refused.status_code == 503
                assert int(refused.headers["Retry-After"]) >= 1
                assert "retry after" in refused.json()["message"]
                assert live.client.get("/health").json()["rejected"] == 1
            assert [f.result().status_code for f in queued] == [200, 200]
        assert_serving(live)


# ------------------------------------------------------------------ bad input
TOO_LONG = "x" * 100_000

BAD_INPUTS = {
    "unknown user": (dict(json={"user": "nobody"}), 422, "user", "GET /users"),
    "titles that match nothing": (
        dict(json={"history_titles": ["Zzz Qqq", "Nothing Like It"]}),
        422,
        "history_titles",
        "GET /items",
    ),
    "top_k of 0": (dict(json={"user": "u1", "top_k": 0}), 422, "top_k", "from 1 to 40"),
    "negative top_k": (dict(json={"user": "u1", "top_k": -3}), 422, "top_k", "from 1 to 40"),
    "top_k above the catalogue": (
        dict(json={"user": "u1", "top_k": 41}),
        422,
        "top_k",
        "from 1 to 40",
    ),
    "top_k not a number": (dict(json={"user": "u1", "top_k": "ten"}), 422, "top_k", "whole"),
    "top_k true": (dict(json={"user": "u1", "top_k": True}), 422, "top_k", "whole number"),
    "a title that is not text": (
        dict(json={"history_titles": ["Long Road", 5]}),
        422,
        "history_titles",
        "history_titles[1]: Input should be a valid string",
    ),
    "a lone surrogate in the instruction": (
        dict(
            content=b'{"user": "u1", "instruction": "\\ud800"}',
            headers={"Content-Type": "application/json"},
        ),
        422,
        "instruction",
        "Give it as text",
    ),
    "an instruction of 100 kB": (
        dict(json={"user": "u1", "instruction": TOO_LONG}),
        422,
        "instruction",
        f"at most {MAX_INSTRUCTION_CHARS} characters",
    ),
    "non-UTF-8 bytes": (
        dict(
            content=b'{"user": "u1", "instruction": "caf\xe9 cr\xe8me"}',
            headers={"Content-Type": "application/json"},
        ),
        400,
        "body",
        "encode the JSON as UTF-8",
    ),
    "a wrong content type": (
        dict(content=b'{"user": "u1"}', headers={"Content-Type": "text/plain"}),
        415,
        "Content-Type",
        "Content-Type: application/json",
    ),
    "a form instead of JSON": (
        dict(data={"user": "u1"}),
        415,
        "Content-Type",
        "Content-Type: application/json",
    ),
    "a malformed JSON body": (
        dict(content=b'{"user": "u1", ', headers={"Content-Type": "application/json"}),
        400,
        "body",
        "not valid JSON",
    ),
    "JSON that is not an object": (
        dict(content=b'["u1"]', headers={"Content-Type": "application/json"}),
        422,
        "body",
        "one JSON object",
    ),
    "both a user and titles": (
        dict(json={"user": "u1", "history_titles": ["Long Road"]}),
        422,
        "user",
        "exactly one of",
    ),
    "neither a user nor titles": (dict(json={"top_k": 3}), 422, "history_titles", "exactly one"),
    "a misspelt field": (dict(json={"user": "u1", "topk": 3}), 422, "topk", "the fields are"),
    "an unknown candidate": (
        dict(json={"user": "u1", "candidates": ["i1", "i999"]}),
        422,
        "candidates",
        "i999",
    ),
    "negative guidance": (dict(json={"user": "u1", "guidance": -1}), 422, "guidance", ">= 0"),
    "a body over 1 MiB": (
        dict(json={"user": "u1", "history_titles": ["a" * 1000] * 1100}),
        413,
        "body",
        "over the limit",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_4xx_json_error_naming_the_field(live, case):
    kwargs, status, field, advice = BAD_INPUTS[case]
    response = live.client.post("/recommend", **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status and body["field"] == field
    assert advice in body["message"]
    assert body["errors"][0]["field"] == field
    assert len(response.content) < 2000  # the error does not echo a huge input back
    assert_serving(live)


def test_bad_query_parameters_and_unknown_paths_are_json_errors(live):
    response = live.client.get("/items", params={"limit": 0})
    assert response.status_code == 422 and response.json()["field"] == "limit"
    assert "from 1 to 100" in response.json()["message"]
    missing = live.client.get("/nowhere")
    assert missing.status_code == 404 and "/docs" in missing.json()["message"]
    wrong_method = live.client.get("/recommend")
    assert wrong_method.status_code == 405 and wrong_method.json()["status"] == 405
    assert_serving(live)


# ------------------------------------------------------------------ start
def test_a_checkpoint_of_another_dataset_is_refused_at_start(tmp_path, recommender):
    from recbole_instructrec.trainer import checkpoint as ckpt

    path = str(tmp_path / "tiny-adapters.safetensors")
    ckpt.save_checkpoint(path, recommender.model, {"config": {"dataset": "tiny"}})
    with pytest.raises(StartError, match="trained on dataset 'tiny', not 'ml-100k'"):
        load_recommender("ml-100k", path)
    with pytest.raises(SystemExit, match="cannot start: .*give --dataset tiny"):
        instructrec_main(["serve", "--dataset", "ml-100k", "--checkpoint", path])
    with pytest.raises(SystemExit, match="cannot start: .*does not exist"):
        instructrec_main(["serve", "--checkpoint", str(tmp_path / "missing.safetensors")])


def test_cli_serve_builds_the_app_and_runs_uvicorn(monkeypatch, tiny_llm):
    import uvicorn
    from fastapi.testclient import TestClient

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    instructrec_main(
        [
            "serve",
            "--dataset",
            "tiny",
            "--port",
            "8123",
            "--max-batch",
            "3",
            "--set",
            f"data_path={DATASET_DIR}",
            "--set",
            f"llm_path={tiny_llm}",
        ]
    )
    assert started["host"] == "127.0.0.1" and started["port"] == 8123
    with TestClient(started["app"]) as client:
        info = client.get("/info").json()
        assert info["dataset"] == "tiny" and info["max_batch"] == 3
        assert client.post("/recommend", json={"user": "u1", "top_k": 3}).status_code == 200


def test_two_stage_and_fused_serving(tmp_path, tiny_llm, sasrec_checkpoint):
    """A retriever proposes the candidates; a fused model shows the LLM's own score."""
    from fastapi.testclient import TestClient

    settings = tiny_config(
        tmp_path,
        tiny_llm,
        candidate_model=sasrec_checkpoint,
        rerank_top_k=6,
        fusion_model=sasrec_checkpoint,
        fusion_weight=1.0,
    )
    recommender = Recommender("tiny", None, settings)
    with TestClient(create_app(recommender)) as client:
        info = client.get("/info").json()
        assert info["candidate_model"] == sasrec_checkpoint and info["rerank_top_k"] == 6
        assert info["fusion_weight"] == 1.0
        body = client.post("/recommend", json={"user": "u1", "instruction": WISH}).json()
        assert body["candidates"] == 6 and len(body["items"]) == 6
        assert all(isinstance(r["llm_score"], float) for r in body["items"])
        expected = recommender.recommend(user="u1", instruction=WISH)
        assert [r["item_id"] for r in body["items"]] == [r["item_id"] for r in expected.items]


def test_json_errors_do_not_stop_the_batcher(live):
    """A request that fails inside the scoring pass is answered 500 as JSON; others go on."""
    batcher = live.app.state.batcher
    original = batcher._recommend_many

    def failing(requests):
        if any(r.get("instruction") == "explode" for r in requests):
            raise RuntimeError("boom")
        return original(requests)

    batcher._recommend_many = failing
    try:
        response = live.client.post("/recommend", json={"user": "u1", "instruction": "explode"})
        assert response.status_code == 500
        assert "boom" in json.loads(response.text)["message"]
    finally:
        batcher._recommend_many = original
    assert_serving(live)
