"""The HTTP side of a ``pipeline_call`` (SPEC 12.3, 12.7, 12.10): one call, its outcome as data.

The protocol is written without I/O, so it can be tested and reused on its own: ``prepare``
builds the request (body, headers, signature), ``read_reply`` names what a reply means,
``EventReader`` and ``read_events`` read a server-sent event stream. ``send`` and
``fetch_budget`` are the thin httpx shell around them. Nothing here raises for a failed
call: every failure becomes a ``Failure`` whose ``type`` is one of ``ERROR_TYPES``, and
whose message never holds the token or the signing secret (``redact``).

Runs that the service starts call other pipelines one hop further down: the service wraps
such a run in ``calling_from(Hop(...))``, and every request made inside it carries that
depth, chain and caller pipeline (a run started locally is ``Hop()``: depth 0, no chain).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from nestflow.service import signing
from nestflow.service.contract import DEFAULT_TIME_BUDGET_S, MAX_TIME_BUDGET_S

try:
    import httpx
except ImportError as exc:  # the `client` extra is missing
    raise ImportError(
        "pipeline_call needs `httpx`, which is not installed. Install it with: "
        "pip install 'nestflow[client]'"
    ) from exc

ErrorType = Literal[
    "timeout", "network", "http_error", "rejected", "malformed_response", "remote_error"
]
ERROR_TYPES: Final[tuple[ErrorType, ...]] = (
    "timeout", "network", "http_error", "rejected", "malformed_response", "remote_error",
)  # fmt: skip
Mode = Literal["sync", "stream"]

MARGIN_S: Final = 5.0
"""A synchronous call waits for the callee's budget plus this (SPEC 12.7)."""
DEFAULT_SYNC_TIMEOUT_S: Final = DEFAULT_TIME_BUDGET_S + MARGIN_S
"""The wait of a synchronous call when the callee's budget cannot be learned: 35 s."""
STREAM_IDLE_TIMEOUT_S: Final = 60.0
"""A stream with no byte (event or ``: ping``) for this long is a timeout."""
CONTRACT_TIMEOUT_S: Final = 5.0
"""How long to wait for the contract that tells the callee's budget."""

DEPTH_HEADER: Final = "X-Nestflow-Depth"
CHAIN_HEADER: Final = "X-Nestflow-Call-Chain"
CALLER_PIPELINE_HEADER: Final = "X-Nestflow-Caller-Pipeline"
CALLER_NODE_HEADER: Final = "X-Nestflow-Caller-Node"
_SHOWN_BYTES: Final = 80
"""How much of a reply that cannot be read a message quotes."""


# --- outcomes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Success:
    """The call worked: the response key's value, and the callee's run id."""

    result: Any
    run_id: str | None


@dataclass(frozen=True, slots=True)
class Failure:
    """The call did not work; ``status_code`` is the HTTP status received (``None`` when none
    was: a timeout or a network error)."""

    type: ErrorType
    message: str
    status_code: int | None = None
    remote_run_id: str | None = None

    def to_error(self, url: str, elapsed_s: float, hidden: Iterable[str] = ()) -> dict[str, Any]:
        """The ``<output_key>._error`` value of SPEC 12.7, with ``hidden`` texts masked."""
        return {
            "type": self.type,
            "message": redact(self.message, hidden),
            "status_code": self.status_code,
            "remote_run_id": self.remote_run_id,
            "elapsed_s": elapsed_s,
            "url": redact(url, hidden),
        }


Outcome = Success | Failure


