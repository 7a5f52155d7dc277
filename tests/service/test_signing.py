"""HMAC signing of cross-organisation calls (SPEC 12.4, 12.10; the signing half of A12.4).

``sign`` and ``verify`` are exercised directly, without a server: a request is the tuple of
values the canonical string covers, and an in-memory ``Ledger`` plays the store's nonce table.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import random
import re
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nestflow.service import signing
from nestflow.service.signing import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WINDOW_S,
    Verdict,
    canonical_string,
    sign,
    verify,
)

SETTINGS = settings(max_examples=150, deadline=None, database=None)

SECRET = "topsecret"
T = 1_700_000_000
PATH = "/v1/call/acme/summarise_thread"
BODY = b'{"inputs": {}}'
NONCE = "0123456789abcdef"


class Ledger:
    """Nonces kept until they expire; a second record of one fails, like a unique constraint."""

    def __init__(self) -> None:
        self.kept: dict[str, int] = {}

    def __call__(self, nonce: str, expires_at: int) -> bool:
        if nonce in self.kept:
            return False
        self.kept[nonce] = expires_at
        return True


@dataclass(frozen=True)
class Request:
    """What a signature covers."""

    method: str = "POST"
    path: str = PATH
    body: bytes = BODY
    depth: int | str = 1
    timestamp: int = T
    nonce: str = NONCE

    def signed(self, secret: str = SECRET) -> dict[str, str]:
        return sign(
            secret,
            self.method,
            self.path,
            self.body,
            self.depth,
            timestamp=self.timestamp,
            nonce=self.nonce,
        )

    def verify(
        self,
        headers: dict[str, str],
        *,
        secret: str = SECRET,
        now: float = T,
        ledger: Ledger | None = None,
    ) -> Verdict:
        return verify(
            secret,
            self.method,
            self.path,
            self.body,
            self.depth,
            headers,
            now=now,
            record_nonce=Ledger() if ledger is None else ledger,
        )

    def normalised(self) -> tuple[Any, ...]:
        """The request as the canonical string sees it."""
        fields = (self.method.upper(), self.path.partition("?")[0], self.body, str(self.depth))
        return (*fields, self.timestamp, self.nonce)


# --- the wire format --------------------------------------------------------------------------


def test_the_canonical_string_is_the_seven_lines_of_spec_12_4() -> None:
    assert canonical_string("post", PATH + "?debug=1", BODY, 1, T, NONCE) == "\n".join(
        [
            "NESTFLOW-HMAC-SHA256",
            "1700000000",
            NONCE,
            "POST",
            PATH,
            "1",
            "3ed15013c5de79505fae7dc21c5bc27c6bb841ec5e1227fc7e709aee1ae65d39",
        ]
    )


def test_the_signature_headers_match_a_reference_vector() -> None:
    # Computed independently: printf '<canonical string>' | openssl dgst -sha256 -hmac topsecret
    assert Request().signed() == {
        "X-Nestflow-Timestamp": "1700000000",
        "X-Nestflow-Nonce": NONCE,
        "X-Nestflow-Signature": (
            "v1=eeb0b4de3c33c7fd4add74408ab48df8c8b355b92461678a12d919458246fe2d"
        ),
    }


def test_the_query_string_and_the_method_case_do_not_change_the_signature() -> None:
    headers = Request(method="post", path=PATH + "?a=1&b=2").signed()
    assert headers == Request().signed()
    assert Request(method="PoSt", path=PATH + "?other").verify(headers).ok


def test_a_depth_given_as_a_number_signs_like_the_header_text() -> None:
    assert Request(depth=3).signed() == Request(depth="3").signed()
    assert Request(depth="03").signed() != Request(depth=3).signed()


# --- verification -----------------------------------------------------------------------------


def test_a_signed_request_is_accepted_once_and_its_replay_refused() -> None:
    ledger = Ledger()
    headers = Request().signed()
    first = Request().verify(headers, now=T + 5, ledger=ledger)
    replay = Request().verify(headers, now=T + 6, ledger=ledger)
    assert first == Verdict(None, "The signature is valid.")
    assert first.ok
    assert (replay.ok, replay.reason) == (False, "replayed")
    assert "fresh nonce" in replay.message


def test_the_nonce_is_kept_until_its_timestamp_leaves_the_window() -> None:
    ledger = Ledger()
    assert Request().verify(Request().signed(), now=T + 100, ledger=ledger).ok
    assert ledger.kept == {NONCE: T + WINDOW_S}


def test_the_same_nonce_is_accepted_again_by_another_token_ledger() -> None:
    # Replays are per token: each token's nonces live in their own ledger.
    headers = Request().signed()
    assert Request().verify(headers, ledger=Ledger()).ok
    assert Request().verify(headers, ledger=Ledger()).ok


@pytest.mark.parametrize(
    ("age", "reason"),
    [(0, None), (WINDOW_S, None), (-WINDOW_S, None), (301, "expired"), (-301, "future")],
)
def test_a_timestamp_is_accepted_up_to_300_s_away_in_either_direction(
    age: int, reason: str | None
) -> None:
    request = Request(timestamp=T - age)
    verdict = request.verify(request.signed(), now=T)
    assert verdict.reason == reason
    if reason is not None:
        assert f"{abs(age)} s" in verdict.message
        assert "clock" in verdict.message


def test_a_fractional_clock_counts_the_exact_age() -> None:
    request = Request(timestamp=T - WINDOW_S)
    assert request.verify(request.signed(), now=T + 0.5).reason == "expired"


@pytest.mark.parametrize("absent", [TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER])
def test_a_missing_header_is_refused_and_named(absent: str) -> None:
    headers = {k: v for k, v in Request().signed().items() if k != absent}
    verdict = Request().verify(headers)
    assert verdict.reason == "missing"
    assert absent in verdict.message
    assert [h for h in signing.HEADERS if h in verdict.message] == [absent]


def test_an_unsigned_request_names_every_missing_header() -> None:
    verdict = Request().verify({"Authorization": "Bearer t", "X-Nestflow-Depth": "1"})
    assert verdict.reason == "missing"
    assert all(h in verdict.message for h in signing.HEADERS)


@pytest.mark.parametrize("case", [str.lower, str.upper, lambda name: name])
def test_header_names_are_matched_whatever_their_case(case: Any) -> None:
    headers = {case(k): v for k, v in Request().signed().items()}
    assert Request().verify(headers).ok


def test_upper_case_signature_hex_is_accepted() -> None:
    headers = Request().signed()
    headers[SIGNATURE_HEADER] = "v1=" + headers[SIGNATURE_HEADER][3:].upper()
    assert Request().verify(headers).ok


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (TIMESTAMP_HEADER, "1700000000.5"),
        (TIMESTAMP_HEADER, "-1700000000"),
        (TIMESTAMP_HEADER, "+1700000000"),
        (TIMESTAMP_HEADER, " 1700000000"),
        (TIMESTAMP_HEADER, "1_700_000_000"),
        (TIMESTAMP_HEADER, "١٧٠٠٠٠٠٠٠٠"),  # Arabic-Indic digits, which int() accepts
        (TIMESTAMP_HEADER, ""),
        (NONCE_HEADER, "short"),
        (NONCE_HEADER, "has a space in it, 1234"),
        (NONCE_HEADER, "x" * 129),
        (SIGNATURE_HEADER, "eeb0b4de3c33c7fd4add74408ab48df8c8b355b92461678a12d919458246fe2d"),
        (SIGNATURE_HEADER, "v2=eeb0b4de3c33c7fd4add74408ab48df8c8b355b92461678a12d919458246fe2d"),
        (SIGNATURE_HEADER, "v1=" + "g" * 64),
        (SIGNATURE_HEADER, "v1=" + "a" * 63),
    ],
)
def test_a_malformed_header_is_refused_before_any_signature_work(header: str, value: str) -> None:
    ledger = Ledger()
    headers = {**Request().signed(), header: value}
    verdict = Request().verify(headers, ledger=ledger)
    assert verdict.reason == "malformed"
    assert header in verdict.message or "nonce" in verdict.message
    assert ledger.kept == {}


def test_request_values_that_cannot_be_signed_are_malformed_not_an_exception() -> None:
    headers = Request().signed()
    assert Request(path=PATH + "\nPOST").verify(headers).reason == "malformed"
    assert Request(depth="1\n2").verify(headers).reason == "malformed"
    assert Request(path=PATH + "\udcff").verify(headers).reason == "malformed"
    assert Request(method="PO ST").verify(headers).reason == "malformed"


@pytest.mark.parametrize(
    "change",
    [
        {"secret": "other secret"},
        {"body": b'{"inputs": {"x": 1}}'},
        {"depth": 2},
        {"path": "/v1/call/acme/other"},
        {"method": "PUT"},
    ],
)
def test_a_request_not_matching_its_signature_is_refused_and_its_nonce_not_kept(
    change: dict[str, Any],
) -> None:
    ledger = Ledger()
    headers = Request().signed()
    secret = change.pop("secret", SECRET)
    verdict = replace(Request(), **change).verify(headers, secret=secret, ledger=ledger)
    assert verdict.reason == "bad_signature"
    assert SECRET not in verdict.message
    assert headers[SIGNATURE_HEADER] not in verdict.message
    assert ledger.kept == {}
    # The forgery burnt nothing: the genuine request still goes through.
    assert Request().verify(headers, ledger=ledger).ok


def test_an_expired_request_keeps_no_nonce() -> None:
    ledger = Ledger()
    request = Request(timestamp=T - 301)
    assert request.verify(request.signed(), ledger=ledger).reason == "expired"
    assert ledger.kept == {}


# --- signing ----------------------------------------------------------------------------------


def test_sign_stamps_the_current_second_and_a_fresh_nonce() -> None:
    before = int(time.time())
    headers = sign(SECRET, "POST", PATH, BODY, 0)
    assert before <= int(headers[TIMESTAMP_HEADER]) <= int(time.time())
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", headers[NONCE_HEADER])
    assert verify(
        SECRET, "POST", PATH, BODY, "0", headers, now=time.time(), record_nonce=Ledger()
    ).ok


def test_nonces_do_not_follow_the_seed_of_the_random_module() -> None:
    random.seed(7)
    first = sign(SECRET, "POST", PATH, BODY, 0)[NONCE_HEADER]
    random.seed(7)
    second = sign(SECRET, "POST", PATH, BODY, 0)[NONCE_HEADER]
    assert first != second


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"path": PATH + "\nGET"}, "not one line of UTF-8 text"),
        ({"path": PATH + "\r"}, "not one line of UTF-8 text"),
        ({"path": PATH + "\ud800"}, "not one line of UTF-8 text"),
        ({"depth": "0\n1"}, "not one line of UTF-8 text"),
        ({"method": "GET\n"}, "HTTP token"),
        ({"method": ""}, "HTTP token"),
        ({"nonce": "too-short"}, "nonce"),
        ({"timestamp": -1}, "non-negative integer"),
        ({"timestamp": True}, "non-negative integer"),
    ],
)
def test_sign_refuses_values_that_would_make_the_canonical_string_ambiguous(
    change: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        replace(Request(), **change).signed()


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret is empty"):
        Request().signed(secret="")


def test_signing_imports_only_the_standard_library() -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(signing))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "<relative>").split(".")[0])
    assert imported - {"__future__"} <= sys.stdlib_module_names


# --- properties -------------------------------------------------------------------------------

ONE_LINE = st.characters(exclude_characters="\r\n", exclude_categories=["Cs"])
methods = st.from_regex(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,8}", fullmatch=True)
paths = st.text(ONE_LINE, max_size=24)
depths = st.integers(0, 20) | st.text(ONE_LINE, max_size=4)
timestamps = st.integers(WINDOW_S, 2**40)
nonces = st.from_regex(r"[A-Za-z0-9_-]{16,24}", fullmatch=True)
secrets_ = st.text(min_size=1, max_size=16)
requests = st.builds(
    Request,
    method=methods,
    path=paths,
    body=st.binary(max_size=48),
    depth=depths,
    timestamp=timestamps,
    nonce=nonces,
)
CHANGES: dict[str, st.SearchStrategy[Any]] = {
    "method": methods,
    "path": paths,
    "body": st.binary(max_size=48),
    "depth": depths,
    "secret": secrets_,
}


@SETTINGS
@given(requests, secrets_)
def test_every_signed_request_verifies(request: Request, secret: str) -> None:
    assert request.verify(request.signed(secret), secret=secret, now=request.timestamp).ok


@SETTINGS
@given(requests, secrets_, st.data())
def test_any_change_to_the_request_breaks_verification(
    request: Request, secret: str, data: st.DataObject
) -> None:
    field = data.draw(st.sampled_from(sorted(CHANGES)))
    value: Any = data.draw(CHANGES[field])
    changed = request if field == "secret" else replace(request, **{field: value})
    other_secret = value if field == "secret" else secret
    assume(changed.normalised() != request.normalised() or other_secret != secret)
    verdict = changed.verify(request.signed(secret), secret=other_secret, now=request.timestamp)
    assert verdict.reason == "bad_signature"


@SETTINGS
@given(requests, secrets_, st.data())
def test_any_change_to_the_signed_timestamp_or_nonce_breaks_verification(
    request: Request, secret: str, data: st.DataObject
) -> None:
    headers = request.signed(secret)
    if data.draw(st.booleans()):
        shift = data.draw(st.integers(-WINDOW_S, WINDOW_S).filter(bool))
        headers[TIMESTAMP_HEADER] = str(request.timestamp + shift)
    else:
        headers[NONCE_HEADER] = data.draw(nonces.filter(lambda n: n != request.nonce))
    verdict = request.verify(headers, secret=secret, now=request.timestamp)
    assert verdict.reason == "bad_signature"


@SETTINGS
@given(requests, requests)
def test_two_requests_share_a_canonical_string_only_when_they_are_the_same_request(
    first: Request, second: Request
) -> None:
    def canonical(r: Request) -> str:
        return canonical_string(r.method, r.path, r.body, r.depth, r.timestamp, r.nonce)

    assert (canonical(first) == canonical(second)) == (first.normalised() == second.normalised())


@SETTINGS
@given(requests)
def test_the_canonical_string_reads_back_into_its_fields(request: Request) -> None:
    lines = canonical_string(
        request.method, request.path, request.body, request.depth, request.timestamp, request.nonce
    ).split("\n")
    method, path, body, depth, timestamp, nonce = request.normalised()
    assert lines == [
        "NESTFLOW-HMAC-SHA256",
        str(timestamp),
        nonce,
        method,
        path,
        depth,
        hashlib.sha256(body).hexdigest(),
    ]
