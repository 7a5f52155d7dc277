"""``nestflow service ...``: administer the pipeline service's database (SPEC 12.9, 12.10).

Every command opens the store at ``--db`` (default ``sqlite:///nestflow-service.db`` in the
working directory, as for ``nestflow serve``), does one thing and prints JSON, or the call URL
for ``register``. A refusal (unknown organisation or pipeline, a token the cross-org setting
forbids, an invalid contract) exits 2 with the reason on stderr.

Registration follows the HTTP admin API (``nestflow.service.admin``): the same contract
reading, pipeline check, content hash and stored contract section, from the same building
blocks (``nestflow.service.contract`` and ``nestflow.service.sources``). The admin module
itself needs FastAPI, which these commands do not.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click
import yaml

from nestflow.cli.problems import USAGE_EXIT, RunFailed
from nestflow.cli.targets import put_current_directory_first
from nestflow.errors import CallCycleError, ContractError
from nestflow.service.contract import Contract
from nestflow.service.sources import YAML_SUFFIXES, SourceError

if TYPE_CHECKING:
    from nestflow.service.store import Store

DEFAULT_DB = "sqlite:///nestflow-service.db"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8787"
INSTALL_HINT = "pip install 'nestflow[service]'"
QUOTES = "'\""  # KeyError-style messages come quoted

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class Refused(click.ClickException):
    """The store or the contract refused the command: exit 2, ``message`` on stderr as is."""

    exit_code = USAGE_EXIT

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.message, err=True)


def _db_option(command: F) -> F:
    return click.option(
        "--db",
        "db",
        default=DEFAULT_DB,
        show_default=True,
        help="The service database URL (sqlite:///file.db or postgresql://...).",
    )(command)


def _holder_option(command: F) -> F:
    return click.option(
        "--holder",
        default=None,
        metavar="ORG2",
        help="The organisation holding the token (default: the owning organisation).",
    )(command)


def _guarded(action: Callable[[], T]) -> T:
    """Run a store action; its documented refusals exit 2 with the reason."""
    try:
        return action()
    except (ContractError, SourceError, CallCycleError):
        raise  # a problem of the registration, which the caller names as such
    except LookupError as exc:
        raise Refused(f"Error: {str(exc).strip(QUOTES)}") from None
    except (PermissionError, ValueError) as exc:  # forbidden by cross-org; exists already
        raise Refused(f"Error: {exc}") from None


def opened(db: str) -> Store:
    """The store at ``db``; a URL that names no usable database exits 2 with the reason.

    The store needs the ``service`` extra (SQLAlchemy), imported only here so that the rest
    of the command line works without it; when it is missing, exit 1 with the install hint.
    """
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from nestflow.service.storage.database import redact_url
        from nestflow.service.store import open_store
    except ImportError as exc:
        raise RunFailed(
            f"Error: the service commands need the service extra ({exc}); install it with "
            f"{INSTALL_HINT}"
        ) from None
    try:
        return open_store(db)
    except (ValueError, ImportError) as exc:
        raise Refused(f"Error: {exc}") from None
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        raise Refused(
            f"Error: Cannot open the service database {redact_url(db)}: {reason}"
        ) from None


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value))


def _target(text: str) -> tuple[str, str]:
    org, slash, pipeline = text.partition("/")
    if not slash or not org or not pipeline or "/" in pipeline:
        raise click.BadParameter(f"expected ORG/PIPELINE, got {text!r}", param_hint="TARGET")
    return org, pipeline


@click.group("service")
def service_group() -> None:
    """Administer the pipeline service: organisations, pipelines, tokens, audit.

    The commands work on the database the server reads (--db), so a change applies to the
    server's next request.
    """


# --- organisations -------------------------------------------------------------------------


@service_group.group("org")
def org_group() -> None:
    """Manage organisations."""


@org_group.command("create")
@click.argument("name")
@_db_option
def org_create(name: str, db: str) -> None:
    """Create organisation NAME and print its admin key (shown only now)."""
    with opened(db) as store:
        key = _guarded(lambda: store.create_org(name))
    _echo_json({"org": name, "admin_key": key})


# --- pipelines -----------------------------------------------------------------------------


def _read_contract(file: Path) -> Contract:
    """The contract in ``file``, its relative YAML ``source`` resolved against the file's folder."""
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ContractError(f"Cannot read the contract file `{file}`: {exc}") from None
    contract = Contract.from_mapping(data)
    source = contract.source
    beside = file.resolve().parent / source
    if not Path(source).is_absolute() and (source.endswith(YAML_SUFFIXES) or beside.is_file()):
        contract = dataclasses.replace(contract, source=str(beside.resolve()))
    return contract


