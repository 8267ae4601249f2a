"""``instructrec serve``: recommendations with instructions over HTTP, and a page to try them.

The model loads once; requests that arrive together are scored in one packed pass
(:mod:`.batching`), behind a bounded queue (503 with ``Retry-After`` when it is full).

Endpoints: ``POST /recommend``, ``GET /items?query=`` (title look-up), ``GET /users``,
``GET /health``, ``GET /info``, the page at ``/`` and the OpenAPI page at ``/docs``.
Every error is JSON: ``{"status", "field", "message", "errors"}``, the message saying what to do.

Needs the ``serve`` extra (``pip install .[serve]``: FastAPI and uvicorn).
"""

import asyncio
import os
import time

from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from recbole_instructrec.quick_start.batching import Batcher, QueueFull
from recbole_instructrec.quick_start.serve_errors import (
    ApiError,
    BodyGuard,
    api_error,
    http_error,
    validation_error,
)
from recbole_instructrec.quick_start.serve_schemas import (
    ERRORS,
    MAX_INSTRUCTION_CHARS,
    MAX_TITLE_CHARS,
    Health,
    Info,
    Item,
    ItemsResponse,
    RankedItem,
    RecommendRequest,
    RecommendResponse,
    Timing,
    UserEntry,
    UsersResponse,
)

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


def create_app(recommender, max_batch=16, max_queue=64, checkpoint=None):
    """The FastAPI app serving ``recommender``; its batcher starts now and stops with the app."""
    from contextlib import asynccontextmanager

    batcher = Batcher(recommender.recommend_many, max_batch=max_batch, max_queue=max_queue)

    @asynccontextmanager
    async def lifespan(app):
        yield
        await asyncio.to_thread(batcher.close, 60)

    app = FastAPI(
        title="InstructRec",
        description="Recommendations that follow an instruction typed in your own words.",
        version="0.1.0",
        lifespan=lifespan,
    )
    state = _ServerState(recommender, checkpoint)
    app.state.batcher = batcher
    app.state.recommender = recommender
    app.state.n_items = state.n_items
    app.add_middleware(BodyGuard)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(os.path.join(STATIC, "index.html"))

    @app.get("/health", response_model=Health)
    def health():
        return Health(
            status="ok",
            queued=batcher.queued,
            in_flight=batcher.in_flight,
            served=batcher.served,
            batches=batcher.batches,
            rejected=batcher.rejected,
        )

    @app.get("/info", response_model=Info)
    def info():
        return state.info(batcher)

    @app.get("/items", response_model=ItemsResponse, responses={422: ERRORS[422]})
    def items(
        query: str = Query("", max_length=200, description="Part of a title."),
        limit: int = Query(10, ge=1, le=100),
    ):
        found = recommender.search_titles(query, limit)
        return ItemsResponse(query=query, items=[state.item(i) for i in found])

    @app.get("/users", response_model=UsersResponse, responses={422: ERRORS[422]})
    def users(
        query: str = Query("", max_length=200, description="The start of a user id."),
        limit: int = Query(20, ge=1, le=10000),
    ):
        found = [u for u in state.user_tokens if u.startswith(query)][:limit]
        entries = [UserEntry(user=u, interactions=state.interactions[u]) for u in found]
        return UsersResponse(query=query, users=entries)

    @app.post("/recommend", response_model=RecommendResponse, responses=ERRORS)
    async def recommend(body: RecommendRequest):
        arrived = time.perf_counter()
        request, pool_size = state.checked(body)
        try:
            future = batcher.submit(request)
        except QueueFull as full:
            raise ApiError(
                503,
                None,
                f"The server is busy ({full.queued} requests waiting): retry after "
                f"{full.retry_after} s.",
                headers={"Retry-After": str(full.retry_after)},
            ) from None
        try:
            result, timing = await asyncio.wrap_future(future)
        except Exception as error:  # noqa: BLE001 - answered as JSON; the server keeps serving
            raise ApiError(
                500, None, f"Scoring failed ({type(error).__name__}: {error})."
            ) from error
        return RecommendResponse(
            items=[
                RankedItem(**row, categories=state.categories_of_token(row["item_id"]))
                for row in result.items
            ],
            history=result.history,
            unmatched=result.unmatched,
            instruction=request["instruction"],
            candidates=pool_size,
            prompt=result.prompt,
            timing=Timing(
                queued_ms=round(timing.queued_s * 1000, 1),
                scoring_ms=round(timing.scoring_s * 1000, 1),
                total_ms=round((time.perf_counter() - arrived) * 1000, 1),
                batch_size=timing.batch_size,
            ),
        )

    return app


