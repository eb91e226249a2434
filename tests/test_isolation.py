"""Tenant isolation: a key limited to namespace A can neither see nor touch namespace B.

Another tenant's namespace must be indistinguishable from one that does not exist: 404, never
403, with the same body apart from the identifier echoed back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import SEED_SCHEMA, b64, png_bytes

A, B = "tenant-a", "tenant-b"
MISSING_NS_ID = "ns_0000000000000000000Z"
MISSING_NS_NAME = "tenant-zzz"
MISSING_BKT_ID = "bkt_0000000000000000000Z"
MISSING_OBJ_ID = "obj_0000000000000000000Z"
MISSING_BLOB_ID = "blob_0000000000000000000Z"
B_TEXT = "tenant B's secret product text"


@dataclass
class World:
    ns_a: dict[str, Any]
    ns_b: dict[str, Any]
    bkt_a: dict[str, Any]
    bkt_b: dict[str, Any]
    obj_a: dict[str, Any]
    obj_b: dict[str, Any]
    key_a: dict[str, Any]
    b_before: dict[str, Any]

    @property
    def h_a(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key_a['key']}"}

    def b_paths(self, bkt: str | None = None) -> dict[str, str]:
        bkt = bkt or self.bkt_b["bucket_id"]
        obj = f"/v1/buckets/{bkt}/objects/{self.obj_b['object_id']}"
        return {"bucket": f"/v1/buckets/{bkt}", "object": obj}


def assert_404(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 404, r.text
    body = r.json()
    assert body["success"] is False
    assert body["status"] == 404
    assert body["error"]["type"] == "NotFoundError"
    return dict(body)


def normalized(r: httpx.Response, ident: str) -> dict[str, Any]:
    """The 404 body with the echoed identifier replaced, for comparing two answers."""
    body = assert_404(r)
    error = dict(body["error"])
    error["message"] = error["message"].replace(ident, "<IDENT>")
    assert body.pop("request_id") == r.headers["x-request-id"]  # each answer's own
    return {**body, "error": error}


async def snapshot_b(client: httpx.AsyncClient, ns_b_id: str) -> dict[str, Any]:
    """Everything in B, as the admin sees it (bytes of every blob included)."""
    h = {"X-Namespace": ns_b_id}
    r = await client.get(f"/v1/namespaces/{ns_b_id}")
    assert r.status_code == 200, r.text
    snap: dict[str, Any] = {"namespace": r.json(), "buckets": {}, "objects": {}, "bytes": {}}
    r = await client.get("/v1/buckets", headers=h)
    assert r.status_code == 200, r.text
    for bucket in r.json()["results"]:
        bkt = bucket["bucket_id"]
        snap["buckets"][bkt] = bucket
        r = await client.get(f"/v1/buckets/{bkt}/objects", headers=h)
        assert r.status_code == 200, r.text
        for obj in r.json()["results"]:
            snap["objects"][obj["object_id"]] = obj
            for blob in obj["blobs"]:
                url = (
                    f"/v1/buckets/{bkt}/objects/{obj['object_id']}/blobs/{blob['blob_id']}/content"
                )
                r = await client.get(url, headers=h)
                assert r.status_code == 200, r.text
                snap["bytes"][blob["blob_id"]] = r.content
    return snap


async def assert_b_untouched(client: httpx.AsyncClient, world: World) -> None:
    after = await snapshot_b(client, world.ns_b["namespace_id"])
    assert after == world.b_before
    assert after["namespace"]["bucket_count"] == 2
    assert after["namespace"]["object_count"] == 2
    assert after["buckets"][world.bkt_b["bucket_id"]]["object_count"] == 2
    assert B_TEXT.encode() in after["bytes"].values()


@pytest.fixture
async def world(client: httpx.AsyncClient) -> World:
    namespaces = {}
    for name in (A, B):
        r = await client.post(
            "/v1/namespaces",
            json={
                "namespace_name": name,
                "description": f"{name} data",
                "feature_extractors": [
                    {"feature_extractor_name": "multimodal_extractor", "version": "v1"}
                ],
            },
        )
        assert r.status_code == 200, r.text
        namespaces[name] = r.json()
    buckets = {}
    for name in (A, B):
        # The same bucket name in both namespaces: names resolve inside the caller's namespace.
        r = await client.post(
            "/v1/buckets",
            headers={"X-Namespace": name},
            json={"bucket_name": "catalog", "bucket_schema": SEED_SCHEMA},
        )
        assert r.status_code == 200, r.text
        buckets[name] = r.json()
    r = await client.post(
        "/v1/buckets",
        headers={"X-Namespace": B},
        json={"bucket_name": "b-only", "bucket_schema": SEED_SCHEMA},
    )
    assert r.status_code == 200, r.text

    async def add(ns: str, text: str, image: bool) -> dict[str, Any]:
        blobs: list[dict[str, Any]] = [
            {"property": "product_text", "type": "text", "content": text}
        ]
        if image:
            blobs.append(
                {"property": "hero_image", "type": "image", "content": b64(png_bytes("B"))}
            )
        r = await client.post(
            f"/v1/buckets/{buckets[ns]['bucket_id']}/objects",
            headers={"X-Namespace": ns},
            json={"key_prefix": "/p", "metadata": {"tenant": ns}, "blobs": blobs},
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    obj_a = await add(A, "tenant A text", image=False)
    obj_b = await add(B, B_TEXT, image=True)
    await add(B, "another B object", image=False)

    r = await client.post(
        "/v1/keys", json={"name": "tenant A writer", "role": "write", "namespaces": [A]}
    )
    assert r.status_code == 201, r.text
    key_a = r.json()
    assert key_a["namespaces"] == [namespaces[A]["namespace_id"]]

    return World(
        ns_a=namespaces[A],
        ns_b=namespaces[B],
        bkt_a=buckets[A],
        bkt_b=buckets[B],
        obj_a=obj_a,
        obj_b=obj_b,
        key_a=key_a,
        b_before=await snapshot_b(client, namespaces[B]["namespace_id"]),
    )


# --------------------------------------------------------------------------- positive control


async def test_key_a_works_inside_a(client: httpx.AsyncClient, world: World) -> None:
    h = {**world.h_a, "X-Namespace": A}
    for ident in (world.ns_a["namespace_id"], A):
        r = await client.get(f"/v1/namespaces/{ident}", headers=world.h_a)
        assert r.status_code == 200, r.text
        assert r.json()["namespace_id"] == world.ns_a["namespace_id"]
    r = await client.get("/v1/buckets/catalog", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["bucket_id"] == world.bkt_a["bucket_id"]  # A's "catalog", not B's
    obj = world.obj_a
    url = (
        f"/v1/buckets/catalog/objects/{obj['object_id']}/blobs/{obj['blobs'][0]['blob_id']}/content"
    )
    r = await client.get(url, headers=h)
    assert r.status_code == 200 and r.content == b"tenant A text"
    r = await client.post(
        "/v1/buckets/catalog/objects",
        headers=h,
        json={"blobs": [{"property": "product_text", "type": "text", "content": "more A"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["bucket_id"] == world.bkt_a["bucket_id"]
    await assert_b_untouched(client, world)


# --------------------------------------------------------------------------- namespaces


@pytest.mark.parametrize("by", ["id", "name"])
async def test_namespace_b_is_404_for_key_a(
    client: httpx.AsyncClient, world: World, by: str
) -> None:
    ident = world.ns_b["namespace_id"] if by == "id" else B
    missing = MISSING_NS_ID if by == "id" else MISSING_NS_NAME
    calls: list[tuple[str, Any]] = [
        ("GET", None),
        ("PATCH", {"description": "owned by A now"}),
        ("DELETE", None),
    ]
    for method, body in calls:
        r_b = await client.request(method, f"/v1/namespaces/{ident}", headers=world.h_a, json=body)
        r_missing = await client.request(
            method, f"/v1/namespaces/{missing}", headers=world.h_a, json=body
        )
        assert normalized(r_b, ident) == normalized(r_missing, missing), method
        # Nothing of B but the identifier the caller typed comes back.
        other = B if by == "id" else world.ns_b["namespace_id"]
        assert other not in r_b.text and "tenant-b data" not in r_b.text
    await assert_b_untouched(client, world)


async def test_namespace_list_shows_only_a(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get("/v1/namespaces", headers=world.h_a)
    assert r.status_code == 200, r.text
    assert [n["namespace_id"] for n in r.json()["results"]] == [world.ns_a["namespace_id"]]
    assert r.json()["pagination"]["next_cursor"] is None
    assert world.ns_b["namespace_id"] not in r.text

    r = await client.post("/v1/namespaces/list", headers=world.h_a, json={"limit": 10})
    assert r.status_code == 200, r.text
    assert [n["namespace_name"] for n in r.json()["results"]] == [A]

    r = await client.get("/v1/namespaces?limit=1", headers=world.h_a)
    assert [n["namespace_name"] for n in r.json()["results"]] == [A]
    assert r.json()["pagination"]["next_cursor"] is None  # B does not count towards a next page

    # A cursor taken from the admin's listing does not open a way to B either.
    seen_by_admin: list[str] = []
    cursor = None
    while True:
        q = "/v1/namespaces?limit=1" + (f"&cursor={cursor}" if cursor else "")
        r = await client.get(q)
        seen_by_admin += [n["namespace_name"] for n in r.json()["results"]]
        cursor = r.json()["pagination"]["next_cursor"]
        if cursor is None:
            break
        r = await client.get(f"/v1/namespaces?limit=5&cursor={cursor}", headers=world.h_a)
        assert r.status_code == 200, r.text
        assert B not in [n["namespace_name"] for n in r.json()["results"]]
    assert sorted(seen_by_admin) == [A, B]


async def test_limited_key_cannot_create_namespaces_even_taken_names(
    client: httpx.AsyncClient, world: World
) -> None:
    for name in (B, "tenant-new"):
        r = await client.post("/v1/namespaces", headers=world.h_a, json={"namespace_name": name})
        assert r.status_code == 403, r.text
        assert r.json()["error"]["type"] == "ForbiddenError"
    r = await client.get("/v1/namespaces")
    assert sorted(n["namespace_name"] for n in r.json()["results"]) == [A, B]


# --------------------------------------------------------------------------- X-Namespace: B


def b_routes(world: World) -> list[tuple[str, str, Any]]:
    """Every namespace-scoped route, addressed with B's real bucket, object and blob ids."""
    p = world.b_paths()
    text_blob = next(b for b in world.obj_b["blobs"] if b["type"] == "text")
    text_obj = {"blobs": [{"property": "product_text", "type": "text", "content": "from A"}]}
    return [
        ("GET", "/v1/buckets", None),
        ("POST", "/v1/buckets/list", {}),
        ("POST", "/v1/buckets", {"bucket_name": "intruder", "bucket_schema": SEED_SCHEMA}),
        ("GET", p["bucket"], None),
        ("GET", "/v1/buckets/b-only", None),
        ("PATCH", p["bucket"], {"description": "pwned", "metadata": {"x": 1}}),
        ("GET", f"{p['bucket']}/objects", None),
        ("POST", f"{p['bucket']}/objects/list", {}),
        ("POST", f"{p['bucket']}/objects", text_obj),
        ("POST", f"{p['bucket']}/objects/batch", {"objects": [text_obj]}),
        ("GET", p["object"], None),
        ("GET", f"{p['object']}/blobs/{text_blob['blob_id']}/content", None),
        ("DELETE", p["object"], None),
        ("DELETE", p["bucket"], None),
    ]


