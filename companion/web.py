"""App-wide web plumbing: CSRF for forms, proxy headers, the service worker, manifest, health."""

from pathlib import Path

from flask import Flask, current_app, jsonify, request, send_from_directory
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from companion.db import get_db
from companion.errors import check_api_request

csrf = CSRFProtect()

PACKAGE = Path(__file__).parent


def service_worker_path() -> Path:
    """Find sw.js: inside the installed package, else the source tree's service-worker/."""
    packaged = PACKAGE / "sw.js"
    return packaged if packaged.exists() else PACKAGE.parent / "service-worker" / "sw.js"


def init_app(app: Flask) -> None:
    from companion.api import bp as api_bp
    from companion.review.api import bp as review_bp

    csrf.init_app(app)
    # The JSON API's CSRF defence is its content type and Origin check, not a token: an
    # offline check-in replayed hours later must still be accepted.
    csrf.exempt(api_bp)
    csrf.exempt(review_bp)
    hops = app.config["PROXY_FIX_HOPS"]
    if hops:
        # Trust exactly as many proxy hops as the operator configured, no more.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    from companion.db import parse_iso

    app.add_template_filter(parse_iso, "parse_iso")

    @app.before_request
    def guard_api():
        if request.path.startswith("/api/"):
            error = check_api_request()
            if error is not None:
                raise error

    @app.get("/sw.js")
    def service_worker():
        path = service_worker_path()
        resp = send_from_directory(path.parent, path.name, mimetype="text/javascript", max_age=0)
        # The browser checks for a new worker on navigation; never let a cache pin it.
        resp.headers["Cache-Control"] = "no-cache"
        resp.headers["Service-Worker-Allowed"] = "/"
        return resp

    @app.get("/manifest.webmanifest")
    def manifest():
        resp = send_from_directory(
            PACKAGE / "static",
            "manifest.webmanifest",
            mimetype="application/manifest+json",
            max_age=0,
        )
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    @app.get("/favicon.ico")
    def favicon():
        return send_from_directory(
            PACKAGE / "static" / "icons", "favicon-32.png", mimetype="image/png", max_age=86400
        )

    @app.get("/healthz")
    def health():
        """Tell a load balancer whether this worker can reach its database."""
        try:
            get_db().conn.execute("SELECT 1 FROM _sqlite_migrations LIMIT 1").fetchone()
        except Exception as e:  # any failure means: take me out of rotation
            current_app.logger.warning("health check failed: %s", e)
            return jsonify({"status": "unavailable"}), 503
        return jsonify({"status": "ok"})
