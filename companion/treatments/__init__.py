"""Treatment sessions: recorded by a practitioner, they plan the client's aftercare reminders."""
