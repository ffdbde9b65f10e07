"""What operators see of the worker: metrics (and, later, health and logs)."""
