"""The explorer over the session's scored sample: users, a signed-in client, a live server and a browser."""

from __future__ import annotations

import shutil
import threading

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from werkzeug.serving import make_server

from app.explorer import create_app
from graph.settings import Settings
from tests.helpers import posguard

PASSWORDS = {"ivy": ("investigator", "ivy-password-1"), "ann": ("analyst", "ann-password-1"),
             "adm": ("admin", "adm-password-1")}


@pytest.fixture(scope="session")
def app_env(scored_env):
    """The scored sample's environment with the explorer's users added."""
    for name, (role, password) in PASSWORDS.items():
        result = posguard("users", "add", name, "--role", role, "--password-stdin", env=scored_env,
                          input=password + "\n")
        assert result.returncode == 0, result.stderr
    return scored_env


@pytest.fixture(scope="session")
def app_settings(scored_settings) -> Settings:
    return scored_settings


@pytest.fixture(scope="session")
def app_db(app_env, scored_db):
    return scored_db


@pytest.fixture(scope="session")
def dash_app(app_db, app_settings):
    return create_app(app_db, token_key=app_settings.token_key)


def sign_in(client, name: str):
    """Sign ``client`` (a Flask test client) in as one of ``PASSWORDS``; returns the response."""
    return client.post("/login", data={"username": name, "password": PASSWORDS[name][1]})


@pytest.fixture()
def client(dash_app):
    """A Flask test client signed in as the investigator."""
    c = dash_app.server.test_client()
    assert sign_in(c, "ivy").status_code == 302
    return c


WAIT = 30  # seconds a browser test waits for a page or a callback


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    assert browser and driver, "the browser tests need Debian's chromium and chromium-driver (make system-deps)"
    return browser, driver


@pytest.fixture(scope="module")
def live_url(dash_app):
    """The explorer served by a real HTTP server on a free port of 127.0.0.1, in a thread."""
    server = make_server("127.0.0.1", 0, dash_app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture()
def browser(tmp_path):
    binary, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})  # requests, errors
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()
