"""Typed request and response bodies of ``instructrec serve``, and the limits they enforce.

They are the OpenAPI schema at ``/docs`` too, so every limit is stated once, here.
"""

from pydantic import BaseModel, ConfigDict, Field

MAX_INSTRUCTION_CHARS = 1000
MAX_TITLES = 200
MAX_TITLE_CHARS = 300
MAX_CANDIDATES = 10000
MAX_BODY_BYTES = 1 << 20  # 1 MiB: room for 10,000 candidates; a 100 kB instruction is 422


class RecommendRequest(BaseModel):
    """Give ``user`` or ``history_titles`` (one of the two)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"user": "1", "instruction": "something scary for tonight", "top_k": 10},
                {"history_titles": ["Toy Story", "Aladdin"], "instruction": "a comedy"},
            ]
        },
    )
    user: str | int | None = Field(
        None, description="A user id of the dataset (GET /users); their history is used."
    )
    history_titles: list[str] | None = Field(
        None,
        max_length=MAX_TITLES,
        description="Titles the person liked, oldest first (GET /items looks them up).",
    )
    instruction: str | None = Field(
        None,
        max_length=MAX_INSTRUCTION_CHARS,
        description="What the person wants now, in their words, e.g. 'something scary'.",
    )
    top_k: int = Field(
        10, ge=1, strict=True, description="How many items to return (at most the catalogue)."
    )
    candidates: list[str | int] | None = Field(
        None,
        min_length=1,
        max_length=MAX_CANDIDATES,
        description="Item ids to rank (default: the retriever's top-N, or the whole catalogue).",
    )
    include_history: bool = Field(False, description="Allow items already in the history.")
    guidance: float | None = Field(
        None, ge=0, description="Instruction guidance (default: the server's, GET /info)."
    )


class RankedItem(BaseModel):
    rank: int
    item_id: str
    title: str
    categories: list[str]
    score: float = Field(description="The ranking score (fused and guided where the model is).")
    llm_score: float | None = Field(None, description="The LLM's own score, when fused.")


class Timing(BaseModel):
    queued_ms: float = Field(description="Waiting for the scoring pass that served the request.")
    scoring_ms: float = Field(description="That pass, shared by the whole batch.")
    total_ms: float = Field(description="From the request's arrival to its answer.")
    batch_size: int = Field(description="Requests scored together in that pass.")


class RecommendResponse(BaseModel):
    items: list[RankedItem]
    history: list[str] = Field(description="Titles used as the history, oldest first.")
    unmatched: list[str] = Field(description="Typed titles that matched no item (left out).")
    instruction: str | None
    candidates: int = Field(description="How many items were ranked.")
    prompt: str = Field(description="The instruction as the model read it.")
    timing: Timing


class Item(BaseModel):
    item_id: str
    title: str
    categories: list[str]


class ItemsResponse(BaseModel):
    query: str
    items: list[Item]


class UserEntry(BaseModel):
    user: str
    interactions: int


class UsersResponse(BaseModel):
    query: str
    users: list[UserEntry]


class Health(BaseModel):
    status: str
    queued: int
    in_flight: int
    served: int
    batches: int
    rejected: int


class Info(BaseModel):
    dataset: str
    n_items: int = Field(description="Items in the catalogue (the largest top_k).")
    n_users: int
    llm: str
    checkpoint: str | None
    candidate_model: str | None = Field(description="Retriever of two-stage ranking.")
    rerank_top_k: int | None = Field(description="Retriever candidates the LLM re-ranks.")
    fusion_model: str | None
    fusion_weight: float | None
    instruction_guidance: float
    eval_template: str
    instruction_template: str
    max_history_items: int
    device: str
    max_batch: int
    max_queue: int
    max_instruction_chars: int


class FieldError(BaseModel):
    field: str | None
    message: str


class ErrorResponse(BaseModel):
    status: int
    field: str | None = Field(description="The request field at fault, or null.")
    message: str = Field(description="What is wrong and what to do.")
    errors: list[FieldError]


ERRORS = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "Malformed JSON or a body that is not UTF-8"),
        (413, "Body over 1 MiB"),
        (415, "Not Content-Type: application/json"),
        (422, "A field is invalid (the message names it and says what to do)"),
        (503, "The queue is full: retry after Retry-After seconds"),
    )
}
