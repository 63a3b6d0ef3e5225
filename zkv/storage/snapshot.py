"""Snapshots of a log store: hard links to its sealed segments, a manifest, and checks against it.

A log engine segment never changes once it is closed, so a snapshot of a running node is cheap: the
node seals its active segment (:meth:`LogStore.seal`), and the closed segments are hard-linked into the
snapshot folder (copied if it is on another file system). Compaction may later remove a segment from the
node's directory; the snapshot's link keeps the file. What the node writes afterwards goes to a new
segment the snapshot does not name.

The manifest (``manifest.json``) names every file with its size and CRC32, and the state the files hold:
the number of keys, their record bytes and the Merkle root over their digests (the same leaves
anti-entropy compares). :func:`verify` recomputes all of it from the files alone, read-only;
:func:`read_states` yields the newest state of every key, which is what a restore streams.
"""

from __future__ import annotations

import contextlib
import errno
import json
import mmap
import os
import shutil
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zkv.core.merkle import LEAVES, MerkleTree, leaf_of, state_digest
from zkv.core.versions import KeyState, unpack_state
from zkv.storage.records import DELETE, PUT, Record, fsync_dir, scan, write_atomic
from zkv.storage.segment import INDEX_SUFFIX, SEGMENT_SUFFIX

MANIFEST = "manifest.json"
CLUSTER_MANIFEST = "cluster.json"
#: written into a restored data_dir with the copies: which snapshot it holds, so a whole-cluster restore
#: run again after an interruption knows the nodes it finished (and skips them) from ones it did not
RESTORE_MARK = "restored-from.json"
FORMAT = "zkv-snapshot-1"
CRC_CHUNK = 1 << 20


class SnapshotError(Exception):
    """A snapshot that cannot be taken, read or trusted; the message is one line for the operator."""


def merkle_root(digests: Iterable[tuple[bytes, int]]) -> str:
    """The root (16 hex digits) of the Merkle tree over ``(key, state digest)`` pairs."""
    leaves = [0] * LEAVES
    for key, digest in digests:
        leaves[leaf_of(key)] ^= digest
    return f"{MerkleTree(leaves).root:016x}"