@service_group.command("register")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--org", required=True, help="The organisation that owns the pipeline.")
@click.option(
    "--public-url",
    default=DEFAULT_PUBLIC_URL,
    show_default=True,
    help="The server's public URL, which prefixes the printed call URL.",
)
@_db_option
def register(file: Path, org: str, public_url: str, db: str) -> None:
    """Register (or update) the pipeline of contract FILE for ORG; print its call URL."""
    put_current_directory_first()  # `module:attribute` sources load as the server loads them
    try:
        contract = _read_contract(file)
    except ContractError as exc:
        raise Refused(f"{type(exc).__name__}: {exc}") from None
    with opened(db) as store:  # SQLAlchemy is there: the store opened
        from nestflow.service import registration

        try:
            _guarded(lambda: registration.register(store, org, contract, public_url=public_url))
        except (ContractError, SourceError, CallCycleError) as exc:
            raise Refused(f"{type(exc).__name__}: {exc}") from None
    click.echo(f"{public_url.rstrip('/')}/v1/call/{org}/{contract.name}")


@service_group.command("allow-cross-org")
@click.argument("target", metavar="ORG/PIPELINE")
@click.argument("state", type=click.Choice(["on", "off"]))
@_db_option
def allow_cross_org(target: str, state: str, db: str) -> None:
    """Open ORG/PIPELINE to other organisations' signed calls (on), or close it (off)."""
    org, pipeline = _target(target)
    allowed = state == "on"
    with opened(db) as store:
        _guarded(lambda: store.set_allow_cross_org(org, pipeline, allowed))
    _echo_json({"allow_cross_org": allowed})


# --- tokens --------------------------------------------------------------------------------


@service_group.group("token")
def token_group() -> None:
    """Issue, rotate and revoke call tokens; a token (and secret) is shown only once."""


@token_group.command("issue")
@click.argument("target", metavar="ORG/PIPELINE")
@_holder_option
@_db_option
def token_issue(target: str, holder: str | None, db: str) -> None:
    """A new token for the holder to call ORG/PIPELINE, with its signing secret (or null)."""
    org, pipeline = _target(target)
    with opened(db) as store:
        issued = _guarded(lambda: store.issue_token(org, pipeline, holder))
    _echo_json({"token": issued.token, "secret": issued.secret})


@token_group.command("rotate")
@click.argument("target", metavar="ORG/PIPELINE")
@_holder_option
@_db_option
def token_rotate(target: str, holder: str | None, db: str) -> None:
    """Replace the holder's tokens for ORG/PIPELINE by a new one; the old ones stop working."""
    org, pipeline = _target(target)
    with opened(db) as store:
        issued = _guarded(lambda: store.rotate_token(org, pipeline, holder))
    _echo_json({"token": issued.token, "secret": issued.secret})


@token_group.command("revoke")
@click.argument("target", metavar="ORG/PIPELINE")
@_holder_option
@_db_option
def token_revoke(target: str, holder: str | None, db: str) -> None:
    """Revoke the holder's tokens for ORG/PIPELINE."""
    org, pipeline = _target(target)
    with opened(db) as store:
        _guarded(lambda: store.revoke_tokens(org, pipeline, holder))
    _echo_json({"revoked": True})


# --- audit ---------------------------------------------------------------------------------


@service_group.command("audit")
@click.option("--org", required=True, help="The organisation, as caller or callee.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Newest N."
)
@_db_option
def audit(org: str, limit: int, db: str) -> None:
    """Print the newest audit records in which ORG calls or is called, as a JSON array."""
    with opened(db) as store:
        records = _guarded(lambda: store.audit_for(org, limit))
    _echo_json([record.to_json() for record in records])
