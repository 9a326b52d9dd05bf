"""The web console (issue 15 item 5): its login cookie and guards, page thumbnails and
the PDF download checked against independent decoders (Pillow, Ghostscript), and the
whole console driven in a real headless Chromium under Selenium: log in, send a fax
through the form over a loopback pair, watch it complete live, open the received fax
(thumbnail shown, PDF downloaded), a screenshot saved."""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import subprocess
import time
import urllib.parse

import numpy as np
import pytest
from PIL import Image
from service_helpers import make_pdf, make_spool, only_sender

from fastfax import tiff
from fastfax.client import connect
from fastfax.service.console import COOKIE, CSRF_HEADER
from fastfax.service.http import HttpService
from fastfax.service.model import JobState
from fastfax.service.rights import ALL_RIGHTS, Right
from fastfax.service.server import Service

T = 60


@pytest.fixture
def console(tmp_path):
    """A service with the loopback pairs of :func:`make_spool` behind HTTP (only lp/1
    sends; lp/2, number 200, stores what it receives), and the administrator's token."""
    service = Service(make_spool(str(tmp_path)))
    owner = service.open_session(local=True)
    token = service.call(owner, "add_user", {"name": "admin", "rights": ALL_RIGHTS.value})
    service.close_session(owner)
    front = HttpService(service)
    admin = connect(front.url, token=token)
    only_sender(admin, "lp/1")
    yield front, admin, token
    admin.close()
    front.close()
    service.close()


