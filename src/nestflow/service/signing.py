"""HMAC request signing for cross-organisation calls (SPEC 12.4, 12.10): pure, standard library.

The client signs and the server verifies with these same functions, so the two sides can never
disagree on the canonical string. Nothing here reads a clock, a socket or a database: the
server passes the current time and a nonce recorder in, which keeps verification
deterministic in tests and lets the store reject replays with a unique constraint.

The canonical string is seven lines joined by ``\\n``::

    NESTFLOW-HMAC-SHA256
    <timestamp: integer Unix seconds>
    <nonce>
    <method, upper case>
    <request path, without the query string>
    <X-Nestflow-Depth value>
    <hex SHA-256 of the raw body>

No field may contain a line break, so the seven fields can always be read back from the string:
two requests that differ in any field never share a canonical string, hence a signature.

>>> headers = sign("s3cret", "post", "/v1/call/acme/summarise", b"{}", 0,
...                timestamp=1_700_000_000, nonce="n" * 16)
>>> headers["X-Nestflow-Signature"][:3]
'v1='
>>> verify("s3cret", "POST", "/v1/call/acme/summarise", b"{}", "0", headers,
...        now=1_700_000_100, record_nonce=lambda nonce, expires_at: True).ok
True
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, Protocol

SCHEME: Final = "NESTFLOW-HMAC-SHA256"
WINDOW_S: Final = 300
"""Largest distance in seconds, either way, between a signature timestamp and the server clock."""

TIMESTAMP_HEADER: Final = "X-Nestflow-Timestamp"
NONCE_HEADER: Final = "X-Nestflow-Nonce"
SIGNATURE_HEADER: Final = "X-Nestflow-Signature"
HEADERS: Final = (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)

# Digits only: int() would also accept "+5", " 5", "1_0" and non-ASCII digits.
_TIMESTAMP: Final = re.compile(r"[0-9]{1,15}")
# Nonces are stored per token until they expire, so their size is bounded; 16 characters
# of this alphabet carry at least 96 random bits.
_NONCE: Final = re.compile(r"[A-Za-z0-9_-]{16,128}")
_SIGNATURE: Final = re.compile(r"v1=([0-9a-fA-F]{64})")
# An HTTP method is an RFC 9110 token: ASCII only, so upper-casing it is unambiguous.
_METHOD: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

Reason = Literal["missing", "malformed", "expired", "future", "bad_signature", "replayed"]
"""Why a request was refused: stable codes for audit records and tests."""


class NonceRecorder(Protocol):
    """Records the nonces of one token; the store implements it with a unique constraint."""

    def __call__(self, nonce: str, expires_at: int) -> bool:
        """Keep ``nonce`` until ``expires_at`` (Unix seconds); ``False`` if it is already kept.

        Recording and checking must be one atomic step (an insert that a unique constraint may
        refuse), or two copies of a request arriving together could both pass.
        """
        ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of ``verify``: accepted (``reason is None``) or refused, and why."""

    reason: Reason | None
    message: str

    @property
    def ok(self) -> bool:
        """Whether the request is authentic and fresh."""
        return self.reason is None


ACCEPTED: Final = Verdict(None, "The signature is valid.")


def canonical_string(
    method: str, path: str, body: bytes, depth: int | str, timestamp: int, nonce: str
) -> str:
    """The string that is signed: the request's method, path, depth and body at one moment.

    The query string is dropped from ``path`` and ``method`` is upper-cased, so
    ``("get", "/a?x=1")`` and ``("GET", "/a")`` sign alike. Raises ``ValueError`` when a field
    could make the string ambiguous (a line break), cannot be encoded in UTF-8, or is not of
    its documented form.
    """
    problems = _field_problems(method, path, depth, timestamp, nonce)
    if problems:
        raise ValueError("Cannot build the canonical string: " + "; ".join(problems) + ".")
    lines = (SCHEME, str(timestamp), nonce, method.upper(), path.partition("?")[0], str(depth))
    return "\n".join((*lines, hashlib.sha256(body).hexdigest()))


