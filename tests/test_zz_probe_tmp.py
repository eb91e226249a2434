import time
from tests.conftest import make_namespace, make_bucket, png_bytes, b64

async def test_a(client):
    t=time.time()
    ns = await make_namespace(client)
    b = await make_bucket(client, ns["namespace_id"])
    h={"X-Namespace": ns["namespace_id"]}
    bid=b["bucket_id"]
    png=png_bytes()
    for body in [
        {"blobs":[{"property":"product_text","type":"text","content":"x","bogus":1}]},
        {"blobz":[]},
        {"blobs":[{"property":"product_text","type":"text","content":"x"},{"property":"hero_image","type":"image","content":b64(png[:len(png)//2])}]},
        {"blobs":[{"property":"product_text","type":"text","content":"x"},{"property":"hero_image","type":"image","content":b64(png[:-20])}]},
        {"blobs":[{"property":"product_text","type":"text","content":"x"},{"property":"hero_image","type":"imagex","content":b64(png[:-20])}]},
    ]:
        r = await client.post(f"/v1/buckets/{bid}/objects", json=body, headers=h)
        print(r.status_code, r.text[:600])
    import base64, json
    for cur in ["not-a-cursor!!", base64.urlsafe_b64encode(b'[1, [1,2]]').decode(), "%%%", base64.urlsafe_b64encode(b'"abc"').decode()]:
        r = await client.get(f"/v1/buckets/{bid}/objects", params={"cursor": cur}, headers=h)
        print(cur, r.status_code, r.text[:300])
        r = await client.post(f"/v1/buckets/{bid}/objects/list", json={"cursor": cur, "sort": {"field":"updated_at"}}, headers=h)
        print(cur, r.status_code, r.text[:300])
    print("elapsed", time.time()-t)
