"""Who a request is billed to inside its tenant (issue 15): the API key, the end user and the tags. The API
builds an `Attribution` once per request from the authenticated key, the request's own fields and two
headers; it travels on the job record to the usage row. Over-limit values are refused with a 400 naming the
header or field, never truncated: a cut tag would silently bill spend to a different group."""

import re
from collections.abc import Mapping

from pydantic import BaseModel

from shared.errors import InvalidRequest

__all__ = [
    "MAX_TAGS",
    "MAX_TAG_KEY_CHARS",
    "MAX_TAG_VALUE_CHARS",
    "MAX_USER_CHARS",
    "TAGS_HEADER",
    "USER_HEADER",
    "Attribution",
    "build_attribution",
    "parse_tags_header",
]

USER_HEADER = "x-gateway-user"
TAGS_HEADER = "x-gateway-tags"
# OpenAI's own limits on `metadata` (16 pairs, keys of 64 characters, values of 512), so every metadata map
# OpenAI accepts is accepted as tags; the header's tags count against the same 16.
MAX_TAGS = 16
MAX_TAG_KEY_CHARS = 64
MAX_TAG_VALUE_CHARS = 512
# Anthropic's limit on `metadata.user_id`; OpenAI documents none for `user`.
MAX_USER_CHARS = 256
# A header tag's key: also usable in `group_by=tag:<key>` and `tag=<key>=<value>` query parameters.
TAG_KEY = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")


class Attribution(BaseModel):
    """`key_id` is the api key row that authenticated the request (None before keys had ids); `tags` maps a
    tag key to its value."""

    key_id: str | None = None
    end_user: str | None = None
    tags: dict[str, str] = {}


def build_attribution(headers: Mapping[str, str], key_id: str | None, request_user: str | None,
                      metadata: Mapping[str, str] | None) -> Attribution:
    """The `x-gateway-user` header wins over the request's user field (`user`, Anthropic `metadata.user_id`);
    `x-gateway-tags` tags win over OpenAI `metadata` pairs of the same key."""
    header_user = headers.get(USER_HEADER)
    end_user = _user(header_user, USER_HEADER) if header_user is not None else _user(request_user, "user")
    tags = dict(_metadata_tags(metadata))
    tags.update(parse_tags_header(headers.get(TAGS_HEADER)))
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"At most {MAX_TAGS} tags in all ({TAGS_HEADER} and metadata together), not "
                             f"{len(tags)}", code="invalid_tags")
    return Attribution(key_id=key_id, end_user=end_user, tags=tags)


def parse_tags_header(raw: str | None) -> dict[str, str]:
    """`team=search,env=prod` -> {"team": "search", "env": "prod"}; a malformed or repeated pair is a 400."""
    if raw is None or not raw.strip():
        return {}
    tags: dict[str, str] = {}
    for pair in raw.split(","):
        key, separator, value = (part.strip() for part in pair.partition("="))
        if not separator or not TAG_KEY.fullmatch(key) or not value:
            raise InvalidRequest(f"{TAGS_HEADER} takes comma-separated key=value pairs; a key is 1-{MAX_TAG_KEY_CHARS} "
                                 f"of A-Z a-z 0-9 _ . : / -, a value is not empty; got {pair.strip()!r}",
                                 code="invalid_tags")
        if key in tags:
            raise InvalidRequest(f"{TAGS_HEADER} repeats the tag {key!r}", code="invalid_tags")
        _check_tag(key, value, TAGS_HEADER)
        tags[key] = value
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"{TAGS_HEADER} has {len(tags)} tags; at most {MAX_TAGS}", code="invalid_tags")
    return tags


def _metadata_tags(metadata: Mapping[str, str] | None) -> dict[str, str]:
    if not metadata:
        return {}
    if len(metadata) > MAX_TAGS:
        raise InvalidRequest(f"metadata has {len(metadata)} keys; at most {MAX_TAGS}", code="invalid_tags")
    for key, value in metadata.items():
        _check_tag(key, value, "metadata")
    return dict(metadata)


def _check_tag(key: str, value: str, where: str) -> None:
    if not key or len(key) > MAX_TAG_KEY_CHARS:
        raise InvalidRequest(f"{where}: a key must be 1-{MAX_TAG_KEY_CHARS} characters, not {len(key)}",
                             code="invalid_tags")
    if len(value) > MAX_TAG_VALUE_CHARS:
        raise InvalidRequest(f"{where}: the value of {key!r} has {len(value)} characters; at most "
                             f"{MAX_TAG_VALUE_CHARS}", code="invalid_tags")


def _user(value: str | None, where: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > MAX_USER_CHARS:
        raise InvalidRequest(f"{where} has {len(value)} characters; at most {MAX_USER_CHARS}",
                             code="invalid_user")
    return value or None
