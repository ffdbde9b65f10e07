"""The API layer's identity: who sent a request, verified, and what they may do.

``signing`` (HMAC-SHA256 over the raw bytes), ``bearer`` (JWT bearer tokens from a
JWKS file), ``secrets`` (secrets encrypted at rest under the master key),
``credentials/`` (the key store port, in Redis and in memory), ``cache``
(the in-process credential cache that bounds revocation), ``keys`` (what the
``worker keys`` commands do), ``authenticators`` (the pluggable schemes).
"""
