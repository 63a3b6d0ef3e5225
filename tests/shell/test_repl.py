"""Every shell command, typed into the real prompt-toolkit REPL through a pipe, against a real cluster."""

from __future__ import annotations

import re

from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from shell_driver import drive
from zkv_shell.health import HealthMonitor
from zkv_shell.results import Failure, Nodes, Read, Replicas
from zkv_shell.session import Session

from zkv.testing.localcluster import LocalCluster, wait_until


def test_put_get_delete_with_levels_and_quoted_values(shell: Session) -> None:
    run = drive(
        shell,
        "put a 1\nget a\nput b \"hello world\" one\nget b all\nput c 'it'\"'\"'s'\nget c\n"
        "delete a\nget a\ndelete b all\nget b one\n",
    )
    assert run.status == 0
    assert run.lines == [
        "OK", "1", "OK", "hello world", "OK", "it's", "OK", "(not found)", "OK", "(not found)"
    ]  # fmt: skip


def test_requests_carry_the_level_asked_for(shell: Session, cluster3: LocalCluster) -> None:
    run = drive(shell, "put k v one\nget k all\nget k\n", json_mode=True)
    put, get_all, get_default = run.json()
    assert (put["consistency"], get_all["consistency"], get_default["consistency"]) == (
        "one",
        "all",
        "quorum",
    )
    requests = cluster3.client().status("n1").requests
    assert requests.get("put/one") == 1 and requests.get("get/all") == 1 and requests.get("get/quorum") == 1


def test_binary_and_control_characters_print_escaped(shell: Session, cluster3: LocalCluster) -> None:
    with cluster3.client() as client:
        client.put("bin", b"\x00\xffab")
        client.put("nl", "two\nlines")
    run = drive(shell, "get bin\nget nl\n")
    assert run.lines == [r"b'\x00\xffab'", r"'two\nlines'"]


def test_siblings_are_numbered_and_a_put_after_get_resolves_them(
    shell: Session, cluster3: LocalCluster
) -> None:
    with cluster3.client() as client:
        client.put("s", "first")
        client.put("s", "second", concurrent=True)  # supersedes nothing: both survive
        assert client.get("s").has_siblings
    run = drive(shell, "get s\nput s merged\nget s\n")
    out = run.lines
    assert out[0] == "2 siblings (concurrent writes), newest first by wall clock:"
    assert out[1].startswith("  1) second") and out[2].startswith("  2) first")
    assert out[3].startswith("resolve: put s VALUE")
    assert out[4] == "OK  (replaced the 2 siblings your get showed)"
    assert out[5] == "merged"
    with cluster3.client() as client:
        assert client.get("s").values == [b"merged"]


def test_put_sibling_leaves_siblings_and_delete_after_get_removes_all(shell: Session) -> None:
    run = drive(shell, "put t x\nput t y --sibling\nget t\ndelete t\nget t\n")
    assert run.lines[2] == "2 siblings (concurrent writes), newest first by wall clock:"
    assert run.lines[-1] == "(not found)"


def test_blind_puts_and_deletes_do_what_a_user_expects(shell: Session) -> None:
    """No get first: put/put/get shows the last value, put/delete/get shows nothing (not the old value)."""
    run = drive(shell, "put b1 x\nput b1 y\nget b1\nput d1 x\ndelete d1\nget d1\n")
    assert run.lines == ["OK", "OK", "y", "OK", "OK", "(not found)"]


def test_switch_makes_the_node_the_coordinator(shell: Session, cluster3: LocalCluster) -> None:
    run = drive(shell, "switch n2\nput w 1\nget w\n")
    assert run.lines == [f"now connected to n2 ({cluster3.addresses['n2']})", "OK", "1"]
    assert shell.node.name == "n2"
    assert "".join(text for _, text in run.repl.message()) == "zkv n2 [quorum]> "
    with cluster3.client() as client:
        assert client.status("n2").requests.get("put/quorum") == 1
        assert "put/quorum" not in client.status("n1").requests
    # by address too
    run = drive(shell, f"switch {cluster3.addresses['n3']}\n")
    assert shell.node.name == "n3" and "now connected to n3" in run.output


def test_nodes_table_and_footer(shell: Session, cluster3: LocalCluster) -> None:
    run = drive(shell, "nodes\n")
    assert run.lines[0].startswith("cluster as n1 sees it")
    header = run.lines[1].split()
    assert header == ["node", "address", "status", "heartbeat", "vnodes", "owns", "keys"]
    rows = {line.split()[-7]: line.split() for line in run.lines[2:5]}
    assert set(rows) == {"n1", "n2", "n3"}
    assert run.lines[2].startswith("*") and rows["n1"][-6] == cluster3.addresses["n1"]
    assert all(r[-5] == "up" and r[-3] == "64" and r[-2] == "100.0%" for r in rows.values())
    assert run.lines[5] == "3 up, 0 down"


