"""Clinics, practitioners, clients, invites and sign-in."""
