"""The public API document: the gateway's own routes plus every upstream's, under its prefix.

Upstream documents are fetched at start-up, again on demand while one is missing (at most
once per ``MISSING_REFETCH_SECONDS``), and again whenever an upstream answers after failing,
so a redeployed or late-starting service shows up without restarting the gateway.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from gatehouse_common.logging import get_logger
from gatehouse_gateway.routing import RouteTable, Upstream
from gatehouse_gateway.upstream import UpstreamClient, UpstreamFailed

MISSING_REFETCH_SECONDS = 5.0
_SCHEMA_REF = "#/components/schemas/"

_log = get_logger(__name__)

Document = dict[str, Any]


class ApiDocs:
    def __init__(
        self,
        table: RouteTable,
        own_document: Callable[[], Document],
        clients: Mapping[str, UpstreamClient],
        *,
        fetch_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._own_document = own_document
        self._clients = clients
        self._fetch_timeout = fetch_timeout
        self._clock = clock
        self._documents: dict[str, Document] = {}
        self._attempted_at: dict[str, float] = {}
        self._merged: Document | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def refresh(self, upstream: Upstream) -> None:
        self._attempted_at[upstream.name] = self._clock()
        try:
            async with asyncio.timeout(self._fetch_timeout):
                document = await self._fetch(upstream)
        except (UpstreamFailed, TimeoutError, ValueError) as exc:
            _log.info("openapi_fetch_failed", upstream=upstream.name, error=type(exc).__name__)
            return
        if isinstance(document, dict) and isinstance(document.get("paths"), dict):
            self._documents[upstream.name] = document
            self._merged = None

    async def _fetch(self, upstream: Upstream) -> object:
        response = await self._clients[upstream.name].send(
            "GET", upstream.base_url + "/openapi.json", [], None
        )
        try:
            if response.status != 200:
                raise ValueError(f"status {response.status}")
            return json.loads(b"".join([chunk async for chunk in response.chunks]))
        finally:
            await response.close()

    async def refresh_all(self) -> None:
        await asyncio.gather(*(self.refresh(upstream) for upstream in self._table.upstreams))

    def refresh_soon(self, upstream: Upstream) -> None:
        """Refetch in the background (called on the proxy path, which must not wait)."""
        task = asyncio.create_task(self.refresh(upstream))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def document(self) -> Document:
        missing = [
            upstream
            for upstream in self._table.upstreams
            if upstream.name not in self._documents
            and self._clock() - self._attempted_at.get(upstream.name, float("-inf"))
            >= MISSING_REFETCH_SECONDS
        ]
        if missing:
            await asyncio.gather(*(self.refresh(upstream) for upstream in missing))
        if self._merged is None:
            self._merged = merge_documents(self._own_document(), self._table, self._documents)
        return self._merged

    def cancel_background(self) -> None:
        for task in self._background:
            task.cancel()


def merge_documents(
    own: Document, table: RouteTable, upstream_documents: dict[str, Document]
) -> Document:
    """Add each upstream's paths under its prefix, with their schemas and security schemes.

    An upstream's root paths (``/health``, ``/metrics``) are left out: the gateway does not
    route them. A schema name two documents define differently is renamed
    ``<upstream>_<name>`` in the later one, references included; so is an operationId that
    an earlier document already uses.
    """
    merged = copy.deepcopy(own)
    paths: dict[str, Any] = merged.setdefault("paths", {})
    components: dict[str, Any] = merged.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    security_schemes: dict[str, Any] = components.setdefault("securitySchemes", {})
    tags: list[dict[str, Any]] = merged.setdefault("tags", [])
    for upstream in table.upstreams:
        document = upstream_documents.get(upstream.name)
        if document is None:
            continue
        their_components = document.get("components", {})
        their_schemas: dict[str, Any] = their_components.get("schemas", {})
        renames = {
            name: f"{upstream.name}_{name}"
            for name, schema in their_schemas.items()
            if name in schemas and schemas[name] != schema
        }
        if renames:
            document = _rename_schema_refs(document, renames)
            their_schemas = document.get("components", {}).get("schemas", {})
        for name, schema in their_schemas.items():
            schemas.setdefault(renames.get(name, name), schema)
        for name, scheme in their_components.get("securitySchemes", {}).items():
            security_schemes.setdefault(name, scheme)
        their_paths: dict[str, Any] = document.get("paths", {})
        for path, item in their_paths.items():
            if upstream.serves(path):
                paths[path] = _with_unique_operation_ids(item, upstream, _operation_ids(paths))
        known_tags = {tag.get("name") for tag in tags}
        tags.extend(tag for tag in document.get("tags", []) if tag.get("name") not in known_tags)
    if not tags:
        del merged["tags"]
    return merged


def _operation_ids(paths: dict[str, Any]) -> set[str]:
    return {
        operation["operationId"]
        for item in paths.values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


def _with_unique_operation_ids(item: Any, upstream: Upstream, taken: set[str]) -> Any:
    if not isinstance(item, dict):
        return item
    renamed = dict(item)
    for method, operation in item.items():
        if isinstance(operation, dict) and operation.get("operationId") in taken:
            renamed[method] = {
                **operation,
                "operationId": f"{upstream.name}_{operation['operationId']}",
            }
    return renamed


def _rename_schema_refs(document: Any, renames: dict[str, str]) -> Any:
    if isinstance(document, dict):
        renamed: dict[str, Any] = {}
        for key, value in document.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_SCHEMA_REF):
                name = value.removeprefix(_SCHEMA_REF)
                renamed[key] = _SCHEMA_REF + renames.get(name, name)
            else:
                renamed[key] = _rename_schema_refs(value, renames)
        return renamed
    if isinstance(document, list):
        return [_rename_schema_refs(item, renames) for item in document]
    return document
