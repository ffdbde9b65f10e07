"""Local state: Faust tables on RocksDB (rocksdict) with a bounded memory budget.

``rocksdb.py`` sizes RocksDB for the whole process; ``tables.py`` holds the
table classes whose changelogs are topics declared in ``topics/``.
"""
