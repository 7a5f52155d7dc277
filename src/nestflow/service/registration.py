"""Registering a callable pipeline: the one rule the admin API and the command line share.

The contract is checked against the pipeline its source loads, the pipeline's calls within
its organisation are checked for a loop (SPEC 12.6, ``cycles``), and the contract is stored
with the source's content hash (SPEC 12.2). Framework-free: the HTTP admin API and
``nestflow service register`` both call ``register`` and only translate its errors.
"""

from __future__ import annotations

from nestflow.service.contract import Contract
from nestflow.service.cycles import GRAPH
from nestflow.service.sources import content_hash, load_pipeline
from nestflow.service.store import Store


def register(store: Store, org: str, contract: Contract, *, public_url: str | None = None) -> None:
    """Check ``contract`` against its pipeline, then store it for ``org`` (or update it).

    ``public_url`` is the server's: calls to URLs under it count as calls within the server
    (default ``http://127.0.0.1:8787``, SPEC 12.10). Raises ``ContractError`` when the
    contract does not fit the pipeline, ``SourceError`` when the source cannot be loaded and
    ``CallCycleError`` when the pipeline's calls would close a loop, before the store is
    touched; the store's own refusals (an unknown organisation) propagate as they are.
    """
    source = contract.source
    pipeline = load_pipeline(source)
    contract.check(pipeline)
    GRAPH.check(store, org, contract.name, pipeline, public_url)
    store.register_pipeline(
        org,
        contract.name,
        source=source,
        contract=contract.to_mapping()["contract"],
        content_hash=content_hash(source),
        allow_cross_org=contract.allow_cross_org,
    )