@pytest.mark.parametrize("by", ["id", "name"])
async def test_x_namespace_b_is_404_on_every_scoped_route(
    client: httpx.AsyncClient, world: World, by: str
) -> None:
    ident = world.ns_b["namespace_id"] if by == "id" else B
    missing = MISSING_NS_ID if by == "id" else MISSING_NS_NAME
    for method, url, body in b_routes(world):
        r_b = await client.request(
            method, url, headers={**world.h_a, "X-Namespace": ident}, json=body
        )
        r_missing = await client.request(
            method, url, headers={**world.h_a, "X-Namespace": missing}, json=body
        )
        assert normalized(r_b, ident) == normalized(r_missing, missing), (method, url)
        assert "namespace" in r_b.json()["error"]["message"], (method, url)
        assert B_TEXT.encode() not in r_b.content
    await assert_b_untouched(client, world)


@pytest.mark.parametrize("role", ["read", "write"])
async def test_b_is_404_not_403_even_for_writes_a_lower_role_may_not_do(
    client: httpx.AsyncClient, world: World, role: str
) -> None:
    """A read key limited to A: writes against B must say 404 (B is unknown), not 403."""
    r = await client.post("/v1/keys", json={"name": "reader", "role": role, "namespaces": [A]})
    assert r.status_code == 201, r.text
    h = {"Authorization": f"Bearer {r.json()['key']}"}
    ns_b = world.ns_b["namespace_id"]
    for ident, missing in ((ns_b, MISSING_NS_ID), (B, MISSING_NS_NAME)):
        for method, body in (("PATCH", {"description": "x"}), ("DELETE", None)):
            r_b = await client.request(method, f"/v1/namespaces/{ident}", headers=h, json=body)
            r_m = await client.request(method, f"/v1/namespaces/{missing}", headers=h, json=body)
            assert normalized(r_b, ident) == normalized(r_m, missing), (method, ident)
        for method, url, body in b_routes(world):
            r_b = await client.request(method, url, headers={**h, "X-Namespace": ident}, json=body)
            assert_404(r_b)
    await assert_b_untouched(client, world)


