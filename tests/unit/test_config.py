"""cluster.toml loading: the shipped file is valid, every mistake is one line naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from zkv.config import (
    ENGINES,
    FSYNC_POLICIES,
    LEVELS,
    ClusterConfig,
    NodeSpec,
    load_config,
    parse_config,
    quorum_size,
)
from zkv.errors import ConfigError, ZkvError

REPO_ROOT = Path(__file__).resolve().parents[2]


def _nodes(count: int = 3) -> list[dict[str, str]]:
    """Node tables as raw TOML literals, so a test can put any (wrong) value in."""
    return [
        {
            "name": f'"n{i}"',
            "address": f'"tcp://127.0.0.1:7{i}01"',
            "gossip": f'"tcp://127.0.0.1:7{i}02"',
        }
        for i in range(1, count + 1)
    ]


def _render(cluster: dict[str, str] | None, nodes: list[dict[str, str]], extra: str = "") -> str:
    lines: list[str] = []
    if cluster is not None:
        lines.append("[cluster]")
        lines += [f"{key} = {literal}" for key, literal in cluster.items()]
    for node in nodes:
        lines.append("[[node]]")
        lines += [f"{key} = {literal}" for key, literal in node.items()]
    return "\n".join(lines) + "\n" + extra


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write cluster.toml into tmp_path and chdir there, so messages start with plain 'cluster.toml'."""
    monkeypatch.chdir(tmp_path)

    def _write(text: str) -> Path:
        (tmp_path / "cluster.toml").write_text(text, encoding="utf-8")
        return Path("cluster.toml")

    return _write


def _error(write, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(text))
    message = str(info.value)
    assert "\n" not in message, "a config error must be one line"
    return message


# --- the shipped file ---------------------------------------------------------------------------------


def test_root_cluster_toml_is_a_ready_three_node_cluster() -> None:
    config = load_config(REPO_ROOT / "cluster.toml")
    assert config.name == "local"
    assert config.node_names == ("n1", "n2", "n3")
    assert config.replication_factor == 3
    assert config.vnodes == 64
    assert (config.read_consistency, config.write_consistency) == ("quorum", "quorum")
    assert config.request_timeout_ms == 2000
    assert (config.engine, config.fsync) == ("log", "always")
    assert config.path == REPO_ROOT / "cluster.toml"
    for i, node in enumerate(config.nodes, start=1):
        assert node.address == f"tcp://127.0.0.1:7{i}01"
        assert node.gossip == f"tcp://127.0.0.1:7{i}02"
        assert node.data_dir == REPO_ROOT / "data" / f"n{i}"
        assert node.data_dir.is_absolute()


def test_defaults_when_cluster_table_is_absent(write) -> None:
    config = load_config(write(_render(None, _nodes(3))))
    assert config.name == "zkv"
    assert config == ClusterConfig(name="zkv", nodes=config.nodes, path=config.path)
    assert config.path is not None and config.path.is_absolute()


def test_every_cluster_key_is_read(write) -> None:
    cluster = {
        "name": '"prod-eu.1"',
        "replication_factor": "2",
        "vnodes": "4096",
        "read_consistency": '"one"',
        "write_consistency": '"all"',
        "request_timeout_ms": "1500",
        "heartbeat_interval_ms": "100",
        "failure_timeout_ms": "900",
        "engine": '"log"',
        "fsync": '"interval"',
        "fsync_interval_ms": "50",
        "max_key_bytes": "256",
        "max_value_bytes": "4096",
        "max_siblings": "10",
    }
    config = load_config(write(_render(cluster, _nodes(2))))
    assert (config.name, config.replication_factor, config.vnodes) == ("prod-eu.1", 2, 4096)
    assert (config.read_consistency, config.write_consistency) == ("one", "all")
    assert (config.request_timeout_ms, config.heartbeat_interval_ms, config.failure_timeout_ms) == (
        1500,
        100,
        900,
    )
    assert (config.engine, config.fsync, config.fsync_interval_ms) == ("log", "interval", 50)
    assert (config.max_key_bytes, config.max_value_bytes, config.max_siblings) == (256, 4096, 10)


