"""Clinic administration pages: the team, alert settings and the aftercare protocol."""
