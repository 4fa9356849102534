"""create_app(system) -> Flask: the page, the stream, the JSON API and SSE over one running System.

Every request passes three gates, in order: the cross-site check on mutating requests (403), the size
limit (413), the password when one is configured (401, or the login form for the page). Every error
is JSON {"error", "fix"} with its status code.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from flask import Flask, jsonify, redirect, render_template, request, session
from werkzeug.exceptions import HTTPException

from appliance.errors import ApplianceError
from appliance.web import api, events, metrics, models_api, stream, transfer
from appliance.web.auth import (
    MUTATING,
    OPEN_PATHS,
    ForbiddenError,
    PasswordCheck,
    UnauthorizedError,
    bearer_token,
    load_secret_key,
    origin_allowed,
)
from appliance.web.hosts import HostCheck
from appliance.web.interface import Appliance
from appliance.web.server import CLIENT_CONNECTIONS_KEY, LARGE_BODIES_KEY, shutdown_event
from appliance.web.sessions import Sessions
from appliance.web.state import STATE_KEY, WebState, client_address, web_state
from appliance.web.throttle import Throttle, TooManyAttemptsError

log = logging.getLogger(__name__)

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

HTTP_FIXES = {
    404: "see /api/openapi.json for the endpoints",
    405: "see /api/openapi.json for the methods each endpoint takes",
    413: "send a smaller body (the limit is web.max_request_bytes)",
}


SESSION_LIFETIME = timedelta(days=30)


class TooLargeError(ApplianceError):
    status = 413


def create_app(system: Appliance, *, heartbeat_s: float = 15.0, poll_s: float = 0.5) -> Flask:
    """The Flask app over `system` (a started or not yet started appliance.system.System)."""
    web = system.config.web
    password_hash = web.password_hash
    max_bytes = web.max_request_bytes
    data_dir = Path(system.config.data_dir)

    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=max_bytes,
        SECRET_KEY=load_secret_key(data_dir),
        SESSION_COOKIE_NAME="appliance_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.json.sort_keys = False
    password = PasswordCheck(password_hash) if password_hash else None
    # the upload routes' bodies: the server reads up to these there, and refuses more everywhere else
    app.extensions[LARGE_BODIES_KEY] = {models_api.UPLOAD_PATH: models_api.upload_limit(),
                                        transfer.IMPORT_PATH: transfer.MAX_UPLOAD_BYTES}
    app.extensions[CLIENT_CONNECTIONS_KEY] = web.max_connections_per_client  # the server caps them
    app.extensions[STATE_KEY] = WebState(
        system=system,
        shutdown=shutdown_event(app),
        password=password,
        heartbeat_s=heartbeat_s,
        poll_s=poll_s,
        hosts=HostCheck(tuple(web.allowed_hosts), web.host),
        throttle=Throttle(),
        sessions=Sessions(data_dir, password.fingerprint, SESSION_LIFETIME.total_seconds()) if password
        else None,
    )
    for blueprint in (api.bp, events.bp, metrics.bp, stream.bp, models_api.bp, transfer.bp):
        app.register_blueprint(blueprint)
    app.before_request(_gatekeeper)
    app.after_request(_security_headers)
    app.register_error_handler(ApplianceError, _appliance_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.add_url_rule("/", "index", _index)
    app.add_url_rule("/login", "login", _login, methods=["GET", "POST"])
    app.add_url_rule("/logout", "logout", _logout, methods=["POST"])
    return app


# -- gates ---------------------------------------------------------------------------------------
def _logged_in(state: WebState) -> bool:
    if state.password is None:
        return True
    if session.get("auth") == state.password.fingerprint and state.sessions is not None \
            and state.sessions.valid(session.get("sid")):
        return True
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        return False
    if state.password.cached(token):  # verified before: no scrypt, no throttle
        return True
    password = state.password
    return state.throttle.attempt(client_address(), lambda: password.check(token))


def _gatekeeper():
    state = web_state()
    state.hosts.check(request.headers.get("Host"))
    if not origin_allowed(request.method, request.host, request.headers.get("Origin"),
                          request.headers.get("Referer")):
        raise ForbiddenError("this request came from another site's page",
                             "use the appliance's own page, or send the request without an Origin header")
    # the non-JSON bodies, each with its own size limit: a model file, a class-store file
    upload = True
    if models_api.is_upload():
        request.max_content_length = models_api.upload_limit()
    elif request.path == transfer.IMPORT_PATH:
        request.max_content_length = transfer.MAX_UPLOAD_BYTES
    else:
        upload = False
    length = request.content_length
    if length is not None and length > (request.max_content_length or 0):
        raise TooLargeError(f"the request body is {length} bytes, more than {request.max_content_length}",
                            HTTP_FIXES[413])
    path = request.path
    if path in OPEN_PATHS or path.startswith("/static/") or _logged_in(state):
        if (request.method in MUTATING and path not in OPEN_PATHS and not upload and request.mimetype
                and not request.is_json and (length or 0) > 0):
            raise api.UnsupportedMediaError(f"the body is {request.mimetype}, not JSON",
                                            "send Content-Type: application/json with a JSON object body")
        return None
    if request.method == "GET" and path == "/":
        return redirect("/login")
    raise UnauthorizedError("this appliance needs its web password",
                            "log in on the page, or send the header Authorization: Bearer <password>")


def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


# -- errors --------------------------------------------------------------------------------------
def _appliance_error(exc: ApplianceError):
    response = jsonify({"error": exc.problem, "fix": exc.fix})
    response.status_code = exc.status
    if exc.retry_after is not None:  # throttled passwords, a client's live-view cap
        response.headers["Retry-After"] = str(exc.retry_after)
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="appliance"'
    return response


def _http_error(exc: HTTPException):
    if exc.code is not None and exc.code < 400:  # routing redirects (a trailing slash) stay redirects
        return exc.get_response()
    fix = HTTP_FIXES.get(exc.code or 500, "")
    if exc.code == 405 and getattr(exc, "valid_methods", None):
        fix = f"this endpoint takes {', '.join(sorted(exc.valid_methods))}"
    response = jsonify({"error": f"{exc.name}: {exc.description}", "fix": fix})
    response.status_code = exc.code or 500
    if exc.code == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return response


def _unexpected_error(exc: Exception):
    log.exception("web request %s %s failed", request.method, request.path)
    response = jsonify({"error": f"internal error: {type(exc).__name__}",
                        "fix": "see the appliance log (journalctl -u appliance) and report the problem"})
    response.status_code = 500
    return response


# -- pages ---------------------------------------------------------------------------------------
def _index():
    state = web_state()
    return render_template("index.html", password_set=state.password is not None)


def _login():
    state = web_state()
    if state.password is None:
        return redirect("/")
    error = None
    if request.method == "POST":
        password = request.form.get("password", "")
        if not password and request.is_json:
            password = str((request.get_json(silent=True) or {}).get("password", ""))
        check = state.password.check
        try:
            ok = bool(password) and state.throttle.attempt(client_address(), lambda: check(password))
        except TooManyAttemptsError as exc:
            if request.is_json:
                raise
            response = render_template("login.html", error=f"{exc.problem}: {exc.fix}.")
            return response, 429, {"Retry-After": str(exc.retry_after)}
        if ok:
            session.clear()
            session["auth"] = state.password.fingerprint
            session["sid"] = state.sessions.new()
            session.permanent = True
            if request.is_json:
                return jsonify({"ok": True})
            return redirect("/")
        if request.is_json:
            raise UnauthorizedError("wrong password", "type the password set with `appliance passwd`")
        error = "Wrong password."
    return render_template("login.html", error=error), 401 if error else 200


def _logout():
    sessions = web_state().sessions
    if sessions is not None:
        sessions.revoke(session.get("sid"))  # the cookie is void from now on, even if someone kept a copy
    session.clear()
    return redirect("/login", code=303)