def test_read_fan_out_settings(write) -> None:
    default = load_config(write(_render(None, _nodes())))
    assert (default.read_repair_chance, default.speculative_retry_ms) == (0.1, 20)
    cluster = {"read_repair_chance": "1", "speculative_retry_ms": "5"}
    config = load_config(write(_render(cluster, _nodes())))
    assert (config.read_repair_chance, config.speculative_retry_ms) == (1.0, 5)


@pytest.mark.parametrize("key", ["read_consistency", "write_consistency"])
@pytest.mark.parametrize("level", LEVELS)
def test_every_level_is_accepted(write, key: str, level: str) -> None:
    assert getattr(load_config(write(_render({key: f'"{level}"'}, _nodes()))), key) == level


@pytest.mark.parametrize(
    ("key", "value"), [("engine", e) for e in ENGINES] + [("fsync", f) for f in FSYNC_POLICIES]
)
def test_every_engine_and_fsync_policy_is_accepted(write, key: str, value: str) -> None:
    assert getattr(load_config(write(_render({key: f'"{value}"'}, _nodes()))), key) == value


def test_config_is_immutable(write) -> None:
    config = load_config(write(_render(None, _nodes())))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.vnodes = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.nodes[0].name = "x"  # type: ignore[misc]


# --- node lookup ----------------------------------------------------------------------------------------


def test_node_lookup(write) -> None:
    config = load_config(write(_render(None, _nodes())))
    assert config.node("n2") == config.nodes[1]
    assert isinstance(config.node("n2"), NodeSpec)
    with pytest.raises(ConfigError) as info:
        config.node("n9")
    assert str(info.value) == "no node named 'n9' in cluster.toml (nodes: n1, n2, n3)"


# --- file-level errors ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("cluster.toml")
    assert str(info.value) == "cannot read cluster.toml: No such file or directory"


def test_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read .*: Is a directory$"):
        load_config(tmp_path)


def test_malformed_toml(write) -> None:
    message = _error(write, "[cluster\nname = 1\n")
    assert message.startswith("cluster.toml is not valid TOML: ")


def test_duplicate_key_is_malformed_toml(write) -> None:
    assert "is not valid TOML" in _error(write, "[cluster]\nvnodes = 1\nvnodes = 2\n")


def test_non_utf8_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cluster.toml").write_bytes(b'[cluster]\nname = "\xff"\n')
    with pytest.raises(ConfigError, match=r"^cluster\.toml is not valid TOML: not UTF-8"):
        load_config("cluster.toml")


def test_message_names_the_file_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "my.toml").write_text(_render({"vnodes": "0"}, _nodes()))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^conf/my\.toml: \[cluster\] vnodes"):
        load_config("conf/my.toml")


def test_error_is_a_zkv_error(write) -> None:
    with pytest.raises(ZkvError) as info:
        load_config(write("[cluster\n"))
    assert info.value.code == "config_error"


# --- [cluster] validation -------------------------------------------------------------------------------

