"""The default aftercare protocol, in every language clients can choose.

Source: docs/clinical.md, "Default protocol", expanded into one step per reminder. Each
client-facing text is {"en": ..., "es": ...}, the shape a clinic's own protocol may use
too (reminders/protocol.py); the Spanish speaks to the client as "tú", as the client pages do.
"""

# Product defaults (not from the literature): how long after its due time a step
# is still worth sending. Used for the push TTL and to skip steps planned too late.
DEFAULT_VALID_HOURS = {"instruction": 12, "checkin": 24, "recall": 72}

_CHECKIN = {
    "en": "How is your skin? Tap to rate redness and swelling. It takes under 2 minutes.",
    "es": "¿Cómo está tu piel? Toca aquí y cuéntanos cómo van el enrojecimiento y la "
    "hinchazón. Te llevará menos de 2 minutos.",
}
_SUNSCREEN = {
    "en": "Put on a broad-spectrum sunscreen and avoid direct sun. Dryness, flaking or peeling "
    "can happen; it is usually mild and passes. Keep moisturising.",
    "es": "Ponte protector solar de amplio espectro y evita el sol directo. Es posible que "
    "notes la piel seca, que se descame o que se pele; suele ser leve y pasajero. Sigue "
    "hidratándola.",
}


def _day_checkin(day: int) -> dict:
    return {"en": f"Day {day}: how is your skin?", "es": f"Día {day}: ¿cómo está tu piel?"}


# fmt: off
_TABLE = [
    # key, kind, when, title, body
    ("after-session", "instruction", {"offset_hours": 0},
     {"en": "Caring for your skin today", "es": "Cómo cuidar tu piel hoy"},
     {"en": "Redness and slight swelling, like a mild sunburn, are normal and usually settle "
            "within a few days. No makeup for at least 24 hours. Cleanse gently and keep your "
            "skin moisturised. Contact your clinic about any signs of infection.",
      "es": "Es normal que la piel esté roja y un poco hinchada, como con una quemadura solar "
            "leve; suele pasar en pocos días. No te maquilles durante al menos 24 horas. "
            "Límpiate la piel con suavidad y mantenla hidratada. Si notas cualquier signo de "
            "infección, ponte en contacto con tu clínica."}),
    ("evening-routine", "instruction", {"day": 0, "time": "19:00"},
     {"en": "Your evening skin routine", "es": "Tu rutina de piel de esta noche"},
     {"en": "Cleanse gently with a mild, hydrating cleanser, then apply your moisturiser and "
            "the soothing serum your practitioner gave you.",
      "es": "Limpia tu piel con delicadeza usando un limpiador suave e hidratante; después, "
            "aplica tu crema hidratante y el sérum calmante que te dieron en la clínica."}),
    ("day1-morning", "instruction", {"day": 1, "time": "08:30"},
     {"en": "Good morning: sunscreen today", "es": "Buenos días: hoy, protector solar"},
     {"en": "Put on a broad-spectrum sunscreen and avoid direct sun. No makeup until a full "
            "24 hours have passed since your session.",
      "es": "Ponte protector solar de amplio espectro y evita el sol directo. No te maquilles "
            "hasta que hayan pasado 24 horas completas desde tu sesión."}),
    ("24h-checkin", "checkin", {"offset_hours": 24},
     {"en": "How is your skin today?", "es": "¿Cómo está tu piel hoy?"}, _CHECKIN),
    *((f"day{day}-checkin", "checkin", {"day": day, "time": "18:00"}, _day_checkin(day), _CHECKIN)
      for day in (2, 3, 5, 7)),
    *((f"day{day}-sunscreen", "instruction", {"day": day, "time": "08:30"},
       {"en": "Sunscreen reminder", "es": "Recuerda: protector solar"}, _SUNSCREEN)
      for day in range(2, 8)),
    ("book-next-session", "recall", {"day": 28, "time": "10:00"},
     {"en": "Time to book your next session", "es": "Es hora de reservar tu próxima sesión"},
     {"en": "Results build over weeks as new collagen forms. A course is usually 3-6 "
            "sessions, 4-6 weeks apart. Contact your clinic to book your next one.",
      "es": "Los resultados se notan poco a poco, durante semanas, a medida que se forma "
            "colágeno nuevo. Un tratamiento completo suele tener de 3 a 6 sesiones, separadas "
            "por 4 a 6 semanas. Ponte en contacto con tu clínica para reservar la siguiente."}),
]
# fmt: on
DEFAULT_STEPS: list[dict] = [
    {"key": key, "title": dict(title), "body": dict(body), "kind": kind, "at": at}
    | {"valid_hours": DEFAULT_VALID_HOURS[kind]}
    # Skip the same-day evening routine when the session ran late (reference table).
    | ({"min_gap_hours": 1} if key == "evening-routine" else {})
    for key, kind, at, title, body in _TABLE
]