def test_status_shows_uptime_requests_latency_and_storage(shell: Session) -> None:
    run = drive(shell, "put a 1\nget a\nstatus\nstatus n3\n")
    out = run.output
    first, second = out.split("\nn3  ", 1)
    assert "n1  tcp://" in first and " up " in first
    assert "storage memory" in first and "keys 1" in first
    assert re.search(r"\nput +quorum +1 *\n", first) and "latency (recent)" in first
    assert "p50" in first and "p99" in first and "errors: none" in first
    assert not re.search(r"\nget +quorum", second)  # n3 coordinated nothing


def test_consistency_show_set_and_bad_consistency(shell: Session) -> None:
    run = drive(
        shell, "consistency\nconsistency one\nput k v\nconsistency\nconsistency most\n", json_mode=True
    )
    shown, set_one, put, shown_again, bad = run.json()
    assert shown["consistency"] == "quorum" and set_one["consistency"] == "one"
    assert put["consistency"] == "one" and shown_again["message"] == "consistency is one"
    assert bad["error"] == "bad_consistency" and run.status == 0
    assert "[one]" in "".join(text for _, text in run.repl.message())


def test_where_shows_the_preference_list_and_coordinator(shell: Session, cluster3: LocalCluster) -> None:
    run = drive(shell, "where a\n")
    with cluster3.client() as client:
        preference = client.ring().preference_list("a")
    rows = [line.split() for line in run.lines[2:5]]
    assert [r[1] for r in rows] == list(preference)
    assert all(r[3] == "primary" and r[4] == "up" for r in rows)
    assert run.lines[5] == "coordinator: n1 (the connected node, a replica of this key)"


def test_where_with_a_forwarding_coordinator_and_a_fallback(cluster5: LocalCluster) -> None:
    with cluster5.client() as client:
        ring = client.ring()
    key = next(k for k in (f"k{i}" for i in range(1000)) if "n1" not in ring.preference_list(k))
    preference = ring.preference_list(key)
    cluster5.kill(preference[1])
    session = Session.connect(cluster5.addresses["n1"], known=cluster5.addresses)
    try:
        wait_until(lambda: _up(session) == 4, 10, "n1 to see the kill")
        result = session.execute("where", [key])
    finally:
        session.close()
    roles = [(p.node, p.role, p.up) for p in result.placements]
    assert roles[:3] == [(preference[0], "primary", True), (preference[1], "primary", False),
                         (preference[2], "primary", True)]  # fmt: skip
    assert roles[3][1:] == ("fallback", True) and roles[3][0] not in preference
    assert result.coordinator == preference[0]


def test_replicas_side_by_side_and_divergence(shell: Session, cluster3: LocalCluster) -> None:
    with cluster3.client() as client:
        client.faults("n3", drop_in=["n1"])  # n3 misses what n1 coordinates
        try:
            run = drive(shell, "put d 1\nreplicas d\n")
        finally:
            client.faults("n3", drop_in=[])
    lines = run.lines
    assert lines[1].startswith("replicas of d")
    cells = dict(zip(lines[2].split()[3:], lines[3].split()[3:], strict=True))
    assert cells == {"n1": "held", "n2": "held", "n3": "missing"}
    assert lines[-1].startswith("replicas diverge")
    # a read at 'all' repairs n3; the replicas then agree
    drive(shell, "get d all\n")
    result = wait_until(lambda: _agreeing(shell.execute("replicas", ["d"])), 10, "read repair of n3")
    assert set(result.cells.values()) == {("held",)}


def _up(session: Session) -> int:
    result = session.execute("nodes", [])
    assert isinstance(result, Nodes), result
    return result.up


def _agreeing(result: Replicas | Failure) -> Replicas | None:
    return result if isinstance(result, Replicas) and not result.diverged else None


def test_errors_are_one_line_with_code_and_advice(shell: Session) -> None:
    run = drive(
        shell,
        'gte a\nput a 1 quorom\nput a\nswitch n9\nput a "open\nhelp pt\nstatus n7\n',
    )
    assert run.status == 0  # interactive: failures were shown, the shell carries on
    assert run.lines == [
        "unknown_command: unknown command 'gte' — did you mean 'get'? type 'help' for the list",
        "bad_consistency: unknown consistency 'quorom' — did you mean 'quorum'? use one, quorum, all or "
        'serial (quote values with spaces: put k "a b")',
        "usage: put takes 2 to 3 arguments — put KEY VALUE [one|quorum|all|serial] [--context TOKEN] "
        "[--sibling] [--ttl 30s] [--strict|--sloppy] [--if-absent] [--if-value V]",
        "unknown_node: no node named 'n9' — did you mean 'n3'? nodes: n1, n2, n3",
        "syntax: no closing quotation in 'put a \"open' — close the quote",
        "unknown_command: no command 'pt' — did you mean 'put'? type 'help' for the list",
        run.lines[-1],
    ]
    assert re.fullmatch(
        r"unknown_node: no node named 'n7' — did you mean 'n\d'\? nodes: n1, n2, n3", run.lines[-1]
    )