CLUSTER_ERRORS = [
    (
        "read_consistency",
        '"qourum"',
        "[cluster] read_consistency = 'qourum' is not a consistency level (one, quorum, all)",
    ),
    ("write_consistency", '"ALL"', "[cluster] write_consistency = 'ALL' is not a consistency level"),
    ("read_consistency", "2", "[cluster] read_consistency = 2 is not a consistency level"),
    ("engine", '"rocksdb"', "[cluster] engine = 'rocksdb' is not a storage engine (memory, log, redis)"),
    (
        "fsync",
        '"sometimes"',
        "[cluster] fsync = 'sometimes' is not an fsync policy (always, interval, never)",
    ),
    ("fsync", "true", "[cluster] fsync = true is not an fsync policy"),
    ("vnodes", "true", "[cluster] vnodes = true is not an integer"),
    ("vnodes", '"64"', "[cluster] vnodes = '64' is not an integer"),
    ("vnodes", "0", "[cluster] vnodes = 0 must be positive"),
    ("vnodes", "4097", "[cluster] vnodes = 4097 is out of range (1..4096)"),
    ("replication_factor", "0", "[cluster] replication_factor = 0 must be positive"),
    ("replication_factor", "-1", "[cluster] replication_factor = -1 must be positive"),
    ("replication_factor", "2.0", "[cluster] replication_factor = 2.0 is not an integer"),
    ("replication_factor", "false", "[cluster] replication_factor = false is not an integer"),
    ("request_timeout_ms", "0", "[cluster] request_timeout_ms = 0 must be positive"),
    ("request_timeout_ms", "-5", "[cluster] request_timeout_ms = -5 must be positive"),
    ("heartbeat_interval_ms", "0", "[cluster] heartbeat_interval_ms = 0 must be positive"),
    ("failure_timeout_ms", "1.5", "[cluster] failure_timeout_ms = 1.5 is not an integer"),
    ("fsync_interval_ms", "0", "[cluster] fsync_interval_ms = 0 must be positive"),
    ("max_key_bytes", "0", "[cluster] max_key_bytes = 0 must be positive"),
    ("max_value_bytes", '"1MB"', "[cluster] max_value_bytes = '1MB' is not an integer"),
    ("max_siblings", "-1", "[cluster] max_siblings = -1 must be positive"),
    ("name", '""', "[cluster] name = '' must be 1-64 characters"),
    ("name", '"my cluster"', "[cluster] name = 'my cluster' must be 1-64 characters"),
    ("name", "7", "[cluster] name = 7 must be 1-64 characters"),
    ("read_repair_chance", "1.5", "[cluster] read_repair_chance = 1.5 must be a number in [0, 1]"),
    ("read_repair_chance", "-0.1", "[cluster] read_repair_chance = -0.1 must be a number in [0, 1]"),
    ("read_repair_chance", "true", "[cluster] read_repair_chance = true must be a number in [0, 1]"),
    ("speculative_retry_ms", "0", "[cluster] speculative_retry_ms = 0 must be positive"),
]


@pytest.mark.parametrize(
    ("key", "literal", "expected"), CLUSTER_ERRORS, ids=[f"{k}={v}" for k, v, _ in CLUSTER_ERRORS]
)
def test_cluster_value_errors(write, key: str, literal: str, expected: str) -> None:
    message = _error(write, _render({key: literal}, _nodes()))
    assert message.startswith(f"cluster.toml: {expected}")
    assert key in message


def test_replication_factor_larger_than_cluster(write) -> None:
    message = _error(write, _render({"replication_factor": "5"}, _nodes(3)))
    assert message == "cluster.toml: [cluster] replication_factor = 5 but only 3 nodes are defined"


def test_default_replication_factor_needs_three_nodes(write) -> None:
    message = _error(write, _render(None, _nodes(1)))
    assert message == "cluster.toml: [cluster] replication_factor = 3 but only 1 node is defined"


def test_single_node_cluster_with_n1(write) -> None:
    config = load_config(write(_render({"replication_factor": "1"}, _nodes(1))))
    assert config.node_names == ("n1",)


@pytest.mark.parametrize(("heartbeat", "failure"), [(3000, 3000), (5000, 3000)])
def test_heartbeat_must_be_less_than_failure_timeout(write, heartbeat: int, failure: int) -> None:
    cluster = {"heartbeat_interval_ms": str(heartbeat), "failure_timeout_ms": str(failure)}
    message = _error(write, _render(cluster, _nodes()))
    assert message == (
        f"cluster.toml: [cluster] heartbeat_interval_ms = {heartbeat} must be less than "
        f"failure_timeout_ms = {failure}"
    )


def test_unknown_cluster_key_suggests_the_right_one(write) -> None:
    message = _error(write, _render({"replicaton_factor": "3"}, _nodes()))
    assert message == (
        "cluster.toml: [cluster] replicaton_factor is not a known key (did you mean replication_factor?)"
    )


