"""Plain and serial requests on one key (issue #22, "Mixing"): serial rounds read the state each acceptor
committed, not its ordinary copy, so versions no Paxos round ordered are invisible to serial requests.
docs/transactions.md, section 2, states the rules these tests pin."""

from __future__ import annotations

from pathlib import Path

import msgpack
from test_nodecore import FakeNet
from test_serial import cas, serial_get

from zkv.core.paxos import AcceptorState
from zkv.core.versions import EMPTY, state_to_wire, update
from zkv.storage.log import LogStore


def serial_put(net: FakeNet, node: str, key: bytes, value: bytes, **cond: object) -> dict:
    """A serial write, given time to back off when its first ballot meets a higher one."""
    rid = net.send(node, "put", key=key, value=value, cl="serial", **cond)
    net.advance(net.now + 1.0, step=0.01)
    reply = net.answer(rid)
    assert reply is not None
    return reply


def plain_everywhere(net: FakeNet, key: bytes, value: bytes, actor: str = "n9") -> None:
    """A plain version on every copy's ordinary store, as a write from a coordinator that holds no Paxos
    state for the key leaves it (it writes plainly: section 2), with no serial round in between."""
    current = net.stored("n1", key) or EMPTY
    plain, _ = update(current, actor, dict(current.clock), value, 50.0)
    for core in net.cores.values():
        core.replica.put_local(key, plain)
        core.store.flush()


def test_an_unordered_plain_write_on_every_copy_stays_invisible_to_serial_requests() -> None:
    """A key with committed serial state: a plain version that reached every copy without a Paxos round
    is what plain reads return, but every serial request answers from the committed state, through any
    majority; the next serial write supersedes the plain version (its coordinator's copy holds it)."""
    net = FakeNet()
    assert cas(net, "n1", b"k", b"old", if_absent=True)["ok"]
    plain_everywhere(net, b"k", b"plain")
    assert net.get("n2", b"k", cl="quorum")["values"] == [b"plain"]
    for cut in ("n3", "n2", "n1"):
        net.cut = {cut}
        coordinator = "n2" if cut == "n1" else "n1"
        assert serial_get(net, coordinator, b"k")["values"] == [b"old"], cut
    net.cut = set()
    refused = serial_put(net, "n2", b"k", b"x", if_value=b"plain")
    assert refused["error"] == "condition_failed" and refused["values"] == [b"old"]
    assert serial_put(net, "n3", b"k", b"new", if_value=b"old")["ok"]
    assert serial_get(net, "n1", b"k")["values"] == [b"new"]
    assert net.get("n1", b"k", cl="all")["values"] == [b"new"]  # superseded on every copy


def test_a_plain_write_through_a_coordinator_with_paxos_state_is_ordered_and_seen() -> None:
    """The coordinator holds Paxos state for the key: the plain write is run through Paxos (section 2's
    first rule), so it is committed, and every serial read sees it."""
    net = FakeNet()
    assert cas(net, "n1", b"k", b"old", if_absent=True)["ok"]
    assert net.put("n2", b"k", b"plain", cl="all")["ok"]
    for cut in ("n3", "n2"):
        net.cut = {cut}
        assert serial_get(net, "n1", b"k")["values"] == [b"plain"], cut
    net.cut = set()
    for core in net.cores.values():
        kept = AcceptorState.from_bytes(core.store.paxos_get(b"k"))
        assert kept.value is not None and kept.value.values == [b"plain"]


def test_the_first_serial_read_of_a_plain_key_commits_the_merged_copies() -> None:
    """No committed state yet: the first serial read starts from the promisers' merged ordinary copies,
    as before, and commits them as they are before it answers, so a plain version that later reaches
    one copy only does not flicker either."""
    net = FakeNet()
    plain_everywhere(net, b"k", b"first")
    assert serial_get(net, "n1", b"k")["values"] == [b"first"]
    for core in net.cores.values():
        kept = AcceptorState.from_bytes(core.store.paxos_get(b"k"))
        assert kept.committed > (0, "") and kept.value is not None and kept.value.values == [b"first"]
    current = net.stored("n3", b"k")
    later, _ = update(current, "n9", dict(current.clock), b"later", 60.0)
    net.cores["n3"].replica.put_local(b"k", later)  # on one copy only
    seen = []
    for cut in ("n3", "n2", "n3"):
        net.cut = {cut}
        seen.append(serial_get(net, "n1", b"k")["values"])
    assert seen == [[b"first"]] * 3, seen


def test_a_refused_condition_on_a_plain_key_is_answered_from_a_committed_state() -> None:
    net = FakeNet()
    plain_everywhere(net, b"k", b"v")
    refused = cas(net, "n1", b"k", b"w", if_value=b"other")
    assert refused["error"] == "condition_failed" and refused["values"] == [b"v"]
    assert AcceptorState.from_bytes(net.cores["n2"].store.paxos_get(b"k")).value is not None
    assert serial_put(net, "n2", b"k", b"w", if_value=b"v")["ok"]


