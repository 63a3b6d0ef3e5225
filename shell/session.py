"""One shell session: its coordinator, its consistency, the contexts of its gets — and the commands.

:meth:`Session.run` takes a typed line and returns a :class:`~zkv_shell.results.Result`; it never prints
and never raises, so the interactive loop, ``-c`` and piped stdin all behave the same and can be tested
without a terminal. Every exception is turned into a one-line :class:`~zkv_shell.results.Failure` at
the command boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from zkv.client import context_bytes, normalize_address
from zkv.errors import BadAddress, ConditionFailed, NoNodeAvailable, ZkvError

from . import txnblock
from .commands import SCAN_PAGE, UsageError, check_consistency, nearest, parse, parse_ttl, split
from .connection import ClientOptions, Endpoint, PinnedClient, probe
from .health import Link
from .hints import explain
from .replicaview import replica_view
from .results import (
    Failure,
    Help,
    Message,
    NodeRow,
    Nodes,
    Placement,
    Quit,
    Read,
    Result,
    Scanned,
    Status,
    Where,
    Written,
)

#: commands that talk to the connected node; their outcome tells whether it answers
_NETWORK = frozenset({"put", "get", "delete", "cas", "nodes", "status", "where", "scan", "commit"})


class Session:
    """The state a shell keeps between commands, and the code that carries commands out."""

    def __init__(
        self,
        client: PinnedClient,
        node: Endpoint,
        known: dict[str, str] | None = None,
        consistency: str | None = None,
        link: Link | None = None,
    ) -> None:
        self.client = client
        self.node = node
        self.known: dict[str, str] = dict(known or {})  # node name -> address
        self.consistency = consistency  # None: each request uses the cluster's configured default
        self.cluster_default: str | None = None  # the cluster's default consistency, once learnt
        self.link = link or Link(connected=True)
        self.contexts: dict[bytes, tuple[bytes, int]] = {}  # key -> (context of its last get, versions seen)
        self.keys: dict[str, None] = {}  # keys used in this session, for completion (ordered set)
        self._options: dict[str, str | bool] = {}
        self.next_scan: tuple[bytes, int, str | None, bool, str] | None = None  # what ``scan --next`` runs
        self.tracing = False  # ``trace on``: every put, get and delete shows its receipt
        self.block: txnblock.TxnBlock | None = None  # the transaction ``begin`` opened
        self._handlers: dict[str, Callable[[list[str]], Result]] = {
            "put": self._put,
            "cas": self._cas,
            "get": self._get,
            "delete": self._delete,
            "switch": self._switch,
            "nodes": self._nodes,
            "status": self._status,
            "decommission": self._decommission,
            "removenode": self._removenode,
            "views": self._views,
            "consistency": self._consistency,
            "trace": self._trace,
            "where": self._where,
            "scan": self._scan,
            "replicas": self._replicas,
            "begin": partial(txnblock.begin, self),
            "check": lambda args: txnblock.queue(self, "check", args, self._options),
            "commit": partial(txnblock.commit, self),
            "abort": partial(txnblock.abort, self),
            "help": lambda args: Help("help", args[0] if args else None),
            "quit": lambda args: Quit("quit"),
            "exit": lambda args: Quit("exit"),
        }

    @classmethod
    def connect(
        cls,
        address: str,
        name: str | None = None,
        known: dict[str, str] | None = None,
        consistency: str | None = None,
        options: ClientOptions | None = None,
    ) -> Session:
        """A session coordinated by the node at ``address``; it learns the node's name and the ring now.
        ``options``: the CURVE keys every client of the session opens with."""
        client = PinnedClient(address, options=options)
        answered = probe(client, address)
        session = cls(
            client,
            Endpoint(answered or name or address, address),
            known,
            consistency,
            Link(connected=answered is not None),
        )
        if answered is not None:
            session.learn()
        return session

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------------------------------ state

    @property
    def consistency_label(self) -> str:
        """The consistency put/get/delete use when they name none, as the prompt shows it."""
        return self.consistency or self.cluster_default or "default"

    @property
    def node_names(self) -> list[str]:
        return sorted(self.known)

    def learn(self) -> None:
        """Learn every node's name and address and the cluster's default consistency from its node."""
        try:
            ring = self.client.ring(refresh=True)
        except ZkvError:
            return
        self.known.update(ring.addresses)
        if ring.read_consistency == ring.write_consistency:
            self.cluster_default = ring.read_consistency

    # ------------------------------------------------------------------------------------------ running

    def run(self, line: str) -> Result | None:
        """Carry out one typed line; None for a blank line or comment. Never raises."""
        try:
            invocation = parse(line)
        except UsageError as exc:
            return Failure(_first_word(line), exc.code, exc.message, exc.hint)
        if invocation is None:
            return None
        return self.execute(invocation.name, invocation.args, invocation.options)

    def execute(self, name: str, args: list[str], options: dict[str, str | bool] | None = None) -> Result:
        """Run an already parsed command, turning every exception into a Failure."""
        self._options = options or {}  # the flags of the command being run (put/delete read them)
        try:
            if self.block is not None and name in txnblock.QUEUED:  # inside begin ... commit
                return txnblock.queue(self, name, args, self._options)
            result = self._handlers[name](args)
        except UsageError as exc:
            return Failure(name, exc.code, exc.message, exc.hint)
        except (Exception, KeyboardInterrupt) as exc:  # the command boundary: no traceback ever escapes
            if isinstance(exc, NoNodeAvailable):
                self.link.mark(False)
            others = [n for n in self.node_names if n != self.node.name]
            return explain(name, exc, self.node.name, self.node.address, others)
        if name in _NETWORK and not (name == "status" and args):  # status NODE asks another node
            self.link.mark(True)
            if self.cluster_default is None:  # started while the node was down: learn what we missed
                self.learn()
        return result

    def remember(self, key: str) -> bytes:
        self.keys.pop(key, None)
        self.keys[key] = None
        return key.encode()

    def _consistency_arg(self, args: list[str], index: int) -> str | None:
        return check_consistency(args[index]) if len(args) > index else self.consistency

    # ------------------------------------------------------------------------------------------ data

    def _put(self, args: list[str]) -> Result:
        key = self.remember(args[0])
        return self._write("put", key, args[1].encode(), self._consistency_arg(args, 2))

    def _cas(self, args: list[str]) -> Result:
        key = self.remember(args[0])
        try:
            self.client.put(key, args[2].encode(), "serial", if_value=args[1].encode(), trace=self.tracing)
        except ConditionFailed as exc:
            return _refused("cas", key, exc)
        return Written("cas", key, "serial", self.node.name)

    def _delete(self, args: list[str]) -> Result:
        key = self.remember(args[0])
        return self._write("delete", key, None, self._consistency_arg(args, 1))

    def _write(self, op: str, key: bytes, value: bytes | None, consistency: str | None) -> Result:
        """A put or delete with the context of ``--context``, else of this shell's last get of the key.

        With neither it is a blind write (it replaces what its coordinator holds); ``put --sibling``
        sends the empty context instead, so the value becomes a sibling of whatever is there."""
        token = self._options.get("--context")
        sibling = bool(self._options.get("--sibling"))
        if isinstance(token, str) and sibling:
            raise UsageError("usage", "--context and --sibling exclude each other", "put KEY VALUE --sibling")
        if isinstance(token, str):
            try:
                context, seen = context_bytes(token), 0
            except ZkvError as exc:
                raise UsageError(
                    "bad_context", exc.message, "pass the context -o json printed for a get"
                ) from None
        elif sibling:
            context, seen = None, 0
        else:
            context, seen = self.contexts.get(key, (None, 0))
        strict, loose = bool(self._options.get("--strict")), bool(self._options.get("--sloppy"))
        if strict and loose:
            raise UsageError("usage", "--strict and --sloppy exclude each other", "put KEY VALUE --strict")
        sloppy = False if strict else (True if loose else None)
        if_absent, if_value = bool(self._options.get("--if-absent")), self._options.get("--if-value")
        if consistency == "serial":
            context, seen = None, 0  # consensus decides what it supersedes: the current value
        elif if_absent or isinstance(if_value, str):
            raise UsageError(
                "usage", "--if-absent and --if-value need the serial level", "put KEY V serial --if-absent"
            )
        if consistency == "serial" and value is not None:
            ttl_text = self._options.get("--ttl")
            try:
                done = self.client.put(
                    key,
                    value,
                    consistency,
                    ttl=parse_ttl(ttl_text) if isinstance(ttl_text, str) else None,
                    trace=self.tracing,
                    if_absent=if_absent,
                    if_value=if_value.encode() if isinstance(if_value, str) else None,
                )
            except ConditionFailed as exc:
                return _refused(op, key, exc)
        elif value is None:
            done = self.client.delete(key, consistency, context=context, sloppy=sloppy, trace=self.tracing)
        else:
            ttl_text = self._options.get("--ttl")
            ttl = parse_ttl(ttl_text) if isinstance(ttl_text, str) else None
            done = self.client.put(
                key,
                value,
                consistency,
                context=context,
                concurrent=sibling,
                ttl=ttl,
                sloppy=sloppy,
                trace=self.tracing,
            )
        self.contexts.pop(key, None)  # used up: a second write with it would be concurrent with the first
        label = consistency or self.consistency_label
        return Written(
            op, key, label, self.node.name, context is not None, seen, done.quorum, done.hinted, done.trace
        )

    def _get(self, args: list[str]) -> Result:
        key = self.remember(args[0])
        consistency = self._consistency_arg(args, 1)
        result = self.client.get(key, consistency, trace=self.tracing)
        if result.context is not None:
            self.contexts[key] = (result.context, len(result.values))
        else:
            self.contexts.pop(key, None)
        return Read(
            "get",
            key,
            tuple(result.values),
            tuple(result.timestamps),
            consistency or self.consistency_label,
            result.context,
            result.trace,
        )

    # ------------------------------------------------------------------------------------------ nodes

    def _resolve(self, target: str) -> str:
        """The address of a node name (or an address as is); UsageError naming the known nodes."""
        if "://" in target or (":" in target and target not in self.known):
            try:
                return normalize_address(target)
            except BadAddress as exc:
                raise UsageError("bad_address", exc.message, "addresses look like 127.0.0.1:7101") from None
        if target not in self.known:
            self.learn()
        if target in self.known:
            return self.known[target]
        guess = nearest(target, self.node_names)
        did_you_mean = f"did you mean '{guess}'? " if guess else ""
        names = ", ".join(self.node_names) or "none known yet"
        raise UsageError("unknown_node", f"no node named {target!r}", f"{did_you_mean}nodes: {names}")

    def _switch(self, args: list[str]) -> Result:
        address = self._resolve(args[0])
        name = probe(self.client, address)
        if name is None:
            label = address if args[0] not in self.known else f"{args[0]} ({address})"
            return Failure(
                "switch",
                "node_down",
                f"{label} is not answering",
                f"staying on {self.node.name}; 'nodes' shows which nodes are up",
            )
        self.client.pin(address)
        self.node = Endpoint(name, address)
        self.known.setdefault(name, address)
        self.link.mark(True)
        self.learn()
        return Message("switch", f"now connected to {name} ({address})", {"node": name, "address": address})

    def _nodes(self, args: list[str]) -> Result:
        rows = tuple(
            NodeRow(n.name, n.address, n.status, n.heartbeat_age, n.vnodes, n.ownership, n.keys, n.disk)
            for n in self.client.nodes()
        )
        self.known.update({r.name: r.address for r in rows})
        return Nodes("nodes", self.node.name, rows)

    def _views(self, args: list[str]) -> Result:
        views = self.client.views()
        observers = sorted(views)
        members = sorted({m for v in views.values() if isinstance(v, dict) for m in v} | set(observers))
        width = max([len(m) for m in members] + [8]) + 2
        lines = ["node".ljust(width) + "".join(f"as {o} sees it".ljust(18) for o in observers)]
        data: dict[str, dict[str, str]] = {}
        for member in members:
            row = []
            for observer in observers:
                view = views[observer]
                cell = view[member].status if isinstance(view, dict) and member in view else "?"
                if not isinstance(view, dict):
                    cell = "(no answer)"
                row.append(cell.ljust(18))
                data.setdefault(observer, {})[member] = cell
            lines.append(member.ljust(width) + "".join(row))
        return Message("views", "\n".join(lines), {"views": data})

    def _decommission(self, args: list[str]) -> Result:
        address = self._resolve(args[0])
        try:
            reply = self.client.leave(address)
        except NoNodeAvailable:
            # the node to decommission is down, not the connected one: say so, and what to do instead
            return Failure(
                "decommission",
                "node_down",
                f"{args[0]} ({address}) is not answering, so it cannot hand its data over",
                "start it again, then retry: a node hands its data over itself before it leaves",
            )
        name = str(reply.get("node", args[0]))
        status = reply.get("status")
        return Message(
            "decommission",
            f"{name} is {status}: it hands its data to the remaining nodes, then stops "
            "('nodes' shows progress)",
            {"node": name, "status": status},
        )

    def _removenode(self, args: list[str]) -> Result:
        reply = self.client.removenode(self.node.address, args[0])
        name, by = args[0], reply.get("node", self.node.name)
        if reply.get("already"):
            return Message("removenode", f"{name} was removed already", {"node": name, "already": True})
        return Message(
            "removenode",
            f"{name} removed (decided by {by}): the others re-replicate its ranges "
            "('status NODE' shows progress)",
            {"node": name, "already": False},
        )

    def _status(self, args: list[str]) -> Result:
        if not args:
            return Status("status", self.node.name, self.client.status())
        address = self._resolve(args[0])
        try:
            stats = self.client.status(address)
        except NoNodeAvailable:
            return Failure(
                "status",
                "node_down",
                f"{args[0]} ({address}) is not answering",
                "'nodes' shows which nodes are up",
            )
        return Status("status", stats.node or args[0], stats)

    def _trace(self, args: list[str]) -> Result:
        if args:
            self.tracing = args[0] == "on"
        state = "on" if self.tracing else "off"
        text = f"tracing is {state}" + (
            ": put, get and delete show their latency and consistency receipt" if self.tracing else ""
        )
        return Message("trace", text, {"trace": self.tracing})

    def _consistency(self, args: list[str]) -> Result:
        if args:
            self.consistency = check_consistency(args[0])
            return Message(
                "consistency", f"consistency set to {self.consistency}", {"consistency": self.consistency}
            )
        if self.consistency is None:
            text = f"consistency is the cluster's default ({self.cluster_default or 'set in cluster.toml'})"
        else:
            text = f"consistency is {self.consistency}"
        return Message("consistency", text, {"consistency": self.consistency_label})

    # ------------------------------------------------------------------------------------------ keys

    def _where(self, args: list[str]) -> Result:
        key = self.remember(args[0])
        info = self.client.ring(refresh=True)
        up = {n.name for n in self.client.nodes() if n.status == "up"}
        preference = info.preference_list(key)
        placements = [Placement(n, info.addresses.get(n, "?"), "primary", n in up) for n in preference]
        placements += [
            Placement(p.node, info.addresses.get(p.node, "?"), "fallback", True)
            for p in info.ring.placements(key, lambda n: n in up)
            if p.role == "fallback"
        ]
        if self.node.name in preference:
            coordinator: str | None = self.node.name
        else:
            coordinator = next((n for n in preference if n in up), None)
        return Where("where", key, tuple(placements), coordinator, self.node.name)

    def _scan(self, args: list[str]) -> Result:
        """A page of keys; ``--next`` runs the page after this shell's last one, ``--cursor`` any page."""
        token = self._options.get("--cursor")
        if self._options.get("--next"):
            if args or token or self._options.get("--values"):
                raise UsageError("usage", "--next continues the last scan as it was", "scan --next")
            if self.next_scan is None:
                raise UsageError("no_scan", "there is no scan to continue", "scan [PREFIX] [LIMIT]")
            prefix, limit, consistency, values, last = self.next_scan
            cursor: str | None = last
        else:
            prefix = args[0].encode() if args else b""
            limit = int(args[1]) if len(args) > 1 else SCAN_PAGE
            consistency, values = self._consistency_arg(args, 2), bool(self._options.get("--values"))
            cursor = token if isinstance(token, str) else None
        page = self.client.scan(prefix, limit, cursor, consistency, values)
        self.next_scan = (prefix, limit, consistency, values, page.cursor) if page.cursor else None
        return Scanned(
            "scan",
            prefix,
            tuple(page.keys),
            tuple(e.values for e in page.entries) if values else None,
            page.cursor,
            consistency or self.consistency_label,
        )

    def _replicas(self, args: list[str]) -> Result:
        key = self.remember(args[0])
        states = self.client.replicas(key)
        return replica_view(key, states)


def _refused(command: str, key: bytes, exc: ConditionFailed) -> Failure:
    """A serial write whose condition did not hold: what the key holds, and nothing was written."""
    current = ", ".join(repr(v.decode(errors="replace")) for v in exc.values) or "no value"
    return Failure(
        command,
        "condition_failed",
        f"the condition does not hold: {key.decode(errors='replace')} holds {current}; nothing was written",
        "cas KEY CURRENT NEW to replace the current value",
    )


def _first_word(line: str) -> str:
    try:
        words = split(line)
    except UsageError:
        words = line.split()
    return words[0] if words else ""
