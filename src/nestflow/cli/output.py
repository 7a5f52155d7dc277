"""Results as JSON text: every value printable, whatever a node returned.

JSON's own types are written as they are (tuples as arrays); anything else, including
floats that JSON cannot hold (NaN, infinities), is written as its ``repr`` string, so the
output is always one valid JSON document.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` with everything JSON cannot hold replaced by its ``repr``."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {_key(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return repr(value)


def to_json(value: Any, indent: int | None = 2) -> str:
    """``value`` as JSON text (see :func:`jsonable`)."""
    return json.dumps(jsonable(value), indent=indent, ensure_ascii=False)


def shown(value: Any) -> str:
    """What ``nestflow run`` prints for a result: a string as it is, the rest as JSON."""
    return value if isinstance(value, str) else to_json(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)  # as json.dumps itself writes such keys: 1 -> "1"
    return repr(key)
