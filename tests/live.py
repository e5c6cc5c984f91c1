"""Real processes and a real browser for the tests that attack or look at what people use:
a free port on 127.0.0.1, a `culture` server started and waited for, headless Chromium."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

CULTURE = Path(sys.executable).with_name("culture")


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_culture(*args: str, port: int, env: dict | None = None,
                  output=subprocess.PIPE) -> subprocess.Popen:
    """`culture ARGS...` as a process, returned once it accepts connections on `port`;
    the test fails with the process's last output if it never does. `output`: a pipe,
    or an open file the process writes to."""
    process = subprocess.Popen([str(CULTURE), *args], env=env, stdout=output,
                               stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.kill()
    if process.stdout:
        said = process.stdout.read().decode()[-2000:]
    else:   # written to a file the caller named
        said = Path(output.name).read_text(errors="replace")[-2000:]
    pytest.fail(f"culture {args[0]} did not start on port {port}: {said}")


def stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait()


def submit_sign_in(browser, base: str, username: str, password: str) -> None:
    """Open the dashboard's sign-in page at `base` and send the form as a person would;
    the caller waits for whatever page it expects next."""
    from selenium.webdriver.common.by import By

    browser.get(base + "/login")
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "sign-in").click()


def chromium(width: int = 1280, height: int = 1000, phone: bool = False,
             scripts: bool = True):
    """Headless Chromium through chromedriver, keeping the console log (Debian's packages;
    CI must have them, elsewhere the test is skipped). `phone`: a 390 x 844 phone held
    upright, by device emulation (a desktop window cannot be narrower than 500 px).
    `scripts=False`: the pages' own JavaScript is blocked, as a respondent's locked-down
    browser would (chromedriver's own commands still run)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (binary and driver):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver must be installed (see .ci/run)")
        pytest.skip("chromium / chromedriver not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not scripts:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})
    if phone:
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2}})
    return webdriver.Chrome(service=Service(driver), options=options)


class CookieClient:
    """One browser over plain HTTP: its own source address on the loopback network (any
    127.x.y.z reaches a server on 127.0.0.1), its cookies kept by name, no redirect
    followed."""

    def __init__(self, port: int, address: str = "127.0.0.1"):
        self.port, self.address = port, address
        self.cookies: dict[str, str] = {}

    def send(self, method: str, path: str, body: bytes | None = None,
             headers: dict | None = None) -> tuple[int, object, bytes]:
        """(status, response headers, body bytes), keeping what Set-Cookie said."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60,
                                                source_address=(self.address, 0))
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        content = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value and not morsel["expires"].startswith("Thu, 01 Jan 1970"):
                    self.cookies[name] = morsel.value
                else:       # an expired cookie is the server deleting it
                    self.cookies.pop(name, None)
        connection.close()
        return response.status, response.headers, content
