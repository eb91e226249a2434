"""Listing objects: keyset pagination (GET and the hosted `POST .../list`), every filter
operator on metadata and key_prefix, nested fields, OR groups, sort, and input errors."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from assay.config import Settings
from tests.conftest import ADMIN_KEY, make_bucket, make_namespace, open_client

COLORS = ("red", "green", "blue")
N = 25

# The catalog is built once and only read: every test shares it (and the module's event loop).
pytestmark = pytest.mark.asyncio(loop_scope="module")


def meta_of(n: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"color": COLORS[n % 3], "size": n, "tags": {"a": f"t{n % 4}"}}
    if n % 5 == 0:
        meta["promo"] = True
    return meta


def prefix_of(n: int) -> str:
    return f"/shop/{'even' if n % 2 == 0 else 'odd'}/{n}"


@dataclass
class Catalog:
    client: httpx.AsyncClient
    h: dict[str, str]
    base: str
    ids: list[str]  # in creation order: ids[n] has meta_of(n)

    async def get(self, **params: Any) -> httpx.Response:
        return await self.client.get(self.base, params=params, headers=self.h)

    async def post(self, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(self.base + "/list", json=body, headers=self.h)

    def newest_first(self, keep: Callable[[int], bool]) -> list[str]:
        return [self.ids[n] for n in reversed(range(N)) if keep(n)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def catalog(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Catalog]:
    """25 objects with metadata; a crash answers 500 instead of raising into the test."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("list") / "data", admin_key=ADMIN_KEY)
    async with open_client(settings) as client:
        ns = await make_namespace(client)
        bucket = await make_bucket(client, ns["namespace_id"])
        h = {"X-Namespace": ns["namespace_id"]}
        base = f"/v1/buckets/{bucket['bucket_id']}/objects"
        ids = []
        for n in range(N):
            body = {
                "key_prefix": prefix_of(n),
                "metadata": meta_of(n),
                "blobs": [{"property": "product_text", "type": "text", "content": f"item {n}"}],
            }
            r = await client.post(base, json=body, headers=h)
            assert r.status_code == 200, r.text
            ids.append(r.json()["object_id"])
            # ids carry milliseconds: keep creations in distinct milliseconds so
            # "newest first" has exactly one right answer.
            await asyncio.sleep(0.002)
        yield Catalog(client, h, base, ids)


def assert_422(r: httpx.Response, loc_tail: list[Any], prefix: bool = False) -> dict[str, Any]:
    """A 422 envelope whose first error's loc ends with `loc_tail` (starts with it if `prefix`)."""
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["success"] is False and body["error"]["type"] == "ValidationError"
    first = body["error"]["details"]["validation_errors"][0]
    part = first["loc"][: len(loc_tail)] if prefix else first["loc"][-len(loc_tail) :]
    assert part == loc_tail, first
    return dict(first)


# --------------------------------------------------------------------------- pagination


