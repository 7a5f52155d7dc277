"""The ``pipeline_call`` node (SPEC 12.7): a pipeline published by a nestflow service, as a node.

>>> summary = pipeline_call(
...     "https://flows.example.org/v1/call/acme/summarise_thread",
...     token="env:ACME_TOKEN",
...     input_mapping={"thread": "ticket.messages", "style": "style"},
...     output_key="summary",
... )
>>> summary.inputs, summary.outputs
(('ticket', 'style'), ('summary', 'summary._error'))

A failed call is data, not an exception: ``summary`` is then ``None`` and ``summary._error``
says what happened (``client.ERROR_TYPES``), so the nodes downstream still run and decide the
fallback (SPEC 14, decision 21). The node's status is ``executed`` either way.

Credentials stay out of everything a run leaves behind. ``token`` and ``secret`` may name an
environment variable (``"env:VAR"``), read at call time; either way they are never part of
the node's fingerprint (``RemoteCall.__cache_key__``), its repr, its outputs or its messages
(``client.redact`` masks a server that echoes them). Caching is off by default, as a call may
have side effects and a cost.

The function asks the runtime where it runs (``__nestflow_site__``, ``runtime/sites.py``): the
request names the run's pipeline (``X-Nestflow-Caller-Pipeline``; inside a service run, the
served pipeline) and the node's id as it runs (``X-Nestflow-Caller-Node``), and each
``progress`` event of a streamed call reaches the callbacks' ``on_remote_event`` as it comes
when the node runs in the thread coordinating the run (the default), or when the call returns
when it runs elsewhere (a pool thread, a worker process).
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from nestflow.core.gates import error_output
from nestflow.core.names import input_name_problem, name_problem
from nestflow.core.node import Node
from nestflow.errors import InvalidOptionError
from nestflow.runtime.sites import Site, current_site
from nestflow.spec.sandbox import Absent, lookup

if TYPE_CHECKING:
    from nestflow.service.client import Mode, Outcome, Request

MODES: Final = ("sync", "stream")
ENV_PREFIX: Final = "env:"
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_budgets: dict[str, float] = {}
"""Time budgets learned from callees' contracts, by call URL: learned once per process."""


def pipeline_call(
    url: str,
    token: str,
    input_mapping: Mapping[str, str],
    output_key: str,
    mode: Mode = "sync",
    secret: str | None = None,
    *,
    timeout: float | None = None,
    name: str | None = None,
    cache: bool = False,
) -> Node:
    """A node that calls the pipeline at ``url`` and publishes its result as ``output_key``.

    ``input_mapping`` is ``{contract_input: selector}``, a selector being the name of a value
    of the calling pipeline, optionally followed by a dotted path (``"ticket.body"``: a key,
    or a public field of a dataclass, named tuple or pydantic model). The node's inputs are
    the selectors' root names; its outputs are ``output_key`` and ``<output_key>._error``
    (``None`` on success, else a dict with ``type``, ``message``, ``status_code``,
    ``remote_run_id``, ``elapsed_s`` and ``url``).

    ``mode="sync"`` waits ``timeout`` seconds, by default the callee's budget plus 5 s as its
    contract says, or 35 s. ``mode="stream"`` reads the callee's events with no total limit;
    ``timeout`` (default 60 s) is then the longest silence allowed. ``secret`` signs every
    request (SPEC 12.4). ``name`` is the node id, ``output_key`` by default.

    Raises ``InvalidOptionError`` listing every problem of the arguments at once, and
    ``ImportError`` when httpx (the ``client`` extra) is missing.
    """
    importlib.import_module("nestflow.service.client")  # fails now, with the install hint
    problems = _problems(url, token, input_mapping, output_key, mode, secret, timeout, name)
    if problems:
        raise InvalidOptionError(
            "pipeline_call(...) cannot make a node:\n  " + "\n  ".join(problems)
        )
    node_id = output_key if name is None else name
    call = RemoteCall(
        url,
        Credential(token),
        None if secret is None else Credential(secret),
        tuple((key, Selector.parse(text)) for key, text in input_mapping.items()),
        mode,
        timeout,
        node_id,
    )
    # The call keeps its own time (timeout=), so a pipeline-wide node timeout must not
    # turn a slow callee into a failed run: a call's failures are data.
    outputs = (output_key, error_output(output_key))
    return Node(call, output_name=outputs, name=node_id, cache=cache, timeout=None)


