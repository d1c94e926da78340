"""The layers hold (docs/architecture.md), and the linter that enforces them catches the
upward imports the code once had, including imports hidden inside functions."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("accounts", "devices", "contacts", "campaigns", "api", "enterprise_portal")
LINTER = str(Path(sys.executable).parent / "lint-imports")

# (module file, import line planted inside a function, what the linter must report)
PLANTED = [
    ("devices/policy.py", "from campaigns.blacklists import blacklist_hits",
     "devices.policy -> campaigns.blacklists"),
    ("devices/actions.py", "from campaigns.dialer import dispatch_sub_campaign",
     "devices.actions -> campaigns.dialer"),
    ("devices/blocking.py", "from campaigns.models import DialState",
     "devices.blocking -> campaigns.models"),
    ("devices/recordings.py", "from campaigns.models import DialState",
     "devices.recordings -> campaigns.models"),
    ("contacts/importer.py", "from campaigns.dial_states import sync",
     "contacts.importer -> campaigns.dial_states"),
    ("accounts/demo.py", "from campaigns.demo import load_demo_campaigns",
     "accounts.demo -> campaigns.demo"),
    ("devices/uploads.py", "from enterprise_portal.demo import load_demo",
     "devices.uploads -> enterprise_portal.demo"),
]  # fmt: skip


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINTER, "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_every_contract():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_upward_imports_inside_functions_are_caught(tmp_path):
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for path, line, _expected in PLANTED:
        with open(tmp_path / path, "a") as module:
            module.write(f"\n\ndef _planted():\n    {line}\n\n    return None\n")
    result = _lint(tmp_path)
    assert result.returncode == 1, result.stdout
    report = result.stdout
    # (import-linter pads the name to a column; a long name touches its verdict)
    assert re.search(r"Layers: accounts -> .* -> enterprise_portal\s*BROKEN", report), report
    missing = [expected for _path, _line, expected in PLANTED if expected not in report]
    assert not missing, f"not reported: {missing}\n{report}"
