"""Unit tests for skiff.kube.streams: Pod logs, follow and exec through the official client.

No cluster is involved: the other end is skiff.testing.kubestreams, a loopback server whose
answers and frames are built from the Kubernetes API reference and the client's code (not
recorded from a cluster); its exec runs the command as a local process.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from skiff.errors import GroupNotFound, RuntimeFailure
from skiff.kube import streams
from skiff.kube.streams import KubeExec, exit_status, restamp
from skiff.testing.kubestreams import KubeStreams
from skiff.testing.registry import free_port
from skiff.testing.waiting import eventually

NS, POD = "skiff-rg-0123456789", "web"
BOUND_S = 10.0  # every blocking step of a test ends within this, or the test fails


@pytest.fixture
def api() -> Iterator[KubeStreams]:
    with KubeStreams() as server:
        server.add_pod(NS, POD, ["c", "side"])
        yield server


def core_api(host: str, token: str) -> Any:
    conf = client.Configuration(host=host, api_key={"authorization": f"Bearer {token}"})
    return client.CoreV1Api(client.ApiClient(conf))


@pytest.fixture
def core(api: KubeStreams) -> Any:
    return core_api(api.host, api.token)


def logs(core: Any, container: str = "c", *, tail: int | None = None,
         timestamps: bool = False, previous: bool = False) -> str:
    return streams.pod_logs(core, NS, POD, container, tail=tail, timestamps=timestamps,
                            previous=previous)


def bounded(work: Any) -> Any:
    """``work()``'s value, failing the test if it takes longer than BOUND_S."""
    found: list[Any] = []
    thread = threading.Thread(target=lambda: found.append(work()), daemon=True)
    thread.start()
    thread.join(BOUND_S)
    assert not thread.is_alive(), "did not end in time"
    return found[0]


def drain(session: KubeExec) -> bytes:
    """Everything the session outputs until its end (bounded)."""
    def read_all() -> bytes:
        out = b""
        while data := session.read():
            out += data
        return out
    return bounded(read_all)  # type: ignore[no-any-return]


def run(core: Any, command: list[str], *, tty: bool = False,
        terminal_size: tuple[int, int] | None = None) -> tuple[bytes, int | None]:
    session = streams.open_exec(core, NS, POD, "c", command, tty=tty,
                                terminal_size=terminal_size)
    try:
        return drain(session), session.wait(BOUND_S)
    finally:
        session.close()


# ---- logs ----------------------------------------------------------------------------

def test_logs_give_the_output_and_its_tail(api: KubeStreams, core: Any) -> None:
    """All lines, the last ``tail`` ones, none for tail 0; another container's are apart."""
    api.log(NS, POD, "c", "one\ntwo\nthree\n")
    api.log(NS, POD, "side", "other\n")
    assert logs(core) == "one\ntwo\nthree\n"
    assert logs(core, tail=2) == "two\nthree\n"
    assert logs(core, tail=0) == ""
    assert logs(core, "side") == "other\n"


def test_timestamps_are_written_as_the_local_engine_writes_them(api: KubeStreams,
                                                                core: Any) -> None:
    """containerd's ``Z`` and CRI-O's offset both become conmon's form, nine digits, UTC."""
    api.log(NS, POD, "c", "zulu\n", stamp="2026-12-04T10:00:00.123456789Z")
    api.log(NS, POD, "c", "offset\n", stamp="2026-12-04T11:00:01.5+01:00")
    assert logs(core, timestamps=True) == (
        "2026-12-04T10:00:00.123456789+00:00 zulu\n"
        "2026-12-04T10:00:01.500000000+00:00 offset\n")
    assert logs(core, tail=1, timestamps=True) == "2026-12-04T10:00:01.500000000+00:00 offset\n"


def test_previous_gives_the_last_instance_and_nothing_without_one(api: KubeStreams,
                                                                  core: Any) -> None:
    """previous=True reads the instance before a restart; with none, an empty log (the
    API server's 400, as the local engine has no previous file)."""
    assert logs(core, previous=True) == ""
    api.log(NS, POD, "c", "first life\n")
    api.restart(NS, POD, "c")
    api.log(NS, POD, "c", "second life\n")
    assert logs(core, previous=True) == "first life\n"
    assert logs(core) == "second life\n"


def test_a_container_not_started_has_an_empty_log(api: KubeStreams, core: Any) -> None:
    """A waiting container (the API server: "is waiting to start") logs nothing yet."""
    api.set_state(NS, POD, "c", "waiting")
    assert logs(core) == ""
    assert list(streams.follow_logs(core, NS, POD, "c")) == []


def test_an_unknown_pod_or_container_is_group_not_found(core: Any) -> None:
    """The API server's 404 and "is not valid for pod" are the local engine's error."""
    with pytest.raises(GroupNotFound, match="not found"):
        streams.pod_logs(core, NS, "gone", "c", tail=None, timestamps=False, previous=False)
    with pytest.raises(GroupNotFound, match="not valid"):
        logs(core, "nope")
    with pytest.raises(GroupNotFound):
        streams.follow_logs(core, NS, "gone", "c")


