"""Multi-key transactions through the fake network: commit, refusal, idempotent retries, limits,
conflicts (at most one commits), and recovery of intents a dead coordinator left (before and after the
commit point), with reads that never show half a transaction."""

from __future__ import annotations

from typing import Any

from test_nodecore import CLIENT, FakeNet, wire

from zkv.core.txn import MAX_TXN_KEYS, RECORD_PREFIX, Intent, find_intent
from zkv.core.versions import EMPTY, state_to_wire


def txn(
    net: FakeNet, node: str, ops: list[dict[str, Any]], token: str | None = None, wait: float = 1.0
) -> dict:
    fields: dict[str, Any] = {"ops": ops}
    if token is not None:
        fields["token"] = token
    rid = net.send(node, "txn", **fields)
    net.advance(net.now + wait, step=0.01)  # rounds that meet a higher ballot back off
    reply = net.answer(rid)
    assert reply is not None, f"txn {ops} got no answer"
    return reply


def put(key: bytes, value: bytes, **cond: Any) -> dict[str, Any]:
    return {"op": "put", "key": key, "value": value, **cond}


def check(key: bytes, **cond: Any) -> dict[str, Any]:
    return {"op": "check", "key": key, **cond}


def read(net: FakeNet, node: str, key: bytes, cl: str = "serial") -> list[bytes]:
    rid = net.send(node, "get", key=key, cl=cl)
    net.advance(net.now + 1.0, step=0.01)
    reply = net.answer(rid)
    assert reply is not None and reply["ok"], reply
    return reply["values"]


def seed(net: FakeNet, **values: bytes) -> None:
    for key, value in values.items():
        assert net.put("n1", key.encode(), value, cl="serial", if_absent=True)["ok"]


def test_the_issue_example_commits_every_key() -> None:
    net = FakeNet()
    seed(net, stock=b"9", **{"cart:alice": b"book"})
    reply = txn(
        net,
        "n2",
        [
            check(b"stock", if_value=b"9"),
            put(b"stock", b"8"),
            put(b"order:991", b"paid"),
            {"op": "delete", "key": b"cart:alice"},
        ],
        token="order-991",
    )
    assert reply["ok"] and reply["applied"], reply
    for node in ("n1", "n2", "n3"):
        assert read(net, node, b"stock") == [b"8"]
        assert read(net, node, b"order:991", "quorum") == [b"paid"]
        assert read(net, node, b"cart:alice", "quorum") == []
    # every intent resolved: the stores hold plain values, and the record may now expire
    for key in (b"stock", b"order:991", b"cart:alice"):
        assert find_intent(net.stored("n1", key), net.now) is None
    record = net.stored("n1", RECORD_PREFIX + b"order-991")
    assert record.siblings[0].expires is not None and record.siblings[0].expires > 590


def test_a_failed_condition_writes_nothing_and_names_the_key() -> None:
    net = FakeNet()
    seed(net, stock=b"9", b=b"1")
    reply = txn(net, "n1", [check(b"stock", if_value=b"10"), put(b"b", b"2"), put(b"c", b"3")], token="t1")
    assert reply["error"] == "condition_failed", reply
    assert reply["key"] == b"stock" and reply["values"] == [b"9"] and isinstance(reply["ctx"], bytes)
    assert read(net, "n2", b"b") == [b"1"] and read(net, "n3", b"c") == []
    assert read(net, "n2", b"stock", "quorum") == [b"9"]
    # the same token again: the same refusal, even though the condition would hold now
    assert net.put("n1", b"stock", b"10", cl="serial", if_value=b"9")["ok"]
    again = txn(net, "n3", [check(b"stock", if_value=b"10"), put(b"b", b"2")], token="t1")
    assert again["error"] == "condition_failed" and again["values"] == [b"9"]
    assert read(net, "n2", b"b") == [b"1"]


def test_a_retry_with_the_same_token_applies_at_most_once() -> None:
    net = FakeNet()
    seed(net, acct=b"100")
    first = txn(net, "n1", [put(b"acct", b"90", if_value=b"100"), put(b"log:1", b"-10")], token="pay-1")
    assert first["ok"] and first["applied"]
    assert net.put("n2", b"acct", b"50", cl="serial", if_value=b"90")["ok"]  # later work on the key
    retry = txn(net, "n3", [put(b"acct", b"90", if_value=b"100"), put(b"log:1", b"-10")], token="pay-1")
    assert retry["ok"] and retry["applied"] and retry["retry"] is True
    assert read(net, "n1", b"acct") == [b"50"]  # not written again