class _ServerState:
    """What the endpoints look up: item tokens, categories, users; and request checks."""

    def __init__(self, recommender, checkpoint):
        import numpy as np

        self.rec = recommender
        self.checkpoint = checkpoint
        dataset = recommender.dataset
        self.iid, self.uid = dataset.iid_field, dataset.uid_field
        self.item_tokens = dataset.field2id_token[self.iid]
        self.token2item = dataset.field2token_id[self.iid]
        self.n_items = int(recommender.model.n_items) - 1  # without the padding item
        self.categories = recommender.model.intentions.categories  # per item id, or None
        user_ids = dataset.inter_feat[self.uid]
        user_ids = user_ids.numpy() if hasattr(user_ids, "numpy") else user_ids.to_numpy()
        counts = np.bincount(user_ids, minlength=len(dataset.field2id_token[self.uid]))
        tokens = dataset.field2id_token[self.uid]
        self.user_tokens = [str(tokens[i]) for i in range(1, len(tokens)) if counts[i]]
        self.interactions = {str(tokens[i]): int(counts[i]) for i in range(1, len(tokens))}

    def item(self, item):
        return Item(
            item_id=str(self.item_tokens[item]),
            title=self.rec.model.titles[item],
            categories=self._categories(item),
        )

    def _categories(self, item):
        return list(self.categories[item]) if self.categories is not None else []

    def categories_of_token(self, token):
        return self._categories(self.token2item[token])

    def info(self, batcher):
        rec, model = self.rec, self.rec.model
        retriever = bool(model._retriever)
        return Info(
            dataset=rec.dataset.dataset_name,
            n_items=self.n_items,
            n_users=len(self.user_tokens),
            llm=str(model.llm_source),
            checkpoint=self.checkpoint,
            candidate_model=model.candidate_model if retriever else None,
            rerank_top_k=int(model.rerank_top_k) if retriever else None,
            fusion_model=model.fusion_model if model._fusion_model else None,
            fusion_weight=model.fusion_weight if model._fusion_model else None,
            instruction_guidance=rec.instruction_guidance,
            eval_template=str(model.eval_template),
            instruction_template=rec.instruction_template,
            max_history_items=int(model.max_history_items),
            device=str(rec.config["device"]),
            max_batch=batcher.max_batch,
            max_queue=batcher.max_queue,
            max_instruction_chars=MAX_INSTRUCTION_CHARS,
        )

    def checked(self, body):
        """(the request as ``recommend_many`` takes it, how many items it ranks), or an ApiError
        naming the field at fault."""
        rec = self.rec
        if (body.user is None) == (body.history_titles is None):
            raise ApiError(
                422,
                "user" if body.user is not None else "history_titles",
                "Give exactly one of user (a user id, GET /users) and history_titles (titles "
                "the person liked, GET /items).",
            )
        if body.top_k > self.n_items:
            raise ApiError(
                422,
                "top_k",
                f"top_k={body.top_k} is above the catalogue's {self.n_items} items: give a "
                f"whole number from 1 to {self.n_items}.",
            )
        user, history = None, []
        if body.user is not None:
            user = str(body.user)
            try:
                history = rec.user_history(user)
            except KeyError:
                raise ApiError(
                    422,
                    "user",
                    f"User {user!r} is not in dataset '{rec.dataset.dataset_name}': give a user "
                    "id of the dataset (GET /users lists them), or history_titles instead.",
                ) from None
        else:
            long = [t for t in body.history_titles if len(t) > MAX_TITLE_CHARS]
            if long:
                raise ApiError(
                    422,
                    "history_titles",
                    f"A title has {len(long[0])} characters: give titles of at most "
                    f"{MAX_TITLE_CHARS} characters.",
                )
            history, unmatched = rec.match_titles(body.history_titles)
            if not history:
                shown = "; ".join(repr(t[:60]) for t in body.history_titles[:5]) or "none"
                raise ApiError(
                    422,
                    "history_titles",
                    f"No title matched an item of the catalogue (given: {shown}). Look titles "
                    "up with GET /items?query=<part of a title>, or give a user instead.",
                )
        candidates = None
        if body.candidates is not None:
            candidates, unknown = [], []
            for token in dict.fromkeys(str(c) for c in body.candidates):  # unique, in order
                item = self.token2item.get(token, 0)
                (candidates if item else unknown).append(item or token)
            if unknown:
                raise ApiError(
                    422,
                    "candidates",
                    f"{len(unknown)} candidate(s) are not item ids of the catalogue (e.g. "
                    f"{unknown[:5]}): give item ids as GET /items returns them.",
                )
        pool_size = self._pool_size(history, candidates, body.include_history)
        if pool_size == 0:
            raise ApiError(
                422,
                "candidates" if candidates is not None else "include_history",
                "Every candidate is already in the history: give other candidates, or "
                "include_history: true.",
            )
        request = dict(
            user=user,
            history_titles=body.history_titles if user is None else None,
            instruction=(body.instruction or "").strip() or None,
            top_k=body.top_k,
            candidates=candidates,
            include_history=body.include_history,
            guidance=body.guidance,
        )
        return request, pool_size

    def _pool_size(self, history, candidates, include_history):
        seen = set() if include_history else set(history)
        if candidates is not None:
            return len([i for i in candidates if i not in seen])
        model = self.rec.model
        if model._retriever:
            return min(int(model.rerank_top_k), self.n_items - len(seen))
        return self.n_items - len(seen)


