"""request-worker: a layered request/response stream processing worker."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("request-worker")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
