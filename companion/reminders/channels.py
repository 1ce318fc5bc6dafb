"""How a reminder reaches its owner: push, email, or both (a client's `channels`).

None is the default: push where a live device exists, and email, where an address
exists, for a reminder whose push could not be delivered (no device, gone, failed).
"""

import json

CHANNELS = ("push", "email")


def decode(raw: str | None) -> list[str] | None:
    """Return a stored channels value as a list, or None for the default."""
    return None if raw is None else json.loads(raw)


def encode(channels: list[str] | None) -> str | None:
    return None if channels is None else json.dumps(channels)


def allows(channels: list[str] | None, channel: str) -> bool:
    """Tell whether a channel may be used at all (the default allows both)."""
    return channels is None or channel in channels


def without(channels: list[str] | None, channel: str) -> list[str]:
    """Return the channels once one is switched off (an unsubscribe: email off)."""
    return [c for c in (CHANNELS if channels is None else channels) if c != channel]
