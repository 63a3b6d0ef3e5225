"""Admin requests the runtime answers itself, because they are about this node's files, not about keys.

``restart``: stop cleanly for a restart. The node first drains: for ``request_timeout_ms`` (plus a
little) it refuses new client reads and writes with ``stopping`` (the client sends them to another node
at once: nothing was done with them), while the requests it already coordinates finish and it keeps
serving its peers as a replica. Then it stops and exits with :data:`EXIT_RESTART`.

``snapshot``: seal the log store's active segment and hard-link every closed segment into a folder with a
manifest (:mod:`zkv.storage.snapshot`). It runs inside one loop turn: sealing costs one fsync, linking a
few system calls per segment, and the manifest's Merkle root one hash per key from the in-memory key
directory (about 0.3 s per 100,000 keys here), during which the node answers nothing else.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from zkv.core.admission import RUNTIME_OPS
from zkv.errors import InternalError, InvalidRequest
from zkv.node.faults import FaultFilter
from zkv.storage.snapshot import SnapshotError, link_files

log = logging.getLogger(__name__)

RUNTIME_ADMIN_OPS = RUNTIME_OPS  # which requests those are is decided in zkv.core.admission
#: what a stopping node refuses with ``stopping`` (the client sends it elsewhere); it still answers the rest
DATA_OPS = frozenset({"put", "get", "delete", "scan"})
#: a node that exits with this status asks to be started again (the supervisor does, whatever its policy)
EXIT_RESTART = 3
#: a node that heard it was removed (``removenode``) while it was gone exits with this: not restarted
EXIT_REMOVED = 4
DRAIN_EXTRA_S = 0.3  # beyond request_timeout_ms, for the replies of the last requests to leave


def snapshot(store: Any, node: str, cluster: str, msg: dict[str, Any]) -> dict[str, Any]:
    """Take a snapshot of ``store`` into ``msg["dir"]``; the reply's fields (the manifest, minus files)."""
    folder = msg.get("dir")
    if not isinstance(folder, str) or not folder:
        raise InvalidRequest("snapshot needs 'dir': the folder to write it into, on this node's machine")
    if not hasattr(store, "seal"):
        raise InvalidRequest(
            f'{node} runs an engine without snapshots: they need engine = "log" '
            '(with engine = "redis", back up Redis itself: BGSAVE or a copy of its append-only files)'
        )
    out = Path(folder)
    if not out.is_absolute():
        raise InvalidRequest(f"snapshot dir {folder!r} must be an absolute path")
    try:
        manifest = link_files(store.seal(), out, {"node": node, "cluster": cluster, **store.snapshot_meta()})
    except SnapshotError as exc:
        raise InvalidRequest(str(exc)) from None
    return {k: v for k, v in manifest.items() if k != "files"} | {"files": len(manifest["files"])}


def snapshot_reply(store: Any, node: str, cluster: str, msg: dict[str, Any]) -> dict[str, Any]:
    """:func:`snapshot` as a reply body; a disk failure is an ``internal`` error naming the op."""
    try:
        body = snapshot(store, node, cluster, msg)
    except OSError as exc:
        raise InternalError(f"{msg.get('op')} failed: {exc}") from None
    return {"ok": True, "node": node, **body}


def configure_faults(
    faults: FaultFilter, msg: dict[str, Any], members: set[str], status_extra: dict[str, Any]
) -> dict[str, Any]:
    """Set the fault filter from a ``faults`` request (one without rules only asks); the reply body.

    Runtime business, since the filter sits on the sockets; raises InvalidRequest naming a bad rule.
    An active filter is also shown in ``status_extra`` (the node's status), so the dashboard shows a
    node under injected faults."""
    if any(k in msg for k in ("drop_in", "drop_out", "delay_in")):
        try:
            faults.configure(msg, members)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        log.warning("fault filter now %s", faults.describe())
    if faults.active:
        status_extra["faults"] = faults.describe()
    else:
        status_extra.pop("faults", None)
    return {"ok": True, **faults.describe()}
