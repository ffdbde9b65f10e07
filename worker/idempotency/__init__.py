"""Replay protection: the answers already given, by tenant and request id, in Redis or memory."""
