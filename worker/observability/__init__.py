"""What operators see of the worker: metrics, health, logs.

``metrics`` defines every Prometheus metric (one section per concern),
``recorder`` turns finished batches into metric updates, ``partitions`` follows
consumer lag, commits and stalls per partition, ``health`` answers liveness and
readiness, ``web`` serves all of it on Faust's web server, and ``logging``
renders log records as JSON lines (or for a console) without secrets.
"""
