"""A real SMS gateway for the tests: the SMSC simulator (tests.carriers.smsc), Debian's
Kannel bearerbox and smsbox, started as children in that order and stopped in the order
that lets them exit at once (simulator, bearerbox, smsbox).

Ports come from the base port: SMPP +0, simulator control +1, Kannel admin +10, smsbox
link +11, sendsms +13. The replies Kannel receives go to ``mo_url`` (the portal's endpoint).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
BEARERBOX = shutil.which("bearerbox") or "/usr/sbin/bearerbox"
SMSBOX = shutil.which("smsbox") or "/usr/sbin/smsbox"
ADMIN_PASSWORD = "admin-test"  # noqa: S105 - a throwaway test gateway on 127.0.0.1
SENDSMS_USER, SENDSMS_PASSWORD = "portal", "sendsms-test"
# Kannel's escapes for a reply: the handset, our address, the text, its id, its time.
MO_QUERY = "from=%p&to=%P&text=%b&id=%I&ts=%T"


def installed() -> bool:
    return all(Path(p).exists() for p in (BEARERBOX, SMSBOX))


def free_base_port() -> int:
    """A base port whose next 14 ports are free now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base < 60000 and all(_free(base + n) for n in range(14)):
            return base
    raise RuntimeError("no free range of ports for Kannel")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {seconds} s waiting for {what}")


class KannelStack:
    def __init__(self, run_dir: Path, mo_url: str, base_port: int | None = None):
        self.run_dir = Path(run_dir)
        base = base_port or free_base_port()
        self.ports = {"SMSC_PORT": base, "CONTROL_PORT": base + 1, "ADMIN_PORT": base + 10,
                      "SMSBOX_PORT": base + 11, "SENDSMS_PORT": base + 13}  # fmt: skip
        self.mo_url = mo_url
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['SENDSMS_PORT']}/cgi-bin/sendsms"

    # --- start and stop -----------------------------------------------------------------------

    def start(self) -> KannelStack:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        template = string.Template((HERE / "kannel.conf.tmpl").read_text())
        conf = template.substitute(
            **self.ports, RUN_DIR=self.run_dir, ADMIN_PASSWORD=ADMIN_PASSWORD,
            SENDSMS_USER=SENDSMS_USER, SENDSMS_PASSWORD=SENDSMS_PASSWORD, MO_URL=self.mo_url,
        )  # fmt: skip
        (self.run_dir / "kannel.conf").write_text(conf)
        self.start_simulator()
        self.start_kannel()
        return self

    def start_simulator(self) -> None:
        self._spawn("smsc", [sys.executable, "-m", "tests.carriers.smsc",
                             "--port", str(self.ports["SMSC_PORT"]),
                             "--control-port", str(self.ports["CONTROL_PORT"]),
                             "--log", str(self.run_dir / "smsc-pdus.jsonl"),
                             "--short-code", "55123"])  # fmt: skip
        wait_for(lambda: self._alive("smsc") and _open(self.ports["CONTROL_PORT"]), 15, "SMSC")

    def start_kannel(self) -> None:
        conf = str(self.run_dir / "kannel.conf")
        self._spawn("bearerbox", [BEARERBOX, conf])
        wait_for(lambda: self._alive("bearerbox") and self.smsc_online(), 30, "SMSC online")
        self._spawn("smsbox", [SMSBOX, conf])
        wait_for(
            lambda: (
                self._alive("smsbox")
                and _open(self.ports["SENDSMS_PORT"])
                and self.smsbox_connected()
            ),
            20,
            "smsbox",
        )

    def stop_kannel(self) -> None:
        for name in ("bearerbox", "smsbox"):
            self._stop(name)

    def stop(self) -> None:
        for name in ("smsc", "bearerbox", "smsbox"):  # this order: each exits at once
            self._stop(name)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.run_dir / f"{name}.out", "ab")  # noqa: SIM115 - the child keeps it
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[2], start_new_session=True,
        )  # fmt: skip

    def _alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"{name} exited; see {self.run_dir / (name + '.out')}")
        return True

    def _stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        # The whole group: smsbox re-forks itself (a new pid) when bearerbox goes away.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    # --- status -----------------------------------------------------------------------------

    def status(self) -> ET.Element:
        url = f"http://127.0.0.1:{self.ports['ADMIN_PORT']}/status.xml?password={ADMIN_PASSWORD}"
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our loopback
            return ET.fromstring(response.read())  # noqa: S314 - our own Kannel, on loopback

    def smsc_online(self) -> bool:
        return any(
            (smsc.findtext("id") or smsc.findtext("admin-id")) == "carrier"
            and (smsc.findtext("status") or "").startswith("online")
            for smsc in self.status().iter("smsc")
        )

    def smsbox_connected(self) -> bool:
        return any(box.findtext("type") == "smsbox" for box in self.status().iter("box"))

    # --- the carrier's side -------------------------------------------------------------------

    def control(self, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - our loopback
            f"http://127.0.0.1:{self.ports['CONTROL_PORT']}{path}",
            data=data,
            method="POST" if data is not None else "GET",
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def reply(self, source: str, text: str, *, coding: int | str = "auto", dest: str = "55123",
              source_ton: int = 1) -> dict:  # fmt: skip
        """A handset's reply, delivered by the carrier to Kannel (returns once Kannel acked)."""
        status, answer = self.control(
            "/mo", {"source": source, "dest": dest, "text": text, "coding": coding,
                    "source_ton": source_ton, "source_npi": 1},
        )  # fmt: skip
        assert status == 200 and answer["status"] == 0, answer
        return answer

    def submitted(self) -> list[dict]:
        """Every submit_sm the carrier received (its PDU log), oldest first."""
        self.control("/stats")  # flushes the log
        path = self.run_dir / "smsc-pdus.jsonl"
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        return [
            record
            for record in map(json.loads, lines)
            if record.get("cmd") == "submit_sm" and record.get("dir") == "in"
        ]


def for_portal(run_dir: Path, live_server_url: str, secret: str) -> KannelStack:
    """A started stack whose replies go to the live portal's reply endpoint."""
    portal = live_server_url.replace("localhost", "127.0.0.1")
    return KannelStack(
        run_dir, mo_url=f"{portal}/carrier/kannel/mo/?key={secret}&{MO_QUERY}"
    ).start()