def test_acceptor_states_keep_their_committed_state_and_old_ones_still_read() -> None:
    """The committed state is in the acceptor's record (stored once when it is the accepted proposal);
    a record written before it existed reads as "none kept", and a round over such records falls back
    to the ordinary copies (and, for a read, commits them)."""
    v1 = update(EMPTY, "a", {}, b"v1", 1.0)[0]
    v2 = update(v1, "a", dict(v1.clock), b"v2", 2.0)[0]
    same = AcceptorState((7, "a"), (7, "a"), v2, (7, "a"), v2)
    other = AcceptorState((9, "b"), (9, "b"), v2, (7, "a"), v1)
    for state in (same, other, AcceptorState()):
        assert AcceptorState.from_bytes(state.to_bytes()) == state
    assert len(same.to_bytes()) < len(other.to_bytes())
    old = msgpack.packb([7, "a", 7, "a", None, 7, "a"], use_bin_type=True)  # the 7-field format
    assert AcceptorState.from_bytes(old) == AcceptorState((7, "a"), (7, "a"), None, (7, "a"), None)
    # merging: the later commit with its state; the same commit keeps the state either side has
    assert other.merge(AcceptorState(committed=(8, "c"), value=v1)).committed == (8, "c")
    legacy = AcceptorState(committed=(7, "a"))
    assert legacy.merge(same).value == v2 and same.merge(legacy).value == v2
    assert same.committed_with((6, "z"), v1) is same  # a late, older commit changes nothing

    net = FakeNet()
    assert cas(net, "n1", b"k", b"old", if_absent=True)["ok"]
    for core in net.cores.values():  # as if written by the version before the state was kept
        kept = AcceptorState.from_bytes(core.store.paxos_get(b"k"))
        legacy_record = AcceptorState(kept.promised, kept.accepted, None, kept.committed)
        core.store.paxos_put(b"k", legacy_record.to_bytes())
        core.store.flush()
    assert serial_get(net, "n2", b"k")["values"] == [b"old"]
    for core in net.cores.values():  # the read committed the copies: each acceptor keeps a state again
        assert AcceptorState.from_bytes(core.store.paxos_get(b"k")).value is not None


def test_the_committed_state_is_durable_in_the_log_engine(tmp_path: Path) -> None:
    state = update(EMPTY, "a", {}, b"v", 1.0)[0]
    store = LogStore(tmp_path)
    store.paxos_put(b"k", AcceptorState((3, "a"), (3, "a"), state, (3, "a"), state).to_bytes())
    store.flush()
    store.close()
    reopened = LogStore(tmp_path)
    assert AcceptorState.from_bytes(reopened.paxos_get(b"k")).value == state
    reopened.close()


def test_acceptors_of_the_version_before_still_answer_serial_reads() -> None:
    """Acceptors that keep no committed state (nodes of the version before) send their ordinary copies:
    a read commits the merged copies once, then answers from them, as that version did (it does not
    commit again and again until its deadline)."""
    net = FakeNet()
    assert cas(net, "n1", b"k", b"old", if_absent=True)["ok"]
    for core in net.cores.values():
        acceptor, store = core.acceptor, core.store
        real = acceptor.prepare

        def old_prepare(key: bytes, ballot: tuple[int, str], real=real, store=store) -> dict:
            reply = real(key, ballot)
            if reply.get("kept"):
                del reply["kept"]
                reply["state"] = state_to_wire(store.get(key) or EMPTY)
            return reply

        acceptor.prepare = old_prepare  # type: ignore[method-assign]
    before = len(net.traffic("px_commit"))
    assert serial_get(net, "n2", b"k")["values"] == [b"old"]
    assert len(net.traffic("px_commit")) - before <= 3  # one commit to each replica, once


def test_a_streamed_acceptor_record_brings_the_committed_state_along() -> None:
    """A moving range's acceptor records travel whole (join, leave, removenode streams): the receiver
    absorbs the committed state and answers prepares with it, not with its ordinary copy."""
    from zkv.core.paxos import absorb

    net = FakeNet()
    assert cas(net, "n1", b"k", b"old", if_absent=True)["ok"]
    blob = net.cores["n1"].store.paxos_get(b"k")
    n3 = net.cores["n3"]
    n3.store.paxos_put(b"k", AcceptorState(committed=(1, "n0")).to_bytes())  # knew an older commit only
    plain_everywhere(net, b"k", b"plain")
    absorb(n3.store, b"k", blob)
    promise = n3.acceptor.prepare(b"k", (2**61, "n1"))
    assert promise["kept"] is True and promise["committed"] == list(AcceptorState.from_bytes(blob).committed)
    assert [s[3] for s in promise["state"][0]] == [b"old"]