def redact(text: str, hidden: Iterable[str]) -> str:
    """``text`` with every occurrence of each of ``hidden`` (credentials) replaced by ``***``.

    A server may echo what it was sent (an ``Authorization`` header in an error message):
    whatever a call reports passes through here first.
    """
    for secret in sorted((h for h in hidden if h), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# --- the request ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hop:
    """Where calls made here stand in a chain of calls (SPEC 12.6).

    ``depth`` is sent as ``X-Nestflow-Depth``, ``chain`` (``org/pipeline`` hops) as
    ``X-Nestflow-Call-Chain``, ``pipeline`` as ``X-Nestflow-Caller-Pipeline``. A run started
    locally is ``Hop()``; the service runs a call at depth ``d`` under
    ``Hop(d + 1, (*chain, "org/pipeline"), "pipeline")``.
    """

    depth: int = 0
    chain: tuple[str, ...] = ()
    pipeline: str | None = None


_hop: contextvars.ContextVar[Hop | None] = contextvars.ContextVar("nestflow_call_hop", default=None)


@contextlib.contextmanager
def calling_from(hop: Hop) -> Iterator[None]:
    """Make ``hop`` the place of the calls made inside (a contextvar: pool threads inherit
    it, as they inherit the current span)."""
    token = _hop.set(hop)
    try:
        yield
    finally:
        _hop.reset(token)


def current_hop() -> Hop:
    """The hop of calls made here: ``Hop()`` outside ``calling_from``."""
    return _hop.get() or Hop()


@dataclass(frozen=True, slots=True)
class Request:
    """A request ready to send: the exact body bytes and headers (credentials included)."""

    method: str
    url: str
    body: bytes
    headers: dict[str, str]


def prepare(
    method: str,
    url: str,
    inputs: Mapping[str, Any] | None,
    *,
    token: str,
    secret: str | None,
    hop: Hop,
    node: str,
    stream: bool = False,
) -> Request:
    """The request calling ``url`` with ``inputs`` (``None``: no body, as for the contract).

    Headers: the bearer token, the depth, chain and caller of ``hop`` and ``node``, the
    current trace context when OpenTelemetry is installed, and the signature of SPEC 12.4
    when ``secret`` is given (over the exact body bytes and depth sent). ``inputs`` must be
    JSON data (``TypeError`` otherwise).
    """
    body = b"" if inputs is None else json.dumps({"inputs": dict(inputs)}).encode()
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "text/event-stream" if stream else "application/json",
        DEPTH_HEADER: str(hop.depth),
        CHAIN_HEADER: ",".join(hop.chain),
        CALLER_NODE_HEADER: node,
        **trace_headers(),
    }
    if hop.pipeline is not None:
        headers[CALLER_PIPELINE_HEADER] = hop.pipeline
    if inputs is not None:
        headers["Content-Type"] = "application/json"
    if secret is not None:
        path = httpx.URL(url).path
        headers |= signing.sign(secret, method, path, body, headers[DEPTH_HEADER])
    return Request(method, url, body, headers)


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be called, or ``None``; the message never repeats credentials."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"url {url!r} is not a valid address: {exc}"
    if parsed.userinfo:
        return "url holds credentials (user@host); pass them as token= and secret= instead"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"url {url!r} is not an http:// or https:// address with a host"
    return None


def trace_headers() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``); none without OpenTelemetry
    or outside a span."""
    try:
        from opentelemetry import propagate
    except ImportError:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


# --- reading replies ----------------------------------------------------------------------------


def read_reply(status: int, body: bytes) -> Outcome:
    """What a complete reply means: the result of a ``2xx``, or the failure it reports.

    A ``2xx`` must be ``{"status": "ok", "result": ...}`` (else ``malformed_response``);
    401 is ``rejected``; a ``5xx`` with an error body is ``remote_error`` with its message
    and run id; any other status is ``http_error``.
    """
    document = _json(body)
    if 200 <= status < 300:
        return _success(status, document, body)
    message, run_id = _error_body(document)
    if status == 401:
        return Failure("rejected", _rejected(message), status, run_id)
    if status >= 500 and message is not None:
        return Failure("remote_error", message, status, run_id)
    said = f": {message}" if message is not None else f"; the body was {_shown(body)}"
    text = f"The service answered HTTP {status} {_reason(status)}{said}."
    return Failure("http_error", text, status, run_id)


def _success(status: int, document: Any, body: bytes) -> Outcome:
    run_id = _run_id(document)
    if isinstance(document, Mapping) and document.get("status") == "ok" and "result" in document:
        return Success(document["result"], run_id)
    what = "is not JSON" if document is _NOT_JSON else "has no `result` with `status: ok`"
    return Failure(
        "malformed_response",
        f"The reply (HTTP {status}) {what}: {_shown(body)}. A nestflow service answers "
        '{"status": "ok", "result": ...}; check that the URL is a /v1/call/<org>/<pipeline> '
        "address of a nestflow service.",
        status,
        run_id,
    )


def _rejected(message: str | None) -> str:
    said = f": {message}" if message is not None else ""
    return (
        f"The service refused the call (HTTP 401){said}. Check the token (it may have been "
        "rotated or revoked) and, for a pipeline open to other organisations, the signing "
        "secret issued with it."
    )


_NOT_JSON: Final = object()


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        return _NOT_JSON


def _error_body(document: Any) -> tuple[str | None, str | None]:
    """The message and run id of ``{"status": "error", "error": {...}}``; ``None``s if not."""
    error = document.get("error") if isinstance(document, Mapping) else None
    if not isinstance(error, Mapping) or not isinstance(error.get("message"), str):
        return None, _run_id(document)
    run_id = error.get("run_id")
    return error["message"], run_id if isinstance(run_id, str) else _run_id(document)


def _run_id(document: Any) -> str | None:
    run_id = document.get("run_id") if isinstance(document, Mapping) else None
    return run_id if isinstance(run_id, str) else None


def _reason(status: int) -> str:
    return httpx.codes.get_reason_phrase(status) or "(no reason phrase)"


def _shown(body: bytes) -> str:
    if not body:
        return "empty"
    text = body[:_SHOWN_BYTES].decode(errors="replace")
    more = "…" if len(body) > _SHOWN_BYTES else ""
    return f"{len(body)} bytes, {text!r}{more}"


# --- server-sent events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One dispatched server-sent event: its type (``message`` when unnamed) and data."""

    event: str
    data: str