async def test_get_list_walks_pages_newest_first(catalog: Catalog) -> None:
    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        r = await catalog.get(**params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["pagination"]["limit"] == 10
        sizes.append(len(page["results"]))
        seen += [o["object_id"] for o in page["results"]]
        cursor = page["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert sizes == [10, 10, 5]
    assert len(seen) == len(set(seen)) == N
    assert seen == catalog.newest_first(lambda n: True)


async def test_get_list_objects_carry_their_fields(catalog: Catalog) -> None:
    r = await catalog.get(limit=1)
    assert r.status_code == 200, r.text
    (newest,) = r.json()["results"]
    assert newest["object_id"] == catalog.ids[-1]
    assert newest["metadata"] == meta_of(N - 1)
    assert newest["key_prefix"] == prefix_of(N - 1)
    assert newest["status"] == "DRAFT"
    assert [b["property"] for b in newest["blobs"]] == ["product_text"]
    assert r.json()["pagination"]["next_cursor"]


async def test_exact_page_boundary_ends_with_null_cursor(catalog: Catalog) -> None:
    r = await catalog.get(limit=N)
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == N
    assert r.json()["pagination"]["next_cursor"] is None


async def test_post_list_sort_created_at_ascending_across_pages(catalog: Catalog) -> None:
    seen: list[str] = []
    body: dict[str, Any] = {"sort": {"field": "created_at", "direction": "asc"}, "limit": 7}
    while True:
        r = await catalog.post(body)
        assert r.status_code == 200, r.text
        seen += [o["object_id"] for o in r.json()["results"]]
        nxt = r.json()["pagination"]["next_cursor"]
        if nxt is None:
            break
        body = {**body, "cursor": nxt}
    assert seen == catalog.ids


# --------------------------------------------------------------------------- filters


def cond(field: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value}


FILTER_CASES: list[tuple[str, dict[str, Any], Callable[[int], bool]]] = [
    ("eq", {"AND": [cond("metadata.color", "eq", "red")]}, lambda n: n % 3 == 0),
    ("ne", {"AND": [cond("metadata.color", "ne", "red")]}, lambda n: n % 3 != 0),
    ("gt", {"AND": [cond("metadata.size", "gt", 20)]}, lambda n: n > 20),
    ("gt-float", {"AND": [cond("metadata.size", "gt", 4.5)]}, lambda n: n > 4),
    ("gte", {"AND": [cond("metadata.size", "gte", 20)]}, lambda n: n >= 20),
    ("lt", {"AND": [cond("metadata.size", "lt", 3)]}, lambda n: n < 3),
    ("lte", {"AND": [cond("metadata.size", "lte", 3)]}, lambda n: n <= 3),
    (
        "in",
        {"AND": [cond("metadata.color", "in", ["red", "blue"])]},
        lambda n: COLORS[n % 3] in ("red", "blue"),
    ),
    ("in-numbers", {"AND": [cond("metadata.size", "in", [1, 7, 99])]}, lambda n: n in (1, 7)),
    (
        "nin",
        {"AND": [cond("metadata.color", "nin", ["red", "blue"])]},
        lambda n: COLORS[n % 3] == "green",
    ),
    ("contains", {"AND": [cond("metadata.color", "contains", "ee")]}, lambda n: n % 3 == 1),
    ("starts_with", {"AND": [cond("metadata.color", "starts_with", "bl")]}, lambda n: n % 3 == 2),
    ("exists", {"AND": [cond("metadata.promo", "exists", True)]}, lambda n: n % 5 == 0),
    ("exists-false", {"AND": [cond("metadata.promo", "exists", False)]}, lambda n: n % 5 != 0),
    ("exists-nested", {"AND": [cond("metadata.tags.a", "exists")]}, lambda n: True),
    ("nested-eq", {"AND": [cond("metadata.tags.a", "eq", "t1")]}, lambda n: n % 4 == 1),
    ("key-prefix-eq", {"AND": [cond("key_prefix", "eq", "/shop/even/4")]}, lambda n: n == 4),
    (
        "key-prefix-starts_with",
        {"AND": [cond("key_prefix", "starts_with", "/shop/odd/")]},
        lambda n: n % 2 == 1,
    ),
    (
        "key-prefix-contains",
        {"AND": [cond("key_prefix", "contains", "/1")]},
        lambda n: "/1" in prefix_of(n),
    ),
    (
        "key-prefix-wildcards-are-literal",
        {"AND": [cond("key_prefix", "contains", "%")]},
        lambda n: False,
    ),
    (
        "and-two",
        {"AND": [cond("metadata.color", "eq", "red"), cond("metadata.size", "gt", 10)]},
        lambda n: n % 3 == 0 and n > 10,
    ),
    (
        "or",
        {"OR": [cond("metadata.color", "eq", "red"), cond("metadata.size", "lt", 2)]},
        lambda n: n % 3 == 0 or n < 2,
    ),
    (
        "and-with-nested-or",
        {
            "AND": [
                cond("metadata.size", "gte", 10),
                {
                    "OR": [
                        cond("metadata.color", "eq", "green"),
                        cond("metadata.tags.a", "eq", "t0"),
                    ]
                },
            ]
        },
        lambda n: n >= 10 and (n % 3 == 1 or n % 4 == 0),
    ),
    ("no-match", {"AND": [cond("metadata.color", "eq", "purple")]}, lambda n: False),
]


@pytest.mark.parametrize("case", range(len(FILTER_CASES)), ids=[c[0] for c in FILTER_CASES])
async def test_post_list_filters(catalog: Catalog, case: int) -> None:
    _, filters, keep = FILTER_CASES[case]
    r = await catalog.post({"filters": filters, "limit": 100})
    assert r.status_code == 200, r.text
    got = [o["object_id"] for o in r.json()["results"]]
    expected = catalog.newest_first(keep)
    assert got == expected, [catalog.ids.index(i) for i in got]
    assert r.json()["pagination"]["next_cursor"] is None


async def test_filters_combined_with_pagination(catalog: Catalog) -> None:
    filters = {"AND": [cond("metadata.color", "eq", "red")]}
    seen: list[str] = []
    sizes: list[int] = []
    body: dict[str, Any] = {"filters": filters, "limit": 4}
    while True:
        r = await catalog.post(body)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        sizes.append(len(results))
        assert all(o["metadata"]["color"] == "red" for o in results)
        seen += [o["object_id"] for o in results]
        nxt = r.json()["pagination"]["next_cursor"]
        if nxt is None:
            break
        body = {**body, "cursor": nxt}
    assert sizes == [4, 4, 1]
    assert seen == catalog.newest_first(lambda n: n % 3 == 0)


async def test_filters_and_ascending_sort_with_pagination(catalog: Catalog) -> None:
    filters = {"OR": [cond("metadata.size", "lt", 5), cond("metadata.size", "gte", 22)]}
    body: dict[str, Any] = {
        "filters": filters,
        "sort": {"field": "created_at", "direction": "asc"},
        "limit": 3,
    }
    seen: list[str] = []
    while True:
        r = await catalog.post(body)
        assert r.status_code == 200, r.text
        seen += [o["object_id"] for o in r.json()["results"]]
        nxt = r.json()["pagination"]["next_cursor"]
        if nxt is None:
            break
        body = {**body, "cursor": nxt}
    assert seen == [catalog.ids[n] for n in range(N) if n < 5 or n >= 22]


# --------------------------------------------------------------------------- input errors


@pytest.mark.parametrize(
    ("filters", "loc_tail"),
    [
        ({"AND": [cond("colour", "eq", "red")]}, ["filters", "field"]),
        ({"AND": [cond("metadata", "eq", "red")]}, ["filters", "field"]),
        ({"AND": [cond("metadata.color", "like", "r%")]}, ["operator"]),
        ({"AND": [cond("metadata.color", "in", "red")]}, ["filters", "value"]),
        ({"AND": [cond("metadata.color", "eq", ["red"])]}, ["filters", "value"]),
        ({"AND": [{"field": "metadata.color", "op": "eq"}]}, ["filters", "AND", 0]),
    ],
    ids=[
        "unknown-field",
        "bare-metadata",
        "unknown-operator",
        "in-not-a-list",
        "eq-with-a-list",
        "unknown-condition-key",
    ],
)
async def test_bad_filters_are_422(
    catalog: Catalog, filters: dict[str, Any], loc_tail: list[Any]
) -> None:
    r = await catalog.post({"filters": filters})
    err = assert_422(r, loc_tail, prefix=loc_tail[-1] == 0)
    assert err["msg"]


async def test_unknown_filter_field_names_it(catalog: Catalog) -> None:
    r = await catalog.post({"filters": {"AND": [cond("colour", "eq", "red")]}})
    assert_422(r, ["filters", "field"])
    assert "colour" in r.json()["error"]["message"]


async def test_unknown_sort_field_is_422(catalog: Catalog) -> None:
    r = await catalog.post({"sort": {"field": "metadata.size"}})
    assert_422(r, ["sort", "field"])
    assert "metadata.size" in r.json()["error"]["message"]


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


MALFORMED_CURSORS = [
    ("garbage", "not-a-cursor!!"),
    ("json-object", _b64(json.dumps({"a": 1}))),
    ("json-string", _b64(json.dumps("abc"))),
    ("one-value", _b64(json.dumps(["obj_x"]))),
    ("three-values", _b64(json.dumps([1, 2, 3]))),
    ("object-in-list", _b64(json.dumps([None, {"a": 1}]))),
    ("list-in-list", _b64(json.dumps([1, [1, 2]]))),
    ("time-then-object", _b64(json.dumps(["2024-01-01T00:00:00+00:00", {"a": 1}]))),
    ("not-base64-json", _b64("\x00\x01 binary")),
]


@pytest.mark.parametrize(
    "case", range(len(MALFORMED_CURSORS)), ids=[c[0] for c in MALFORMED_CURSORS]
)
@pytest.mark.parametrize("route", ["get", "post", "post-updated_at"])
async def test_malformed_cursor_is_422_never_500(catalog: Catalog, route: str, case: int) -> None:
    cursor = MALFORMED_CURSORS[case][1]
    if route == "get":
        r = await catalog.get(cursor=cursor)
    elif route == "post":
        r = await catalog.post({"cursor": cursor})
    else:
        r = await catalog.post({"cursor": cursor, "sort": {"field": "updated_at"}})
    err = assert_422(r, ["cursor"])
    assert "cursor" in err["msg"]


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_limit_out_of_range_is_422(catalog: Catalog, limit: int) -> None:
    r = await catalog.get(limit=limit)
    assert_422(r, ["limit"])
    r = await catalog.post({"limit": limit})
    assert_422(r, ["limit"])


async def test_limit_bounds_are_accepted(catalog: Catalog) -> None:
    for limit in (1, 1000):
        r = await catalog.get(limit=limit)
        assert r.status_code == 200, r.text
        assert len(r.json()["results"]) == min(limit, N)
        assert r.json()["pagination"]["limit"] == limit
