"""FHIR R4 export: a client's check-ins as QuestionnaireResponses and Observations in a Bundle."""

import sqlite_utils

from companion.checkins.store import checkin_dicts
from companion.clinical import SYMPTOMS, WARNING_SIGNS
from companion.db import rows

BASE = "urn:companion"
# Scores are product scales, not LOINC-coded; the system URI says so honestly.
SCALE = f"{BASE}:scale"


def _obs(checkin: dict, patient: str, code: str, display: str, value: int, high: int) -> dict:
    return {
        "fullUrl": f"{BASE}:observation:{checkin['id']}:{code}",
        "resource": {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "survey",
                            "display": "Survey",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [{"system": SCALE, "code": code, "display": display}],
                "text": display,
            },
            "subject": {"reference": patient},
            "effectiveDateTime": checkin["taken_at"].replace(".000000Z", "Z"),
            "valueInteger": value,
            "referenceRange": [{"low": {"value": 0}, "high": {"value": high}}],
            "derivedFrom": [{"reference": f"{BASE}:questionnaireresponse:{checkin['id']}"}],
        },
    }


def bundle(db: sqlite_utils.Database, client: dict) -> dict:
    """Build a FHIR R4 collection Bundle of the client's check-ins."""
    patient = f"{BASE}:patient:{client['id']}"
    entries: list[dict] = [
        {
            "fullUrl": patient,
            "resource": {
                "resourceType": "Patient",
                "name": [{"text": client["name"]}],
                **(
                    {"telecom": [{"system": "email", "value": client["email"]}]}
                    if client.get("email")
                    else {}
                ),
            },
        }
    ]
    for c in checkin_dicts(
        db,
        rows(
            db,
            "SELECT * FROM checkins WHERE client_id = :client_id AND clinic_id = :clinic_id"
            " ORDER BY taken_at",
            {"client_id": client["id"], "clinic_id": client["clinic_id"]},
        ),
    ):
        items = [
            {"linkId": k, "text": k, "answer": [{"valueInteger": c[k]}]}
            for k in ("redness", "swelling", "pain")
        ]
        items += [
            {"linkId": f"symptoms.{k}", "answer": [{"valueBoolean": bool(c["symptoms"].get(k))}]}
            for k in SYMPTOMS
        ]
        items += [
            {
                "linkId": f"warning_signs.{k}",
                "answer": [{"valueBoolean": bool(c["warning_signs"].get(k))}],
            }
            for k in WARNING_SIGNS
        ]
        if c["note"]:
            items.append({"linkId": "note", "answer": [{"valueString": c["note"]}]})
        entries.append(
            {
                "fullUrl": f"{BASE}:questionnaireresponse:{c['id']}",
                "resource": {
                    "resourceType": "QuestionnaireResponse",
                    "status": "completed",
                    "identifier": {"system": f"{BASE}:checkin", "value": c["id"]},
                    "questionnaire": f"{BASE}:questionnaire:aftercare-checkin",
                    "subject": {"reference": patient},
                    "authored": c["taken_at"].replace(".000000Z", "Z"),
                    "item": items,
                },
            }
        )
        entries += [
            _obs(c, patient, "redness", "Redness (0-4)", c["redness"], 4),
            _obs(c, patient, "swelling", "Swelling (0-4)", c["swelling"], 4),
            _obs(c, patient, "pain", "Pain (0-10 NRS)", c["pain"], 10),
        ]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