def test_a_refusal_or_no_answer_is_a_runtime_failure(api: KubeStreams) -> None:
    """Wrong credentials and an API server not listening are RuntimeFailures that say so,
    never the client's own exceptions, and the token is not echoed."""
    wrong = core_api(api.host, "not-the-token")
    with pytest.raises(RuntimeFailure, match="answered 401") as refused:
        logs(wrong)
    assert "not-the-token" not in refused.value.message
    with pytest.raises(RuntimeFailure, match="answered 401"):
        streams.open_exec(wrong, NS, POD, "c", ["true"], tty=False, terminal_size=None)
    nobody = core_api(f"http://127.0.0.1:{free_port()}", api.token)
    with pytest.raises(RuntimeFailure, match="cannot be reached"):
        logs(nobody)
    with pytest.raises(RuntimeFailure, match="cannot be reached"):
        streams.open_exec(nobody, NS, POD, "c", ["true"], tty=False, terminal_size=None)


# ---- follow ----------------------------------------------------------------------------

def test_follow_yields_each_line_as_written_until_the_container_exits(api: KubeStreams,
                                                                     core: Any) -> None:
    """attach's stream: what was written, then each new line, and the end when the
    container stops (a last line without its newline included)."""
    api.log(NS, POD, "c", "before\n")
    lines = streams.follow_logs(core, NS, POD, "c")
    assert bounded(lambda: next(lines)) == "before\n"
    api.log(NS, POD, "c", "during\n")
    assert bounded(lambda: next(lines)) == "during\n"
    api.log(NS, POD, "c", "grüße\nno newline")
    api.set_state(NS, POD, "c", "terminated")
    assert bounded(lambda: list(lines)) == ["grüße\n", "no newline"]
    eventually(lambda: api.followers == 0, what="the follow answered to its end")


def test_closing_a_follow_ends_a_wait_on_a_quiet_container(api: KubeStreams,
                                                           core: Any) -> None:
    """close() from another thread wakes a read waiting for a line that never comes, and
    the API server sees the follower gone."""
    lines = streams.follow_logs(core, NS, POD, "c")
    eventually(lambda: api.followers == 1, what="the follow being answered")
    waiting: list[list[str]] = []
    reader = threading.Thread(target=lambda: waiting.append(list(lines)), daemon=True)
    reader.start()
    lines.close()
    reader.join(BOUND_S)
    assert not reader.is_alive(), "close() did not end the waiting read"
    assert waiting == [[]]
    eventually(lambda: api.followers == 0, what="the API server seeing the follower leave")


# ---- exec --------------------------------------------------------------------------------

def test_exec_echo_prints_and_exits_0(core: Any) -> None:
    """The command's stdout, then b"", then exit code 0 (the Status "Success")."""
    assert run(core, ["echo", "hello"]) == (b"hello\n", 0)


def test_exec_exit_code_comes_from_the_status(core: Any) -> None:
    """A NonZeroExitCode Status gives its ExitCode cause as the exit code."""
    assert run(core, ["sh", "-c", "exit 3"]) == (b"", 3)


def test_exec_without_a_terminal_gives_stdout_and_stderr(core: Any) -> None:
    """Channels 1 and 2 both reach read() (in the order they came)."""
    out, code = run(core, ["sh", "-c", "echo out; echo err >&2; exit 1"])
    assert sorted(out.splitlines()) == [b"err", b"out"]
    assert code == 1


def test_exec_stdin_round_trips(api: KubeStreams, core: Any) -> None:
    """What is written reaches the command's stdin (channel 0): cat sends it back."""
    session = streams.open_exec(core, NS, POD, "c", ["cat"], tty=False, terminal_size=None)
    try:
        session.write(b"ping\n")
        assert bounded(lambda: session.read()) == b"ping\n"
        session.write("grüße\n".encode())
        assert bounded(lambda: session.read()) == "grüße\n".encode()
    finally:
        session.close()
    assert api.execs[-1].command == ["cat"]


def test_exec_tty_gets_the_terminal_size(api: KubeStreams, core: Any) -> None:
    """With a TTY the size is sent first (channel 4) and ``stty size`` prints it; the
    terminal writes CR LF."""
    assert run(core, ["stty", "size"], tty=True, terminal_size=(33, 77)) == (b"33 77\r\n", 0)
    assert api.execs[-1].sizes == [(33, 77)]
    assert api.execs[-1].tty


def test_exec_resize_reaches_the_running_command(api: KubeStreams, core: Any) -> None:
    """resize() changes the terminal of a command already running."""
    session = streams.open_exec(core, NS, POD, "c",
                                ["sh", "-c", "stty -echo; echo ready; read x; stty size"],
                                tty=True, terminal_size=(24, 80))
    try:
        assert bounded(lambda: session.read()) == b"ready\r\n"
        session.resize(40, 120)
        eventually(lambda: (40, 120) in api.execs[-1].sizes, what="the new size applied")
        session.write(b"go\n")
        assert drain(session) == b"40 120\r\n"
        assert session.wait(BOUND_S) == 0
    finally:
        session.close()


