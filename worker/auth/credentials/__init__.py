"""The credential store: API keys by key id, in Redis or in memory."""
