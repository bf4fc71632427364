"""OpenAI's embeddings and legacy completions wire formats, their shared pieces: the `input` / `prompt` token
input (text, texts, token arrays) read strictly, and a non-chat request's body fields read into its model
(a 400 naming any field the API defines but the client got wrong; unknown fields kept in `extra`, forwarded
as the SDK's `extra_body`)."""

from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.endpoint_requests import TokenInput
from shared.errors import InvalidRequest
from shared.wire._common import MAX_COUNT, invalid

__all__ = ["MAX_INPUTS", "forwarded", "model_from", "token_input"]

JSON = Mapping[str, object]
M = TypeVar("M", bound=BaseModel)
MAX_INPUTS = 2048
"""OpenAI's most inputs (texts or token arrays) in one request."""


def token_input(value: object, field: str) -> TokenInput:
    """A string, a list of strings, a token array, or a list of token arrays: nothing empty, nothing mixed."""
    if isinstance(value, str):
        if not value:
            raise invalid(field, "must not be an empty string")
        return value
    if not isinstance(value, list) or not value:
        raise invalid(field, "must be a string, an array of strings, an array of tokens or an array of token "
                             "arrays, and not empty")
    tokens = _tokens(value)
    if tokens is not None:
        return tokens
    if len(value) > MAX_INPUTS:
        raise invalid(field, f"must have at most {MAX_INPUTS} items")
    texts = [item for item in value if isinstance(item, str) and item]
    if len(texts) == len(value):
        return texts
    arrays = [ids for item in value if isinstance(item, list) and item and (ids := _tokens(item))]
    if len(arrays) == len(value):
        return arrays
    raise invalid(field, "must be a string, an array of non-empty strings, an array of tokens (integers) or an "
                         "array of non-empty token arrays")


def model_from(model: type[M], fields: dict[str, object]) -> M:
    """Build a request model; a value the model refuses is a 400 naming its field. Strict: a value of the
    wrong JSON type (`"seed": "5"`, `"temperature": true`) is refused, as OpenAI refuses it, never converted."""
    try:
        return model.model_validate(fields, strict=True)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"] if not isinstance(part, int)) or "request body"
        raise InvalidRequest(f"'{where}' is invalid: {error['msg']}") from exc


def forwarded(fields: Mapping[str, object]) -> dict[str, object]:
    """The SDK keyword arguments of the set fields, unknown ones under `extra_body`."""
    kwargs = {name: value for name, value in fields.items() if value is not None and name != "extra"}
    extra = fields.get("extra")
    if isinstance(extra, Mapping) and extra:
        kwargs["extra_body"] = dict(extra)
    return kwargs


def _tokens(value: list[object]) -> list[int] | None:
    """`value` as token ids when every item is one (a non-negative integer), else None."""
    tokens = [item for item in value if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= MAX_COUNT]
    return tokens if len(tokens) == len(value) else None
