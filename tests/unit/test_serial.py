"""Serial requests (per-key Paxos) through the fake network: conditions, serial reads that complete
in-progress proposals, contention, ordered plain writes, failures and unknown outcomes."""

from __future__ import annotations

from test_nodecore import FakeNet

from zkv.core.paxos import AcceptorState
from zkv.core.versions import EMPTY, merge, update


def serial_get(net: FakeNet, node: str, key: bytes) -> dict:
    """A serial read, given time to back off when its first ballot meets a higher one."""
    rid = net.send(node, "get", key=key, cl="serial")
    net.advance(net.now + 1.0, step=0.01)
    reply = net.answer(rid)
    assert reply is not None and reply["ok"], reply
    return reply


def cas(net: FakeNet, node: str, key: bytes, value: bytes, **cond) -> dict:
    return net.put(node, key, value, cl="serial", **cond)


def test_if_absent_lets_exactly_one_writer_win() -> None:
    net = FakeNet()
    first = cas(net, "n1", b"seat", b"alice", if_absent=True)
    assert first["ok"] is True and first["applied"] is True
    second = cas(net, "n2", b"seat", b"bob", if_absent=True)
    assert second["ok"] is False and second["error"] == "condition_failed"
    assert second["values"] == [b"alice"] and isinstance(second["ctx"], bytes)
    got = net.get("n3", b"seat", cl="serial")
    assert got["ok"] and got["values"] == [b"alice"]
    # committed to every replica's store, and each acceptor's state is on its store
    for name, core in net.cores.items():
        assert net.stored(name, b"seat").values == [b"alice"]
        assert AcceptorState.from_bytes(core.store.paxos_get(b"seat")).committed[0] > 0


def test_compare_and_set_chain() -> None:
    net = FakeNet()
    assert cas(net, "n1", b"stock", b"10", if_absent=True)["ok"]
    assert cas(net, "n2", b"stock", b"9", if_value=b"10")["ok"]
    refused = cas(net, "n3", b"stock", b"9", if_value=b"10")
    assert refused["error"] == "condition_failed" and refused["values"] == [b"9"]
    assert cas(net, "n1", b"stock", b"8", if_value=b"9")["ok"]
    assert net.get("n2", b"stock", cl="serial")["values"] == [b"8"]
    assert net.get("n2", b"stock", cl="quorum")["values"] == [b"8"]  # one version: no siblings


def test_serial_delete_and_if_absent_after_it() -> None:
    net = FakeNet()
    assert cas(net, "n1", b"k", b"v", if_absent=True)["ok"]
    gone = net.request("n2", "delete", key=b"k", cl="serial", if_value=b"v")
    assert gone["ok"], gone
    assert net.get("n3", b"k", cl="serial")["values"] == []
    assert cas(net, "n3", b"k", b"again", if_absent=True)["ok"]


def test_a_serial_read_completes_a_proposal_accepted_by_a_minority() -> None:
    """CASSANDRA-12126: a proposal accepted by one replica only must not stay invisible to serial reads
    and then appear later: the first serial read that sees it completes it."""
    net = FakeNet()
    assert cas(net, "n1", b"k", b"old", if_absent=True)["ok"]
    current = net.stored("n1", b"k")
    proposal, _ = update(current, "n2", dict(current.clock), b"new", 5.0)
    n2 = net.cores["n2"]
    assert n2.acceptor.propose(b"k", (10**6, "n2"), proposal) == {"op": "px_accepted"}
    n2.store.flush()
    # a plain read does not see it (it is not committed anywhere) ...
    assert net.get("n2", b"k", cl="quorum")["values"] == [b"old"]
    # ... a serial read does, through whichever majority it asks, and commits it
    net.cut.add("n3")
    rid = net.send("n1", "get", key=b"k", cl="serial")  # its first ballot is below n2's: it backs off
    net.advance(0.5, step=0.01)
    assert net.answer(rid)["values"] == [b"new"]
    net.cut.clear()
    assert serial_get(net, "n3", b"k")["values"] == [b"new"]
    assert net.stored("n1", b"k").values == [b"new"]


