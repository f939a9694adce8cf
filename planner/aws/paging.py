"""Batched EC2 reads: filter values in chunks, paginated results flattened."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

FILTER_VALUES = 200        # values per EC2 filter


def chunks(items: list[str], n: int = FILTER_VALUES) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def pages(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, ())
