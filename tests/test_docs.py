"""The documentation stays true: every command and setting in the README, every route in OpenAPI."""

import json
import re
from pathlib import Path

import pytest

from companion import config
from companion.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def readme() -> str:
    assert README.exists(), "README.md is missing"
    return README.read_text()


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_is_in_the_readme(readme, name):
    assert re.search(rf"companion {re.escape(name)}\b", readme), f"`companion {name}` not in README"


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_option_is_in_its_commands_row(readme, name):
    """The README's row for `companion NAME` names each of its options (`run --no-dispatch`
    and `demo --port` were missing: a newcomer reads that row, not the code)."""
    rows = [line for line in readme.splitlines() if line.startswith(f"| `companion {name}")]
    assert len(rows) == 1, f"one README table row for `companion {name}`"
    for param in main.commands[name].params:
        for option in param.opts:
            if option.startswith("--"):
                assert option in rows[0], f"`companion {name} {option}` not in its README row"


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_has_help(name):
    command = main.commands[name]
    assert (command.help or "").strip(), f"{name} has no help text"


@pytest.mark.parametrize("name", sorted(config.ENV_SETTINGS))
def test_every_environment_setting_is_in_the_readme(readme, name):
    assert f"COMPANION_{name}" in readme


def test_every_number_default_in_the_settings_table_is_the_codes(readme):
    """The table's `default` column for a number (`PUSH_MAX_ATTEMPTS` ... `6`) is what the code
    uses; a default changed in config.py alone would leave operators reading the old one."""
    rows = re.findall(
        r"^\| `?[A-Z_]+`? \| `COMPANION_([A-Z_]+)` \| `(\d+(?:\.\d+)?)` \|", readme, re.M
    )
    assert len(rows) >= 10, rows
    for name, default in rows:
        assert config.DEFAULTS[name] == float(default), (name, default, config.DEFAULTS[name])


def test_operator_contract_is_in_the_readme(readme):
    for text in (
        "COMPANION_INSTANCE_PATH",
        "--password-stdin",
        "companion run --host",
        "COMPANION_PUSH_ALLOW_PRIVATE_ENDPOINTS",
        "COMPANION_VAPID_SUBJECT",
    ):
        assert text in readme, text


# OpenAPI against the URL map ----------------------------------------------------------------


def template(path: str) -> str:
    """Erase parameter names: /api/clients/<int:client_id> and /api/clients/{id} both -> {}."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def flask_routes(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((template(rule.rule), method.lower()))
    return out


def documented_routes(client) -> set[tuple[str, str]]:
    doc = client.get("/api/openapi.json").get_json()
    out = set()
    for path, item in doc["paths"].items():
        for method in item:
            if method in HTTP_METHODS:
                out.add((template(path), method))
    return out


def test_openapi_document_is_valid_enough(client):
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    doc = r.get_json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"]
    for path, item in doc["paths"].items():
        assert path.startswith("/api/")
        names = re.findall(r"\{([^}]+)\}", path)
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            assert operation.get("responses"), (path, method)
            params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert params == set(names), (path, method, params, names)
    # Code generators name a client's methods by operationId: one each, never twice.
    ids = [op.get("operationId") for item in doc["paths"].values() for op in item.values()]
    assert all(ids) and len(set(ids)) == len(ids)


def test_every_api_route_is_in_openapi(app, client):
    missing = sorted(flask_routes(app) - documented_routes(client))
    assert missing == [], f"routes missing from /api/openapi.json: {missing}"


def test_every_openapi_operation_exists(app, client):
    extra = sorted(documented_routes(client) - flask_routes(app))
    assert extra == [], f"documented in /api/openapi.json but not served: {extra}"


def test_every_api_route_declares_its_contract(app):
    # The document is built from @operation(...) on each view: a route without one is missing.
    bare = sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        and not hasattr(app.view_functions[rule.endpoint], "__contract__")
    )
    assert bare == [], f"API routes without @operation(...): {bare}"


def test_every_schema_reference_resolves(client):
    doc = client.get("/api/openapi.json").get_json()
    text = json.dumps(doc)
    names = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    assert names, "the document references no schemas"
    assert names <= set(doc["components"]["schemas"]), names - set(doc["components"]["schemas"])


def test_json_bodies_and_replies_are_declared_models(client):
    # Every JSON request body is a named model that says whether it takes unknown fields
    # (only the browser's PushSubscription does); every JSON reply is a closed model with
    # required fields, so response conformance has something to check.
    doc = client.get("/api/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body and "$ref" in body["schema"]:
                name = body["schema"]["$ref"].rsplit("/", 1)[1]
                assert "additionalProperties" in schemas[name], (path, method, name)
            for status, answer in op["responses"].items():
                reply = answer.get("content", {}).get("application/json")
                if status.startswith("2") and reply and path != "/api/openapi.json":
                    if "$ref" in reply["schema"]:
                        name = reply["schema"]["$ref"].rsplit("/", 1)[1]
                        assert schemas[name].get("additionalProperties") is False, (path, name)
                        assert schemas[name].get("required"), (path, name)
                    else:
                        assert path.endswith("/export"), (path, method, reply)
