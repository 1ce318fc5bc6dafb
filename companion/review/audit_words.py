"""The audit log in words: "Sam read Erin's timeline", times in the clinic's zone.

The log stores codes (audit.record's actions); a person reads sentences. Clients are named
while they exist and shown as "erased client #12" once erased; practitioners by name.
An action this table does not know yet still reads as words ("two factor enabled").
"""

import re

import sqlite_utils

from companion.db import rows
from companion.web import local_time

# {client} is the client's name (linked on the page), possessive where the text says {client's}.
PHRASES = {
    "client_read": "read {client's} timeline",
    "client_created": "added {client} as a client",
    "client_updated": "changed {client's} details",
    "client_erased": "erased {client}",
    "client_exported": "exported {client's} record",
    "clients_listed": "looked at the client list",
    "queue_read": "opened the queue",
    "clinic_exported": "exported the clinic's",
    "invite_issued": "made an app invite for {client}",
    "invite_redeemed": "opened the app invite on a phone",
    "session_created": "recorded a session for {client}",
    "session_updated": "changed a session of {client}",
    "session_deleted": "deleted a session of {client}",
    "flag_acknowledge": "acknowledged a flag of {client}",
    "flag_called": "logged a call to {client}",
    "flag_resolve": "resolved a flag of {client}",
    "protocol_changed": "saved a new protocol",
    "practitioner_added": "added a colleague",
    "practitioner_disabled": "disabled a colleague's account",
    "practitioner_enabled": "re-enabled a colleague's account",
    "practitioner_role_changed": "changed a colleague's role",
    "password_changed": "changed their password",
    "sign_in": "signed in",
    "sign_in_failed": "failed to sign in",
    "setup": "set up the clinic",
    "sign_out": "signed out",
    "sign_out_everywhere": "signed out everywhere",
    "access_refused": "was refused a page",
    # A practitioner of another clinic asked for this clinic's client by id (audit.py).
    "access_refused_elsewhere": "was refused {client's} record (from another clinic)",
}
# What a detail adds to a sentence, when it is worth saying.
_DETAILS = {
    "client_read": {
        "checkins": "read {client's} check-ins",
        "photo": "viewed a photo of {client}",
        "sessions": "read {client's} sessions",
        "devices": "looked at {client's} signed-in phones",
    },
}
_KEY_VALUE = re.compile(r"(\w+)=(\S+)")


def _phrase(entry: dict) -> str:
    action, detail = entry["action"], entry.get("detail") or ""
    by_detail = _DETAILS.get(action, {})
    if detail in by_detail:
        return by_detail[detail]
    if action == "client_read" and detail.startswith("flag="):
        return "read a flag of {client}"
    if action == "client_read" and detail.startswith("session="):
        return "read a session of {client}"
    phrase = PHRASES.get(action) or action.replace("_", " ")
    values = dict(_KEY_VALUE.findall(detail))
    if action == "client_exported" and "format" in values:
        phrase += f" as {values['format'].upper()}"
    elif action == "clinic_exported":
        kind = {"checkins.csv": "check-ins"}.get(detail, detail.replace(".csv", ""))
        phrase += " " + (kind + " (CSV)" if detail else "data")
    elif action == "protocol_changed" and "version" in values:
        phrase += f" (version {values['version']})"
    elif action in ("practitioner_added", "practitioner_role_changed") and "role" in values:
        phrase += f" ({values['role']})"
    elif action == "access_refused" and detail:
        phrase += f" ({detail})"
    return phrase


def _possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


def in_words(db: sqlite_utils.Database, clinic: dict, found: list[dict]) -> list[dict]:
    """Return each entry as when (clinic's zone), who, and the sentence split around the client."""
    clinic_id = clinic["id"]
    people = {
        r["id"]: r["name"]
        for r in rows(
            db, "SELECT id, name FROM practitioners WHERE clinic_id = :c", {"c": clinic_id}
        )
    }
    clients = {
        r["id"]: r["name"]
        for r in rows(db, "SELECT id, name FROM clients WHERE clinic_id = :c", {"c": clinic_id})
    }
    out = []
    for e in found:
        cid = e.get("client_id")
        client = None
        if cid is not None:
            name = clients.get(cid)
            client = {"id": cid, "name": name or f"erased client #{cid}", "erased": name is None}
        kind, actor = e["actor_kind"], e.get("actor_id")
        if kind == "practitioner":
            who = people.get(actor, f"practitioner #{actor}")
        elif kind == "client":
            who = clients.get(actor, f"erased client #{actor}") if actor else "a client"
        elif kind == "system":
            who = "Companion"
        else:
            who = "Someone not signed in"
        phrase = _phrase(e)
        if e["action"] == "client_erased" and client and client["erased"]:
            client = dict(client, name=f"client #{cid}")
        before, after, label = phrase, "", ""
        for slot in ("{client's}", "{client}"):
            if slot in phrase:
                before, after = phrase.split(slot, 1)
                label = client["name"] if client else "a client"
                label = _possessive(label) if slot == "{client's}" else label
                break
        out.append(
            {
                "id": e["id"],
                "at": e["at"],
                "when": local_time(e["at"], clinic["timezone"]),
                "who": who,
                "before": before,
                "client": client if label and client else None,
                "client_label": label,
                "after": after,
                "text": f"{who} {before}{label}{after}".strip(),
                "action": e["action"],
            }
        )
    return out


# A delivery attempt's outcome (deliveries.outcome) as the timeline says it.
OUTCOMES = {
    "delivered": "delivered",
    "retry": "not accepted yet, retried",
    "timeout": "no answer, retried",
    "gone": "device gone (unsubscribed or expired)",
    "failed": "failed",
}
# A flag event (flag_events.action) as its history says it.
EVENTS = {
    "open": "opened it",
    "escalate": "raised it",
    "update": "updated the reason",
    "acknowledge": "acknowledged it",
    "called": "logged a call",
    "resolve": "resolved it",
}


def name_events(db: sqlite_utils.Database, clinic_id: int, sessions: list[dict]) -> None:
    """Give each flag event of a timeline its actor's name and the action in words."""
    people = {
        r["id"]: r["name"]
        for r in rows(
            db, "SELECT id, name FROM practitioners WHERE clinic_id = :c", {"c": clinic_id}
        )
    }
    for s in sessions:
        for f in s["flags"]:
            for e in f["events"]:
                if e["actor_kind"] == "practitioner":
                    e["who"] = people.get(e["actor_id"], f"practitioner #{e['actor_id']}")
                elif e["actor_kind"] == "triage":
                    e["who"] = "Triage (from a check-in)"
                else:
                    e["who"] = "Companion"
                e["what"] = EVENTS.get(e["action"], e["action"].replace("_", " "))