def test_contended_ballots_back_off_and_win() -> None:
    net = FakeNet()
    for name in ("n2", "n3"):  # another proposer promised a higher ballot on two replicas
        core = net.cores[name]
        assert core.acceptor.prepare(b"k", (500, "n9"))["op"] == "px_promise"
    rid = net.send("n1", "put", key=b"k", value=b"v", cl="serial", if_absent=True)
    assert net.answer(rid) is None  # nacked: backing off
    net.advance(1.0, step=0.01)
    reply = net.answer(rid)
    assert reply is not None and reply["ok"], reply
    assert AcceptorState.from_bytes(net.cores["n2"].store.paxos_get(b"k")).promised[0] > 500


def test_a_plain_write_to_a_serial_key_is_ordered_through_paxos() -> None:
    net = FakeNet()
    assert cas(net, "n1", b"k", b"1", if_absent=True)["ok"]
    before = len(net.traffic("px_prepare"))
    assert net.put("n2", b"k", b"plain", cl="quorum")["ok"]
    assert len(net.traffic("px_prepare")) > before  # it went through a Paxos round
    assert cas(net, "n3", b"k", b"2", if_value=b"plain")["ok"]
    assert net.get("n1", b"k", cl="quorum")["values"] == [b"2"]


def test_too_few_replicas_is_unavailable_and_nothing_was_proposed() -> None:
    net = FakeNet(failure_timeout_s=1.0)
    net.cut.update({"n2", "n3"})
    net.advance(5.0)
    reply = cas(net, "n1", b"k", b"v", if_absent=True)
    assert reply["error"] == "unavailable" and reply["required"] == 2
    assert not net.traffic("px_propose")


def test_lost_accepts_end_as_outcome_unknown_and_a_serial_read_tells() -> None:
    net = FakeNet(failure_timeout_s=60.0)
    assert cas(net, "n1", b"k", b"1", if_absent=True)["ok"]
    for name in ("n2", "n3"):  # they accept (durably) but every answer is lost
        core = net.cores[name]

        def accept_silently(peer, msg, now, core=core):
            core.acceptor.on_propose(peer, msg, now)
            core.take_effects()

        core.peer_ops["px_propose"] = accept_silently
    rid = net.send("n1", "put", key=b"k", value=b"2", cl="serial", if_value=b"1")
    net.advance(3.0, step=0.1)
    reply = net.answer(rid)
    assert reply is not None and reply["error"] == "outcome_unknown", reply
    for name in ("n2", "n3"):
        net.cores[name].peer_ops["px_propose"] = net.cores[name].acceptor.on_propose
    # it was chosen (a majority accepted it): the next serial read completes it and tells
    assert serial_get(net, "n2", b"k")["values"] == [b"2"]


def test_conditions_need_serial_and_sloppy_never_counts() -> None:
    net = FakeNet()
    bad = net.put("n1", b"k", b"v", cl="quorum", if_absent=True)
    assert bad["error"] == "invalid_request" and "serial" in bad["message"]
    bad = net.put("n1", b"k", b"v", cl="serial", if_absent=True, if_value=b"x")
    assert bad["error"] == "invalid_request"
    bad = net.put("n1", b"k", b"v", cl="serial", sloppy=True)
    assert bad["error"] == "invalid_request"


def test_a_non_replica_forwards_serial_requests() -> None:
    net = FakeNet(nodes=5)
    ring = net.cores["n1"].ring
    key = next(k for k in (b"k%d" % i for i in range(100)) if "n1" not in ring.preference_list(k))
    assert cas(net, "n1", key, b"v", if_absent=True)["ok"]
    assert net.get("n1", key, cl="serial")["values"] == [b"v"]
    assert net.stored("n1", key) is None and net.cores["n1"].store.paxos_get(key) is None
    assert EMPTY.values == []


