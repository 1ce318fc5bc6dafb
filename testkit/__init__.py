"""Helpers that the tests and the benchmarks both use, importable as `testkit.*` once the
project is installed (`pip install -e '.[test]'`):

- `testkit.processes`: the `companion` command in child processes (port, environment, health,
  children) and a small JSON client that signs a phone in over HTTP.
- `testkit.push_receiver`: a real local Web Push service that verifies VAPID and decrypts every
  message, in this process (`PushReceiver`) or in its own (`ReceiverProcess`).
- `testkit.load`: threads sending check-ins and reads to a running server until it is gone.
- `testkit.reminders`: clients with push devices and due reminders written straight into a
  database, and their reminders counted by status.
"""
