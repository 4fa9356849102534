"""The web password and CSRF rules: hashing, origin checks, the passwd command, and a served app with a
password over the real running System (401 without it, bearer token, login form, open /healthz)."""

from __future__ import annotations

import dataclasses
import http.client
import os
import stat
import subprocess
import sys
import urllib.parse

import pytest
from web_helpers import Client, ConfigView, shared_system, wait_for

from appliance.errors import ApplianceError
from appliance.paths import REPO_ROOT
from appliance.web.auth import (
    PasswordCheck,
    bearer_token,
    hash_password,
    load_secret_key,
    origin_allowed,
    verify_password,
)

PASSWORD = "correct horse ✓"


def test_hash_is_salted_self_describing_and_verifies():
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second  # salted
    assert first.startswith("scrypt$16384$8$1$")
    assert PASSWORD not in first
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)
    assert not verify_password("correct horse", first)
    assert not verify_password("", first)


def test_malformed_hash_and_empty_password_say_the_fix():
    with pytest.raises(ApplianceError, match="appliance passwd"):
        PasswordCheck("md5$abc")
    with pytest.raises(ApplianceError, match="empty"):
        hash_password("")


def test_password_check_remembers_only_good_tokens():
    check = PasswordCheck(hash_password("s3cret"))
    assert check.check("s3cret") and check.check("s3cret")
    assert not check.check("s3cret ") and not check.check("wrong")


@pytest.mark.parametrize(
    ("method", "origin", "referer", "allowed"),
    [
        ("GET", "http://evil.example", None, True),            # reads are not checked
        ("POST", None, None, True),                             # curl, scripts
        ("POST", "http://box.local:8080", None, True),
        ("POST", "http://BOX.local:8080", None, True),
        ("POST", "http://evil.example", None, False),
        ("POST", "http://box.local:9999", None, False),        # another port is another origin
        ("PATCH", "null", None, False),
        ("DELETE", None, "http://evil.example/page", False),
        ("DELETE", None, "http://box.local:8080/", True),
        ("POST", "http://box.local:8080", "http://evil.example/", True),  # Origin wins over Referer
    ],
)
def test_origin_allowed(method, origin, referer, allowed):
    assert origin_allowed(method, "box.local:8080", origin, referer) is allowed


def test_bearer_token_parsing():
    assert bearer_token("Bearer abc def") == "abc def"
    assert bearer_token("bearer x") == "x"
    assert bearer_token("Basic eA==") is None
    assert bearer_token("Bearer ") is None and bearer_token(None) is None


def test_secret_key_persists_with_private_mode(tmp_path):
    key = load_secret_key(tmp_path)
    assert len(key) >= 32 and load_secret_key(tmp_path) == key
    assert stat.S_IMODE(os.stat(tmp_path / "web_secret").st_mode) == 0o600


def test_passwd_command_prints_a_hash_from_stdin():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "appliance", "passwd"], input="pa ss\n", text=True,
                          capture_output=True, timeout=60, env=env, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert verify_password("pa ss", line) and "password_hash" in done.stderr
    empty = subprocess.run([sys.executable, "-m", "appliance", "passwd"], input="\n", text=True,
                           capture_output=True, timeout=60, env=env, cwd=REPO_ROOT)
    assert empty.returncode == 2 and "no password" in empty.stderr


# -- a served app with a password over the real System ---------------------------------------------
@pytest.fixture(scope="module")
def locked(images_dir, models_dir):
    from appliance.web.app import create_app
    from appliance.web.server import serve

    system = shared_system()
    config = system.config
    web = dataclasses.replace(config.web, password_hash=hash_password(PASSWORD))
    config = dataclasses.replace(config, web=web)
    app = create_app(ConfigView(system, config))
    server = serve(app, "127.0.0.1", 0, 8)
    yield Client(server.port), server, ConfigView(system, config)
    server.stop()


def _form_login(port: int, password: str, origin: str | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if origin:
        headers["Origin"] = origin
    conn.request("POST", "/login", body=urllib.parse.urlencode({"password": password}), headers=headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_password_required_for_page_api_and_stream(locked):
    client, _, _ = locked
    status, headers, _ = client.get("/")
    assert status == 302 and headers["location"].endswith("/login")
    for path in ("/api/classes", "/api/status", "/snapshot.jpg", "/stream.mjpg", "/api/events"):
        status, headers, body = client.get(path)
        assert status == 401, path
        assert body["fix"] and "Bearer" in headers["www-authenticate"]
    status, _, body = client.post("/api/classes", {"label": "sneaky"})
    assert status == 401 and "password" in body["error"]
    status, _, _ = client.request("DELETE", "/api/classes/1", headers={"Authorization": "Bearer wrong"})
    assert status == 401


def test_healthz_metrics_and_login_stay_open(locked):
    client, _, _ = locked
    wait_for(lambda: client.get("/healthz")[0] == 200)
    status, headers, body = client.get("/metrics")
    assert status == 200 and b"appliance_fps" in body
    status, headers, body = client.get("/login")
    assert status == 200 and b'type="password"' in body
    assert client.get("/api/openapi.json")[0] == 200


def test_bearer_token_opens_the_api(locked):
    client, _, _ = locked
    auth = {"Authorization": f"Bearer {PASSWORD}".encode().decode("latin-1")}
    status, _, body = client.get("/api/classes", headers=auth)
    assert status == 200 and isinstance(body, list)
    status, _, body = client.request("PATCH", "/api/classes/987654", {"label": "x"}, headers=auth)
    assert status == 404  # past the password: the class does not exist


def test_login_form_sets_a_strict_httponly_session(locked):
    client, server, _ = locked
    bad = _form_login(server.port, "nope")
    assert bad.status == 401 and bad.getheader("Set-Cookie") is None
    foreign = _form_login(server.port, PASSWORD, origin="http://evil.example")
    assert foreign.status == 403
    good = _form_login(server.port, PASSWORD, origin=f"http://127.0.0.1:{server.port}")
    assert good.status == 302 and good.getheader("Location").endswith("/")
    cookie = good.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = {"Cookie": cookie.split(";", 1)[0]}
    status, _, body = client.get("/", headers=jar)
    assert status == 200 and b"/stream.mjpg" in body and b"Log out" in body
    assert client.get("/api/classes", headers=jar)[0] == 200


def test_session_survives_a_restart(locked):
    from appliance.web.app import create_app
    from appliance.web.server import serve

    _, server, view = locked
    good = _form_login(server.port, PASSWORD)
    jar = {"Cookie": good.getheader("Set-Cookie").split(";", 1)[0]}
    restarted = serve(create_app(view), "127.0.0.1", 0, 4)  # a new app: the key comes from web_secret
    try:
        assert Client(restarted.port).get("/api/classes", headers=jar)[0] == 200
        assert Client(restarted.port).get("/api/classes")[0] == 401
    finally:
        restarted.stop()
