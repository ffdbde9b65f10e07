"""The request flow: batch-shaped stages composed by :mod:`worker.flow.pipeline`.

Read the modules in the order a request meets them: ``decode`` (client layer),
``validate`` (client layer), ``ratelimit`` (API layer), ``process`` (service
layer), ``respond`` (response flow). ``deliver`` persists and publishes what the
pipeline produced.
"""
