"""The JSON API served for real (waitress on 127.0.0.1) over a running System on real photos and models:
every endpoint, its errors, hostile labels, health, metrics, SSE and the OpenAPI document."""

from __future__ import annotations

import json
import socket
import threading
import uuid

import pytest
from web_helpers import Client, shared_system, wait_for, web_config


@pytest.fixture(scope="module")
def system(images_dir, models_dir):
    return shared_system()


@pytest.fixture(scope="module")
def client(system):
    client = Client(system.web_server.port)
    wait_for(lambda: client.get("/api/status")[2]["inferences"] > 0, timeout=60)
    return client


def unique(prefix: str = "thing") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def teach(client: Client, label: str) -> dict:
    status, headers, body = client.post("/api/classes", {"label": label})
    assert status == 201, body
    assert headers["location"] == f"/api/classes/{body['id']}"
    return body


def test_the_system_is_what_the_web_layer_expects(system):
    from appliance.web.interface import Appliance

    assert isinstance(system, Appliance)  # every attribute and method the routes use is there
    assert system.mqtt is None and system.classes.store is system.store


def test_status_has_the_promised_fields(client):
    status, headers, body = client.get("/api/status")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert body["backend"] in ("edgetpu", "cpu")
    assert body["fps"]["capture"] >= 0 and body["fps"]["inference"] >= 0
    assert body["inference_ms"] > 0
    assert isinstance(body["dropped_frames"], int) and body["uptime_s"] >= 0
    assert isinstance(body["viewers"], int)
    assert body["result"]["mode"] == "classify"
    # uptime is rounded to 0.1 s, so it can read 0.0 right after start; it must then grow.
    wait_for(lambda: client.get("/api/status")[2]["uptime_s"] > body["uptime_s"], timeout=5)


def test_teach_list_thumbnail_samples_rename_delete(client, system):
    label = unique("mug")
    made = teach(client, label)
    assert made["label"] == label and made["samples"] == system.config.teach.frames
    frames = system.config.teach.frames  # the demo held still: every frame kept, no warning
    assert made["burst"] == {"frames": frames, "kept": frames, "warning": None}
    status, _, listed = client.get("/api/classes")
    assert status == 200
    row = next(c for c in listed if c["id"] == made["id"])
    assert set(row) >= {"id", "label", "samples", "thumbnail_url"} and row["samples"] == made["samples"]

    status, headers, jpeg = client.get(row["thumbnail_url"])
    assert status == 200 and headers["content-type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"

    status, _, more = client.post(f"/api/classes/{made['id']}/samples")
    assert status == 200 and more["samples"] == 2 * made["samples"]

    new_label = unique("cup")
    status, _, renamed = client.request("PATCH", f"/api/classes/{made['id']}", {"label": f"  {new_label} "})
    assert status == 200 and renamed["label"] == new_label
    assert client.get(f"/api/classes/{made['id']}")[2]["label"] == new_label

    status, _, body = client.request("DELETE", f"/api/classes/{made['id']}")
    assert status == 204 and body == b""
    assert client.get(f"/api/classes/{made['id']}")[0] == 404
    assert client.get(f"/api/classes/{made['id']}/thumbnail.jpg")[0] == 404
    assert made["id"] not in [c["id"] for c in client.get("/api/classes")[2]]


def test_conflicts_say_what_to_do(client, system):
    first, second = teach(client, unique("a")), teach(client, unique("b"))
    status, _, body = client.post("/api/classes", {"label": first["label"].upper()})
    assert status == 409 and f"/api/classes/{first['id']}/samples" in body["fix"]
    status, _, body = client.request("PATCH", f"/api/classes/{second['id']}", {"label": first["label"]})
    assert status == 409 and body["error"]

    results: list = []
    worker = threading.Thread(target=lambda: results.append(client.post("/api/classes", {"label": unique()})))
    worker.start()
    wait_for(lambda: system.teacher.busy, timeout=10, interval=0.005)
    status, _, body = client.post(f"/api/classes/{first['id']}/samples")
    worker.join(30)
    assert status == 409 and "burst" in body["error"]
    assert results[0][0] == 201
    for c in (first, second, results[0][2]):
        client.request("DELETE", f"/api/classes/{c['id']}")


def test_not_found_and_method_errors(client):
    for method, path in [("GET", "/api/classes/987654"), ("PATCH", "/api/classes/987654"),
                         ("DELETE", "/api/classes/987654"), ("POST", "/api/classes/987654/samples"),
                         ("GET", "/api/classes/987654/thumbnail.jpg"), ("GET", "/api/nothing"),
                         ("GET", "/api/classes/../../etc/passwd"), ("GET", "/api/classes/abc/thumbnail.jpg"),
                         ("DELETE", "/api/classes/99999999999999999999999"),  # past SQLite's 64 bits
                         ("GET", "/api/classes/9223372036854775808/thumbnail.jpg")]:
        body = {"label": "x"} if method == "PATCH" else None
        status, headers, payload = client.request(method, path, body)
        assert status == 404, (method, path)
        assert headers["content-type"].startswith("application/json") and payload["fix"] is not None
    status, headers, payload = client.request("PUT", "/api/classes")
    assert status == 405 and "GET" in headers["allow"] and "POST" in payload["fix"]


@pytest.mark.parametrize(
    ("raw", "ctype", "expected"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"name": "x"}', "application/json", 400),
        (b'{"label": 42}', "application/json", 400),
        (b"", "application/json", 400),
        (b"label=cat", "application/x-www-form-urlencoded", 415),
        (b'{"label": "cat"}', "text/plain", 415),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400),  # nested deeper than the parser recurses
    ],
)
def test_bad_bodies(client, raw, ctype, expected):
    status, _, body = client.request("POST", "/api/classes", raw=raw, headers={"Content-Type": ctype})
    assert status == expected and body["error"] and body["fix"]