def test_unknown_cluster_key_without_near_match_lists_known_keys(write) -> None:
    message = _error(write, _render({"zzz": "3"}, _nodes()))
    assert message.startswith("cluster.toml: [cluster] zzz is not a known key (known: name, ")


# --- top-level tables -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("[clutser]\nname = 'x'\n", "cluster.toml: unknown table [clutser] (did you mean [cluster]?)"),
        ("[storage]\nengine = 'log'\n", "cluster.toml: unknown table [storage]"),
        ("", None),
    ],
)
def test_unknown_top_level_table(write, extra: str, expected: str | None) -> None:
    text = _render(None, _nodes(), extra)
    if expected is None:
        load_config(write(text))
    else:
        assert _error(write, text).startswith(expected)


def test_unknown_top_level_key(write) -> None:
    assert "unknown table [vnodes]" in _error(write, "vnodes = 3\n" + _render(None, _nodes()))


def test_security_table_resolves_key_paths_against_the_file(write, tmp_path: Path) -> None:
    nodes = _nodes()
    for node in nodes:
        name = node["name"].strip('"')
        node["public_key"] = f'"keys/{name}.key"'
        node["secret_key"] = f'"keys/{name}.key_secret"'
    extra = '[security]\ncurve = true\nclient_keys = "keys/clients"\nadmin_keys = "/etc/zkv/admins"\n'
    config = load_config(write(_render(None, nodes, extra)))
    assert config.security.curve is True
    assert config.security.client_keys == tmp_path / "keys" / "clients"
    assert config.security.admin_keys == Path("/etc/zkv/admins")
    assert config.security.node_keys is None
    assert config.node("n2").public_key == tmp_path / "keys" / "n2.key"
    assert config.node("n2").secret_key == tmp_path / "keys" / "n2.key_secret"


def test_security_is_off_by_default(write) -> None:
    config = load_config(write(_render(None, _nodes())))
    assert config.security.curve is False
    assert config.node("n1").public_key is None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('[security]\nwhatever = "x"\n', "cluster.toml: [security] whatever is not a known key"),
        ('[security]\ncurve = "yes"\n', "cluster.toml: [security] curve = 'yes' must be true or false"),
        ("[security]\nclient_keys = 3\n", "cluster.toml: [security] client_keys = 3 must be a non-empty"),
        (
            "[security]\ncurve = true\n",
            "cluster.toml: [[node]] #1 (n1) has no public_key, and [security] curve = true",
        ),
    ],
)
def test_bad_security_settings(write, extra: str, expected: str) -> None:
    assert _error(write, _render(None, _nodes(), extra)).startswith(expected)


def test_message_limit_must_fit_the_largest_put(write) -> None:
    cluster = {"max_value_bytes": "1048576", "max_message_bytes": "67108864"}
    message = _error(write, _render(cluster, _nodes()))
    assert "max_message_bytes = 67108864 must be at least 104877312" in message


def test_security_must_be_a_table(write) -> None:
    message = _error(write, "security = 1\n" + _render(None, _nodes()))
    assert message == "cluster.toml: security must be a table ([security])"


def test_cluster_must_be_a_table(write) -> None:
    message = _error(write, "cluster = 5\n" + _render(None, _nodes()))
    assert message == "cluster.toml: cluster must be a table ([cluster])"


# --- [[node]] validation --------------------------------------------------------------------------------


def test_no_nodes(write) -> None:
    message = _error(write, '[cluster]\nname = "x"\n')
    assert message == "cluster.toml: no [[node]] tables: define at least one node"


def test_node_as_single_table(write) -> None:
    text = '[node]\nname = "n1"\naddress = "tcp://127.0.0.1:1"\ngossip = "tcp://127.0.0.1:2"\n'
    assert "node must be an array of tables ([[node]], not [node])" in _error(write, text)


@pytest.mark.parametrize("key", ["name", "address", "gossip"])
def test_node_missing_required_key(write, key: str) -> None:
    nodes = _nodes()
    del nodes[1][key]
    message = _error(write, _render(None, nodes))
    assert message.startswith("cluster.toml: [[node]] #2")
    assert message.endswith(f"is missing {key}")