def test_limits_have_their_own_codes() -> None:
    net = FakeNet()
    many = [put(f"k{i}".encode(), b"v") for i in range(MAX_TXN_KEYS + 1)]
    assert net.request("n1", "txn", ops=many)["error"] == "txn_too_many_keys"
    big = [put(f"k{i}".encode(), b"x" * (1024 * 1024 - 10)) for i in range(5)]
    assert net.request("n1", "txn", ops=big)["error"] == "txn_too_large"
    assert net.request("n1", "txn", ops=[])["error"] == "invalid_request"
    assert (
        net.request("n1", "txn", ops=[check(b"a")])["error"] == "invalid_request"
    )  # a check needs a condition
    assert net.request("n1", "txn", ops=[put(b"a", b"1"), put(b"a", b"2")])["error"] == "invalid_request"
    reserved = net.request("n1", "txn", ops=[put(b"\x00zkv:txn:x", b"1")])
    assert reserved["error"] == "invalid_request"
    assert net.put("n1", b"\x00zkv:txn:x", b"1")["error"] == "invalid_request"  # plain writes neither
    assert net.put("n1", b"k", b"\x00zkv:intent\x00forged")["error"] == "invalid_request"


def test_two_concurrent_transactions_on_one_key_at_most_one_commits() -> None:
    net = FakeNet()
    seed(net, a=b"10", b=b"0", c=b"0")
    # both arrive in the same turn, before either has placed an intent anywhere
    for node, rid, other in (("n1", 901, b"b"), ("n2", 902, b"c")):
        ops = [put(b"a", b"5", if_value=b"10"), put(other, b"5", if_value=b"0")]
        net.cores[node].on_client(CLIENT, wire({"op": "txn", "id": rid, "ops": ops}), net.now)
    net.run()
    net.advance(net.now + 2.0, step=0.01)
    replies = [net.answer(901), net.answer(902)]
    applied = [r for r in replies if r is not None and r.get("ok")]
    assert len(applied) <= 1, replies
    for r in replies:
        assert r is not None and (r.get("ok") or r["error"] in ("txn_conflict", "condition_failed")), r
    total = sum(int(read(net, "n3", k)[0]) for k in (b"a", b"b", b"c"))
    assert total == 10  # either one transfer happened or none


def _dead_before_commit(net: FakeNet, node: str) -> None:
    """``node`` coordinates until its intents are placed, then dies (its commit point never comes)."""
    net.cores[node].txn._placed_all = lambda txn, now: None


def _dead_after_commit(net: FakeNet, node: str) -> None:
    """``node`` passes the commit point, then dies before it resolves a single intent."""
    core = net.cores[node]
    core.txn.resolve_all = lambda *args, **kw: None


def test_intents_of_a_coordinator_dead_before_its_commit_read_as_old_and_are_aborted_once_stale() -> None:
    net = FakeNet()
    seed(net, a=b"10", b=b"0")
    _dead_before_commit(net, "n1")
    rid = net.send("n1", "txn", ops=[put(b"a", b"5", if_value=b"10"), put(b"b", b"5", if_value=b"0")])
    net.advance(net.now + 0.3, step=0.01)
    assert isinstance(find_intent(net.stored("n2", b"a"), net.now), Intent)
    # undecided: every read answers the old values (the transaction has not taken effect)
    assert read(net, "n2", b"a") == [b"10"] and read(net, "n3", b"b", "quorum") == [b"0"]
    # a second transaction on the key gives way (no waiting, no deadlock) ...
    blocked = txn(net, "n2", [put(b"a", b"1", if_value=b"10")])
    assert blocked["error"] == "txn_conflict", blocked
    # ... and once the intent is stale (deadline 2 s + 1 s margin), whoever meets it aborts the attempt
    net.advance(net.now + 3.0, step=0.05)
    later = txn(net, "n3", [put(b"a", b"1", if_value=b"10")], wait=2.0)
    assert later["ok"] and later["applied"], later
    assert read(net, "n2", b"a") == [b"1"]
    assert read(net, "n2", b"b") == [b"0"]  # the dead attempt's other intent was resolved too
    assert find_intent(net.stored("n2", b"b") or EMPTY, net.now) is None
    assert net.answer(rid) is None or not net.answer(rid)["ok"]


def test_a_serial_write_waits_for_an_undecided_intent_and_gets_through_once_it_is_stale() -> None:
    net = FakeNet(request_timeout_s=5.0)
    seed(net, a=b"10")
    _dead_before_commit(net, "n1")
    net.send("n1", "txn", ops=[put(b"a", b"5", if_value=b"10"), put(b"z", b"1")])
    net.advance(net.now + 0.2, step=0.01)
    rid = net.send("n2", "put", key=b"a", value=b"11", cl="serial", if_value=b"10")
    net.advance(net.now + 0.5, step=0.01)
    assert net.answer(rid) is None  # waiting: the transaction may still commit
    net.advance(net.now + 6.0, step=0.05)
    # its own deadline came before the intent's (5 s + 1 s margin): it wrote nothing, and says so
    assert net.answer(rid)["error"] == "timeout", net.answer(rid)
    again = net.send("n2", "put", key=b"a", value=b"11", cl="serial", if_value=b"10")  # stale intent now
    net.advance(net.now + 1.0, step=0.01)
    assert net.answer(again)["ok"], net.answer(again)
    assert read(net, "n3", b"a") == [b"11"] and read(net, "n3", b"z") == []