def test_body_over_the_limit_is_413(client, system):
    limit = system.config.web.max_request_bytes
    raw = json.dumps({"label": "x" * (limit + 10)}).encode()
    status, _, body = client.request("POST", "/api/classes", raw=raw,
                                     headers={"Content-Type": "application/json"})
    assert status == 413 and "max_request_bytes" in body["fix"]


@pytest.mark.parametrize(
    "label",
    ["x" * 10_000, "a\x00b", "line\nbreak", "tab\there", "bidi\u202eevil", "   ", "zero\u200bwidth"],
)
def test_hostile_labels_are_refused(client, label):
    status, _, body = client.post("/api/classes", {"label": label})
    assert status == 400 and body["error"] and body["fix"]


def test_html_label_is_stored_as_text_and_never_rendered(client):
    label = '<script>alert("x")</script>&<b>'
    made = teach(client, label)
    try:
        status, headers, listed = client.get("/api/classes")
        assert headers["content-type"].startswith("application/json")
        assert label in [c["label"] for c in listed]
        status, headers, page = client.get("/")
        assert status == 200 and b"<script>alert" not in page
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
    finally:
        client.request("DELETE", f"/api/classes/{made['id']}")


def test_foreign_origin_is_403_same_origin_and_no_origin_pass(client):
    port = client.port
    status, _, body = client.post("/api/classes", {"label": "x"}, headers={"Origin": "http://evil.example"})
    assert status == 403 and body["fix"]
    status, _, _ = client.request("DELETE", "/api/classes/987654",
                                  headers={"Referer": "http://evil.example/attack.html"})
    assert status == 403
    status, _, _ = client.request("DELETE", "/api/classes/987654", headers={"Origin": f"http://127.0.0.1:{port}"})
    assert status == 404  # passed the check, then no such class
    assert client.request("DELETE", "/api/classes/987654")[0] == 404


