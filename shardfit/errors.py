"""Errors that reach users as one readable line.

They derive from MetaflowException so that a failing step prints the message
without a traceback, and from ValueError so library callers can catch them
without knowing about Metaflow.
"""

from metaflow.exception import MetaflowException


class ShardfitError(MetaflowException, ValueError):
    headline = "shardfit"

    def __init__(self, msg: str = ""):
        super().__init__(msg)
        self.args = (msg,)

    def __str__(self) -> str:
        return self.message


class SpecError(ShardfitError):
    """The spec (or a file it names) is wrong; raised before any training starts."""

    headline = "Invalid spec"


class DataError(ShardfitError):
    """The data cannot be read or partitioned as the spec asks."""

    headline = "Data error"


class MergeError(ShardfitError):
    """Fitted sub-models cannot be merged into one."""

    headline = "Merge error"


class RegistryError(ShardfitError):
    """A model version cannot be published or loaded."""

    headline = "Registry error"


class IntegrityError(RegistryError):
    """A stored model does not match the sha256 recorded in its manifest."""

    headline = "Integrity error"


class VersionExistsError(RegistryError):
    """A version is immutable: publishing it twice is refused."""

    headline = "Version exists"
