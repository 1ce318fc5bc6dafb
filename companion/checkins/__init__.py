"""The check-in path: validation, storage, photos, triage, flags."""
