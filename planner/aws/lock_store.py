"""The apply lock under an s3:// `state:` prefix: `PREFIX/lock`, created with a
conditional put (`IfNoneMatch="*"`) and removed only while its ETag is still the one read.
What a lock records and how a refusal reads live in planner.lock.
"""

from __future__ import annotations

from typing import Any

from planner.lock import (
    LocalLock,
    Lock,
    LockError,
    LockInfo,
    Say,
    held_error,
    quiet,
    takeover_message,
)


def _client_error_code(e: Exception) -> tuple[str, int]:
    resp = getattr(e, "response", None) or {}
    code = str(resp.get("Error", {}).get("Code", ""))
    status = int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


class S3Lock:
    """`PREFIX/lock` in S3, created with a conditional put (If-None-Match: *)."""

    def __init__(self, s3: Any, state_uri: str):
        from planner.manifest import split_s3_uri

        self.s3 = s3
        self.bucket, prefix = split_s3_uri(state_uri)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.key = prefix + "lock"
        self.where = f"s3://{self.bucket}/{self.key}"

    def _is_code(self, e: Exception, *codes: str) -> bool:
        from botocore.exceptions import ClientError

        if not isinstance(e, ClientError):
            return False
        code, status = _client_error_code(e)
        return code in codes or (status == 412 and "PreconditionFailed" in codes)

    def acquire(self, operation: str, say: Say = quiet, _attempts: int = 3) -> LockInfo:
        from planner.aws.session import aws_errors

        info = LockInfo.new(operation)
        with aws_errors():
            try:
                self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=info.to_bytes(),
                                   ContentType="application/json", IfNoneMatch="*")
                return info
            except Exception as e:
                if not self._is_code(e, "PreconditionFailed", "ConditionalRequestConflict"):
                    raise
            got = self._get()
            if got is not None and got[0].holder_gone() and _attempts > 1:
                if self._delete(got[1]):
                    say(takeover_message(self.where, got[0]))
                return self.acquire(operation, say, _attempts - 1)
        if got is None and _attempts > 1:   # released in between
            return self.acquire(operation, say, _attempts - 1)
        raise held_error(self.where, got[0] if got else LockInfo.unreadable("changing"))

    def _delete(self, etag: str) -> bool:
        """Delete the lock object only if it is still the one read (ETag); False if gone."""
        try:   # only the object we read: another holder's new lock stays
            self.s3.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=etag)
        except Exception as e:
            if self._is_code(e, "NoSuchKey", "PreconditionFailed"):
                return False
            if not self._is_code(e, "NotImplemented", "InvalidArgument"):
                raise
            self.s3.delete_object(Bucket=self.bucket, Key=self.key)
        return True

    def _get(self) -> tuple[LockInfo, str] | None:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as e:
            if self._is_code(e, "NoSuchKey", "404"):
                return None
            raise
        return LockInfo.parse(obj["Body"].read()), str(obj.get("ETag", ""))

    def status(self) -> LockInfo | None:
        from planner.aws.session import aws_errors

        with aws_errors():
            got = self._get()
        return None if got is None else got[0]

    def release(self, lock_id: str) -> None:
        from planner.aws.session import aws_errors

        with aws_errors():
            got = self._get()
            if got is None:
                raise LockError(f"the lock {self.where} is not held")
            current, etag = got
            if current.id != lock_id:
                raise LockError(f"lock id {lock_id} does not match: the lock {self.where} is "
                                f"{current.describe()}")
            self._delete(etag)


def open_lock(state: str | None, state_dir: str, endpoint_url: str | None,
              region: str) -> Lock:
    """The lock a command uses: S3 under an s3:// `state:` prefix, else STATE_DIR/lock."""
    if state and state.startswith("s3://"):
        from planner.aws.session import open_aws

        aws, _how = open_aws(endpoint_url, state_dir, region)
        return S3Lock(aws.s3, state)
    return LocalLock(state_dir)
