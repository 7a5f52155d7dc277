"""The service store's parts: database connections, schema, migrations and credentials."""

import importlib

try:
    importlib.import_module("sqlalchemy")
except ImportError as exc:
    raise ImportError(
        "The service store needs SQLAlchemy, which is not installed. "
        "Install it with: pip install 'nestflow[service]'"
    ) from exc
