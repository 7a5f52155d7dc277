"""The HTTP service (SPEC 12): registered pipelines behind ``/v1/call/{org}/{pipeline}``.

``create_app(store)`` builds the ASGI app: the call endpoints (``GET`` the contract document,
``POST`` a call, synchronous or streamed) and the management API of ``nestflow.service.admin``.
The checks of a call live in ``gate``, its run in ``runs``; this module only wires them to HTTP. The
store is read on every request, so changes made by the command line apply to the next one.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from nestflow.service.admin import Admin
from nestflow.service.gate import Gate, Incoming
from nestflow.service.refusals import Refusal, error_response
from nestflow.service.runs import PING_S, STREAM_MAX_SECONDS, Runner
from nestflow.service.store import Store

CALL_PATH = "/v1/call/{org}/{pipeline}"


def create_app(
    store: Store,
    *,
    public_url: str | None = None,
    max_call_depth: int = 8,
    workers: int = 4,
    stream_max_seconds: float = STREAM_MAX_SECONDS,
    ping_s: float = PING_S,
    debug: bool = False,
) -> FastAPI:
    """The service app over ``store``.

    ``public_url`` prefixes the call URLs that registration returns (default: the URL the
    request came in on); a request deeper than ``max_call_depth`` is cut with 508; at most
    ``workers`` runs execute at once, in threads, off the event loop. A streamed run may last
    ``stream_max_seconds`` and hears a ``: ping`` after ``ping_s`` seconds of silence. With
    ``debug``, the error of a failed run carries its traceback (never in production: it shows
    the server's code and paths to the caller).
    """
    gate = Gate(store, max_call_depth)
    runner = Runner(
        store, workers, stream_max_seconds=stream_max_seconds, ping_s=ping_s, debug=debug
    )
    app = FastAPI(title="nestflow service", on_shutdown=[runner.close])
    app.add_exception_handler(Refusal, _refused)
    app.add_exception_handler(RequestValidationError, _invalid)

    async def contract_document(request: Request) -> Response:
        incoming = await _incoming(request)
        return JSONResponse(await runner.checking(gate.document, incoming))

    async def call(request: Request) -> Response:
        incoming = await _incoming(request)
        admitted = await runner.checking(runner.admit, gate, incoming)
        return await runner.answer(admitted)

    # Plain routes, matched first: every call passes here, and FastAPI's parameter solving
    # would only read the two path segments that Starlette has parsed already.
    app.router.add_route(CALL_PATH, contract_document, methods=["GET"], include_in_schema=False)
    app.router.add_route(CALL_PATH, call, methods=["POST"], include_in_schema=False)
    app.include_router(Admin(store, public_url).router())
    return app


async def _incoming(request: Request) -> Incoming:
    scope = request.scope
    # The raw header list (names are lower case in ASGI); a header sent more than once is
    # its values joined by ", ", as HTTP reads a repeated list header.
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    body = await request.body()
    params = scope["path_params"]
    return Incoming(
        params["org"], params["pipeline"], scope["method"], scope["path"], headers, body
    )


def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refusal)
    return exc.to_response()


def _invalid(request: Request, exc: Exception) -> Response:
    """FastAPI's own validation (a query parameter, a JSON body) in the service's error shape."""
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    ]
    message = "The request is malformed: " + "; ".join(problems) + "."
    return error_response(400, "malformed_request", message, None, {"problems": problems})
