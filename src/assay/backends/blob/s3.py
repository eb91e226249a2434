"""Blob store on any S3 API through boto3: keys live under `s3://bucket/prefix/`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assay.backends.blob.base import BlobNotFound, UploadRejected

CHUNK = 256 * 1024
MIB = 1024 * 1024
# S3 error codes that mean "no such key"; HEAD responses have no body, so only the status is left.
_MISSING = {"NoSuchKey", "NotFound", "404"}
_REJECTED = {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"}


class _PastTheEnd(OSError):
    """A Range starting after the last byte (S3's 416), which the contract reads as empty."""


class S3BlobStore:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        multipart_threshold: int = 16 * MIB,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        options: dict[str, Any] = {
            "signature_version": "s3v4",
            "retries": {"max_attempts": 5, "mode": "standard"},
            # A short connect timeout keeps /readyz from hanging on an unreachable endpoint.
            "connect_timeout": 5,
        }
        if endpoint_url:
            # Self-hosted S3 APIs rarely resolve bucket subdomains, and many reject the
            # CRC checksum headers newer botocore sends by default.
            options["s3"] = {"addressing_style": "path"}
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        # Credentials left as None fall through to boto3's usual chain (env, profile, role).
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(**options),
        )
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=max(multipart_threshold, 5 * MIB),
        )

    def __repr__(self) -> str:
        return f"S3BlobStore(s3://{self.bucket}/{self.prefix})"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    @contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        """Turn boto3's exceptions into BlobNotFound / OSError naming what failed."""
        import botocore.exceptions as bce
        from boto3.exceptions import Boto3Error

        where = self._url(key) if key is not None else f"s3://{self.bucket}"
        try:
            yield
        except bce.ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            if code == "NoSuchBucket" or (key is None and code in _MISSING):
                raise OSError(f"S3 bucket '{self.bucket}' does not exist ({action})") from exc
            if key is not None and code in _MISSING:
                raise BlobNotFound(key) from exc
            if code == "NoSuchUpload":
                raise BlobNotFound(f"multipart upload for {key}") from exc
            message = f"S3 {action} {where} failed: {code} {err.get('Message', '')}".rstrip()
            if code == "InvalidRange":
                raise _PastTheEnd(message) from exc
            if code in _REJECTED:
                raise UploadRejected(message) from exc
            raise OSError(message) from exc
        except (bce.BotoCoreError, Boto3Error) as exc:
            # Boto3Error covers S3UploadFailedError, which wraps ClientError in its message.
            raise OSError(f"S3 {action} {where} failed: {exc}") from exc

    def _head(self, key: str) -> dict[str, Any]:
        with self._errors("head", key):
            result: dict[str, Any] = self._client.head_object(
                Bucket=self.bucket, Key=self._key(key)
            )
            return result

    def put_file(self, src: Path, key: str) -> bool:
        if self.exists(key):
            src.unlink(missing_ok=True)
            return False
        with self._errors("upload", key):
            # upload_file switches to a parallel multipart upload past the threshold.
            self._client.upload_file(str(src), self.bucket, self._key(key), Config=self._transfer)
        src.unlink(missing_ok=True)
        return True

    def put_bytes(self, data: bytes, key: str) -> bool:
        if self.exists(key):
            return False
        with self._errors("put", key):
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return True

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except BlobNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end < start:
            # S3 ignores an unsatisfiable Range and sends everything; the contract wants nothing.
            self._head(key)
            return iter(())
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if start or end is not None:
            # No header for a whole read: `bytes=0-` on an empty object is a 416.
            params["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            with self._errors("get", key):
                body = self._client.get_object(**params)["Body"]
        except _PastTheEnd:
            return iter(())  # S3 checks the key before the range, so the key exists
        return self._stream(body, key)

    def _stream(self, body: Any, key: str) -> Iterator[bytes]:
        """Yield the response body in chunks, closing the connection even if abandoned."""
        try:
            with self._errors("read", key):
                yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        folder = prefix.strip("/")
        if not folder:
            return  # like the local store, never wipe the whole store
        # The trailing slash keeps `ns1` from matching `ns10/...`, as a folder would.
        full = self._key(folder) + "/"
        with self._errors("delete prefix", folder):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if not keys:
                    continue
                # A listing page holds at most 1000 keys, the delete_objects limit.
                result = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )
                if result.get("Errors"):
                    first = result["Errors"][0]
                    raise OSError(
                        f"S3 delete of {len(result['Errors'])} keys under {self._url(folder)} "
                        f"failed, e.g. {first.get('Key')}: {first.get('Code')}"
                    )

    def local_path(self, key: str) -> None:
        return None  # the bytes are in S3: readers stream them or copy them to a file

    def check(self) -> None:
        with self._errors("head bucket"):
            self._client.head_bucket(Bucket=self.bucket)

    def download(self, s3_url: str, dest: Path, max_bytes: int) -> str | None:
        """Copy any `s3://bucket/key` readable with this store's credentials into `dest`;
        returns its content type. Over `max_bytes` → `UploadRejected`, and `dest` is removed."""
        bucket, _, key = s3_url.removeprefix("s3://").partition("/")
        where = f"s3://{bucket}/{key}"
        size = 0
        try:
            with self._errors("get", where), dest.open("wb") as out:
                answer = self._client.get_object(Bucket=bucket, Key=key)
                if int(answer.get("ContentLength") or 0) > max_bytes:
                    raise UploadRejected(f"{where} is larger than {max_bytes} bytes")
                for chunk in answer["Body"].iter_chunks(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise UploadRejected(f"{where} is larger than {max_bytes} bytes")
                    out.write(chunk)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        content_type = answer.get("ContentType")
        return str(content_type) if content_type else None

    # Direct uploads (PresigningStore): the client sends bytes to S3 itself.

    def presigned_put_url(self, key: str, expires_s: int, content_length: int | None = None) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if content_length is not None:
            # Signed as a header, so S3 refuses a body of any other size.
            params["ContentLength"] = content_length
        with self._errors("presign", key):
            return str(
                self._client.generate_presigned_url(
                    "put_object", Params=params, ExpiresIn=expires_s
                )
            )

    def create_multipart(self, key: str) -> str:
        with self._errors("create multipart", key):
            result = self._client.create_multipart_upload(Bucket=self.bucket, Key=self._key(key))
            return str(result["UploadId"])

    def presigned_part_url(self, key: str, upload_id: str, part_number: int, expires_s: int) -> str:
        params = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "UploadId": upload_id,
            "PartNumber": part_number,
        }
        with self._errors("presign part", key):
            return str(
                self._client.generate_presigned_url(
                    "upload_part", Params=params, ExpiresIn=expires_s
                )
            )

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        listed = [{"PartNumber": n, "ETag": etag} for n, etag in sorted(parts)]
        with self._errors("complete multipart", key):
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                MultipartUpload={"Parts": listed},
            )

    def uploaded_parts(self, key: str, upload_id: str) -> list[tuple[int, str]]:
        """(part number, ETag) of the parts S3 holds for a multipart upload."""
        parts: list[tuple[int, str]] = []
        with self._errors("list parts", key):
            paginator = self._client.get_paginator("list_parts")
            pages = paginator.paginate(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)
            for page in pages:
                parts += [(p["PartNumber"], p["ETag"]) for p in page.get("Parts", [])]
        return parts

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            with self._errors("abort multipart", key):
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._key(key), UploadId=upload_id
                )
        except BlobNotFound:
            pass  # already completed or aborted: cleanup may run twice