class EventReader:
    """Reads server-sent events line by line (the WHATWG rules): ``feed`` each line, without
    its line break; a blank line dispatches the event gathered so far.

    Comments (``: ping``), ``id`` and ``retry`` fields are ignored, as are events with no
    data; an event cut off by the end of the stream is never dispatched.
    """

    __slots__ = ("_data", "_event")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerEvent | None:
        """The event that ``line`` completes, if it does."""
        if not line:
            return self._dispatch()
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> ServerEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        return ServerEvent(event, "\n".join(data)) if data else None


EventSink = Callable[[dict[str, Any]], None]
"""Receives each ``progress`` event of a stream, as a dict, in order."""


def read_events(lines: Iterable[str], on_event: EventSink | None) -> Outcome:
    """The outcome of a stream: ``progress`` events go to ``on_event`` as they come, then
    ``result`` (the synchronous body) or ``error`` (an error body) ends it.

    Events of other types are ignored. A stream that ends first, or an event whose data is
    not a JSON object, is a ``malformed_response``. The HTTP status was 200, and stays the
    ``status_code`` of every failure read here.
    """
    reader = EventReader()
    for line in lines:
        event = reader.feed(line)
        if event is None or event.event not in ("progress", "result", "error"):
            continue
        document = _json(event.data.encode())
        if not isinstance(document, dict):
            return _bad_event(event)
        if event.event == "progress":
            if on_event is not None:
                on_event(document)
            continue
        if event.event == "result":
            return read_reply(200, event.data.encode())
        message, run_id = _error_body(document)
        return Failure("remote_error", message or _unexplained(event), 200, run_id)
    return Failure(
        "malformed_response",
        "The event stream ended before its `result` or `error` event (HTTP 200); the service "
        "may have stopped mid-run. Call again, or look the run up in the callee's audit.",
        200,
    )


def _bad_event(event: ServerEvent) -> Failure:
    return Failure(
        "malformed_response",
        f"The `{event.event}` event's data is not a JSON object: "
        f"{_shown(event.data.encode())}. A nestflow service sends one JSON object per event.",
        200,
    )


def _unexplained(event: ServerEvent) -> str:
    return f"The remote run failed; its `error` event says no more: {_shown(event.data.encode())}."


# --- the httpx shell ----------------------------------------------------------------------------


def send(request: Request, timeout: float, *, on_event: EventSink | None = None) -> Outcome:
    """Send ``request`` and read what comes back; never raises for a failed call.

    ``timeout`` bounds connecting, sending and each wait for data. A request that accepts
    ``text/event-stream`` is read as a stream, so ``timeout`` is then the longest silence
    (the service pings every 15 s); a reply that is not a stream is read whole.
    """
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False) as client,
            client.stream(
                request.method, request.url, content=request.body, headers=request.headers
            ) as response,
        ):
            return _read(response, on_event)
    except httpx.TimeoutException:
        return Failure(
            "timeout",
            f"No answer within the timeout of {timeout:g} s. Raise timeout=..., or call with "
            "mode='stream', which has no total limit.",
        )
    except httpx.DecodingError as exc:
        return Failure("malformed_response", f"The reply cannot be decoded: {exc}.", 200)
    except httpx.RequestError as exc:
        return Failure(
            "network",
            f"The call failed on the network ({type(exc).__name__}: {exc or 'no detail'}). "
            "Check the URL and that the service is up and reachable.",
        )


def _read(response: httpx.Response, on_event: EventSink | None) -> Outcome:
    kind = response.headers.get("content-type", "").partition(";")[0].strip()
    if response.status_code == 200 and kind == "text/event-stream":
        return read_events(response.iter_lines(), on_event)
    return read_reply(response.status_code, response.read())


def fetch_budget(request: Request) -> float | None:
    """The callee's ``time_budget_s``, read from its contract (``GET`` on the call URL), or
    ``None`` when it cannot be read: the caller then waits the default."""
    try:
        with httpx.Client(timeout=CONTRACT_TIMEOUT_S, follow_redirects=False) as client:
            response = client.request(request.method, request.url, headers=request.headers)
    except httpx.HTTPError:
        return None
    document = _json(response.content) if response.status_code == 200 else None
    budget = document.get("time_budget_s") if isinstance(document, Mapping) else None
    if isinstance(budget, bool) or not isinstance(budget, int | float):
        return None
    return float(budget) if 0 < budget <= MAX_TIME_BUDGET_S else None


def sync_timeout(budget: float | None) -> float:
    """How long a synchronous call waits: the callee's budget plus ``MARGIN_S``, or
    ``DEFAULT_SYNC_TIMEOUT_S`` when the budget is unknown."""
    return DEFAULT_SYNC_TIMEOUT_S if budget is None else budget + MARGIN_S
