"""The event contracts: what producers send and what consumers receive.

These models are the source of the JSON Schema files in ``schemas/``.
"""

from worker.contracts.request import RequestEnvelope
from worker.contracts.response import ErrorBody, ResponseEnvelope, ResponseMeta, SourcePosition

__all__ = ["ErrorBody", "RequestEnvelope", "ResponseEnvelope", "ResponseMeta", "SourcePosition"]
