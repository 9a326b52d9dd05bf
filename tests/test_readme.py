"""Every code block of README.md, run as printed.

The blocks run in order as one user would type them into one shell: in a copy of the
checkout's files the README names (``README.md``, ``docs/``), with a fresh home directory
(so ``fastfax.connect()`` opens a fresh default spool) and no ``FASTFAX_*`` variables.
``sh`` blocks run in that bash session (``set -e``), ``python`` blocks with ``python3``
reading the block on stdin, ``toml`` blocks are read as a spool's ``fastfax.toml``
(every device kind they name must exist). ``text`` blocks are not code. A block the
README marks with an italic line right above it, "*Not run by the README test: why.*",
is only parsed (``bash -n`` / ``compile``); the README says which and why.

The daemon examples listen on port 8765 (the daemon's default), the T.38 and SIP examples
on 4000, 5080 and 5090 of 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import site
import socket
import subprocess
import sys
from dataclasses import dataclass

import pytest

from fastfax.service.config import load_toml
from fastfax.service.devices import device_factory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
LANGS = ("sh", "python", "toml", "text")
SKIP = re.compile(r"^\*Not run by the README test: (.+)\*$")
FENCE = re.compile(r"^```(\S*)\s*$")
#: Seconds the whole README may take (it takes well under a minute on an idle machine).
SESSION_TIMEOUT = 400
DAEMON_PORT = 8765


@dataclass
class Block:
    lang: str
    text: str
    line: int  #: README line of the opening fence (1-based)
    skip: str | None  #: why the README says it is not run, or None


def readme_blocks(path: str = README) -> list[Block]:
    """The fenced code blocks of ``path``, in order."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    blocks: list[Block] = []
    n = 0
    while n < len(lines):
        opening = FENCE.match(lines[n])
        if not opening:
            n += 1
            continue
        start = n
        n += 1
        while n < len(lines) and lines[n] != "```":
            n += 1
        if n == len(lines):
            raise AssertionError(f"README.md line {start + 1}: a code block is not closed")
        marker = SKIP.match(lines[start - 1]) if start else None
        text = "\n".join(lines[start + 1 : n]) + "\n"
        blocks.append(Block(opening.group(1), text, start + 1, marker and marker.group(1)))
        n += 1
    return blocks


def test_every_block_has_a_known_language_and_the_skipped_ones_parse(tmp_path):
    blocks = readme_blocks()
    assert len(blocks) > 10
    for block in blocks:
        assert block.lang in LANGS, f"README.md line {block.line}: fence language {block.lang!r}"
    skipped = [b for b in blocks if b.skip]
    # the README's own list: the set-up commands, the modem example, the benchmarks
    assert len(skipped) == 3, [(b.line, b.skip) for b in skipped]
    for block in skipped:
        assert len(block.skip) > 20, f"README.md line {block.line}: say why it is not run"
        if block.lang == "sh":
            script = tmp_path / f"block-{block.line}.sh"
            script.write_text(block.text)
            check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
            assert check.returncode == 0, f"README.md line {block.line}: {check.stderr}"
        else:
            assert block.lang == "python", f"README.md line {block.line}: only sh/python skip"
            compile(block.text, f"README.md:{block.line}", "exec")
    assert os.access(os.path.join(ROOT, "scripts", "setup.sh"), os.X_OK)


def test_the_toml_blocks_are_valid_spool_files(tmp_path):
    tomls = [b for b in readme_blocks() if b.lang == "toml"]
    assert len(tomls) >= 4
    for block in tomls:
        path = tmp_path / f"block-{block.line}.toml"
        path.write_text(block.text)
        settings = load_toml(path)
        if "[[devices]]" in block.text:
            assert settings.own_devices, f"README.md line {block.line}"
            for spec in settings.devices:
                device_factory(spec["kind"])  # a kind that is installed


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _session(blocks: list[Block], folder: str) -> str:
    """One bash script: the blocks in order, each announced on stdout."""
    parts = ["set -e", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for n, block in enumerate(blocks):
        if block.skip or block.lang in ("toml", "text"):
            continue
        parts.append(f"echo '=== README block {n} (line {block.line}) ==='")
        if block.lang == "sh":
            parts.append(block.text)
        else:
            path = os.path.join(folder, f"block-{block.line}.py")
            with open(path, "w") as fh:
                fh.write(block.text)
            parts.append(f"python3 - < {path}")
    parts.append("echo '=== README done ==='")
    return "\n".join(parts) + "\n"


def _outputs(text: str, blocks: list[Block]) -> dict[int, str]:
    """What each block printed, by its README line."""
    found = re.split(r"^=== README (?:block \d+ \(line (\d+)\)|done) ===$", text, flags=re.M)
    return {int(line): out for line, out in zip(found[1::2], found[2::2], strict=True) if line}


def test_the_readme_runs_as_printed_on_a_fresh_machine(tmp_path):
    assert _port_free(DAEMON_PORT), f"port {DAEMON_PORT} is taken: the README's daemons use it"
    blocks = readme_blocks()
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(README, checkout / "README.md")
    shutil.copytree(os.path.join(ROOT, "docs"), checkout / "docs")
    folder = tmp_path / "blocks"
    folder.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTFAX_", "XDG_"))}
    env.update(
        HOME=str(home),
        PYTHONUSERBASE=site.getuserbase(),  # packages installed for the user stay found
        PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
    )
    script = folder / "session.sh"
    script.write_text(_session(blocks, str(folder)))
    proc = subprocess.Popen(
        ["bash", str(script)],
        cwd=checkout,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        text, _ = proc.communicate(timeout=SESSION_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        text, _ = proc.communicate()
        pytest.fail(f"the README did not finish in {SESSION_TIMEOUT} s:\n{text[-6000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    logs = "".join(f"\n--- {p.name} ---\n{p.read_text()[-3000:]}" for p in checkout.glob("*.log"))
    assert proc.returncode == 0 and "=== README done ===" in text, text[-6000:] + logs
    out = _outputs(text, blocks)
    ran = [b for b in blocks if b.lang in ("sh", "python") and not b.skip]
    assert sorted(out) == sorted(b.line for b in ran)

    # the service example on the fresh default spool: the test lines carry it
    service = next(b for b in ran if "fastfax.connect()" in b.text)
    printed = out[service.line]
    assert printed.split()[0] == "completed", printed
    assert "test/1 test line 1 100" in printed and "test/2 test line 2 200" in printed
    # ... and a number they cannot reach fails at once, saying what to declare where
    spool_toml = os.path.join(home, ".local", "share", "fastfax", "spool", "fastfax.toml")
    assert "'5551234'" in printed and spool_toml in printed and "[[devices]]" in printed
    # over HTTPS to the daemon the TLS how-to starts
    remote = out[next(b for b in ran if 'fastfax.connect("https://' in b.text).line].split("\n")
    remote = [line for line in remote if line]
    assert remote[:2] == ["completed", "['test line 1', 'test line 2']"], remote
    assert 'fastfax_faxes_total{direction="sent"} 1.0' in remote
    # the T.38 and SIP examples: both calls carried their page
    fax_over_ip = next(b for b in ran if "t38.send_fax" in b.text)
    assert out[fax_over_ip.line].split() == ["True", "14400", "True", "1", "True", "True", "1"]