# --- the parts of a call ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class Credential:
    """A token or secret as given: the value itself, or ``"env:VAR"``, read at call time."""

    given: str

    @property
    def variable(self) -> str | None:
        """The environment variable holding the value, if it is given as one."""
        return self.given[len(ENV_PREFIX) :] if self.given.startswith(ENV_PREFIX) else None

    def resolve(self, environ: Mapping[str, str], what: str, node: str) -> str:
        """The value now; ``LookupError`` naming the variable when it is not set."""
        variable = self.variable
        if variable is None:
            return self.given
        value = environ.get(variable)
        if not value:
            raise LookupError(
                f"pipeline_call `{node}` reads its {what} from the environment variable "
                f"{variable}, which is not set or empty. Set {variable} before the run, or "
                f"pass the {what} itself."
            )
        return value

    def __repr__(self) -> str:
        shown = f"{ENV_PREFIX}{self.variable}" if self.variable is not None else "***"
        return f"Credential({shown})"


@dataclass(frozen=True, slots=True)
class Selector:
    """A value of the calling pipeline (``root``), and the path read inside it."""

    root: str
    path: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Selector:
        """``"ticket.body"`` as root ``ticket`` and path ``("body",)``."""
        root, *path = text.split(".")
        return cls(root, tuple(path))

    def read(self, value: Any) -> Any:
        """The value at the path inside ``value``; ``LookupError`` saying where it stops."""
        for depth, segment in enumerate(self.path):
            try:
                value = lookup(value, segment)
            except Absent as absent:
                reached = ".".join((self.root, *self.path[:depth]))
                raise LookupError(f"Selector `{self}` stops at `{reached}`: {absent}.") from None
        return value

    def __str__(self) -> str:
        return ".".join((self.root, *self.path))


class RemoteCall:
    """The function of a ``pipeline_call`` node: call, read, and report a failure as data.

    Its parameters are the selectors' roots (``__signature__``); it returns
    ``(result, None)`` or ``(None, error)``.
    """

    __slots__ = ("_signature", "mode", "node", "secret", "selectors", "timeout", "token", "url")
    __nestflow_site__ = True
    """The runtime tells the call its pipeline and node, and takes its remote events."""

    def __init__(
        self,
        url: str,
        token: Credential,
        secret: Credential | None,
        selectors: tuple[tuple[str, Selector], ...],
        mode: Mode,
        timeout: float | None,
        node: str,
    ) -> None:
        self.url, self.token, self.secret, self.selectors = url, token, secret, selectors
        self.mode, self.timeout, self.node = mode, timeout, node
        roots = dict.fromkeys(selector.root for _, selector in selectors)
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        self._signature = inspect.Signature([inspect.Parameter(root, kind) for root in roots])

    @property
    def __signature__(self) -> inspect.Signature:
        """One parameter per selector root, which is how the node reads its inputs."""
        return self._signature

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any] | None]:
        from nestflow.service import client

        values = self.__signature__.bind(*args, **kwargs).arguments
        inputs = {key: selector.read(values[selector.root]) for key, selector in self.selectors}
        token, secret = self._credentials()
        started = perf_counter()
        site = current_site()
        outcome = self._outcome(inputs, token, secret, site)
        if isinstance(outcome, client.Success):
            return outcome.result, None
        return None, outcome.to_error(self.url, perf_counter() - started, (token, secret or ""))

    def _credentials(self) -> tuple[str, str | None]:
        token = self.token.resolve(os.environ, "token", self.node)
        if self.secret is None:
            return token, None
        return token, self.secret.resolve(os.environ, "secret", self.node)

    def _outcome(
        self, inputs: dict[str, Any], token: str, secret: str | None, site: Site | None
    ) -> Outcome:
        from nestflow.service import client

        request = self._request("POST", inputs, token, secret, site)
        on_event = None if site is None else site.emit
        return client.send(request, self._timeout(token, secret, site), on_event=on_event)

    def _request(
        self,
        method: str,
        inputs: dict[str, Any] | None,
        token: str,
        secret: str | None,
        site: Site | None,
    ) -> Request:
        from nestflow.service import client

        hop = client.current_hop()
        if hop.pipeline is None and site is not None:  # a local run: name its pipeline
            hop = client.Hop(hop.depth, hop.chain, site.pipeline)
        try:
            return client.prepare(
                method,
                self.url,
                inputs,
                token=token,
                secret=secret,
                hop=hop,
                node=self.node if site is None else site.node,
                stream=self.mode == "stream",
            )
        except (TypeError, ValueError):
            unsendable = [k for k, v in (inputs or {}).items() if not _is_json(v)]
            if not unsendable:
                raise
            raise TypeError(self._unsendable(inputs or {}, unsendable)) from None

    def _timeout(self, token: str, secret: str | None, site: Site | None) -> float:
        from nestflow.service import client

        if self.timeout is not None:
            return self.timeout
        if self.mode == "stream":
            return client.STREAM_IDLE_TIMEOUT_S
        if self.url not in _budgets:
            budget = client.fetch_budget(self._request("GET", None, token, secret, site))
            if budget is not None:
                _budgets[self.url] = budget
        return client.sync_timeout(_budgets.get(self.url))

    def _unsendable(self, inputs: dict[str, Any], bad: list[str]) -> str:
        shown = ", ".join(f"`{key}` ({type(inputs[key]).__name__})" for key in bad)
        return (
            f"pipeline_call `{self.node}` cannot send input(s) {shown} as JSON. Send plain "
            "data (dict, list, str, int, float, bool, None), converted by a node upstream."
        )

    def __cache_key__(self) -> tuple[Any, ...]:
        """What the call computes from: never the token or the secret, which only grant it."""
        mapping = tuple((key, str(selector)) for key, selector in self.selectors)
        return ("pipeline_call", self.url, mapping, self.mode)

    def __repr__(self) -> str:
        return f"RemoteCall({self.url!r}, node={self.node!r}, mode={self.mode!r})"


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


