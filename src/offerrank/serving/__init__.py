"""Serving: what channels read. The lookup over published rankings, the per-request policy, the HTTP service."""