# --------------------------------------------------------------------------- B's ids through A


@pytest.mark.parametrize("who", ["key_a", "admin"])
async def test_b_ids_through_x_namespace_a_are_404(
    client: httpx.AsyncClient, world: World, who: str
) -> None:
    """Ids are only looked up inside the namespace of the request, whoever asks."""
    h = {**(world.h_a if who == "key_a" else {}), "X-Namespace": A}
    bkt_a = world.bkt_a["bucket_id"]
    obj_b = world.obj_b["object_id"]
    blob_b = world.obj_b["blobs"][0]["blob_id"]
    obj_a = world.obj_a["object_id"]
    text_obj = {"blobs": [{"property": "product_text", "type": "text", "content": "from A"}]}
    bkt_b = world.bkt_b["bucket_id"]
    # (method, url with B's ids, the same url with made-up ids, the id that is echoed, body)
    cases: list[tuple[str, str, str, str, str, Any]] = [
        (
            "GET",
            f"/v1/buckets/{bkt_b}",
            f"/v1/buckets/{MISSING_BKT_ID}",
            bkt_b,
            MISSING_BKT_ID,
            None,
        ),
        (
            "PATCH",
            f"/v1/buckets/{bkt_b}",
            f"/v1/buckets/{MISSING_BKT_ID}",
            bkt_b,
            MISSING_BKT_ID,
            {"description": "pwned"},
        ),
        (
            "GET",
            f"/v1/buckets/{bkt_b}/objects",
            f"/v1/buckets/{MISSING_BKT_ID}/objects",
            bkt_b,
            MISSING_BKT_ID,
            None,
        ),
        (
            "POST",
            f"/v1/buckets/{bkt_b}/objects",
            f"/v1/buckets/{MISSING_BKT_ID}/objects",
            bkt_b,
            MISSING_BKT_ID,
            text_obj,
        ),
        (
            "GET",
            f"/v1/buckets/{bkt_b}/objects/{obj_b}",
            f"/v1/buckets/{MISSING_BKT_ID}/objects/{obj_b}",
            bkt_b,
            MISSING_BKT_ID,
            None,
        ),
        (
            "GET",
            f"/v1/buckets/{bkt_a}/objects/{obj_b}",
            f"/v1/buckets/{bkt_a}/objects/{MISSING_OBJ_ID}",
            obj_b,
            MISSING_OBJ_ID,
            None,
        ),
        (
            "DELETE",
            f"/v1/buckets/{bkt_a}/objects/{obj_b}",
            f"/v1/buckets/{bkt_a}/objects/{MISSING_OBJ_ID}",
            obj_b,
            MISSING_OBJ_ID,
            None,
        ),
        (
            "GET",
            f"/v1/buckets/{bkt_a}/objects/{obj_b}/blobs/{blob_b}/content",
            f"/v1/buckets/{bkt_a}/objects/{MISSING_OBJ_ID}/blobs/{MISSING_BLOB_ID}/content",
            f"{blob_b}' of object '{obj_b}",
            f"{MISSING_BLOB_ID}' of object '{MISSING_OBJ_ID}",
            None,
        ),
        (
            "GET",
            f"/v1/buckets/{bkt_a}/objects/{obj_a}/blobs/{blob_b}/content",
            f"/v1/buckets/{bkt_a}/objects/{obj_a}/blobs/{MISSING_BLOB_ID}/content",
            blob_b,
            MISSING_BLOB_ID,
            None,
        ),
        (
            "DELETE",
            f"/v1/buckets/{bkt_b}",
            f"/v1/buckets/{MISSING_BKT_ID}",
            bkt_b,
            MISSING_BKT_ID,
            None,
        ),
    ]
    for method, url, missing_url, ident, missing_ident, body in cases:
        r_b = await client.request(method, url, headers=h, json=body)
        r_m = await client.request(method, missing_url, headers=h, json=body)
        assert normalized(r_b, ident) == normalized(r_m, missing_ident), (method, url)
        assert B_TEXT.encode() not in r_b.content
    # A's own things are intact, and nothing was added to A's bucket.
    r = await client.get(f"/v1/buckets/{bkt_a}", headers=h)
    assert r.status_code == 200 and r.json()["object_count"] == 1
    await assert_b_untouched(client, world)


