"""The file store of ``/v1/files``: content under ``<data_dir>/files`` (0600), file objects in the database.

    store = FileStore(db, data_dir / "files", max_bytes=100 * 2**20)
    meta = await store.create(principal, "batch", "rows.jsonl", data)   # FileObject; 400/413 on bad input
    await store.get("file-…", team_id="t1")       # FileObject, or None for another team's
    await store.content("file-…", team_id="t1")   # bytes, or None
    await store.delete("file-…", team_id="t1")    # True when it was there

A file belongs to the team of the key that uploaded it: another team's key is told it does not
exist. A ``batch`` file is checked line by line at upload (:func:`check_batch_file`). Content is
written and read off the event loop; the data directory's rules apply (:mod:`lmdeck.policy.at_rest`:
folders 0700, files 0600, owner-only), as for the traces' bodies, which are stored the same way.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import BigInteger, Column, Float, MetaData, String, Table, delete, insert, select

from lmdeck.db import Database
from lmdeck.gateway.batches.ownership import owner_clause, owns
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.protocol.files import BatchInputLine, FileObject

files_table = Table(
    "gateway_files",
    MetaData(),
    Column("id", String(80), primary_key=True),
    Column("team_id", String(64)),
    Column("key_id", String(64)),
    Column("purpose", String(32), nullable=False),
    Column("filename", String(512), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("path", String(512), nullable=False),
)

#: Purposes a client may upload; ``batch_output`` files are written by the batch runner.
UPLOAD_PURPOSES = ("batch",)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def check_batch_file(data: bytes, *, max_rows: int) -> list[BatchInputLine]:
    """The request lines of a batch input file, in order.

    Raises a 400 :class:`APIError` naming the line (1-based) for a line that is not JSON, not a
    request line (``custom_id``, ``method: POST``, ``url``, ``body`` with a ``model``), or repeats a
    ``custom_id``; and for an empty file or one over ``max_rows`` lines. Blank lines are skipped.
    """
    rows: list[BatchInputLine] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise bad_line(number, f"not valid JSON ({exc})") from None
        try:
            row = BatchInputLine.model_validate(parsed, strict=True)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "the line"
            raise bad_line(number, f"{where}: {problem['msg']}") from None
        if not isinstance(row.body.get("model"), str):
            raise bad_line(number, "body.model: the body names no model (a route name)")
        first = seen.get(row.custom_id)
        if first is not None:
            raise bad_line(number, f"custom_id {row.custom_id!r} repeats line {first}: each must be unique")
        seen[row.custom_id] = number
        rows.append(row)
        if len(rows) > max_rows:
            raise bad_line(number, f"the file holds more than {max_rows} requests (batches.max_rows): split it")
    if not rows:
        raise APIError(400, "the batch file holds no request lines", param="file", code="invalid_batch_file")
    return rows


def bad_line(number: int, message: str) -> APIError:
    return APIError(400, f"line {number}: {message}", param="file", code="invalid_batch_line")


def not_found(file_id: str) -> APIError:
    return APIError(
        404,
        f"no file {file_id!r} for this key's team: it does not exist, was deleted, or belongs to another team",
        param="file_id",
        code="file_not_found",
    )


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore:
    """Files by id, scoped to the owning team (see the module docs)."""

    def __init__(self, db: Database, root: Path, *, max_bytes: int, max_rows: int = 50_000) -> None:
        self.db = db
        self.root = root
        self.max_bytes = max_bytes
        self.max_rows = max_rows

    def path_of(self, meta_path: str) -> Path:
        return self.root / meta_path

    def check_size(self, size: int) -> None:
        """A 413 naming the limit when ``size`` bytes is over ``batches.max_file_bytes``."""
        if size > self.max_bytes:
            raise APIError(
                413,
                f"the file is {size} bytes; this gateway accepts files of at most {self.max_bytes} bytes "
                "(batches.max_file_bytes): split it into smaller files",
                param="file",
                code="file_too_large",
            )

    async def create(self, principal: Principal, purpose: str, filename: str, data: bytes) -> FileObject:
        """Check and keep an uploaded file. Raises a 400 for an unknown purpose or a bad batch file, a 413
        for one over the limit."""
        if purpose not in UPLOAD_PURPOSES:
            raise APIError(
                400,
                f"purpose {purpose!r} is not supported here: lmdeck keeps files of purpose 'batch' only",
                param="purpose",
                code="unsupported_purpose",
            )
        self.check_size(len(data))
        await asyncio.to_thread(check_batch_file, data, max_rows=self.max_rows)
        return await self.keep(principal.team_id, principal.key_id, purpose, filename, data)

    async def keep(
        self, team_id: str | None, key_id: str | None, purpose: str, filename: str, data: bytes
    ) -> FileObject:
        """Store ``data`` as a new file (no checks); its file object."""
        file_id = new_id("file")
        created = time.time()
        row = {
            "id": file_id,
            "team_id": team_id,
            "key_id": key_id,
            "purpose": purpose,
            "filename": filename[:512] or "upload",
            "bytes": len(data),
            "created_at": created,
            "path": file_id,
        }
        await asyncio.to_thread(self._keep, row, data)
        return _object(row)

    def _keep(self, row: dict[str, Any], data: bytes) -> None:
        _write_private(self.path_of(str(row["path"])), data)
        with self.db.engine.begin() as conn:
            conn.execute(insert(files_table).values(**row))

    def register(self, team_id: str | None, key_id: str | None, purpose: str, filename: str, path: Path) -> FileObject:
        """Record a file written under :attr:`root` by lmdeck itself (blocking: call it off the event loop)."""
        file_id = new_id("file")
        row = {
            "id": file_id,
            "team_id": team_id,
            "key_id": key_id,
            "purpose": purpose,
            "filename": filename,
            "bytes": path.stat().st_size,
            "created_at": time.time(),
            "path": str(path.relative_to(self.root)),
        }
        with self.db.engine.begin() as conn:
            conn.execute(insert(files_table).values(**row))
        return _object(row)

    async def get(self, file_id: str, *, team_id: str | None, key_id: str | None = None) -> FileObject | None:
        row = await asyncio.to_thread(self._row, file_id)
        if row is None or not owns(row["team_id"], row["key_id"], team_id, key_id):
            return None
        return _object(row)

    async def content(self, file_id: str, *, team_id: str | None, key_id: str | None = None) -> bytes | None:
        row = await asyncio.to_thread(self._row, file_id)
        if row is None or not owns(row["team_id"], row["key_id"], team_id, key_id):
            return None
        return await asyncio.to_thread(self.path_of(str(row["path"])).read_bytes)

    def read(self, file_id: str) -> tuple[dict[str, Any], bytes] | None:
        """The row and content of ``file_id`` whoever owns it (blocking), or None."""
        row = self._row(file_id)
        if row is None:
            return None
        return row, self.path_of(str(row["path"])).read_bytes()

    async def listing(
        self,
        *,
        team_id: str | None,
        key_id: str | None = None,
        purpose: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[FileObject], bool]:
        """The team's files, newest first, from the one after ``after`` (a file id); and whether more follow.
        Raises a 400 naming ``after`` when it is not a file of the team."""
        return await asyncio.to_thread(self._list, team_id, key_id, purpose, limit, after)

    def _list(
        self, team_id: str | None, key_id: str | None, purpose: str | None, limit: int, after: str | None
    ) -> tuple[list[FileObject], bool]:
        owner = owner_clause(files_table, team_id, key_id)
        query = select(files_table).where(owner)
        if purpose is not None:
            query = query.where(files_table.c.purpose == purpose)
        with self.db.engine.connect() as conn:
            if after is not None:
                row = conn.execute(select(files_table.c.created_at).where(owner, files_table.c.id == after)).first()
                if row is None:
                    raise APIError(400, f"after: no file {after!r} of this key's team to list after", param="after")
                query = query.where(files_table.c.created_at < row[0])
            query = query.order_by(files_table.c.created_at.desc()).limit(limit + 1)
            found = [_object(dict(r._mapping)) for r in conn.execute(query)]
        return found[:limit], len(found) > limit

    async def delete(self, file_id: str, *, team_id: str | None, key_id: str | None = None) -> bool:
        row = await asyncio.to_thread(self._row, file_id)
        if row is None or not owns(row["team_id"], row["key_id"], team_id, key_id):
            return False
        await asyncio.to_thread(self._delete, file_id, str(row["path"]))
        return True

    def _delete(self, file_id: str, path: str) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(delete(files_table).where(files_table.c.id == file_id))
        self.path_of(path).unlink(missing_ok=True)

    def _row(self, file_id: str) -> dict[str, Any] | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(files_table).where(files_table.c.id == file_id)).first()
        return dict(row._mapping) if row is not None else None


def _object(row: dict[str, Any]) -> FileObject:
    return FileObject(
        id=str(row["id"]),
        bytes=int(str(row["bytes"])),
        created_at=int(float(str(row["created_at"]))),
        filename=str(row["filename"]),
        purpose=str(row["purpose"]),
    )
