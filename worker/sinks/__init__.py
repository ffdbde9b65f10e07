"""The database layer: where ``requests`` rows are persisted."""