def test_snapshot_healthz_metrics(client):
    status, headers, jpeg = client.get("/snapshot.jpg")
    assert status == 200 and headers["content-type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
    assert "no-store" in headers["cache-control"]
    status, _, body = client.get("/healthz")
    assert status == 200 and body == {"ok": True}
    status, headers, text = client.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    text = text.decode()
    for name in ('appliance_fps{stage="inference"}', "appliance_inference_seconds ",
                 "appliance_dropped_frames_total ", "appliance_uptime_seconds ",
                 "appliance_stream_viewers ", "appliance_classes ",
                 'appliance_backend_info{backend="cpu"', "# TYPE appliance_dropped_frames_total counter"):
        assert name in text, name
    inference_fps = float(next(line for line in text.splitlines()
                               if line.startswith('appliance_fps{stage="inference"}')).split()[-1])
    assert inference_fps > 0


def test_unstarted_system_is_unhealthy_with_a_reason(tmp_path, images_dir, models_dir):
    from appliance.system import System
    from appliance.web.app import create_app
    from appliance.web.server import serve

    idle = System(web_config(tmp_path))  # built, never started: no frames, no inferences
    server = serve(create_app(idle), "127.0.0.1", 0, 4)
    try:
        c = Client(server.port)
        status, _, body = c.get("/healthz")
        assert status == 503 and body["error"] and body["fix"]
        status, _, body = c.get("/snapshot.jpg")
        assert status == 503 and "no frame" in body["error"]
        assert b"appliance_healthy 0" in c.get("/metrics")[2]
    finally:
        server.stop()
        idle.stop()


def _read_events(port: int, until, timeout: float = 20.0) -> list[tuple[str, object]]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    buf, events = b"", []
    try:
        while not until(events):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                lines = block.decode("utf-8", "replace").splitlines()
                name = next((ln[7:] for ln in lines if ln.startswith("event: ")), None)
                data = next((ln[6:] for ln in lines if ln.startswith("data: ")), None)
                if any(ln.startswith(": ping") for ln in lines):
                    events.append(("ping", None))
                if name:
                    events.append((name, json.loads(data)))
    finally:
        sock.close()
    return events


def test_events_stream_status_recognition_and_class_changes(client):
    made = teach(client, unique("evt"))
    new_label = unique("evt2")
    timer = threading.Timer(1.0, lambda: client.request("PATCH", f"/api/classes/{made['id']}",
                                                        {"label": new_label}))
    timer.start()
    try:
        events = _read_events(client.port, lambda evs: any(
            n == "classes" and any(c["label"] == new_label for c in d["classes"]) for n, d in evs))
    finally:
        timer.join()
        client.request("DELETE", f"/api/classes/{made['id']}")
    names = [n for n, _ in events]
    assert names[0] == "status" and "fps" in events[0][1] and "viewers" in events[0][1]
    assert "recognition" in names and "status" in names[1:]


def test_events_heartbeat_when_idle(tmp_path, images_dir, models_dir):
    from appliance.system import System
    from appliance.web.app import create_app
    from appliance.web.server import serve

    idle = System(web_config(tmp_path))
    server = serve(create_app(idle, heartbeat_s=0.2), "127.0.0.1", 0, 4)
    try:
        events = _read_events(server.port, lambda evs: sum(n == "ping" for n, _ in evs) >= 2)
        assert [n for n, _ in events][:1] == ["status"] and events.count(("ping", None)) >= 2
    finally:
        server.stop()
        idle.stop()


def test_openapi_documents_every_route(client, system):
    status, _, spec = client.get("/api/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    app = system.web_server.app
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<int:class_id>", "{id}").replace("<name>", "{name}")
        assert path in spec["paths"], path
        documented = {m.upper() for m in spec["paths"][path] if m != "parameters"}
        assert rule.methods - {"HEAD", "OPTIONS"} <= documented, path
