"""Job webhooks, the parts both sides need: the API validates a job's callback URL at submission, the worker
signs each delivery and decides where it may go and when to retry it (worker/webhooks.py sends them).

A delivery's signature is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` keyed with
WEBHOOK_SECRET, in the style receivers already know from payment providers: the timestamp inside the MAC
lets a receiver refuse replays of old deliveries, and `verify_signature` is the reference check that
docs/API.md shows receivers."""

import hashlib
import hmac
import ipaddress
import json
import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.errors import InvalidRequest

__all__ = [
    "ATTEMPT_HEADER",
    "EVENT_ID_HEADER",
    "EVENT_ID_PREFIX",
    "MAX_CALLBACK_URL_CHARS",
    "SIGNATURE_HEADER",
    "Delivery",
    "is_public_address",
    "retry_delay_s",
    "sign",
    "validate_callback_url",
    "verify_signature",
]

MAX_CALLBACK_URL_CHARS = 2048
SIGNATURE_HEADER = "X-Gateway-Signature"
EVENT_ID_HEADER = "X-Gateway-Event-Id"
# Deliveries whose id starts so carry an event's stored body (budget alerts), not a job's.
EVENT_ID_PREFIX = "evt_"
ATTEMPT_HEADER = "X-Gateway-Delivery-Attempt"
DEFAULT_TOLERANCE_S = 300
JITTER = 0.2  # each retry delay is the exponential one ±20%, so failed deliveries do not retry in lockstep


@dataclass(frozen=True)
class Delivery:
    """One attempt to make: its member of the delivery schedule (its JSON) names the job, the URL and the
    attempt number. Here, not in worker/, because the admin API schedules redeliveries too."""

    job_id: str
    url: str
    attempt: int

    def member(self) -> str:
        return json.dumps({"attempt": self.attempt, "job_id": self.job_id, "url": self.url}, separators=(",", ":"))

    @classmethod
    def parse(cls, raw: str) -> "Delivery":
        data = json.loads(raw)
        return cls(job_id=str(data["job_id"]), url=str(data["url"]), attempt=int(data["attempt"]))


def validate_callback_url(value: object, *, allow_private: bool) -> str:
    """The URL if it is an absolute http(s) URL of at most 2,048 characters, without credentials; else
    InvalidRequest (400). A literal private address is refused here already when private targets are not
    allowed; host names are resolved and checked at each delivery (worker/webhooks.py), since DNS changes."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest("callback_url must be an absolute http:// or https:// URL")
    if len(value) > MAX_CALLBACK_URL_CHARS:
        raise InvalidRequest(f"callback_url must be at most {MAX_CALLBACK_URL_CHARS} characters")
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value):
        raise InvalidRequest("callback_url must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is not a number in 0..65535
    except ValueError as exc:
        raise InvalidRequest("callback_url is not a valid URL") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("callback_url must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest("callback_url must not contain credentials; verify deliveries by their signature")
    if not allow_private and _is_literal_ip(parts.hostname) and not is_public_address(parts.hostname):
        raise InvalidRequest("callback_url must not target a private, loopback or link-local address")
    return value


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address; False for private, loopback, link-local (cloud metadata
    lives at 169.254.169.254), shared, reserved, multicast and unspecified ones, IPv4-mapped IPv6 included."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _is_literal_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header's value for `body`, sent at `timestamp` (now by default)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance_s: int = DEFAULT_TOLERANCE_S,
                     now: float | None = None) -> bool:
    """What a receiver does: recompute the MAC over the raw body, compare in constant time, refuse stale."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    stamp, given = fields.get("t", ""), fields.get("v1", "")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or not given:  # int() would refuse '²'
        return False
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    fresh = abs((time.time() if now is None else now) - int(stamp)) <= tolerance_s
    return fresh and hmac.compare_digest(expected, given)


def retry_delay_s(attempt: int, *, base_s: float, max_s: float, retry_after_s: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Seconds before the attempt after `attempt` (1-based): base, 2 * base, 4 * base ... capped at `max_s`, with
    jitter; a receiver's `Retry-After` (429/503) is honoured up to `max_s`."""
    jitter = (rng.uniform if rng is not None else random.uniform)(-JITTER, JITTER)
    delay = min(max_s, base_s * 2.0 ** (attempt - 1)) * (1 + jitter)  # 2.0: int ** int is typed Any
    if retry_after_s is not None and retry_after_s > 0:
        delay = max(delay, retry_after_s)
    return min(max_s, delay)