@pytest.mark.parametrize("name", ['""', '"n 2"', '"n2/x"', f'"{"a" * 65}"', "2", "true"])
def test_bad_node_name(write, name: str) -> None:
    nodes = _nodes()
    nodes[1]["name"] = name
    message = _error(write, _render(None, nodes))
    assert message.startswith("cluster.toml: [[node]] #2 name = ")
    assert "must be 1-64 characters" in message


@pytest.mark.parametrize("name", ["a", "A_b.c-9", "x" * 64])
def test_good_node_names(write, name: str) -> None:
    nodes = _nodes()
    nodes[0]["name"] = f'"{name}"'
    assert load_config(write(_render(None, nodes))).node_names[0] == name


def test_unknown_node_key(write) -> None:
    nodes = _nodes()
    nodes[1]["adress"] = '"tcp://127.0.0.1:9999"'
    message = _error(write, _render(None, nodes))
    assert message == "cluster.toml: [[node]] #2 (n2) adress is not a known key (did you mean address?)"


BAD_ENDPOINTS = [
    '"127.0.0.1:7201"',
    '"tcp://127.0.0.1"',
    '"tcp://127.0.0.1:"',
    '"tcp://:7201"',
    '"tcp://127.0.0.1:0"',
    '"tcp://127.0.0.1:65536"',
    '"tcp://127.0.0.1:72a1"',
    '"tcp://127.0.0.1:7201/path"',
    '"tcp://*:7201"',
    '"udp://127.0.0.1:7201"',
    '"ipc://"',
    '"tcp://127.0.0.1:7201\\n"',
    '""',
    "7201",
]


@pytest.mark.parametrize("key", ["address", "gossip"])
@pytest.mark.parametrize("literal", BAD_ENDPOINTS)
def test_bad_endpoint(write, key: str, literal: str) -> None:
    nodes = _nodes()
    nodes[1][key] = literal
    message = _error(write, _render(None, nodes))
    assert message.startswith(f"cluster.toml: [[node]] #2 (n2) {key} = ")
    assert message.endswith("is not of the form tcp://HOST:PORT (port 1-65535) or ipc://PATH")


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://localhost:1",
        "tcp://10.0.0.7:65535",
        "tcp://[::1]:7201",
        "tcp://node-2.example.com:7201",
        "ipc:///tmp/zkv-n2.sock",
        "ipc://zkv-n2",
    ],
)
def test_good_endpoints(write, endpoint: str) -> None:
    nodes = _nodes()
    nodes[1]["address"] = f'"{endpoint}"'
    assert load_config(write(_render(None, nodes))).node("n2").address == endpoint


def test_duplicate_node_names(write) -> None:
    nodes = _nodes()
    nodes[2]["name"] = '"n1"'
    message = _error(write, _render(None, nodes))
    assert message == "cluster.toml: [[node]] #3 (n1) name = 'n1' is already used by [[node]] #1"


@pytest.mark.parametrize(
    ("node", "key", "literal", "expected"),
    [
        (
            2,
            "address",
            '"tcp://127.0.0.1:7101"',
            "[[node]] #3 (n3) address = 'tcp://127.0.0.1:7101' is already "
            "used as the address of [[node]] #1 (n1)",
        ),
        (
            2,
            "gossip",
            '"tcp://127.0.0.1:7202"',
            "[[node]] #3 (n3) gossip = 'tcp://127.0.0.1:7202' is already "
            "used as the gossip of [[node]] #2 (n2)",
        ),
        (
            2,
            "gossip",
            '"tcp://127.0.0.1:7101"',
            "[[node]] #3 (n3) gossip = 'tcp://127.0.0.1:7101' is already "
            "used as the address of [[node]] #1 (n1)",
        ),
        (
            1,
            "gossip",
            '"tcp://127.0.0.1:7201"',
            "[[node]] #2 (n2) gossip = 'tcp://127.0.0.1:7201' is already "
            "used as the address of [[node]] #2 (n2)",
        ),
        (1, "address", '"ipc:///tmp/a"', None),
    ],
    ids=["address-address", "gossip-gossip", "gossip-other-address", "own-address-as-gossip", "ipc"],
)
def test_duplicate_endpoints(write, node: int, key: str, literal: str, expected: str | None) -> None:
    nodes = _nodes()
    nodes[node][key] = literal
    if expected is None:  # a unique ipc endpoint is fine; the same one twice is not
        load_config(write(_render(None, nodes)))
        nodes[2][key] = literal
        assert "is already used as the address of [[node]] #2 (n2)" in _error(write, _render(None, nodes))
    else:
        assert _error(write, _render(None, nodes)) == f"cluster.toml: {expected}"


