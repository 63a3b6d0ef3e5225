"""``409 txn_conflict``: what POST /v1/txn answers when another transaction holds a key for longer than
the gateway's client keeps retrying. A held key outlasting the retries cannot be set up on real nodes
without a clock or crash hook in them, so the gateway runs in this process over real HTTP, with the
client's transport answering every call as a node whose key another transaction holds
(``txn_conflict``, raised by the client as from the wire), and half a second of patience. The real
cluster tests (test_http_txn.py) cover every other answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

import zkv.http.txn as txn_route
from zkv.client import Client
from zkv.client.txn import Transaction
from zkv.errors import TxnConflict
from zkv.http.app import make_app
from zkv.http.state import GatewaySettings

JSON = {"Content-Type": "application/json"}
BODY = {"token": "order-7", "puts": [{"key": "seat", "value": "bob"}]}


class Held:
    """Every call of a transaction meets another transaction's intent, as a node answers it."""

    calls: list[bytes] = []


def held_client() -> Client:
    client = Client("tcp://127.0.0.1:9", timeout=1.0)

    def call(msg: dict[str, Any], candidates: list[Any]) -> dict[str, Any]:
        Held.calls.append(msg["token"])
        raise TxnConflict("another transaction holds one of the keys; nothing was written")

    client.transport.call = call  # type: ignore[method-assign]
    client.transport.candidates = lambda key: ["tcp://127.0.0.1:9"]  # type: ignore[method-assign,assignment,misc]
    return client


class QuickTransaction(Transaction):
    """The gateway's transaction with half a second of patience (the default is five)."""

    def __init__(self, client: Client, token: str | None = None) -> None:
        super().__init__(client, token, patience=0.5)


async def _post_twice() -> list[tuple[int, Any]]:
    app = make_app(GatewaySettings(None, None, None), held_client)
    async with TestClient(TestServer(app)) as http:
        answers = []
        for body in (BODY, {"checks": [{"key": "seat", "absent": True}]}):
            reply = await http.post(
                "/v1/txn", data=json.dumps(body), headers={"Content-Type": "application/json"}
            )
            answers.append((reply.status, await reply.json()))
        health = await http.get("/openapi.json")  # the gateway keeps serving
        answers.append((health.status, None))
        return answers


def test_a_conflict_outlasting_the_retries_is_409_txn_conflict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Held.calls = []
    monkeypatch.setattr(txn_route, "Transaction", QuickTransaction)
    (status, body), (status2, body2), (served, _) = asyncio.run(_post_twice())
    assert status == 409 and body["error"] == "txn_conflict", body
    assert "nothing was written" in body["message"], body
    assert status2 == 409 and body2["error"] == "txn_conflict", body2
    assert Held.calls.count("order-7") >= 2, Held.calls  # retried with back-off, the same token each time
    assert served == 200
