"""Callable sub-pipelines over HTTP (SPEC 12): pipelines published behind a URL with a typed
contract, called as nodes by other pipelines, possibly of other organisations.

The pure foundations, ``contract`` (the typed interface of a callable pipeline) and
``signing`` (HMAC request signing), import neither FastAPI nor httpx, so the client and the
server share them; this package module imports nothing so that loading either stays light.
"""
