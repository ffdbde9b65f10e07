"""The fault-injection suite: the worker killed, stopped and starved under load, with figures."""