def test_close_kills_a_long_command(api: KubeStreams, core: Any) -> None:
    """Closing the session ends the command (its terminal gone: SIGHUP); no exit code is
    known then."""
    session = streams.open_exec(core, NS, POD, "c", ["sleep", "300"], tty=True,
                                terminal_size=(24, 80))
    eventually(lambda: api.execs and api.execs[-1].process, what="sleep started")
    process = api.execs[-1].process
    assert process is not None
    assert session.wait(0.2) is None
    bounded(session.close)
    assert process.wait(BOUND_S) == -signal.SIGHUP
    assert api.execs[-1].client_left
    assert session.wait(0) is None
    assert session.read() == b""
    session.write(b"after the end\n")  # dropped, not an error


def test_wait_needs_no_reader(core: Any) -> None:
    """The exit code arrives though nobody reads the output (its own thread reads)."""
    session = streams.open_exec(core, NS, POD, "c", ["sh", "-c", "echo x; exit 7"], tty=False,
                                terminal_size=None)
    try:
        assert session.wait(BOUND_S) == 7
        assert drain(session) == b"x\n"
    finally:
        session.close()


def test_exec_output_larger_than_a_frame_and_a_read(core: Any) -> None:
    """200 kB of output (frames of 64-bit lengths, reads smaller than a frame) arrive whole
    and in order."""
    session = streams.open_exec(core, NS, POD, "c",
                                ["sh", "-c", "seq 1 40000; echo done"], tty=False,
                                terminal_size=None)
    try:
        def read_small() -> bytes:
            out = b""
            while data := session.read(1000):
                assert len(data) <= 1000
                out += data
            return out
        out = bounded(read_small)
    finally:
        session.close()
    assert out == "".join(f"{n}\n" for n in range(1, 40001)).encode() + b"done\n"


def test_a_connection_lost_ends_the_session(api: KubeStreams, core: Any) -> None:
    """The connection lost mid-command: read() ends with b"" and no exit code is known."""
    session = streams.open_exec(core, NS, POD, "c", ["sleep", "300"], tty=False,
                                terminal_size=None)
    try:
        eventually(lambda: api.execs and api.execs[-1].process, what="sleep started")
        api.drop_connections()
        assert drain(session) == b""
        assert session.wait(BOUND_S) is None
    finally:
        session.close()


def test_a_command_that_cannot_start_shows_why_and_exits_255(core: Any) -> None:
    """An InternalError Status (no such executable) is shown on the terminal, and the exit
    code is runc exec's own for a failed start."""
    out, code = run(core, ["no-such-command"], tty=True, terminal_size=(24, 80))
    assert b"no-such-command" in out
    assert out.endswith(b"\r\n")
    assert code == 255


def test_exec_into_a_missing_pod_or_stopped_container_is_refused(api: KubeStreams,
                                                                 core: Any) -> None:
    """The handshake's refusals: no Pod or container is GroupNotFound, a container not
    running is a RuntimeFailure with the API server's message."""
    with pytest.raises(GroupNotFound, match="not found"):
        streams.open_exec(core, NS, "gone", "c", ["true"], tty=False, terminal_size=None)
    with pytest.raises(GroupNotFound, match="not valid"):
        streams.open_exec(core, NS, POD, "nope", ["true"], tty=False, terminal_size=None)
    api.set_state(NS, POD, "side", "terminated")
    with pytest.raises(RuntimeFailure, match="container not found"):
        streams.open_exec(core, NS, POD, "side", ["true"], tty=False, terminal_size=None)


def test_exec_leaves_the_callers_api_client_alone(core: Any) -> None:
    """stream() swaps its ApiClient's request method while it connects: an exec uses an
    ApiClient of its own, so the caller's (shared by its other threads) is never touched."""
    def not_here(*_: object, **__: object) -> None:
        raise AssertionError("the caller's ApiClient was used for the exec")
    core.api_client.request = not_here
    assert run(core, ["echo", "own"]) == (b"own\n", 0)
    assert core.api_client.request is not_here


# ---- pure parts --------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "expected"), [
    (b'{"metadata":{},"status":"Success"}', (0, None)),
    (b'{"metadata":{},"status":"Failure","reason":"NonZeroExitCode","message":"exit code 42",'
     b'"details":{"causes":[{"reason":"ExitCode","message":"42"}]}}', (42, None)),
    (b'{"status":"Failure","reason":"InternalError","message":"Internal error occurred: x",'
     b'"code":500}', (255, "Internal error occurred: x")),
    (b'{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[]}}',
     (255, "the command could not be run")),
    (b"command not found\n", (255, "command not found")),
])
def test_exit_status_reads_the_error_channel(status: bytes,
                                             expected: tuple[int, str | None]) -> None:
    """The error channel's Status: Success is 0, NonZeroExitCode its ExitCode cause, and
    anything else a failed start (255) with its message."""
    assert exit_status(status) == expected


def test_restamp_leaves_unstamped_lines_alone() -> None:
    """Only a leading RFC 3339 stamp is rewritten; other text is kept as it was."""
    assert restamp("plain line\n2026-01-02T03:04:05Z bare\n") == (
        "plain line\n2026-01-02T03:04:05.000000000+00:00 bare\n")
