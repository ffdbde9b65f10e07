"""Reference data the operations join requests with: a product catalog and currency rates.

It is fed from compacted topics (``reference.products``, ``reference.rates``)
into global tables that every worker holds in full (``tables.py``); tests and
the broker-free harness use ``memory.py``. ``publish.py`` loads it into the
topics. Every record has a revision (a hash of its bytes), which is how the
cache tells that an answer was computed from data that has changed since.
"""