def sign(
    secret: str,
    method: str,
    path: str,
    body: bytes,
    depth: int | str,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The three signature headers for a request, to send alongside ``X-Nestflow-Depth``.

    ``timestamp`` defaults to the current Unix second and ``nonce`` to 24 random bytes from
    ``secrets`` (never ``random``, whose state user code may seed). ``depth`` must be the exact
    value sent in ``X-Nestflow-Depth`` and ``body`` the exact bytes sent.
    """
    stamp = int(time.time()) if timestamp is None else timestamp
    once = secrets.token_urlsafe(24) if nonce is None else nonce
    digest = _digest(secret, canonical_string(method, path, body, depth, stamp, once))
    return {TIMESTAMP_HEADER: str(stamp), NONCE_HEADER: once, SIGNATURE_HEADER: f"v1={digest}"}


def verify(
    secret: str,
    method: str,
    path: str,
    body: bytes,
    depth: int | str,
    headers: Mapping[str, str],
    *,
    now: float,
    record_nonce: NonceRecorder,
) -> Verdict:
    """Whether a received request was signed with ``secret``, recently, and only once.

    Checks, in order: the three headers are present (names case-insensitive) and well formed;
    the timestamp is at most ``WINDOW_S`` seconds from ``now``; the signature matches, compared
    in constant time; and the nonce is new. The nonce is recorded last, only for authentic
    requests, so forged requests cannot fill the nonce store or burn a caller's nonces.
    ``path`` and ``depth`` are taken as received: the path without its query string (decoded
    the same way on both sides, as Starlette's ``url.path`` and httpx's ``URL.path`` are) and
    the raw ``X-Nestflow-Depth`` header text.
    """
    found = _read_headers(headers)
    if isinstance(found, Verdict):
        return found
    timestamp, nonce, signature = found
    problems = _field_problems(method, path, depth, timestamp, nonce)
    if problems:
        return Verdict("malformed", "The request cannot be verified: " + "; ".join(problems) + ".")
    late = _timing(timestamp, now)
    if late is not None:
        return late
    expected = _digest(secret, canonical_string(method, path, body, depth, timestamp, nonce))
    if not hmac.compare_digest(expected, signature):
        return Verdict("bad_signature", _BAD_SIGNATURE)
    if not record_nonce(nonce, timestamp + WINDOW_S):
        return Verdict("replayed", _REPLAYED)
    return ACCEPTED


_BAD_SIGNATURE: Final = (
    "The signature does not match the request. Sign with the secret issued with this token "
    "(rotating the token issues a new one), over the exact body sent, the path without its "
    "query string and the X-Nestflow-Depth value sent."
)
_REPLAYED: Final = (
    f"This nonce was already used within the last {WINDOW_S} s: the request is a replay. "
    "Sign every request anew, with a fresh nonce."
)


def _digest(secret: str, canonical: str) -> str:
    if not secret:
        raise ValueError("The signing secret is empty; use the secret issued with the token.")
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _read_headers(headers: Mapping[str, str]) -> tuple[int, str, str] | Verdict:
    """The timestamp, nonce and lower-case hex signature, or the verdict refusing them."""
    stamp, nonce, signature = (_header(headers, name) for name in HEADERS)
    if stamp is None or nonce is None or signature is None:
        absent = [n for n, v in zip(HEADERS, (stamp, nonce, signature), strict=True) if v is None]
        return Verdict(
            "missing",
            f"This pipeline accepts only signed requests; missing {', '.join(absent)}. Sign "
            "the request with the secret issued with the token.",
        )
    problems: list[str] = []
    if _TIMESTAMP.fullmatch(stamp) is None:
        problems.append(f"{TIMESTAMP_HEADER} {stamp!r:.40} is not integer Unix seconds")
    matched = _SIGNATURE.fullmatch(signature)
    if matched is None:
        problems.append(f"{SIGNATURE_HEADER} {signature!r:.40} is not v1=<64 hex digits>")
    if problems or matched is None:
        return Verdict("malformed", "The request cannot be verified: " + "; ".join(problems) + ".")
    return int(stamp), nonce, matched.group(1).lower()


def _timing(timestamp: int, now: float) -> Verdict | None:
    """The verdict refusing a timestamp too far from ``now``, or ``None`` when it is close."""
    if now - timestamp > WINDOW_S:
        return Verdict(
            "expired",
            f"The signature timestamp is {now - timestamp:.0f} s old; at most {WINDOW_S} s are "
            "accepted. Sign each request just before sending it, and check the caller's clock.",
        )
    if timestamp - now > WINDOW_S:
        return Verdict(
            "future",
            f"The signature timestamp is {timestamp - now:.0f} s ahead of the server clock; at "
            f"most {WINDOW_S} s are accepted. Check the caller's clock.",
        )
    return None


def _field_problems(
    method: str, path: str, depth: int | str, timestamp: int, nonce: str
) -> list[str]:
    """What keeps these values from being lines of an unambiguous canonical string."""
    checks = (
        (_METHOD.fullmatch(method) is not None, f"method {method!r:.40} is not an HTTP token"),
        (_is_line(path), f"path {path!r:.60} is not one line of UTF-8 text"),
        (_is_line(str(depth)), f"depth {str(depth)!r:.40} is not one line of UTF-8 text"),
        (
            isinstance(timestamp, int) and not isinstance(timestamp, bool) and timestamp >= 0,
            f"timestamp {timestamp!r} is not a non-negative integer",
        ),
        (
            _NONCE.fullmatch(nonce) is not None,
            f"nonce {nonce!r:.40} is not 16 to 128 characters of A-Z, a-z, 0-9, '_' and '-'",
        ),
    )
    return [problem for passed, problem in checks if not passed]


def _is_line(value: str) -> bool:
    """No line break, and no lone surrogate (which UTF-8 cannot encode, so nor sign)."""
    if "\n" in value or "\r" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