# --- checking the arguments -------------------------------------------------------------------


def _problems(
    url: object,
    token: object,
    input_mapping: object,
    output_key: object,
    mode: object,
    secret: object,
    timeout: object,
    name: object,
) -> list[str]:
    """Every problem of ``pipeline_call``'s arguments, each with what was expected."""
    problems = [*_url_problems(url), *_mapping_problems(input_mapping)]
    problems += _credential_problems("token", token)
    if secret is not None:
        problems += _credential_problems("secret", secret)
    if (problem := name_problem(output_key)) is not None:
        problems.append(f"output_key: {problem}")
    if name is not None and (problem := name_problem(name)) is not None:
        problems.append(f"name: {problem}")
    if mode not in MODES:
        problems.append(f"mode must be 'sync' or 'stream', got {mode!r}")
    if timeout is not None and not _is_duration(timeout):
        problems.append(f"timeout must be a number of seconds above 0, or None; got {timeout!r}")
    return problems


def _url_problems(url: object) -> list[str]:
    from nestflow.service import client

    if not isinstance(url, str):
        return [f"url must be a str, got {type(url).__name__}"]
    problem = client.url_problem(url)
    return [] if problem is None else [problem]


def _credential_problems(what: str, value: object) -> list[str]:
    if not isinstance(value, str) or not value:
        return [f"{what} must be a non-empty str (the value, or 'env:VAR')"]
    variable = Credential(value).variable
    if variable is not None and _ENV_NAME.fullmatch(variable) is None:
        return [f"{what} names the environment variable {variable!r}, which is not a valid name"]
    return []


def _mapping_problems(mapping: object) -> list[str]:
    if not isinstance(mapping, Mapping):
        return [f"input_mapping must be a dict {{contract_input: selector}}, got {mapping!r}"]
    problems = []
    for key, selector in mapping.items():
        if (problem := name_problem(key)) is not None:
            problems.append(f"input_mapping key (a contract input): {problem}")
        if not isinstance(selector, str):
            problems.append(f"input_mapping[{key!r}] must be a str selector, got {selector!r}")
            continue
        root, *path = selector.split(".")
        if (problem := input_name_problem(root)) is not None:
            problems.append(f"input_mapping[{key!r}] = {selector!r}: its root {problem}")
        if not all(path):
            problems.append(f"input_mapping[{key!r}] = {selector!r} has an empty path segment")
    return problems


def _is_duration(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value > 0
