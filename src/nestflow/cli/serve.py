"""``nestflow serve``: run the pipeline service over the database at ``--db`` (SPEC 12.9).

FastAPI and uvicorn come with the ``service`` extra; they are imported only here, inside the
command, so the rest of the command line works without them.
"""

from __future__ import annotations

import click

from nestflow.cli.problems import RunFailed
from nestflow.cli.service import DEFAULT_DB, INSTALL_HINT, opened
from nestflow.cli.targets import put_current_directory_first


@click.command("serve")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="The service database URL.")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True)
@click.option(
    "--max-call-depth",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Deeper calls are cut with 508.",
)
@click.option(
    "--public-url",
    default=None,
    help="The URL callers reach the server at (default: http://HOST:PORT).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="How many runs execute at once.",
)
@click.option(
    "--stream-max-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=3600,
    show_default=True,
    help="The longest a streamed run may last.",
)
@click.option(
    "--debug",
    is_flag=True,
    help="Send the traceback of a failed run to the caller (for development only).",
)
def serve_command(
    db: str,
    host: str,
    port: int,
    max_call_depth: int,
    public_url: str | None,
    workers: int,
    stream_max_seconds: float,
    debug: bool,
) -> None:
    """Serve the registered pipelines over HTTP until interrupted."""
    try:
        import uvicorn

        from nestflow.service.app import create_app
    except ImportError as exc:
        raise RunFailed(
            f"Error: `nestflow serve` needs the service extra ({exc}); install it with "
            f"{INSTALL_HINT}"
        ) from None
    put_current_directory_first()  # `module:attribute` sources import from here
    with opened(db) as store:
        app = create_app(
            store,
            public_url=public_url or f"http://{host}:{port}",
            max_call_depth=max_call_depth,
            workers=workers,
            stream_max_seconds=stream_max_seconds,
            debug=debug,
        )
        uvicorn.run(app, host=host, port=port)