async def test_b_object_lists_never_leak_into_a(client: httpx.AsyncClient, world: World) -> None:
    h = {**world.h_a, "X-Namespace": A}
    r = await client.get("/v1/buckets", headers=h)
    assert r.status_code == 200, r.text
    assert [b["bucket_id"] for b in r.json()["results"]] == [world.bkt_a["bucket_id"]]
    r = await client.get("/v1/buckets/catalog/objects", headers=h)
    assert r.status_code == 200, r.text
    assert [o["object_id"] for o in r.json()["results"]] == [world.obj_a["object_id"]]
    r = await client.post(
        "/v1/buckets/catalog/objects/list",
        headers=h,
        json={"filters": {"AND": [{"field": "metadata.tenant", "operator": "eq", "value": B}]}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["results"] == []
    r = await client.get(f"/v1/namespaces/{A}", headers=world.h_a)
    assert r.json()["bucket_count"] == 1 and r.json()["object_count"] == 1


# --------------------------------------------------------------------------- keys


async def test_namespace_limited_admin_cannot_mint_a_key_that_reaches_b(
    client: httpx.AsyncClient, world: World
) -> None:
    """Whatever a key limited to A may create, nothing it creates can see B."""
    r = await client.post("/v1/keys", json={"name": "A admin", "role": "admin", "namespaces": [A]})
    assert r.status_code == 201, r.text
    h = {"Authorization": f"Bearer {r.json()['key']}"}
    r = await client.get(f"/v1/namespaces/{B}", headers=h)
    assert_404(r)

    for body in (
        {"name": "escape-all", "role": "admin"},
        {"name": "escape-b", "role": "write", "namespaces": [B]},
        {"name": "escape-b-id", "role": "write", "namespaces": [world.ns_b["namespace_id"]]},
    ):
        r = await client.post("/v1/keys", headers=h, json=body)
        if r.status_code == 201:
            minted = {"Authorization": f"Bearer {r.json()['key']}"}
            r2 = await client.get(f"/v1/namespaces/{B}", headers=minted)
            assert r2.status_code == 404, f"{body} minted a key that sees B: {r2.text}"
        else:
            assert r.status_code in (403, 404, 422), r.text
            assert r.json()["success"] is False
    await assert_b_untouched(client, world)


async def test_key_a_revoked_then_nothing_of_a_either(
    client: httpx.AsyncClient, world: World
) -> None:
    r = await client.delete(f"/v1/keys/{world.key_a['key_id']}")
    assert r.status_code == 200, r.text
    r = await client.get("/v1/buckets", headers={**world.h_a, "X-Namespace": A})
    assert r.status_code == 401 and r.json()["error"]["type"] == "UnauthorizedError"
    r = await client.get("/v1/buckets", headers={**world.h_a, "X-Namespace": B})
    assert r.status_code == 401 and r.json()["error"]["type"] == "UnauthorizedError"


async def test_key_does_not_follow_a_recreated_namespace_name(
    client: httpx.AsyncClient, world: World
) -> None:
    """Keys are bound to the namespace itself: a new namespace reusing the name is not A."""
    r = await client.delete(f"/v1/namespaces/{A}")
    assert r.status_code == 200, r.text
    r = await client.post("/v1/namespaces", json={"namespace_name": A})
    assert r.status_code == 200, r.text
    new_a = r.json()
    assert new_a["namespace_id"] != world.ns_a["namespace_id"]

    r = await client.get(f"/v1/namespaces/{A}", headers=world.h_a)
    assert_404(r)
    r = await client.get("/v1/buckets", headers={**world.h_a, "X-Namespace": A})
    assert_404(r)
    r = await client.get("/v1/namespaces", headers=world.h_a)
    assert r.status_code == 200 and r.json()["results"] == []
    await assert_b_untouched(client, world)