class Browser:
    """A tiny HTTP client keeping the console's cookie (as a browser would)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.cookie: str | None = None

    def request(self, method, path, body=None, headers=None, csrf=True):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=T)
        headers = dict(headers or {})
        if self.cookie:
            headers["Cookie"] = f"{COOKIE}={self.cookie}"
        if body is not None:
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            if csrf:
                headers[CSRF_HEADER] = "1"
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response, data

    def login(self, token):
        response, data = self.request("POST", "/console/login", {"token": token})
        if response.status == 200:
            jar = http.cookies.SimpleCookie(response.getheader("Set-Cookie"))
            self.cookie = jar[COOKIE].value
        return response, data

    def call(self, call, **args):
        response, data = self.request("POST", f"/console/api/{call}", args)
        return response.status, json.loads(data)


import http.cookies  # noqa: E402


def test_login_cookie_guards_and_rights(console):
    front, admin, token = console
    b = Browser(front.url)
    response, page = b.request("GET", "/console/")
    assert response.status == 200 and b"app.js" in page
    assert "default-src 'self'" in response.getheader("Content-Security-Policy")
    response, _ = b.request("GET", "/console")
    assert response.status == 302 and response.getheader("Location") == "/console/"
    for name in ("app.js", "style.css"):
        response, _ = b.request("GET", f"/console/{name}")
        assert response.status == 200

    assert b.request("GET", "/console/me")[0].status == 401
    assert b.call("jobs")[0] == 401
    assert b.login("not-a-token")[0].status == 401 and b.cookie is None
    response, _ = b.request("POST", "/console/login", {"token": token}, csrf=False)
    assert response.status == 403 and response.getheader("Set-Cookie") is None
    response, _ = b.request(
        "POST", "/console/login", {"token": token}, {"Origin": "https://evil.example"}
    )
    assert response.status == 403 and response.getheader("Set-Cookie") is None

    response, data = b.login(token)
    assert response.status == 200
    assert json.loads(data)["result"]["user"] == "admin"
    cookie = response.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert token not in cookie and token not in data.decode() and b.cookie != token
    assert json.loads(b.request("GET", "/console/me")[1])["result"]["user"] == "admin"
    assert b.call("jobs") == (200, {"result": []})
    response, _ = b.request("POST", "/console/api/jobs", {}, csrf=False)
    assert response.status == 403
    status, answer = b.call("add_user", name="x", rights=127)  # not a console call
    assert status == 400 and "does not make" in answer["error"]["message"]
    # the cookie is no token for the API proper
    response, _ = b.request("POST", "/api/jobs", {}, {"Authorization": f"Bearer {b.cookie}"})
    assert response.status == 401

    # a user who may only look: sees, cannot send or manage, and is told so
    viewer = Browser(front.url)
    viewer.login(admin.add_user("viewer", Right.JOB_QUERY | Right.PORT_QUERY))
    assert viewer.call("has_access", right="job_manage") == (200, {"result": False})
    assert viewer.call("has_access", right="port_query") == (200, {"result": True})
    status, answer = viewer.call("send", document={"$bytes": "AAAA"}, to="200")
    assert status == 403 and answer["error"]["type"] == "AccessDenied"
    assert viewer.call("ports")[0] == 200
    admin.remove_user("viewer")  # its login ends with it
    assert viewer.call("ports")[0] == 401
    assert viewer.request("GET", "/console/me")[0].status == 401

    assert b.request("POST", "/console/logout", {})[0].status == 200
    assert b.request("GET", "/console/me")[0].status == 401


def test_hostile_requests_get_errors_not_tracebacks(console):
    front, admin, token = console
    b = Browser(front.url)
    for body, status in (
        (b"[1]", 400),
        (b"\xff\xfe", 400),
        (b"{", 400),
        ({"token": 5}, 401),
        ({"token": ""}, 401),
        ({"token": "x" * 100}, 401),
        (b"{" + b" " * (1 << 15) + b"}", 413),
    ):
        response, data = b.request("POST", "/console/login", body)
        assert response.status == status, (body[:20], data)
        assert json.loads(data)["error"]["type"] != "ServiceError"
        assert response.getheader("Set-Cookie") is None
    b.cookie = "garbage"
    assert b.request("GET", "/console/me")[0].status == 401
    b.cookie = None
    b.login(token)
    for path, status in (
        ("/console/jobs/abc/pages/1.png", 404),
        ("/console/jobs/1/pages/x.png", 404),
        ("/console/jobs/99999999999999/fax.pdf", 404),
        ("/console/jobs/1/pages/1.png?width=abc", 400),
        ("/console/jobs/1/pages/1.png?width=100000", 400),
        ("/console/jobs/-1/fax.pdf", 404),
        ("/console/nothing", 404),
        ("/console/events?since=x", 400),
    ):
        response, data = b.request("GET", path)
        assert response.status == status, (path, data)
        assert json.loads(data)["error"]["type"] != "ServiceError"
    status, answer = b.call("send", document={"$bytes": "not base64!"}, to="200")
    assert status == 400
    status, answer = b.call("job_control", job_id="1; drop", action="cancel")
    assert status == 404
    response, _ = b.request("POST", "/console/api/jobs", b"not json")
    assert response.status == 400


def test_the_cookie_is_secure_over_https(console, tmp_path):
    import ssl

    from test_http_front import _certificate

    front, admin, token = console
    cert, key = _certificate(str(tmp_path))
    secure = HttpService(front.service, certificate=cert, key=key)
    try:
        parts = urllib.parse.urlsplit(secure.url)
        context = ssl.create_default_context(cafile=cert)
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=context, timeout=T)
        body = json.dumps({"token": token})
        conn.request("POST", "/console/login", body, {CSRF_HEADER: "1"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        cookie = response.getheader("Set-Cookie")
        assert "Secure" in cookie and "HttpOnly" in cookie
        conn.close()
    finally:
        secure.close()


def _received(admin, timeout=T):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [j for j in admin.jobs() if j.type.value == "receive"]
        if got and got[0].state is JobState.COMPLETED:
            return got[0]
        time.sleep(0.05)
    raise AssertionError("no fax received")


def test_thumbnails_and_pdf_against_independent_decoders(console, tmp_path):
    front, admin, token = console
    job = admin.send(make_pdf(str(tmp_path / "doc.pdf"), 2), to="200")
    assert job.wait(timeout=T).state is JobState.COMPLETED
    fax = _received(admin)
    (stored,) = os.listdir(tmp_path / "inbox")
    pages = tiff.read(str(tmp_path / "inbox" / stored))  # what the far line stored
    assert len(pages) == fax.pages == 2

    b = Browser(front.url)
    b.login(token)
    for n, page in enumerate(pages, 1):
        response, png = b.request("GET", f"/console/jobs/{fax.id}/pages/{n}.png?width=240")
        assert response.status == 200 and response.getheader("Content-Type") == "image/png"
        image = Image.open(io.BytesIO(png))
        assert image.width == 240
        inches = (page.width / page.xres, page.height / page.yres)
        assert abs(image.height - 240 * inches[1] / inches[0]) <= 1
        black = page.to_array().mean()
        # a box filter keeps the page's mean darkness
        assert abs((1 - np.asarray(image, float).mean() / 255) - black) < 0.01
    assert b.request("GET", f"/console/jobs/{fax.id}/pages/3.png")[0].status == 404
    assert b.request("GET", f"/console/jobs/{fax.id}/pages/1.png?width=9")[0].status == 400
    assert b.request("GET", "/console/jobs/999/fax.pdf")[0].status == 404

    response, pdf = b.request("GET", f"/console/jobs/{fax.id}/fax.pdf")
    assert response.status == 200 and pdf.startswith(b"%PDF")
    assert "attachment" in response.getheader("Content-Disposition")
    _same_as_ghostscript_renders(pdf, pages, tmp_path)

    # another user's fax needs the job manage right
    looker = Browser(front.url)
    looker.login(admin.add_user("looker", Right.JOB_QUERY))
    assert looker.request("GET", f"/console/jobs/{fax.id}/fax.pdf")[0].status == 403


def _same_as_ghostscript_renders(pdf: bytes, pages, tmp_path) -> None:
    gs = shutil.which("gs")
    if gs is None:
        return
    path = tmp_path / "fax.pdf"
    path.write_bytes(pdf)
    for n, page in enumerate(pages, 1):
        out = tmp_path / f"gs-{n}.pbm"
        subprocess.run(
            [gs, "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=pbmraw",
             f"-r{page.xres:g}x{page.yres:g}", f"-dFirstPage={n}", f"-dLastPage={n}",
             f"-sOutputFile={out}", str(path)],
            check=True, timeout=T,
        )  # fmt: skip
        rendered = np.asarray(Image.open(out).convert("1"), bool) == 0  # black is 0 in "1"
        assert rendered.shape == (page.height, page.width)
        assert np.array_equal(rendered, page.to_array())


def test_events_stream_over_the_cookie(console, tmp_path):
    front, admin, token = console
    b = Browser(front.url)
    b.login(token)
    conn = http.client.HTTPConnection(b.host, b.port, timeout=T)
    conn.request("GET", "/console/events", headers={"Cookie": f"{COOKIE}={b.cookie}"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/event-stream")
    job = admin.send(make_pdf(str(tmp_path / "doc.pdf"), 1), to="200")
    seen = []
    while "completed" not in seen:
        line = response.fp.readline().decode()
        if line.startswith("event: "):
            seen.append(line.split()[1])
    assert "job_queued" in seen
    conn.close()
    job.wait(timeout=T)
    bare = http.client.HTTPConnection(b.host, b.port, timeout=T)
    bare.request("GET", "/console/events")
    assert bare.getresponse().status == 401
    bare.close()


# -- in a real browser ---------------------------------------------------------------------


def _chrome():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip(
            "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1500",
    ):
        options.add_argument(arg)
    from selenium.webdriver.chrome.service import Service as DriverService

    return webdriver.Chrome(service=DriverService(driver), options=options)


#: Records, in the page, each state the sent job's queue row and line slow/1 show.
_TRAIL = """
window.trail = {job: [], line: []};
const note = (list, value) => { if (value && list[list.length - 1] !== value) list.push(value); };
new MutationObserver(() => {
  const row = document.querySelector('#queue tbody tr[data-type="send"]');
  note(window.trail.job, row && row.dataset.state);
  const line = document.querySelector('#lines tr[data-port="slow/1"] td.state');
  note(window.trail.line, line && line.textContent);
}).observe(document.getElementById("main-view"), {childList: true, subtree: true});
"""


def test_console_in_a_real_browser(console, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    front, admin, token = console
    only_sender(admin, "slow/1")  # half a second a page: time to see it on the line
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    document = make_pdf(str(tmp_path / "letter.pdf"), 2)
    browser = _chrome()
    try:
        browser.execute_cdp_cmd(
            "Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": str(downloads)},
        )
        wait = WebDriverWait(browser, T)
        browser.get(front.url + "/console/")
        wait.until(ec.visibility_of_element_located((By.ID, "token"))).send_keys(token)
        browser.find_element(By.ID, "login-button").click()
        wait.until(ec.visibility_of_element_located((By.ID, "main-view")))
        assert browser.find_element(By.ID, "who").text == "admin"
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live")
                   == "open")  # fmt: skip
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#lines tbody tr")) == 6)
        assert browser.execute_script("return document.cookie") == ""  # HttpOnly

        browser.execute_script(_TRAIL)
        browser.find_element(By.ID, "send-file").send_keys(document)
        browser.find_element(By.ID, "send-to").send_keys("600")
        browser.find_element(By.ID, "send-recipient").send_keys("Accounts")
        browser.find_element(By.ID, "send-cover").click()
        browser.find_element(By.ID, "send-subject").send_keys("Invoice 42")
        browser.find_element(By.ID, "send-button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "send-result"), "queued as job"))
        job_id = int(browser.find_element(By.ID, "send-result").text.split()[-1])
        row = f"#job-{job_id}"
        # the page never polls: the queue and the line follow the job over the event stream
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, row).get_attribute("data-state")
                   == "completed")  # fmt: skip
        trail = browser.execute_script("return window.trail")
        assert "inprogress" in trail["job"] and trail["job"][-1] == "completed", trail
        assert "sending" in trail["line"], trail
        info = admin.job(job_id).info()
        assert info.state is JobState.COMPLETED
        assert info.pages == 3  # the cover and the two pages
        restart = browser.find_elements(By.CSS_SELECTOR, f"{row} button[data-action]")
        assert [b.get_attribute("data-action") for b in restart] == ["restart"]

        card = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".fax")))
        fax_id = int(card.get_attribute("id").split("-")[1])
        thumbs = card.find_elements(By.CSS_SELECTOR, "img.thumb")
        assert len(thumbs) == 3
        wait.until(lambda d: all(d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", t) == 180
            for t in thumbs))  # fmt: skip
        browser.save_screenshot(str(tmp_path / "console.png"))
        card.find_element(By.CSS_SELECTOR, "a.pdf").click()
        deadline = time.monotonic() + T
        while not any(p.suffix == ".pdf" for p in downloads.iterdir()):
            assert time.monotonic() < deadline, "the PDF did not download"
            time.sleep(0.1)
        (pdf,) = [p for p in downloads.iterdir() if p.suffix == ".pdf"]
        assert pdf.read_bytes().startswith(b"%PDF")
        _same_as_ghostscript_renders(pdf.read_bytes(), admin.job(fax_id).pages(), tmp_path)

        # log out: the page asks for a token again
        browser.find_element(By.ID, "logout").click()
        wait.until(ec.visibility_of_element_located((By.ID, "token")))
        assert browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr") == []

        # a user who may only look: no send form, no job actions, no others' faxes
        viewer = admin.add_user("viewer", Right.JOB_QUERY | Right.PORT_QUERY)
        browser.find_element(By.ID, "token").send_keys(viewer)
        browser.find_element(By.ID, "login-button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#queue tbody tr")) == 2)
        assert browser.find_element(By.ID, "who").text == "viewer"
        assert not browser.find_element(By.ID, "send-card").is_displayed()
        assert browser.find_elements(By.CSS_SELECTOR, "#queue button") == []
        assert browser.find_elements(By.CSS_SELECTOR, ".fax") == []
    finally:
        browser.quit()
    assert (tmp_path / "console.png").stat().st_size > 10_000
