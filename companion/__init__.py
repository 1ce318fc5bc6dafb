"""Companion: aftercare reminders, recovery check-ins and flagged recoveries for clinics."""

import os

from flask import Flask

from companion import audit, auth, config, db, errors, humane, i18n, security, web
from companion.accounts import api as accounts_api
from companion.accounts import client_pages as accounts_client_pages
from companion.accounts import pages as accounts_pages
from companion.accounts import phones_api as accounts_phones_api
from companion.accounts import team_api as accounts_team_api
from companion.accounts import twofactor_api as accounts_twofactor_api
from companion.accounts import twofactor_pages as accounts_twofactor_pages
from companion.admin import api as admin_api
from companion.admin import clinic_pages as admin_clinic_pages
from companion.admin import pages as admin_pages
from companion.checkins import api as checkins_api
from companion.checkins import pages as checkins_pages
from companion.converters import IdConverter
from companion.reminders import api as reminders_api
from companion.reminders import pages as reminders_pages
from companion.review import api as review_api
from companion.review import pages as review_pages
from companion.review import queue_api as review_queue_api
from companion.treatments import api as treatments_api
from companion.treatments import pages as treatments_pages

API = (
    accounts_api,
    accounts_team_api,
    admin_api,
    accounts_twofactor_api,
    accounts_phones_api,
    treatments_api,
    reminders_api,
    checkins_api,
    review_api,
    review_queue_api,
)
PAGES = (
    accounts_pages,
    accounts_twofactor_pages,
    treatments_pages,
    review_pages,
    admin_pages,
    admin_clinic_pages,
    accounts_client_pages,
    checkins_pages,
    reminders_pages,
)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: config, each part's init_app, blueprints. No side effects beyond config."""
    instance = os.environ.get("COMPANION_INSTANCE_PATH")
    app = Flask(
        __name__,
        instance_path=os.path.abspath(instance or "instance"),
        instance_relative_config=True,
    )
    app.jinja_environment = web.Templates  # before anything makes app.jinja_env
    # Before any blueprint: every <int:...> route then refuses ids past 64 bits.
    app.url_map.converters["int"] = IdConverter
    config.load(app, test_config)
    db.init_app(app)
    errors.init_app(app)
    security.init_app(app)  # first after_request, so the last to run
    auth.init_app(app)
    audit.init_app(app)
    web.init_app(app)
    humane.init_app(app)
    i18n.init_app(app)
    web.exempt_api(*(module.bp for module in API))
    for module in API + PAGES:
        app.register_blueprint(module.bp)
    return app
