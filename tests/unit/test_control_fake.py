"""The FakeEngine the control plane's tests stand on: its scripts, its clock, its failures.

What it shares with the real engine is checked by tests/conformance; here is what
only the fake has, exactly, on a clock the test moves.
"""

from __future__ import annotations

import pytest

from skiff.core.spec import Container, GroupSpec, Port, RestartPolicy
from skiff.errors import GroupNotFound, InvalidGroupSpec, NetworkConflict, RuntimeFailure
from skiff.settings import BackoffSettings
from skiff.testing.fake import FakeEngine
from skiff.testing.scripts import FakeExec, Program, parse, statements


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spec(script: str, policy: RestartPolicy = RestartPolicy.ALWAYS,
         **fields: object) -> GroupSpec:
    return GroupSpec(id="g1", name="grp", containers=(
        Container("c", "img", ("sh", "-c", script)),), restart_policy=policy,
        **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("command", "program"), [
    (("sh", "-c", "echo hello world; exit 3"), Program(((0.0, "hello world"),), 0.0, 3)),
    (("sh", "-c", "echo 'a; b'\nsleep 2; echo \"c\""), Program(((0, "a; b"), (2, "c")), 2, 0)),
    (("sh", "-c", "echo up; sleep infinity; echo never"), Program(((0, "up"),), None, 0)),
    (("sleep", "300"), Program((), 300.0, 0)),
    (None, Program((), None, 0)),
    (("sh", "-c", "echo 'unclosed"), Program((), 0.0, 2)),
    (("sh", "-c", "cd /tmp; echo done"), Program(((0, "done"),), 0.0, 0)),
    (("sh", "-c", "sleep 2; exec httpd -f -p 8080 -h /www; echo never"),
     Program((), None, 0, ((2.0, 8080),))),
    (("httpd", "-p", "81"), Program((), 0.0, 0, ((0.0, 81),))),
    (("sh", "-c", "httpd; nc -lk -p 9000"), Program((), None, 0, ((0, 80), (0, 9000)))),
    (("sh", "-c", "nc -l 7"), Program((), None, 0, ((0, 7),))),
])
def test_scripts_parse_into_programs(command: tuple[str, ...] | None, program: Program) -> None:
    """echo prints, sleep moves time (infinity: no end), exit ends; other statements
    pass; no command runs on; an unclosed quote is the shell's exit 2; httpd and nc -l
    listen (from the offset they run at), in the foreground until stopped."""
    assert parse(command) == program


def test_statements_split_at_semicolons_and_newlines_outside_quotes() -> None:
    """Statements split as sh splits them."""
    assert statements("echo 'x;y'; exit 1\nsleep 1") == [["echo", "x;y"], ["exit", "1"],
                                                        ["sleep", "1"]]


def test_restarts_follow_the_backoff_on_the_engines_clock() -> None:
    """exit 1 under OnFailure: the first restart at once, the next ones 10 s, then 20 s
    after the exit before (counted when decided), as restarts.decide says; the group
    stays Running meanwhile."""
    clock = Clock()
    engine = FakeEngine(clock=clock, backoff=BackoffSettings(initial_s=10, factor=2))
    engine.run(spec("echo boom; exit 1", RestartPolicy.ON_FAILURE))
    counts = []
    for at in (1000, 1009.9, 1010, 1029.9, 1030):
        clock.now = at
        view = engine.view("g1")
        assert view.state == "Running"
        counts.append(view.containers[0].restart_count)
    assert counts == [2, 2, 3, 3, 4]
    assert engine.logs("g1", "c", previous=True) == "boom\n"
    assert [e.name for e in engine.view("g1").containers[0].events].count("BackOff") == 3


