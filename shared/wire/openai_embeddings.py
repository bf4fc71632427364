"""OpenAI's embeddings wire format (`POST /v1/embeddings`) both ways: a client's body into
`EmbeddingRequest` and the answer back (API); the provider call's keyword arguments and its answer into a
`Completion` carrying an `EmbeddingOutput` (worker adapters). Every field is read, validated and forwarded."""

from collections.abc import Mapping

from shared.endpoint import EmbeddingOutput
from shared.endpoint_requests import EmbeddingRequest
from shared.models import Completion, Usage
from shared.wire._common import get_int, get_list, get_mapping, get_str, invalid, optional_int, optional_str
from shared.wire.openai_endpoints import forwarded, model_from, token_input

__all__ = ["parse_embedding_request", "parse_embedding_response", "render_embedding_request",
           "render_embeddings"]

JSON = Mapping[str, object]
MODELLED_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
ENCODINGS = ("float", "base64")


def parse_embedding_request(body: JSON) -> EmbeddingRequest:
    """Validate a client's embeddings body (a 400 naming the field); unknown fields go to `extra`."""
    encoding = optional_str(body, "encoding_format")
    if encoding is not None and encoding not in ENCODINGS:
        raise invalid("encoding_format", "must be 'float' or 'base64'")
    fields: dict[str, object] = {
        "model": body.get("model"), "input": token_input(body.get("input"), "input"),
        "dimensions": optional_int(body, "dimensions"), "encoding_format": encoding,
        "user": optional_str(body, "user"),
        "extra": {key: value for key, value in body.items() if key not in MODELLED_FIELDS},
    }
    if not isinstance(fields["model"], str) or not fields["model"]:
        raise invalid("model", "is required and must be a non-empty string")
    return model_from(EmbeddingRequest, fields)


def render_embedding_request(request: EmbeddingRequest, model: str) -> dict[str, object]:
    """The SDK's `embeddings.create` arguments. `encoding_format` is always sent: the SDK asks for base64
    when it is not given, and a client that did not ask gets OpenAI's default, float."""
    fields = request.model_dump(exclude={"endpoint"})
    fields.update(model=model, encoding_format=request.encoding_format or "float")
    return forwarded(fields)


def parse_embedding_response(data: JSON, provider: str) -> Completion:
    """A provider's embeddings answer: the vectors in input order, the prompt tokens it billed."""
    items = [item for item in get_list(data, "data") if isinstance(item, Mapping)]
    items.sort(key=lambda item: get_int(item, "index"))
    vectors: list[list[float] | str] = []
    for item in items:
        vector = item.get("embedding")
        vectors.append(vector if isinstance(vector, str) else
                       [float(x) for x in vector if isinstance(x, int | float)] if isinstance(vector, list) else [])
    usage = get_mapping(data, "usage")
    return Completion(id="", model=get_str(data, "model"), provider=provider, content="",
                      usage=Usage(prompt_tokens=get_int(usage, "prompt_tokens")),
                      output=EmbeddingOutput(embeddings=vectors))


def render_embeddings(completion: Completion) -> dict[str, object]:
    """The OpenAI answer: one `embedding` object per input, usage with prompt and total tokens."""
    vectors = completion.output.embeddings if isinstance(completion.output, EmbeddingOutput) else []
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": index, "embedding": vector} for index, vector in enumerate(vectors)],
        "model": completion.model,
        "usage": {"prompt_tokens": completion.usage.prompt_tokens, "total_tokens": completion.usage.prompt_tokens},
    }