@pytest.mark.parametrize("second", ['"data/n1"', '"./data/n1"', '"data/../data/n1"'])
def test_duplicate_data_dir(write, second: str) -> None:
    nodes = _nodes()
    nodes[0]["data_dir"] = '"data/n1"'
    nodes[1]["data_dir"] = second
    message = _error(write, _render(None, nodes))
    assert message.startswith("cluster.toml: [[node]] #2 (n2) data_dir = ")
    assert message.endswith("is already used by [[node]] #1 (n1)")


@pytest.mark.parametrize("literal", ['""', "3", "true"])
def test_bad_data_dir(write, literal: str) -> None:
    nodes = _nodes()
    nodes[0]["data_dir"] = literal
    message = _error(write, _render(None, nodes))
    assert message.startswith("cluster.toml: [[node]] #1 (n1) data_dir = ")
    assert message.endswith("must be a non-empty path string")


# --- relative paths -------------------------------------------------------------------------------------


def test_relative_data_dir_resolves_against_the_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc" / "zkv"
    folder.mkdir(parents=True)
    nodes = _nodes()
    nodes[0]["data_dir"] = '"store/one"'
    nodes[1]["data_dir"] = '"../shared/n2"'
    nodes[2]["data_dir"] = f'"{tmp_path / "abs" / "n3"}"'
    (folder / "cluster.toml").write_text(_render(None, nodes))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter

    config = load_config("../etc/zkv/cluster.toml")
    assert config.path == folder / "cluster.toml"
    assert config.node("n1").data_dir == folder / "store" / "one"
    assert config.node("n2").data_dir == tmp_path / "etc" / "shared" / "n2"
    assert config.node("n3").data_dir == tmp_path / "abs" / "n3"
    assert all(node.data_dir.is_absolute() for node in config.nodes)


def test_default_data_dir_is_data_slash_name(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(_render(None, _nodes()))
    config = load_config(tmp_path / "c.toml")
    assert [node.data_dir for node in config.nodes] == [tmp_path / "data" / f"n{i}" for i in (1, 2, 3)]


def test_parse_config_uses_base_dir_and_source(tmp_path: Path) -> None:
    data = {
        "cluster": {"replication_factor": 2},
        "node": [
            {"name": "a", "address": "tcp://h:1", "gossip": "tcp://h:2"},
            {"name": "b", "address": "tcp://h:3", "gossip": "tcp://h:4", "data_dir": "x"},
        ],
    }
    config = parse_config(data, tmp_path)
    assert config.path is None
    assert config.node("a").data_dir == tmp_path / "data" / "a"
    assert config.node("b").data_dir == tmp_path / "x"

    data["cluster"]["vnodes"] = 0
    with pytest.raises(ConfigError, match=r"^inline: \[cluster\] vnodes = 0 must be positive$"):
        parse_config(data, tmp_path, source="inline")


# --- quorum_size ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "one", "quorum", "all_"),
    [(1, 1, 1, 1), (2, 1, 2, 2), (3, 1, 2, 3), (4, 1, 3, 4), (5, 1, 3, 5)],
)
def test_quorum_size(n: int, one: int, quorum: int, all_: int) -> None:
    assert quorum_size("one", n) == one
    assert quorum_size("quorum", n) == quorum
    assert quorum_size("all", n) == all_
    assert 2 * quorum_size("quorum", n) > n  # two quorums always overlap


