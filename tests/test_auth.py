"""Authentication and authorisation: bearer keys, the key endpoints, roles, the bootstrap key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from assay.config import Settings
from assay.main import create_app, prepare
from tests.conftest import ADMIN_KEY, make_bucket, make_namespace

TEXT = "Wireless headphones"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def assert_error(r: httpx.Response, status: int, type_: str, *, contains: str | None = None) -> str:
    """The response is the API's error envelope with this status and type; returns the message."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"success", "status", "error", "request_id"}, body
    assert body["request_id"] == r.headers["x-request-id"]
    assert body["success"] is False
    assert body["status"] == status
    assert body["error"]["type"] == type_
    message = body["error"]["message"]
    assert isinstance(message, str) and message
    if contains is not None:
        assert contains.lower() in message.lower(), message
    return message


async def create_key(
    client: httpx.AsyncClient,
    role: str,
    namespaces: list[str] | None = None,
    name: str = "test key",
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "role": role}
    if namespaces is not None:
        body["namespaces"] = namespaces
    r = await client.post("/v1/keys", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def send_without_auth(
    client: httpx.AsyncClient, method: str, url: str, **kw: Any
) -> httpx.Response:
    """The same request the client would send, minus its Authorization header."""
    request = client.build_request(method, url, **kw)
    del request.headers["Authorization"]
    return await client.send(request)


async def add_text_object(
    client: httpx.AsyncClient, ns: str, bucket: str, text: str = TEXT
) -> dict[str, Any]:
    r = await client.post(
        f"/v1/buckets/{bucket}/objects",
        headers={"X-Namespace": ns},
        json={"blobs": [{"property": "product_text", "type": "text", "content": text}]},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


# --------------------------------------------------------------------------- bearer handling


async def test_missing_authorization_is_401_envelope(client: httpx.AsyncClient) -> None:
    for method, url in [("GET", "/v1/namespaces"), ("GET", "/v1/keys"), ("POST", "/v1/namespaces")]:
        r = await send_without_auth(client, method, url, json={} if method == "POST" else None)
        assert_error(r, 401, "UnauthorizedError", contains="authorization")


@pytest.mark.parametrize(
    "header",
    [
        f"Basic {ADMIN_KEY}",  # wrong scheme, right secret
        ADMIN_KEY,  # no scheme at all
        "Bearer",  # scheme, no token
        "Bearer    ",  # scheme, blank token
        "",  # empty header
    ],
)
async def test_malformed_authorization_is_401(client: httpx.AsyncClient, header: str) -> None:
    r = await client.get("/v1/namespaces", headers={"Authorization": header})
    assert_error(r, 401, "UnauthorizedError")


@pytest.mark.parametrize("secret", ["sk_live_not_a_real_key_000000000000", ADMIN_KEY + "x", "x"])
async def test_unknown_bearer_is_401(client: httpx.AsyncClient, secret: str) -> None:
    r = await client.get("/v1/namespaces", headers=bearer(secret))
    assert_error(r, 401, "UnauthorizedError")
    # The same key a second time (served from the key cache) is still refused.
    r = await client.get("/v1/namespaces", headers=bearer(secret))
    assert_error(r, 401, "UnauthorizedError")


async def test_bearer_scheme_is_case_insensitive(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/namespaces", headers={"Authorization": f"bearer {ADMIN_KEY}"})
    assert r.status_code == 200, r.text
    assert r.json()["results"] == []


async def test_401_comes_before_missing_namespace_header(client: httpx.AsyncClient) -> None:
    r = await send_without_auth(client, "GET", "/v1/buckets")
    assert_error(r, 401, "UnauthorizedError")
    r = await client.get("/v1/buckets", headers=bearer("sk_live_unknown"))
    assert_error(r, 401, "UnauthorizedError")


async def test_health_and_readiness_need_no_key(client: httpx.AsyncClient) -> None:
    r = await send_without_auth(client, "GET", "/healthz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"
    r = await send_without_auth(client, "GET", "/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["blob_store"] == "ok"
    # A wrong key does not turn them into 401 either.
    r = await client.get("/healthz", headers=bearer("sk_live_garbage"))
    assert r.status_code == 200


# --------------------------------------------------------------------------- /v1/keys


async def test_create_key_shows_secret_once_and_it_works(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/keys", json={"name": "ingest bot", "role": "write"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["key_id"].startswith("sk_")
    assert created["name"] == "ingest bot"
    assert created["role"] == "write"
    assert created["namespaces"] is None
    assert created["revoked_at"] is None
    assert created["created_at"]
    secret = created["key"]
    assert secret.startswith("sk_live_") and len(secret) >= 32
    assert created["key_preview"].startswith(secret[:8])
    assert secret not in created["key_preview"]

    # The secret authenticates as a write key.
    r = await client.get("/v1/namespaces", headers=bearer(secret))
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/namespaces",
        headers=bearer(secret),
        json={"namespace_name": "made-by-write-key"},
    )
    assert r.status_code == 200, r.text

    # The list never shows a secret again, neither this one nor the bootstrap admin's.
    r = await client.get("/v1/keys")
    assert r.status_code == 200, r.text
    listing = r.json()
    assert secret not in r.text
    assert ADMIN_KEY not in r.text
    assert listing["total_count"] == len(listing["results"]) == 2
    assert listing["pagination"]["next_cursor"] is None
    for item in listing["results"]:
        assert "key" not in item
        assert item["key_id"].startswith("sk_")
    mine = next(k for k in listing["results"] if k["key_id"] == created["key_id"])
    assert mine == {k: v for k, v in created.items() if k != "key"}
    admin = next(k for k in listing["results"] if k["key_id"] != created["key_id"])
    assert admin["role"] == "admin"
    assert admin["namespaces"] is None


async def test_key_defaults_and_namespace_resolution(client: httpx.AsyncClient) -> None:
    ns = await make_namespace(client, "prod")
    by_name = await create_key(client, "read", namespaces=["prod"])
    by_id = await create_key(client, "read", namespaces=[ns["namespace_id"]])
    # Names are resolved: the key records the namespace itself, whichever way it was named.
    assert by_name["namespaces"] == by_id["namespaces"] == [ns["namespace_id"]]
    r = await client.post("/v1/keys", json={})
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "write"
    assert r.json()["namespaces"] is None


async def test_create_key_refuses_bad_bodies(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/keys", json={"name": "x", "role": "superuser"})
    assert_error(r, 422, "ValidationError")
    assert r.json()["error"]["details"]["validation_errors"][0]["loc"] == ["role"]

    r = await client.post("/v1/keys", json={"name": "x", "role": "read", "namespaces": ["nope"]})
    assert_error(r, 422, "ValidationError", contains="nope")
    assert r.json()["error"]["details"]["validation_errors"][0]["loc"] == ["namespaces", 0]

    r = await client.post("/v1/keys", json={"name": "x", "role": "read", "colour": "red"})
    msg = assert_error(r, 422, "ValidationError", contains="colour")
    assert "role" in msg and "namespaces" in msg  # names the accepted keys

    # Nothing was created by any of these.
    r = await client.get("/v1/keys")
    assert r.json()["total_count"] == 1


async def test_key_endpoints_are_admin_only(client: httpx.AsyncClient) -> None:
    admin_made = await create_key(client, "admin", name="second admin")
    for role in ("write", "read"):
        key = await create_key(client, role)
        h = bearer(key["key"])
        r = await client.post("/v1/keys", headers=h, json={"name": "escalate", "role": "admin"})
        assert_error(r, 403, "ForbiddenError", contains="admin")
        r = await client.get("/v1/keys", headers=h)
        assert_error(r, 403, "ForbiddenError", contains="admin")
        r = await client.delete(f"/v1/keys/{admin_made['key_id']}", headers=h)
        assert_error(r, 403, "ForbiddenError", contains="admin")
    # The admin key a write key tried to revoke still works; nothing was minted.
    r = await client.get("/v1/keys", headers=bearer(admin_made["key"]))
    assert r.status_code == 200, r.text
    keys = r.json()["results"]
    assert len(keys) == 4
    assert all(k["revoked_at"] is None for k in keys)
    assert not any(k["name"] == "escalate" for k in keys)


async def test_revoke_takes_effect_at_once(client: httpx.AsyncClient) -> None:
    key = await create_key(client, "write")
    h = bearer(key["key"])
    # Warm the key cache first: revocation must not wait for it to expire.
    for _ in range(2):
        r = await client.get("/v1/namespaces", headers=h)
        assert r.status_code == 200, r.text

    r = await client.delete(f"/v1/keys/{key['key_id']}")
    assert r.status_code == 200, r.text
    revoked = r.json()
    assert revoked["key_id"] == key["key_id"]
    assert revoked["revoked_at"] is not None
    assert "key" not in revoked

    r = await client.get("/v1/namespaces", headers=h)
    assert_error(r, 401, "UnauthorizedError")
    r = await client.post("/v1/namespaces", headers=h, json={"namespace_name": "after-revoke"})
    assert_error(r, 401, "UnauthorizedError")

    r = await client.get("/v1/keys")
    listed = next(k for k in r.json()["results"] if k["key_id"] == key["key_id"])
    assert listed["revoked_at"] is not None
    # Revoking again is harmless and keeps the original revocation time.
    r = await client.delete(f"/v1/keys/{key['key_id']}")
    assert r.status_code == 200, r.text
    assert r.json()["revoked_at"] == revoked["revoked_at"]
    # The admin key is untouched, and nothing was created by the revoked key.
    r = await client.get("/v1/namespaces")
    assert r.status_code == 200
    assert r.json()["results"] == []


async def test_revoke_unknown_key_is_404(client: httpx.AsyncClient) -> None:
    r = await client.delete("/v1/keys/sk_00000000000000000000")
    assert_error(r, 404, "NotFoundError", contains="sk_00000000000000000000")


# --------------------------------------------------------------------------- roles


async def test_read_key_reads_but_cannot_write(client: httpx.AsyncClient) -> None:
    ns = await make_namespace(client, "prod")
    bucket = await make_bucket(client, "prod")
    obj = await add_text_object(client, "prod", bucket["bucket_id"])
    blob = obj["blobs"][0]
    key = await create_key(client, "read")
    h = {**bearer(key["key"]), "X-Namespace": "prod"}
    bkt = bucket["bucket_id"]
    obj_url = f"/v1/buckets/{bkt}/objects/{obj['object_id']}"

    # Reads work.
    r = await client.get("/v1/namespaces", headers=h)
    assert r.status_code == 200 and [n["namespace_id"] for n in r.json()["results"]] == [
        ns["namespace_id"]
    ]
    r = await client.get(f"/v1/namespaces/{ns['namespace_id']}", headers=h)
    assert r.status_code == 200 and r.json()["namespace_name"] == "prod"
    r = await client.get("/v1/buckets", headers=h)
    assert r.status_code == 200 and [b["bucket_id"] for b in r.json()["results"]] == [bkt]
    r = await client.post("/v1/buckets/list", headers=h, json={})
    assert r.status_code == 200 and len(r.json()["results"]) == 1
    r = await client.get(f"/v1/buckets/{bkt}", headers=h)
    assert r.status_code == 200 and r.json()["object_count"] == 1
    r = await client.get(f"/v1/buckets/{bkt}/objects", headers=h)
    assert r.status_code == 200 and [o["object_id"] for o in r.json()["results"]] == [
        obj["object_id"]
    ]
    r = await client.get(obj_url, headers=h)
    assert r.status_code == 200 and r.json()["blobs"][0]["blob_id"] == blob["blob_id"]
    r = await client.get(f"{obj_url}/blobs/{blob['blob_id']}/content", headers=h)
    assert r.status_code == 200 and r.content == TEXT.encode()

    # Every write is 403 (same namespace: the role is too low).
    writes: list[tuple[str, str, Any]] = [
        ("POST", "/v1/namespaces", {"namespace_name": "by-reader"}),
        ("PATCH", f"/v1/namespaces/{ns['namespace_id']}", {"description": "changed"}),
        ("DELETE", f"/v1/namespaces/{ns['namespace_id']}", None),
        ("POST", "/v1/buckets", {"bucket_name": "by-reader", "bucket_schema": {"properties": {}}}),
        ("PATCH", f"/v1/buckets/{bkt}", {"description": "changed"}),
        ("DELETE", f"/v1/buckets/{bkt}", None),
        (
            "POST",
            f"/v1/buckets/{bkt}/objects",
            {"blobs": [{"property": "product_text", "type": "text", "content": "x"}]},
        ),
        (
            "POST",
            f"/v1/buckets/{bkt}/objects/batch",
            {
                "objects": [
                    {"blobs": [{"property": "product_text", "type": "text", "content": "x"}]}
                ]
            },
        ),
        ("DELETE", obj_url, None),
        ("POST", "/v1/keys", {"name": "x", "role": "read"}),
    ]
    for method, url, body in writes:
        r = await client.request(method, url, headers=h, json=body)
        assert_error(r, 403, "ForbiddenError")

    # Nothing changed.
    r = await client.get("/v1/namespaces")
    assert [n["namespace_name"] for n in r.json()["results"]] == ["prod"]
    r = await client.get(f"/v1/namespaces/{ns['namespace_id']}")
    assert r.json()["description"] is None
    assert r.json()["bucket_count"] == 1 and r.json()["object_count"] == 1
    r = await client.get(f"/v1/buckets/{bkt}", headers={"X-Namespace": "prod"})
    assert r.json()["description"] is None and r.json()["object_count"] == 1
    r = await client.get(obj_url, headers={"X-Namespace": "prod"})
    assert r.status_code == 200


async def test_write_key_writes_but_limited_key_cannot_create_namespaces(
    client: httpx.AsyncClient,
) -> None:
    await make_namespace(client, "prod")
    unlimited = await create_key(client, "write")
    r = await client.post(
        "/v1/namespaces", headers=bearer(unlimited["key"]), json={"namespace_name": "staging"}
    )
    assert r.status_code == 200, r.text

    limited = await create_key(client, "write", namespaces=["prod"])
    h = bearer(limited["key"])
    r = await client.post("/v1/namespaces", headers=h, json={"namespace_name": "dev"})
    assert_error(r, 403, "ForbiddenError", contains="namespace")
    # Same answer for a name that already exists elsewhere: no existence leak through 409.
    r = await client.post("/v1/namespaces", headers=h, json={"namespace_name": "staging"})
    assert_error(r, 403, "ForbiddenError")

    # Inside its namespace it can write.
    r = await client.post(
        "/v1/buckets",
        headers={**h, "X-Namespace": "prod"},
        json={"bucket_name": "b1", "bucket_schema": {"properties": {"t": {"type": "text"}}}},
    )
    assert r.status_code == 200, r.text
    r = await client.patch("/v1/namespaces/prod", headers=h, json={"description": "mine"})
    assert r.status_code == 200 and r.json()["description"] == "mine"

    r = await client.get("/v1/namespaces")
    assert sorted(n["namespace_name"] for n in r.json()["results"]) == ["prod", "staging"]


async def test_missing_x_namespace_is_400_naming_the_header(client: httpx.AsyncClient) -> None:
    await make_namespace(client, "prod")
    bucket = await make_bucket(client, "prod")
    bkt = bucket["bucket_id"]
    routes: list[tuple[str, str, Any]] = [
        ("GET", "/v1/buckets", None),
        ("POST", "/v1/buckets", {"bucket_name": "b", "bucket_schema": {"properties": {}}}),
        ("POST", "/v1/buckets/list", {}),
        ("GET", f"/v1/buckets/{bkt}", None),
        ("PATCH", f"/v1/buckets/{bkt}", {"description": "x"}),
        ("DELETE", f"/v1/buckets/{bkt}", None),
        ("GET", f"/v1/buckets/{bkt}/objects", None),
        (
            "POST",
            f"/v1/buckets/{bkt}/objects",
            {"blobs": [{"property": "product_text", "type": "text", "content": "x"}]},
        ),
    ]
    for method, url, body in routes:
        r = await client.request(method, url, json=body)
        assert_error(r, 400, "BadRequestError", contains="X-Namespace")
        r = await client.request(method, url, json=body, headers={"X-Namespace": ""})
        assert_error(r, 400, "BadRequestError", contains="X-Namespace")
    # The bucket is still there and untouched.
    r = await client.get(f"/v1/buckets/{bkt}", headers={"X-Namespace": "prod"})
    assert (
        r.status_code == 200 and r.json()["description"] is None and r.json()["object_count"] == 0
    )


# --------------------------------------------------------------------------- bootstrap admin key


async def test_generated_admin_key_printed_once_and_works(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ASSAY_ADMIN_KEY", raising=False)
    settings = Settings(data_dir=tmp_path / "fresh")
    assert settings.admin_key is None

    prepare(settings).close()
    first = capfd.readouterr().out
    assert first.count("Generated the first admin key") == 1
    secret = first.strip().split()[-1]
    assert secret.startswith("sk_live_")

    prepare(settings).close()
    second = capfd.readouterr().out
    assert "Generated the first admin key" not in second
    assert secret not in second

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://assay.test") as c:
            r = await c.get("/v1/keys", headers=bearer(secret))
            assert r.status_code == 200, r.text
            keys = r.json()["results"]
            assert len(keys) == 1 and keys[0]["role"] == "admin" and keys[0]["namespaces"] is None
            assert secret not in r.text
            r = await c.post(
                "/v1/namespaces", headers=bearer(secret), json={"namespace_name": "first"}
            )
            assert r.status_code == 200, r.text
    # Starting the app (a third start) did not print a new key either.
    assert "Generated the first admin key" not in capfd.readouterr().out


async def test_configured_admin_key_is_used_and_nothing_is_generated(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path / "configured", admin_key=ADMIN_KEY)
    prepare(settings).close()
    prepare(settings).close()
    assert "Generated the first admin key" not in capfd.readouterr().out
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://assay.test") as c:
            r = await c.get("/v1/keys", headers=bearer(ADMIN_KEY))
            assert r.status_code == 200, r.text
            # Registered once although the app started three times.
            assert r.json()["total_count"] == 1
            assert r.json()["results"][0]["role"] == "admin"


# ------------------------------------------------------------------------ keys, Idempotency-Key


async def test_revoked_key_cannot_replay_an_idempotent_post(client: httpx.AsyncClient) -> None:
    key = await create_key(client, "write")
    h = {**bearer(key["key"]), "Idempotency-Key": "create-ns-1"}
    body = {"namespace_name": "replayed"}
    r = await client.post("/v1/namespaces", headers=h, json=body)
    assert r.status_code == 200, r.text
    # While the key is valid, the same request is answered again (the contract's replay).
    r = await client.post("/v1/namespaces", headers=h, json=body)
    assert r.status_code == 200, r.text

    r = await client.delete(f"/v1/keys/{key['key_id']}")
    assert r.status_code == 200, r.text
    # Revoked "at once": not even a stored answer is handed out any more.
    r = await client.post("/v1/namespaces", headers=h, json=body)
    assert_error(r, 401, "UnauthorizedError")


def _db_dump(settings: Settings) -> bytes:
    """Every byte the SQLite database holds, WAL included; every row of every PostgreSQL
    table, as text and with bytea columns decoded."""
    if not settings.is_sqlite:
        return _pg_dump(settings.database_url)
    data = b""
    for path in sorted(settings.data_dir.glob("assay.db*")):
        data += path.read_bytes()
    return data


def _pg_dump(url: str) -> bytes:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    data = b""
    try:
        with engine.connect() as conn:
            tables = conn.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).all()
            for table in tables:
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    for value in row:
                        data += value if isinstance(value, bytes) else str(value).encode()
                        data += b"\n"
    finally:
        engine.dispose()
    return data


async def test_secrets_are_stored_hashed(client: httpx.AsyncClient, settings: Settings) -> None:
    plain = await create_key(client, "read", name="plain")
    r = await client.post(
        "/v1/keys",
        headers={"Idempotency-Key": "mint-1"},
        json={"name": "idempotent", "role": "read"},
    )
    assert r.status_code == 201, r.text
    idem = r.json()
    dump = _db_dump(settings)
    assert dump, "no database file found"
    in_clear = {
        name: secret.encode() in dump
        for name, secret in (("admin", ADMIN_KEY), ("plain", plain["key"]), ("idem", idem["key"]))
    }
    # "idem" is the secret of a key created with an Idempotency-Key: its stored answer must not
    # keep the secret in clear either.
    assert in_clear == {"admin": False, "plain": False, "idem": False}
