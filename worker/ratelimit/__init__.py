"""Rate limiting for the API layer: a token bucket per key, in Redis or in memory."""
