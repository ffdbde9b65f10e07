"""The read-only ClickHouse HTTP endpoint the worker serves over its embedded chDB.

chDB locks its data directory, so while the worker runs no other process can open
it. The worker therefore answers ClickHouse's HTTP interface itself, for analysts,
dashboards and ``worker db query`` (see docs/analytics.md):

    service.py        the endpoint as a mode Service of the Faust app
    server.py         the HTTP protocol (aiohttp) and the concurrency bound
    auth.py           ClickHouse's ways of presenting credentials, checked in constant time
    limits.py         the settings every query runs with; what a client may change
    statements.py     what a statement may do, judged on ClickHouse's rendering of it
    backend.py        the port to the engine: Statement in, Result out
    chdb_backend.py   the engine: a fresh read-only chDB session per query
    memory.py         an engine that answers from a function, for tests
    errors.py         ClickHouse's error codes, texts and HTTP statuses
    discovery.py      the file by which local tools find a running endpoint
"""
