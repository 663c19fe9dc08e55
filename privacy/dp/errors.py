"""Errors of the DP engine."""

from __future__ import annotations

__all__ = ["DpError", "InvalidQuery", "PrivacyMapMismatch"]


class DpError(Exception):
    """Base of every error the DP engine raises on purpose."""


class InvalidQuery(DpError, ValueError):
    """The query cannot be answered under the policy (unknown column, no bounds, ...)."""


class PrivacyMapMismatch(DpError):
    """OpenDP's privacy map does not equal the amount charged: no noise is drawn."""
