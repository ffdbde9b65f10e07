"""Helpers shared by the integration and end-to-end tests: real services, real processes."""
