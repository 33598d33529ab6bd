"""analyzer: least-privilege Kubernetes NetworkPolicies from observed flow logs."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
