"""Companion: aftercare reminders, recovery check-ins and flagged recoveries for clinics."""

from flask import Flask


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: config, each part's init_app, blueprints. No side effects beyond config."""
    import os

    instance = os.environ.get("COMPANION_INSTANCE_PATH")
    app = Flask(
        __name__,
        instance_path=os.path.abspath(instance or "instance"),
        instance_relative_config=True,
    )
    from companion import api, auth, config, db, errors, views_client, web
    from companion.accounts import pages as views_practitioner
    from companion.converters import IdConverter
    from companion.review import api as api_review
    from companion.review import pages as views_review

    # Before any blueprint: every <int:...> route then refuses ids past 64 bits.
    app.url_map.converters["int"] = IdConverter
    config.load(app, test_config)
    db.init_app(app)
    errors.init_app(app)
    auth.init_app(app)
    web.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(api_review.bp)
    app.register_blueprint(views_practitioner.bp)
    app.register_blueprint(views_review.bp)
    app.register_blueprint(views_client.bp)
    return app
