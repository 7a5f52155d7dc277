"""Registering a callable pipeline: the one rule the admin API and the command line share.

The contract is checked against the pipeline its source loads, and stored with the source's
content hash (SPEC 12.2). Framework-free: the HTTP admin API and ``nestflow service register``
both call ``register`` and only translate its errors.
"""

from __future__ import annotations

from nestflow.service.contract import Contract
from nestflow.service.sources import content_hash, load_pipeline
from nestflow.service.store import Store


def register(store: Store, org: str, contract: Contract) -> None:
    """Check ``contract`` against its pipeline, then store it for ``org`` (or update it).

    Raises ``ContractError`` when the contract does not fit the pipeline and ``SourceError``
    when the source cannot be loaded, before the store is touched; the store's own refusals
    (an unknown organisation) propagate as they are.
    """
    source = contract.source
    contract.check(load_pipeline(source))
    store.register_pipeline(
        org,
        contract.name,
        source=source,
        contract=contract.to_mapping()["contract"],
        content_hash=content_hash(source),
        allow_cross_org=contract.allow_cross_org,
    )
