"""One small exception hierarchy (after pydantic-ai): usage vs runtime vs model behaviour.

Every message says what to do next, not only what went wrong.
"""


class ShopAssistError(Exception):
    """Base class for every error shopassist raises on purpose."""


class UsageError(ShopAssistError):
    """The caller asked for something invalid: bad arguments, bad configuration, missing files."""


class BackendError(ShopAssistError):
    """A backend (vector store, embedding server, LLM server) failed or is unreachable."""


class ModelBehaviourError(ShopAssistError):
    """A model answered, but not in the shape we asked for (and repair failed)."""


def folder_error(path: object, exc: OSError) -> UsageError:
    """The one message for a data folder that cannot be created (the home, its model and server
    folders): what failed and how to pick another place."""
    return UsageError(
        f"Cannot create the data folder {path}: {exc.strerror}. Pick a writable folder with --home DIR or SHOPASSIST_HOME."
    )
