"""How the worker reaches Kafka and Redis: one builder per system, TLS and credentials included.

Every client of a system, in the worker and in its commands, is built here from
that system's settings, so a TLS or SASL setting cannot reach one client and miss
another. ClickHouse's options are built in ``worker.clickhouse.client``.
"""
