"""Admin keys, call tokens and signing secrets: made here, never stored in clear.

Each credential is 32 random bytes from ``secrets``, written as URL-safe base64 without
padding (43 characters), and shown once, when it is made.

Admin keys and call tokens are stored as their SHA-256 (hex). They are random, so a plain
hash can be neither reversed nor guessed, and a presented credential is found by one indexed
equality; a slow password hash would add nothing.

A signing secret must be readable again, since the server recomputes the request's HMAC. It
is stored *sealed by its token*: XOR-ed with ``HMAC-SHA256(token, SEAL_LABEL)``. A signed
request presents its token, so the server can unseal that token's secret and no other; the
database alone holds neither the token (only its hash) nor the secret, and a token alone
does not give the secret either. Each token seals exactly one secret, so the HMAC is a
one-time pad. Rotation makes a new token and a new secret together.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

CREDENTIAL_BYTES: Final = 32
SEAL_LABEL: Final = b"nestflow signing secret v1"


def new_credential() -> str:
    """A fresh admin key, call token or signing secret (43 URL-safe characters)."""
    return secrets.token_urlsafe(CREDENTIAL_BYTES)


def digest(credential: str) -> str:
    """The SHA-256 (hex) under which a key or token is stored and looked up."""
    return hashlib.sha256(credential.encode()).hexdigest()


def seal(secret: str, token: str) -> bytes:
    """``secret`` (made by ``new_credential``) sealed so that only ``token`` opens it."""
    padding = "=" * (-len(secret) % 4)
    raw = base64.urlsafe_b64decode(secret + padding)
    assert len(raw) == CREDENTIAL_BYTES, "seal() takes secrets made by new_credential()"
    return _xor(raw, _pad(token))


def unseal(sealed: bytes, token: str) -> str:
    """The secret that ``seal(secret, token)`` sealed."""
    raw = _xor(sealed, _pad(token))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _pad(token: str) -> bytes:
    return hmac.new(token.encode(), SEAL_LABEL, hashlib.sha256).digest()


def _xor(data: bytes, pad: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, pad, strict=True))
