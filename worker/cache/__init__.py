"""The result cache on RocksDB-backed Faust tables (see docs/cache.md).

``keys`` and ``entries`` define what is stored; ``base`` is the store port,
with ``memory`` and ``tables`` (Faust tables) implementing it; ``service`` is
the cache itself (lookups, write-backs, invalidation, sweeps); ``warming``,
``invalidation`` and ``metrics`` do what they say; ``runtime`` wires it all
into the Faust app.
"""