def test_two_equal_compare_and_sets_in_one_turn_are_told_apart() -> None:
    """Two clients CAS 5 -> 6 at once through one coordinator, in one turn: the same value, the same
    state, the same dot. Exactly one may be applied; the other must not take the winner's version for
    its own (each proposal gets a timestamp of its own)."""
    from test_nodecore import CLIENT, wire

    net = FakeNet()
    assert cas(net, "n1", b"c", b"5", if_absent=True)["ok"]
    core = net.cores["n1"]
    for rid in (101, 102):
        msg = {"op": "put", "id": rid, "key": b"c", "value": b"6", "cl": "serial", "if_value": b"5"}
        core.on_client(CLIENT, wire(msg), net.now)
    net.run()
    net.advance(net.now + 1.0, step=0.01)
    answers = [net.answer(rid) for rid in (101, 102)]
    assert all(a is not None for a in answers)
    assert sorted(a.get("error", "applied") for a in answers) == ["applied", "condition_failed"], answers


def test_a_duplicated_forwarded_serial_write_is_run_once() -> None:
    """A forward that a duplicating link delivers twice must not apply its write twice: the copy, run
    after a later compare-and-set, would put the older value back (the simulator's seeds 388 and 459
    with joins and leaves)."""
    net = FakeNet(nodes=5)
    ring = net.cores["n1"].ring
    key = next(k for k in (b"k%d" % i for i in range(100)) if "n1" not in ring.preference_list(k))
    assert cas(net, "n1", key, b"x")["ok"]  # forwarded to a replica: an unconditional serial write
    (src, coordinator, fwd), *_ = net.traffic("fwd")
    assert cas(net, "n1", key, b"y", if_value=b"x")["ok"]
    copies = net.cores[coordinator].serial.copies_dropped
    net.cores[coordinator].on_peer(src, fwd, net.now)  # the link delivers the forward once more
    net.run()
    net.advance(net.now + 1.0, step=0.01)
    assert net.cores[coordinator].serial.copies_dropped == copies + 1
    assert serial_get(net, "n2", key)["values"] == [b"y"]


def test_a_serial_write_mints_its_dot_above_every_counter_the_node_minted() -> None:
    """The dot floor of plain writes (versions.update's ``floor``): after a purge, a key's old dots are
    gone from the replicas that purged it, while one that still holds the retired tombstone has seen
    them; a serial write counting from the purged state alone would reuse a dot and be dropped there."""
    net = FakeNet()
    assert net.put("n1", b"k", b"v")["ok"]
    assert net.request("n1", "delete", key=b"k")["ok"]
    tombstone = net.stored("n3", b"k")
    assert tombstone is not None and tombstone.clock == {"n1": 2}
    for name in ("n1", "n2"):  # purged there; n3 still holds the retired tombstone and is cut off
        net.cores[name].store.delete(b"k")
    net.cut.add("n3")
    assert cas(net, "n1", b"k", b"again", if_absent=True)["applied"] is True
    written = net.stored("n1", b"k")
    assert written is not None and written.clock["n1"] > 2
    assert net.cores["n1"].state.minted == written.clock["n1"]
    # n3 takes the new version over its tombstone (a reused dot 1 would be covered by its clock)
    assert merge(tombstone, written).values == [b"again"]
    # and the next plain write of n1 counts on above the serial one
    assert net.put("n1", b"other", b"x")["ok"]
    other = net.stored("n1", b"other")
    assert other is not None and other.clock["n1"] == written.clock["n1"] + 1


def test_an_acceptor_that_sees_other_replicas_for_the_key_refuses_the_round() -> None:
    """A proposer with a stale ring (restarted with the cluster file's members, or not yet told of a
    join) must not be able to decide with a majority of replicas that see the new ring."""
    from zkv.core.paxos import lists_to_wire

    net = FakeNet()
    core = net.cores["n2"]
    stale = [["n1", "n2", "n9"]]
    msg = {"op": "px_prepare", "id": 7, "key": b"k", "ballot": [10, "n1"], "lists": stale}
    core.on_peer("n1", msg, net.now)
    replies = [m for m in core.state.unflushed_acks if m.get("id") == 7]
    assert replies and replies[-1]["op"] == "rerr" and replies[-1]["error"] == "ring_mismatch"
    assert core.store.paxos_get(b"k") is None  # nothing promised
    assert core.acceptor.ring_mismatches == 1
    # the same lists as its own: promised
    mine = lists_to_wire(((*core.ring.preference_list(b"k"),),))
    core.on_peer("n1", {**msg, "id": 8, "lists": mine}, net.now)
    assert [m for m in core.state.unflushed_acks if m.get("id") == 8][-1]["op"] == "px_promise"