def test_intents_of_a_coordinator_dead_after_its_commit_point_read_as_committed_on_every_key() -> None:
    net = FakeNet()
    seed(net, a=b"10", b=b"0")
    _dead_after_commit(net, "n1")
    reply = txn(net, "n1", [put(b"a", b"5", if_value=b"10"), put(b"b", b"5", if_value=b"0")], token="x")
    assert reply["ok"] and reply["applied"]
    assert find_intent(net.stored("n2", b"a"), net.now) is not None  # nobody resolved them
    # a plain read of one key shows the committed value (its record decides) ...
    assert read(net, "n3", b"a", "quorum") == [b"5"]
    # ... and the reader finished the dead coordinator's work on every key
    assert find_intent(net.stored("n2", b"b"), net.now) is None
    assert read(net, "n2", b"b", "one") == [b"5"]


def test_reading_an_undecided_intent_then_the_commit_never_shows_half() -> None:
    """A reader who saw the old value of one key before the commit point and reads the other key after
    it sees the new one: the commit point (the record) orders them, never a mix after it."""
    net = FakeNet()
    seed(net, a=b"10", b=b"0")
    reply = txn(net, "n2", [put(b"a", b"4", if_value=b"10"), put(b"b", b"6", if_value=b"0")])
    assert reply["ok"]
    assert read(net, "n1", b"a", "quorum") == [b"4"] and read(net, "n3", b"b", "one") == [b"6"]


def test_a_retry_refused_by_what_an_earlier_attempt_of_its_token_committed_answers_applied() -> None:
    """A retry whose record read came before an earlier attempt's commit point meets that attempt's
    intents, resolves them (committed) and then finds its own conditions false: the token was applied,
    so the answer is applied (the refusal is checked against the record before it is answered), never
    condition_failed (the simulator's bank workload: a retry with a token told "refused" after applied)."""
    net = FakeNet()
    seed(net, a=b"10", b=b"0")
    _dead_after_commit(net, "n1")
    ops = [put(b"a", b"5", if_value=b"10"), put(b"b", b"5", if_value=b"0")]
    assert txn(net, "n1", ops, token="x")["applied"]
    coordinator = net.cores["n2"].txn
    real = coordinator._record_read
    coordinator._record_read = lambda t, msg, now: real(t, {"ok": True, "state": state_to_wire(EMPTY)}, now)
    retry = txn(net, "n2", ops, token="x")
    assert retry["ok"] and retry["applied"] and retry["retry"], retry
    assert read(net, "n3", b"a") == [b"5"] and read(net, "n3", b"b") == [b"5"]


def test_a_serial_read_that_cannot_read_the_record_does_not_answer_the_old_value() -> None:
    """An intent whose record could not be read says nothing of the transaction (it may have committed):
    the read tries again instead of answering the old value (the simulator's bank workload: a serial
    read after a committed transfer answered the value from before it)."""
    net = FakeNet()
    seed(net, a=b"10", b=b"0")
    _dead_after_commit(net, "n1")
    assert txn(net, "n1", [put(b"a", b"5", if_value=b"10"), put(b"b", b"5", if_value=b"0")])["applied"]
    coordinator = net.cores["n2"].txn
    real, failed = coordinator._read, []

    def flaky(key: bytes, done: Any, now: float) -> None:
        if key.startswith(RECORD_PREFIX) and not failed:
            failed.append(key)
            done({"ok": False, "error": "unavailable", "message": "no majority"}, now)
            return
        real(key, done, now)

    coordinator._read = flaky
    assert read(net, "n2", b"a") == [b"5"]
    assert failed  # the first record read did fail


def test_an_attempt_whose_intent_round_is_overtaken_is_a_conflict_and_writes_nothing() -> None:
    """Under contention a placement's own round can be overtaken by another proposer's
    (``outcome_unknown`` for that step): the attempt never commits, so the client is told
    ``txn_conflict`` (retryable with its token), not ``unavailable``, and every intent is resolved."""
    net = FakeNet()
    seed(net, a=b"10", b=b"0")
    coordinator = net.cores["n1"].txn
    placed = coordinator._placed

    def overtaken(txn: Any, item: Any, intent: Any, msg: dict[str, Any], now: float) -> None:
        if item.key == b"a":
            msg = {"ok": False, "error": "outcome_unknown", "message": "superseded"}
        placed(txn, item, intent, msg, now)

    coordinator._placed = overtaken  # type: ignore[method-assign]
    reply = txn(net, "n1", [put(b"a", b"5", if_value=b"10"), put(b"b", b"5", if_value=b"0")])
    assert reply["error"] == "txn_conflict", reply
    net.advance(net.now + 0.5, step=0.01)
    assert read(net, "n2", b"a") == [b"10"] and read(net, "n3", b"b") == [b"0"]
    for node in ("n1", "n2", "n3"):
        for key in (b"a", b"b"):
            assert find_intent(net.stored(node, key) or EMPTY, net.now) is None, (node, key)
