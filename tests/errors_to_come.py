"""Errors of features nestflow does not have yet (YAML workflows, the HTTP service, run
guards): defined in ``nestflow.errors``, raised by no module, so not exported. When a
feature lands, its errors move from here to ``__all__``."""

NOT_RAISED_YET = frozenset(
    {
        "AuthenticationError",
        "AuthorizationError",
        "CallDepthError",
        "ReplayError",
        "ServiceError",
        "SignatureError",
    }
)