def test_acceptor_states_merge_and_ride_with_a_moving_range() -> None:
    """A joining node streams a key's acceptor state with its state; a key with only acceptor state (a
    write accepted but not committed) moves too; a source that does not know the joiner says wait."""
    import itertools

    from zkv.core.paxos import AcceptorState, absorb
    from zkv.core.ring import Ring, node_tokens
    from zkv.core.transfer import JoinStream, LeaveStream, StreamSource, paxos_items
    from zkv.storage.memory import MemoryStore

    old = AcceptorState((5, "a"), (5, "a"), update(EMPTY, "a", {}, b"v5", 1.0)[0], (3, "a"))
    new = AcceptorState((9, "b"), (4, "b"), None, (4, "b"))
    merged = old.merge(new)
    assert merged.promised == (9, "b") and merged.accepted == (5, "a") and merged.committed == (4, "b")
    assert merged.proposal == old.proposal

    names = ("n1", "n2", "n3")
    ring = Ring({n: node_tokens(n, 8) for n in names}, 3)
    future = Ring({n: node_tokens(n, 8) for n in (*names, "n4")}, 3)
    key = next(k for k in (b"k%d" % i for i in range(200)) if "n4" in future.preference_list(k))
    source = MemoryStore()
    source.paxos_put(key, old.to_bytes())  # accepted, never committed: no key state
    src = StreamSource()
    waiting = src.on_stream(
        "n4", {"id": 1, "after": None}, source.paxos_keys, source.get, ring, source.paxos_get
    )
    assert waiting["wait"] is True and not waiting["items"]
    stream = JoinStream(["n1"], 1.0)
    stream.in_flight[1] = ("n1", 1.0)
    assert stream.on_stream_ok("n1", waiting) == [] and "n1" not in stream.done
    reply = src.on_stream(
        "n4", {"id": 2, "after": None}, source.paxos_keys, source.get, future, source.paxos_get
    )
    assert reply["next"] is None and paxos_items(reply) == [(key, old.to_bytes())]
    joiner = MemoryStore()
    joiner.paxos_put(key, new.to_bytes())
    for k, blob in paxos_items(reply):
        absorb(joiner, k, blob)
    assert AcceptorState.from_bytes(joiner.paxos_get(key)) == merged
    # a leaving node pushes it to the key's future owners
    leave = LeaveStream([key], 1.0)
    pushes = leave.pushes(0.0, future, ring, source.get, itertools.count(1), source.paxos_get)
    assert {t for t, _ in pushes} == set(ring.preference_list(key))
    assert all(paxos_items(m) == [(key, old.to_bytes())] for _, m in pushes)


def test_a_plain_version_on_one_copy_does_not_flicker_in_serial_reads() -> None:
    net = FakeNet()
    assert cas(net, "n1", b"k", b"old", if_absent=True)["ok"]
    current = net.stored("n3", b"k")
    plain, _ = update(current, "n3", dict(current.clock), b"plain", 5.0)
    net.cores["n3"].replica.put_local(b"k", plain)  # n3 coordinated a plain write: its own copy first
    net.cores["n3"].store.flush()
    seen = []
    for cut in ("n3", "n2", "n3"):  # three serial reads: majorities {n1,n2}, {n1,n3}, {n1,n2}
        net.cut = {cut}
        seen.append(serial_get(net, "n1", b"k")["values"])
    net.cut = set()
    assert seen == [[b"old"]] * 3, seen  # before acceptors kept their commit: [old], [plain], [old]
