"""``python -m nestflow``: the ``nestflow`` command."""

from __future__ import annotations

from nestflow.cli import main

if __name__ == "__main__":
    main(prog_name="nestflow")
