"""Every mistake a caller can make with the client is a ZkvError with a code, raised before any I/O."""

from __future__ import annotations

import base64

import pytest

from zkv import Client
from zkv.client import GetResult, context_bytes, normalize_address
from zkv.errors import BadAddress, BadArgument, BadType, ClientClosed, ZkvError


def test_host_port_is_accepted_and_gets_tcp() -> None:
    assert normalize_address("127.0.0.1:7101") == "tcp://127.0.0.1:7101"
    assert normalize_address(" tcp://127.0.0.1:7101 ") == "tcp://127.0.0.1:7101"
    with Client(["127.0.0.1:7101", "localhost:7201"]) as client:
        assert client.seeds == ["tcp://127.0.0.1:7101", "tcp://localhost:7201"]


@pytest.mark.parametrize(
    "address", ["", "127.0.0.1", "127.0.0.1:99999", "udp://1.2.3.4:5", "tcp://:7101", 7101]
)
def test_a_bad_address_is_bad_address(address: object) -> None:
    with pytest.raises(BadAddress) as err:
        Client([address])  # type: ignore[list-item]
    assert err.value.code == "bad_address" and isinstance(err.value, ValueError)


def test_no_address_at_all_is_bad_address() -> None:
    with pytest.raises(BadAddress):
        Client([])


def test_a_bad_level_is_bad_argument_in_the_constructor_and_per_call() -> None:
    with pytest.raises(BadArgument) as err:
        Client(["127.0.0.1:7101"], consistency="quorom")
    assert err.value.code == "bad_argument" and isinstance(err.value, ValueError)
    with Client(["127.0.0.1:7101"]) as client, pytest.raises(BadArgument):
        client.get("a", consistency="al")


def test_a_value_of_the_wrong_type_is_bad_type_and_still_a_type_error() -> None:
    with Client(["127.0.0.1:7101"]) as client:
        for call in (lambda: client.put("a", 5), lambda: client.put(5, "a"), lambda: client.get(None)):
            with pytest.raises(BadType) as err:
                call()  # type: ignore[arg-type]
            assert err.value.code == "bad_type" and isinstance(err.value, TypeError)
            assert isinstance(err.value, ZkvError)


def test_every_call_after_close_is_client_closed() -> None:
    client = Client(["127.0.0.1:7101"])
    client.close()
    for call in (lambda: client.get("a"), lambda: client.put("a", "b"), client.nodes, client.ring):
        with pytest.raises(ClientClosed) as err:
            call()
        assert err.value.code == "client_closed"


def test_contexts_may_be_bytes_results_or_the_shells_base64() -> None:
    raw = b"\x91\x92\xa2n1\x01"
    assert context_bytes(raw) == raw
    assert context_bytes(GetResult(b"k", [b"v"], raw)) == raw
    assert context_bytes(base64.b64encode(raw).decode()) == raw
    with pytest.raises(BadArgument):
        context_bytes("not base64!")
    with pytest.raises(BadType):
        context_bytes(12)