def test_help_lists_every_command_and_explains_one(shell: Session) -> None:
    run = drive(shell, "help\nhelp put\n")
    for usage in (
        "put KEY VALUE [one|quorum|all|serial]",
        "cas KEY EXPECTED NEW",
        "get KEY [one|quorum|all]",
        "switch NODE|ADDRESS",
        "nodes",
        "status [NODE]",
        "consistency [one|quorum|all]",
        "where KEY",
        "replicas KEY",
    ):
        assert any(line.startswith(usage) for line in run.lines), usage  # fmt: skip
    usage = "usage: put KEY VALUE [one|quorum|all|serial] [--context TOKEN] [--sibling] [--ttl 30s]"
    assert any(line.startswith(usage) for line in run.lines), run.lines
    assert "sends that get's context" in run.output and "resolve siblings" in run.output


def test_quit_and_exit_leave(shell: Session) -> None:
    assert drive(shell, "quit\nget never\n").output == ""
    assert drive(shell, "exit\nget never\n").output == ""


def test_down_nodes_unavailable_and_reconnect(shell: Session, cluster3: LocalCluster) -> None:
    cluster3.kill("n3")
    wait_until(lambda: _up(shell) == 2, 10, "n1 to see n3 down")
    run = drive(shell, "put a 1 all\nput a 1 one\nswitch n3\n")
    assert run.lines[0] == ("unavailable: all needs 3 of 3 replicas, 2 alive — try 'one' or bring nodes back")
    assert run.lines[1] == "OK"
    assert run.lines[2].startswith(
        f"node_down: n3 ({cluster3.addresses['n3']}) is not answering — staying on n1"
    )
    assert shell.node.name == "n1"

    cluster3.kill("n1")  # the connected node itself
    run = drive(shell, "get a\n")
    assert run.lines[0].startswith(f"no_node_available: n1 ({cluster3.addresses['n1']}) is not answering")
    assert "'switch n2'" in run.lines[0] and "reconnects when n1 is back" in run.lines[0]
    assert "(disconnected)" in "".join(text for _, text in run.repl.message())
    assert "n1 not answering" in "".join(text for _, text in run.repl.toolbar())

    cluster3.start("n1", "n3")
    monitor = HealthMonitor(lambda: shell.node.address, shell.link, interval=0.1).start()
    try:
        wait_until(lambda: shell.link.connected, 10, "the shell to notice n1 is back")
    finally:
        monitor.stop()
    assert "(disconnected)" not in "".join(text for _, text in run.repl.message())
    run = drive(shell, "put fresh 2\nget fresh\n")
    assert run.lines == ["OK", "2"]


def test_toolbar_shows_node_and_cluster_health(shell: Session, cluster3: LocalCluster) -> None:
    run = drive(shell, "")
    monitor = HealthMonitor(lambda: shell.node.address, shell.link)
    with cluster3.client() as client:
        monitor.check(client)
        toolbar = "".join(text for _, text in run.repl.toolbar())
        assert f"n1 {cluster3.addresses['n1']}" in toolbar and "3/3 up" in toolbar
        cluster3.kill("n2")
        wait_until(
            lambda: monitor.check(client) or shell.link.health.up == 2, 10, "the monitor to see n2 down"
        )
    assert "2/3 up" in "".join(text for _, text in run.repl.toolbar())
    assert isinstance(run.repl.prompt.auto_suggest, AutoSuggestFromHistory)


def test_results_are_returned_not_printed(shell: Session) -> None:
    result = shell.run("get nothing-here")
    assert isinstance(result, Read) and not result.found
    assert shell.run("   ") is None and shell.run("# a comment") is None


def test_put_says_when_a_strict_quorum_was_used(shell: Session) -> None:
    run = drive(shell, "put s 1 --strict\nput s 2\nput s 3 --strict --sloppy\n")
    assert run.lines[0] == "OK  (strict quorum)" and run.lines[1] == "OK", run.lines
    assert any("--strict and --sloppy exclude each other" in line for line in run.lines[2:]), run.lines