def test_a_group_serves_once_its_scripts_listen_on_every_declared_port() -> None:
    """serving(): False until the script reaches its server (on the engine's clock) and
    while a declared port has no listener; an image's own command serves the ports its
    container declares; a container that exited serves nothing."""
    clock = Clock()
    engine = FakeEngine(clock=clock)
    web = Container("web", "img", ("sh", "-c", "sleep 3; httpd -f -p 80"),
                    ports=(Port(80),))
    engine.run(GroupSpec(id="g1", name="web", containers=(web,), ip_ports=(Port(80),)))
    assert not engine.serving("g1")
    clock.now += 3
    assert engine.serving("g1")
    both = GroupSpec(id="g2", name="two", containers=(
        web, Container("udp", "img", None, ports=(Port(53, "UDP"),))),
        ip_ports=(Port(80), Port(443)))
    engine.run(both)
    clock.now += 3
    assert not engine.serving("g2")  # nothing listens on 443
    image = Container("img", "nginx", None, ports=(Port(80), Port(443)))
    engine.run(GroupSpec(id="g3", name="image", containers=(image,),
                         ip_ports=(Port(80), Port(443))))
    assert engine.serving("g3")
    engine.run(GroupSpec(id="g4", name="done", containers=(
        Container("c", "img", ("sh", "-c", "httpd -p 80; sleep 1"), ports=(Port(80),)),),
        restart_policy=RestartPolicy.NEVER))
    assert engine.serving("g4")
    clock.now += 1
    assert not engine.serving("g4")
    assert ("serving", "g1") not in engine.calls


def test_a_stopped_group_stays_stopped_when_run_again() -> None:
    """run() of a stopped group's spec changes nothing (the reconciler calls start)."""
    engine = FakeEngine()
    engine.run(spec("sleep 300"))
    engine.stop("g1")
    assert engine.run(spec("sleep 300")).state == "Stopped"
    assert engine.run(spec("echo changed; sleep 300")).state == "Stopped"
    assert engine.start("g1").state == "Running"
    assert engine.logs("g1", "c") == "changed\n"


def test_logs_of_a_stopped_instance_end_at_the_stop() -> None:
    """A killed instance printed only what it printed before the kill."""
    clock = Clock()
    engine = FakeEngine(clock=clock)
    engine.run(spec("echo one; sleep 5; echo two; sleep 300"))
    clock.now += 2
    engine.stop("g1")
    clock.now += 10
    assert engine.logs("g1", "c") == "one\n"
    engine.start("g1")
    assert engine.logs("g1", "c", previous=True) == "one\n"


def test_failures_are_injected_once_each() -> None:
    """fail() makes the next calls of a method raise, then the engine works again; calls
    are recorded."""
    engine = FakeEngine()
    engine.fail("run", RuntimeFailure("boom"), times=2)
    for _ in range(2):
        with pytest.raises(RuntimeFailure):
            engine.run(spec("sleep 300"))
    assert engine.run(spec("sleep 300")).state == "Running"
    assert engine.calls == [("run", "g1")] * 3


def test_the_engine_checks_what_it_runs() -> None:
    """A spec the real engine refuses is refused too; unknown groups and address clashes
    raise the real engine's errors."""
    engine = FakeEngine(public_subnet="10.77.0.0/16")
    twice = GroupSpec(id="g2", name="g", containers=(Container("c", "img"),
                                                     Container("c", "img")))
    with pytest.raises(InvalidGroupSpec):
        engine.run(twice)
    with pytest.raises(GroupNotFound):
        engine.restart("nope")
    with pytest.raises(NetworkConflict):
        engine.check_address_space(["10.77.128.0/17"])
    engine.check_address_space(["10.78.0.0/16"])


def test_exec_runs_its_script_at_once() -> None:
    """exec's stream gives the command's output (CR LF on a terminal), then its code;
    a container that is not running refuses."""
    engine = FakeEngine()
    engine.run(spec("sleep 300"))
    session = engine.exec("g1", "c", ["sh", "-c", "echo a; echo b; exit 5"], tty=True)
    assert isinstance(session, FakeExec)
    assert session.read(3) + session.read() == b"a\r\nb\r\n"
    assert session.read() == b""
    assert session.wait() == 5
    engine.stop("g1")
    with pytest.raises(RuntimeFailure):
        engine.exec("g1", "c", ["true"])
