"""How ``instructrec serve`` answers bad input: one JSON error shape, ``{"status", "field",
"message", "errors"}``, whose message names the field and says what to do, and a guard that
refuses a body before it is parsed (wrong content type, too large, not UTF-8, not JSON).
"""

import json

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers

from recbole_instructrec.quick_start.serve_schemas import (
    MAX_BODY_BYTES,
    MAX_CANDIDATES,
    MAX_INSTRUCTION_CHARS,
    MAX_TITLE_CHARS,
    MAX_TITLES,
    RecommendRequest,
)

GUARDED_PATHS = ("/recommend",)


class ApiError(Exception):
    def __init__(self, status, field, message, headers=None):
        super().__init__(message)
        self.status, self.field, self.message, self.headers = status, field, message, headers


def error_response(status, field, message, errors=None, headers=None):
    errors = errors or [{"field": field, "message": message}]
    body = {"status": status, "field": field, "message": message, "errors": errors}
    return JSONResponse(body, status_code=status, headers=headers)


def _hints(app):
    n = app.state.n_items
    return {
        "user": "Give a user id of the dataset (GET /users lists them), or history_titles.",
        "history_titles": f"Give a list of at most {MAX_TITLES} titles of at most "
        f"{MAX_TITLE_CHARS} characters (GET /items?query=... looks them up).",
        "instruction": f"Give it as text of at most {MAX_INSTRUCTION_CHARS} characters: a "
        "sentence or two saying what you want.",
        "top_k": f"Give a whole number from 1 to {n} (the catalogue's size).",
        "candidates": f"Give a list of 1 to {MAX_CANDIDATES} item ids (GET /items).",
        "include_history": "Give true or false.",
        "guidance": "Give a number >= 0, or leave it out for the server's default (GET /info).",
        "limit": "Give a whole number from 1 to 100 (GET /items) or 10000 (GET /users).",
        "query": "Give at most 200 characters.",
    }


def _field_message(app, error):
    loc = [str(p) for p in error.get("loc", ())]
    where, path = (loc[0] if loc else ""), loc[1:]
    field = path[0] if path else None
    kind = error.get("type", "")
    if where == "body" and not path:
        return "body", (
            "The body must be one JSON object, e.g. "
            '{"user": "1", "instruction": "a comedy", "top_k": 10}.'
        )
    if kind == "extra_forbidden":
        known = ", ".join(RecommendRequest.model_fields)
        return field, f"Unknown field {field!r}: the fields are {known}."
    name = field or where
    if len(path) > 1 and path[1].isdigit():  # an element of a list: history_titles[3]
        name += f"[{path[1]}]"
    message = f"{name}: {error.get('msg', 'invalid')}"
    if kind == "string_too_long" and isinstance(error.get("input"), str):
        message += f" (got {len(error['input'])})"
    hint = _hints(app).get(field)
    return field, f"{message}. {hint}" if hint else message + "."


async def validation_error(request, exc):
    errors = []
    for error in exc.errors():
        field, message = _field_message(request.app, error)
        errors.append({"field": field, "message": message})
    return error_response(422, errors[0]["field"], errors[0]["message"], errors)


async def api_error(request, exc):
    return error_response(exc.status, exc.field, exc.message, headers=exc.headers)


async def http_error(request, exc):
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"No such page {request.url.path!r}: see /docs for the endpoints."
    elif exc.status_code == 405:
        message = f"{request.method} is not served at {request.url.path!r}: see /docs."
    return error_response(exc.status_code, None, message, headers=getattr(exc, "headers", None))


class BodyGuard:
    """ASGI middleware for the JSON endpoints: refuses, before any parsing, a body that is not
    ``application/json`` (415), over ``max_bytes`` (413), not UTF-8 or not JSON (400)."""

    def __init__(self, app, max_bytes=MAX_BODY_BYTES, paths=GUARDED_PATHS):
        self.app, self.max_bytes, self.paths = app, max_bytes, paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        problem, body = await self._check(scope, receive)
        if problem:
            return await error_response(*problem)(scope, receive, send)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _check(self, scope, receive):
        headers = Headers(scope=scope)
        kind = headers.get("content-type", "")
        media = kind.split(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            got = f"got {kind!r}" if kind else "got none"
            return (
                415,
                "Content-Type",
                f"Send the body as JSON with the header Content-Type: application/json ({got}).",
            ), None
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            return self._too_large(int(declared)), None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return (400, "body", "The client went away before sending the body."), None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return self._too_large(size), None
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            return (
                400,
                "body",
                f"The body is not UTF-8 (byte 0x{body[error.start]:02x} at position "
                f"{error.start}): encode the JSON as UTF-8.",
            ), None
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            return (
                400,
                "body",
                f"The body is not valid JSON ({error.msg} at line {error.lineno}, column "
                f"{error.colno}): send one JSON object, e.g. "
                '{"user": "1", "instruction": "a comedy", "top_k": 10}.',
            ), None
        return None, body

    def _too_large(self, size):
        return (
            413,
            "body",
            f"The body has {size} bytes, over the limit of {self.max_bytes}: send fewer "
            f"candidates or titles, and an instruction of at most {MAX_INSTRUCTION_CHARS} "
            "characters.",
        )