@pytest.mark.parametrize("level", ["QUORUM", "two", "", "majority"])
def test_quorum_size_unknown_level(level: str) -> None:
    with pytest.raises(ValueError, match="not a consistency level"):
        quorum_size(level, 3)


@pytest.mark.parametrize("n", [0, -1])
def test_quorum_size_needs_replicas(n: int) -> None:
    with pytest.raises(ValueError):
        quorum_size("one", n)


# --- the http key (the node's HTTP gateway) -------------------------------------------------------------


def test_shipped_file_gives_every_node_an_http_gateway() -> None:
    config = load_config(REPO_ROOT / "cluster.toml")
    assert [n.http for n in config.nodes] == ["127.0.0.1:7181", "127.0.0.1:7182", "127.0.0.1:7183"]


def test_http_is_optional_and_read_when_given(write) -> None:
    nodes = _nodes(3)
    nodes[1]["http"] = '"[::1]:8080"'
    config = load_config(write(_render(None, nodes)))
    assert [n.http for n in config.nodes] == [None, "[::1]:8080", None]


@pytest.mark.parametrize(
    "literal", ['"localhost"', '"127.0.0.1:0"', '"127.0.0.1:70000"', "7181", '"http://x:1"']
)
def test_bad_http_values_are_one_line_errors(write, literal: str) -> None:
    nodes = _nodes(3)
    nodes[0]["http"] = literal
    message = _error(write, _render(None, nodes))
    assert "(n1) http" in message and "HOST:PORT" in message


def test_two_nodes_with_one_http_address_are_refused(write) -> None:
    nodes = _nodes(3)
    nodes[0]["http"] = nodes[2]["http"] = '"127.0.0.1:9000"'
    assert "already used as the http of [[node]] #1" in _error(write, _render(None, nodes))


# --- the redis key (engine = "redis": the node's Redis) --------------------------------------------------


def test_redis_is_optional_and_normalised(write, tmp_path: Path) -> None:
    nodes = _nodes()
    nodes[0]["redis"] = '"unix:data/n1/redis.sock"'
    nodes[1]["redis"] = '"redis://127.0.0.1:6379/2"'
    config = load_config(write(_render({"engine": '"redis"'}, nodes)))
    expected = f"unix:{tmp_path.resolve() / 'data' / 'n1' / 'redis.sock'}"
    assert [n.redis for n in config.nodes] == [expected, "redis://127.0.0.1:6379/2", None]


@pytest.mark.parametrize(
    "literal", ['"unix:"', '"/tmp/redis.sock"', '"redis://"', '"redis://h:99999"', '"http://h:1"', "6379"]
)
def test_bad_redis_values_are_one_line_errors(write, literal: str) -> None:
    nodes = _nodes()
    nodes[0]["redis"] = literal
    message = _error(write, _render({"engine": '"redis"'}, nodes))
    assert "(n1) redis" in message and "unix:PATH" in message and "redis://HOST:PORT" in message


def test_redis_without_the_redis_engine_is_refused(write) -> None:
    nodes = _nodes()
    nodes[2]["redis"] = '"unix:/run/redis.sock"'
    message = _error(write, _render({"engine": '"log"'}, nodes))
    assert "(n3) redis" in message and 'engine = "redis"' in message


def test_security_http_keys_are_paths_and_tls_goes_in_pairs(write) -> None:
    extra = '[security]\nhttp_tokens = "tokens"\nhttp_tls_cert = "c.pem"\nhttp_tls_key = "k.pem"\n'
    config = load_config(write(_render(None, _nodes(3), extra)))
    assert config.security.http_tokens is not None and config.security.http_tokens.name == "tokens"
    assert config.security.http_tls_cert is not None and config.security.http_tls_cert.is_absolute()
    half = '[security]\nhttp_tls_cert = "c.pem"\n'
    assert "http_tls_cert and http_tls_key go together" in _error(write, _render(None, _nodes(3), half))
