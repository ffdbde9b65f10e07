"""Prometheus metrics of the result cache.

``worker_cache_requests_total{result}``: lookups by outcome: ``hit`` (served),
``negative`` (a cached not_found served), ``miss`` (nothing stored), ``stale``
(stored but expired or computed from reference data that changed since; never
served) and ``bypass`` (the key belongs to a partition another worker owns).
``worker_cache_evictions_total{reason}``: entries removed: ``expired`` (sweep)
or ``invalidated``. ``worker_cache_invalidations_total{kind}``: invalidations
applied in a partition, by kind (``key``, ``tag``, ``operation``, ``tenant``).
``worker_cache_entries``: entries in the partitions this worker owns (RocksDB's
estimate, refreshed by every sweep).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

LOOKUP_RESULTS = ("hit", "negative", "miss", "stale", "bypass")


class CacheMetrics:
    """The cache's metrics in ``registry``; :meth:`shared` gives the process-wide ones."""

    _shared: CacheMetrics | None = None

    @classmethod
    def shared(cls) -> CacheMetrics:
        """The metrics in the process's default registry, created once."""
        if cls._shared is None:
            cls._shared = cls(REGISTRY)
        return cls._shared

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "worker_cache_requests_total",
            "Cache lookups by result: hit, negative, miss, stale, bypass.",
            ["result"],
            registry=registry,
        )
        self.evictions = Counter(
            "worker_cache_evictions_total",
            "Cache entries removed, by reason: expired, invalidated.",
            ["reason"],
            registry=registry,
        )
        self.invalidations = Counter(
            "worker_cache_invalidations_total",
            "Invalidations applied in a partition, by kind: key, tag, operation, tenant.",
            ["kind"],
            registry=registry,
        )
        self.entries = Gauge(
            "worker_cache_entries",
            "Cache entries in the partitions this worker owns (estimate).",
            registry=registry,
        )
        for result in LOOKUP_RESULTS:
            self.requests.labels(result=result)