# ------------------------------------------------------------------ start
class StartError(Exception):
    """The server cannot start with these settings; the message says why and what to do."""


def checkpoint_dataset(checkpoint):
    """The dataset an InstructRec checkpoint was trained on (read from its header only)."""
    from recbole_instructrec.trainer import checkpoint as ckpt

    header, _ = ckpt.read_checkpoint(checkpoint)
    return header["meta"].get("config", {}).get("dataset")


def load_recommender(dataset=None, checkpoint=None, settings=None):
    """A Recommender for serving. ``dataset`` and the checkpoint's own dataset must agree."""
    from recbole_instructrec.quick_start.recommend import Recommender
    from recbole_instructrec.scoring.fusion import FusionError
    from recbole_instructrec.scoring.retriever import RetrieverError
    from recbole_instructrec.trainer.checkpoint import CheckpointError

    try:
        if checkpoint:
            trained_on = checkpoint_dataset(checkpoint)
            if dataset and trained_on and trained_on != dataset:
                raise StartError(
                    f"checkpoint {checkpoint!r} was trained on dataset '{trained_on}', not "
                    f"'{dataset}': give --dataset {trained_on} (or leave --dataset out), or a "
                    f"checkpoint trained on '{dataset}'."
                )
        return Recommender(dataset or "ml-100k", checkpoint, settings)
    except (CheckpointError, RetrieverError, FusionError) as error:
        raise StartError(str(error)) from error


def serve_main(args, settings):
    """``instructrec serve`` (arguments parsed by the CLI)."""
    import uvicorn

    if args.candidate_model:
        settings.update(candidate_model=args.candidate_model, rerank_top_k=args.top_n)
    try:
        recommender = load_recommender(args.dataset, args.checkpoint, settings)
    except StartError as error:
        raise SystemExit(f"instructrec serve: cannot start: {error}") from None
    app = create_app(
        recommender,
        max_batch=args.max_batch,
        max_queue=args.max_queue,
        checkpoint=args.checkpoint,
    )
    print(
        f"instructrec serve: dataset '{recommender.dataset.dataset_name}' on "
        f"http://{args.host}:{args.port}/ (API: /docs)",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
