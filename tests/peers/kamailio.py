"""Start and stop kamailio (Debian package ``kamailio``) as a registrar and proxy on
127.0.0.1, with a generated configuration.

The configuration listens on UDP and TCP on a free port, challenges every REGISTER with
SHA-256 digest (realm = the To domain, password ``secret`` for every user), keeps the
location table in memory, record-routes and relays INVITEs to the registered contact
(404 when the user is not registered) and relays in-dialog requests by their route set.

    with Kamailio(tmp_path) as proxy:
        ... proxy.address ...   # ("127.0.0.1", port)
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

#: Debian's module directory (multiarch), or None when kamailio's modules are missing.
MODULES = next((str(p) + "/" for p in sorted(Path("/usr/lib").glob("*/kamailio/modules"))
                if (p / "tm.so").exists()), None)

CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
tcp_children=1
auto_aliases=no
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
mpath="{modules}"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)
modparam("auth", "algorithm", "SHA-256")
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (!sanity_check()) {{ exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not here"); exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    t_check_trans();
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("$td", "secret", "0")) {{ www_challenge("$td", "0"); exit; }}
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    if (is_method("OPTIONS") && uri==myself && $rU==$null) {{ sl_send_reply("200", "OK"); exit; }}
    record_route();
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    t_relay();
}}
"""


def available() -> bool:
    return shutil.which("kamailio") is not None and MODULES is not None


def _free_port() -> int:
    """A port number free on 127.0.0.1 for both TCP and UDP (kamailio listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both TCP and UDP on 127.0.0.1")


class Kamailio:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.config = workdir / "kamailio.cfg"
        self.log = workdir / "kamailio.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self, ready_timeout: float = 10.0) -> Kamailio:
        """Start kamailio and wait until it answers OPTIONS; a port taken meanwhile by
        another program (kamailio exits on it) is replaced by another, three times."""
        for attempt in range(3):
            try:
                return self._start(ready_timeout)
            except RuntimeError as exc:
                if "Address already in use" not in str(exc) or attempt == 2:
                    raise
                self.port = _free_port()
        raise AssertionError("unreachable")

    def _start(self, ready_timeout: float) -> Kamailio:
        self.config.write_text(CONFIG.format(port=self.port, modules=MODULES))
        rundir = self.workdir / "run"
        rundir.mkdir(exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["kamailio", "-f", str(self.config), "-DD", "-E", "-Y", str(rundir)],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:  # ready once it answers OPTIONS
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited:\n{self.log.read_text()[-2000:]}")
            if self._options():
                return self
        self.stop()
        raise RuntimeError(f"kamailio did not answer:\n{self.log.read_text()[-2000:]}")

    def _options(self) -> bool:
        message = (f"OPTIONS sip:127.0.0.1:{self.port} SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKprobe;rport\r\n"
                   "From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
                   "Call-ID: probe@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                   "Content-Length: 0\r\n\r\n").encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(0.3)
            s.sendto(message, self.address)
            try:
                return s.recv(4096).startswith(b"SIP/2.0 200")
            except OSError:
                return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Kamailio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
