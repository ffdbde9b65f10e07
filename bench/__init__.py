"""The benchmark of the worker against two baselines, on the same broker and messages.

``python -m bench`` (or ``make bench``) publishes N requests once and then runs,
one after the other on that same requests topic, each with its own consumer
group: the worker, a plain aiokafka loop and a plain Faust forwarding agent. It
reports the worker's throughput, latency, CPU and memory, and its ratios to the
two baselines measured in the same run. See docs/performance.md for the method.
"""
