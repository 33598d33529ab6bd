"""analyzer: least-privilege Kubernetes NetworkPolicies from observed flow logs."""

from __future__ import annotations

from analyzer._allocator import configure as _configure_allocator

_configure_allocator()  # before anything loads polars

__all__ = ["__version__"]

__version__ = "0.1.0"
