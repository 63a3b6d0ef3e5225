"""The answers to info requests: the ones a node answers at once from its own state, without asking a
quorum (``ping``, ``nodes``, ``ring``, ``status``, ``leave``, ``local_get``, ``local_scan`` and the
admin requests ``repair_now`` and ``merge_states``). The front looks a request's op up in this table."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zkv.core import admin
from zkv.core.scan import SCAN_REPLY_BYTES, local_page, page_to_wire
from zkv.core.versions import EMPTY, state_to_wire
from zkv.core.views import nodes_view, ring_view
from zkv.protocol import InfoRequest, ok

if TYPE_CHECKING:
    from zkv.core.nodecore import NodeCore

InfoAnswer = Callable[[InfoRequest, float], dict[str, Any]]


def info_answers(core: NodeCore) -> dict[str, InfoAnswer]:
    """op -> the function that answers it for ``core`` (request, now -> reply)."""

    def leave(req: InfoRequest, now: float) -> dict[str, Any]:
        core.rebalance.start_leaving()
        return ok(req.id, node=core.name, status=core.membership.status_of(core.name))

    def local_get(req: InfoRequest, now: float) -> dict[str, Any]:
        state = core.store.get(req.args["key"]) or EMPTY
        return ok(req.id, node=core.name, state=state_to_wire(state))

    def local_scan(req: InfoRequest, now: float) -> dict[str, Any]:
        """This node's part of a key scan: its first keys after the cursor (see :mod:`zkv.core.scan`)."""
        a = req.args
        budget = min(SCAN_REPLY_BYTES, core.settings.limits.max_message_bytes // 2)
        page = local_page(core.store, a["prefix"], a["after"], a["limit"], a["values"], budget)
        return ok(req.id, node=core.name, **page_to_wire(page))

    return {
        "ping": lambda req, now: ok(req.id, node=core.name, generation=core.membership.generation),
        "nodes": lambda req, now: ok(req.id, node=core.name, nodes=nodes_view(core, now)),
        "ring": lambda req, now: ok(req.id, **ring_view(core)),
        "status": lambda req, now: ok(req.id, **core.status(now).to_wire()),
        "leave": leave,
        "local_get": local_get,
        "local_scan": local_scan,
        "repair_now": lambda req, now: ok(req.id, node=core.name, **admin.repair_now(core, now)),
        "merge_states": lambda req, now: ok(req.id, node=core.name, **admin.merge_states(core, req.args)),
        "cleanup": lambda req, now: ok(req.id, node=core.name, **core.rebalance.start_cleanup(now)),
        "removenode": lambda req, now: ok(
            req.id, node=core.name, **core.rebalance.remove_node(req.args.get("name"), now)
        ),
    }
