"""A SIP trunk for the tests and bench/channels.py: SIPp (Debian's sip-tester) running the
carrier scenario (tests/carriers/sip/carrier.xml: the last digit dialled picks what the far
end does), and call engines (``manage.py call_engine``) dialling it, as child processes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
SCENARIO = HERE / "sip" / "carrier.xml"


def installed() -> bool:
    return Path(SIPP).exists()


def free_udp_port(span: int = 1) -> int:
    """A port whose next ``span`` UDP ports are free now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + span < 65000 and all(_udp_free(base + n) for n in range(span)):
            return base
    raise RuntimeError("no free range of UDP ports")


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Message:
    at: float  # seconds since the epoch, as SIPp logged it
    received: bool
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    def header(self, name: str) -> str:
        found = re.search(rf"^{re.escape(name)}:\s*(.*)$", self.text, re.MULTILINE | re.IGNORECASE)
        return found.group(1).strip() if found else ""

    @property
    def call_id(self) -> str:
        return self.header("Call-ID")


_BLOCK = re.compile(
    r"^-{20,} (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d+)\n(UDP message (received|sent)[^\n]*)\n\n",
    re.MULTILINE,
)


@dataclass
class Sipp:
    """SIPp as the trunk: ``uri`` is what SIP_TRUNK_URI points at."""

    run_dir: Path
    pause_ms: int = 3000  # how long digit-1 calls last after the answer
    rtp_echo: bool = False
    max_calls: int = 200
    port: int = 0
    media_port: int = 0
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port}"

    def start(self) -> Sipp:
        self.run_dir = Path(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_udp_port()
        self.media_port = self.media_port or free_udp_port(4)
        argv = [SIPP, "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(self.port),
                "-mi", "127.0.0.1", "-mp", str(self.media_port), "-d", str(self.pause_ms),
                "-l", str(self.max_calls), "-trace_msg", "-message_file", str(self.messages_path),
                "-trace_stat", "-stf", str(self.run_dir / "stats.csv"), "-fd", "1",
                "-trace_err", "-error_file", str(self.run_dir / "errors.log"),
                "-nostdin"]  # fmt: skip
        if self.rtp_echo:
            argv.append("-rtp_echo")
        log = open(self.run_dir / "sipp.out", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.run_dir, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while _udp_free(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"SIPp did not start; see {self.run_dir / 'sipp.out'}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    @property
    def messages_path(self) -> Path:
        return self.run_dir / "messages.log"

    def messages(self) -> list[Message]:
        """Every SIP message SIPp received or sent, in order."""
        if not self.messages_path.exists():
            return []
        text = self.messages_path.read_text(errors="replace").replace("\r\n", "\n")
        found = []
        blocks = list(_BLOCK.finditer(text))
        for index, block in enumerate(blocks):
            end = blocks[index + 1].start() if index + 1 < len(blocks) else len(text)
            body = text[block.end() : end]
            body = body.split("\n-----------------------------------------------\n", 1)[0]
            stamp = time.mktime(time.strptime(block.group(1) + " " + block.group(2)[:8],
                                              "%Y-%m-%d %H:%M:%S"))  # fmt: skip
            stamp += float("0." + block.group(2).split(".")[1])
            found.append(Message(stamp, block.group(4) == "received", body.strip("\n")))
        return found

    def invites(self, number: str | None = None) -> list[Message]:
        return [
            m for m in self.messages()
            if m.received and m.first_line.startswith("INVITE ")
            and (number is None or f"sip:{number}@" in m.first_line)
        ]  # fmt: skip

    def calls_by_number(self) -> dict[str, set[str]]:
        """The Call-IDs of the calls to each number (retransmitted INVITEs counted once)."""
        calls: dict[str, set[str]] = {}
        for invite in self.invites():
            number = invite.first_line.split()[1].removeprefix("sip:").split("@")[0]
            calls.setdefault(number, set()).add(invite.call_id)
        return calls

    def most_calls_at_once(self) -> int:
        """From the first INVITE of each call to its end (the final answer to our INVITE
        when not answered, else the BYE's 200): the most that overlapped."""
        starts: dict[str, float] = {}
        ends: dict[str, float] = {}
        for message in self.messages():
            call_id = message.call_id
            line = message.first_line
            if message.received and line.startswith("INVITE ") and call_id not in starts:
                starts[call_id] = message.at
            elif (not message.received and re.match(r"SIP/2.0 [3-6]\d\d", line)) or (
                line.startswith("SIP/2.0 200") and "BYE" in message.header("CSeq")
            ):
                ends[call_id] = message.at
        events = sorted([(t, 1) for t in starts.values()] + [(t, -1) for t in ends.values()])
        current = peak = 0
        for _at, step in events:
            current += step
            peak = max(peak, current)
        return peak


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, wait: float = 15):
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start_engine(run_dir: Path, env: dict, index: int, *, channels: int = 4,
                 seconds: float = 0) -> subprocess.Popen:  # fmt: skip
    """``manage.py call_engine`` as a child process (its own session: a kill takes it all)."""
    argv = [sys.executable, "manage.py", "call_engine", "--index", str(index),
            "--channels", str(channels), "--name", f"engine-{index + 1}"]  # fmt: skip
    if seconds:
        argv += ["--seconds", str(seconds)]
    log = open(Path(run_dir) / f"engine-{index + 1}.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def engine_env(trunk_uri: str, sip_port: int, rtp_port: int, **extra: str) -> dict:
    return {
        **os.environ,
        "SIP_TRUNK_URI": trunk_uri,
        "CALL_ENGINE_SIP_PORT": str(sip_port),
        "CALL_ENGINE_RTP_PORT": str(rtp_port),
        "SIP_RING_SECONDS": "5",
        **extra,
    }


class CallEngines:
    """Call engines on one trunk (``start`` adds more, ``kill`` is a crash); ``stop`` ends
    them all. They work on the database at ``database_url`` and report to its Redis."""

    def __init__(self, run_dir, trunk_uri: str, database_url: str, **env: str):
        self.run_dir = run_dir
        rtp_base = 20000 + (time.monotonic_ns() // 1000) % 200 * 100
        self.env = engine_env(
            trunk_uri, free_udp_port(16), rtp_base, DATABASE_URL=database_url, **env
        )
        self.procs: dict[str, subprocess.Popen] = {}
        self.killed: list[subprocess.Popen] = []

    def start(self, count: int = 1, channels: int = 4, timeout: float = 30) -> CallEngines:
        from campaigns import sip  # here: callers set Django up after importing this module

        first = len(self.procs) + len(self.killed)
        for index in range(first, first + count):
            self.procs[f"engine-{index + 1}"] = start_engine(
                self.run_dir, self.env, index, channels=channels
            )
        deadline = time.monotonic() + timeout
        while not set(self.procs) <= {engine.name for engine in sip.engines()}:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited; see {self.run_dir}/{name}.log")
            if time.monotonic() > deadline:
                raise RuntimeError("the call engines did not come up")
            time.sleep(0.1)
        return self

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        stop_process(proc, signal.SIGKILL)
        self.killed.append(proc)

    def stop(self) -> None:
        for proc in self.procs.values():
            stop_process(proc)