def file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(CRC_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def check_target(out: Path) -> None:
    """``out`` must not exist yet or be an empty folder, and be writable; else :class:`SnapshotError`.

    Writability is tried, not inferred from permission bits (root passes those; a read-only mount does
    not): a probe file is created and removed.
    """
    if out.exists() and not out.is_dir():
        raise SnapshotError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        raise SnapshotError(f"{out} is not empty; a snapshot goes into a new or empty folder")
    created = not out.exists()
    probe = out / ".probe"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SnapshotError(f"{out} is not writable: {exc.strerror or exc}") from None
    finally:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()


def link_files(files: list[Path], out: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Hard-link (or copy) ``files`` into ``out`` and write its manifest; returns the manifest.

    ``meta`` holds what the node knows of the state (keys, bytes, merkle_root, node, cluster).
    """
    check_target(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        entries = []
        for src in files:
            dst = out / src.name
            try:
                os.link(src, dst)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                shutil.copyfile(src, dst)
            entries.append({"name": src.name, "bytes": dst.stat().st_size, "crc32": file_crc(dst)})
        manifest = {"format": FORMAT, "taken_at": time.time(), **meta, "files": entries}
        write_atomic(out / MANIFEST, json.dumps(manifest, indent=1).encode() + b"\n")
        fsync_dir(out)
    except OSError as exc:
        raise SnapshotError(f"cannot write the snapshot into {out}: {exc.strerror or exc}") from None
    return manifest


def load_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise SnapshotError(f"{folder} holds no {MANIFEST}: not a node snapshot") from None
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"{path} is unreadable or damaged: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not a {FORMAT} manifest")
    return manifest


@dataclass
class Contents:
    """What a snapshot's segments hold, recomputed from the files."""

    keys: int
    bytes: int
    merkle_root: str


def _records(folder: Path, names: list[str]) -> Iterator[Record]:
    """Every valid record of the named segments; damage is raised, since a checked file has none."""
    for name in names:
        path = folder / name
        size = path.stat().st_size
        if not size:
            continue
        with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as data:
            for item in scan(data, 0, size):
                if not isinstance(item, Record):
                    raise SnapshotError(f"{path}: {item.size} damaged bytes at offset {item.offset}")
                yield item


def _newest(folder: Path, names: list[str]) -> dict[bytes, tuple[int, str, int, int]]:
    """key -> (seq, segment name, offset, size) of its newest record, deletes included."""
    newest: dict[bytes, tuple[int, str, int, int]] = {}
    for name in names:
        for rec in _records(folder, [name]):
            if rec.kind not in (PUT, DELETE):
                continue
            old = newest.get(rec.key)
            if old is None or old[0] < rec.seq:
                newest[rec.key] = (rec.seq, name if rec.kind == PUT else "", rec.offset, rec.size)
    return newest


def segment_names(manifest: dict[str, Any]) -> list[str]:
    return [f["name"] for f in manifest.get("files", []) if str(f.get("name", "")).endswith(SEGMENT_SUFFIX)]


def read_states(
    folder: Path, newest: dict[bytes, tuple[int, str, int, int]] | None = None
) -> Iterator[tuple[bytes, KeyState]]:
    """``(key, state)`` of every key the snapshot in ``folder`` holds (its newest record, not deleted)."""
    if newest is None:
        newest = _newest(folder, segment_names(load_manifest(folder)))
    by_segment: dict[str, list[tuple[int, bytes]]] = {}
    for key, (_seq, name, offset, _size) in newest.items():
        if name:
            by_segment.setdefault(name, []).append((offset, key))
    for name, items in sorted(by_segment.items()):
        path = folder / name
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            wanted = dict(items)
            for rec in scan(data, 0, len(data)):
                if isinstance(rec, Record) and wanted.get(rec.offset) == rec.key:
                    try:
                        yield rec.key, unpack_state(rec.value)
                    except Exception as exc:  # noqa: BLE001 - CRC-valid bytes that are still no state
                        raise SnapshotError(f"{path}: the record of key {rec.key!r} holds no state") from exc


def contents(folder: Path) -> Contents:
    """Recompute key count, bytes and Merkle root from the snapshot's segment files."""
    manifest = load_manifest(folder)
    newest = _newest(folder, segment_names(manifest))
    total = sum(size for _seq, name, _off, size in newest.values() if name)
    digests = ((key, state_digest(key, state)) for key, state in read_states(folder, newest))
    keys = sum(1 for _seq, name, _o, _s in newest.values() if name)
    return Contents(keys, total, merkle_root(digests))


def verify(folder: Path) -> dict[str, Any]:
    """Check every file against the manifest (size, CRC32), then the keys, bytes and Merkle root.

    Returns the manifest; raises :class:`SnapshotError` naming the first problem.
    """
    manifest = load_manifest(folder)
    for entry in manifest.get("files", []):
        path = folder / str(entry.get("name"))
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise SnapshotError(f"{path} is missing") from None
        if size != entry.get("bytes"):
            raise SnapshotError(
                f"{path} is {size} bytes, the manifest says {entry.get('bytes')} (truncated?)"
            )
        if file_crc(path) != entry.get("crc32"):
            raise SnapshotError(f"{path} fails its CRC32 check: the file is damaged")
    found = contents(folder)
    for field in ("keys", "bytes", "merkle_root"):
        if getattr(found, field) != manifest.get(field):
            found_value, said = getattr(found, field), manifest.get(field)
            raise SnapshotError(f"{folder}: {field} is {found_value} in the files, {said} in the manifest")
    return manifest


def restore_files(folder: Path, data_dir: Path) -> int:
    """Copy a verified snapshot's files into ``data_dir``, which must be absent or empty; returns bytes.

    The copy goes to ``data_dir.restoring`` first and is renamed into place once every file is on disk,
    so an interrupted restore leaves ``data_dir`` untouched; running it again starts over.
    """
    manifest = verify(folder)
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise SnapshotError(f"{data_dir} is not empty; restore into a stopped node's empty data_dir")
    staging = data_dir.with_name(data_dir.name + ".restoring")
    try:
        if staging.exists():
            shutil.rmtree(staging)  # an earlier restore that was interrupted: start over
        staging.mkdir(parents=True)
        copied = 0
        for entry in manifest["files"]:
            name = str(entry["name"])
            if not name.endswith((SEGMENT_SUFFIX, INDEX_SUFFIX)):
                continue
            shutil.copyfile(folder / name, staging / name)
            fd = os.open(staging / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            copied += int(entry["bytes"])
        mark = {"node": manifest.get("node"), "merkle_root": manifest.get("merkle_root"), "from": str(folder)}
        write_atomic(staging / RESTORE_MARK, json.dumps(mark).encode() + b"\n")
        fsync_dir(staging)
        if data_dir.exists():
            data_dir.rmdir()
        os.replace(staging, data_dir)
        fsync_dir(data_dir.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise SnapshotError(f"cannot restore into {data_dir}: {exc.strerror or exc}") from None
    return copied


def already_restored(folder: Path, data_dir: Path) -> bool:
    """``data_dir`` holds exactly what :func:`restore_files` copied from the snapshot in ``folder`` and
    nothing since (the node was not started on it): an earlier run got this far, so it can be skipped."""
    try:
        mark = json.loads((data_dir / RESTORE_MARK).read_text())
        present = {p.name for p in data_dir.iterdir()}
    except (OSError, ValueError):
        return False
    manifest = load_manifest(folder)
    copied = {
        str(e["name"]) for e in manifest["files"] if str(e["name"]).endswith((SEGMENT_SUFFIX, INDEX_SUFFIX))
    }
    return (
        isinstance(mark, dict)
        and mark.get("node") == manifest.get("node")
        and mark.get("merkle_root") == manifest.get("merkle_root")
        and present == copied | {RESTORE_MARK}
    )
