"""Rows a statement touched, from asyncpg's command tag."""

from __future__ import annotations


def rows_changed(status: str) -> int:
    """`UPDATE 3` → 3, `INSERT 0 1` → 1; 0 for a tag without a count."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
