"""Static guards on the lab scripts for bugs that only a machine with empty caches shows."""

from __future__ import annotations

import re

from sre_testlib import REPO

LAB_SCRIPTS = sorted(p for p in (REPO / "lab").rglob("*")
                     if p.is_file() and p.read_bytes().startswith(b"#!") and b"bash" in p.read_bytes()[:40])


def code_lines(path):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, stripped


def test_lab_scripts_found():
    assert any(p.name == "build" and p.parent.name == "hosts" for p in LAB_SCRIPTS)


def test_every_chroot_runs_with_a_clean_environment():
    """A test run's TMPDIR leaked into the rootfs build once (ssl-cert's postinst failed on
    mktemp in the chroot): every chroot goes through one helper that clears the environment."""
    offenders = []
    for path in LAB_SCRIPTS:
        for number, line in code_lines(path):
            if re.search(r"(^|[\s;&|(])chroot\s", line) and "clean_env" not in line:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line}")
    assert not offenders, "chroot without the clean environment:\n" + "\n".join(offenders)


def test_rootfs_build_removes_its_partial_tree_when_killed():
    text = (REPO / "lab" / "hosts" / "build").read_text()
    assert re.search(r"^trap cleanup EXIT$", text, re.M)
    # EXIT traps do not run on a signal unless the signal is turned into an exit.
    assert re.search(r"^trap 'exit 130' INT TERM", text, re.M)
    assert "env -i" in text
