"""Helpers that the tests and the benchmarks both use, importable as `testkit.*` once the
project is installed (`pip install -e '.[test]'`):

- `testkit.processes`: the `companion` command in child processes (port, environment, start and
  stop, health, children) and a small JSON client that signs a phone in over HTTP.
- `testkit.push_receiver`: a real local Web Push service that verifies VAPID and decrypts every
  message, in this process (`PushReceiver`) or in its own (`ReceiverProcess`).
- `testkit.load`: threads sending check-ins and reads to a running server until it is gone.
- `testkit.reminders`: clients with push devices and due reminders written straight into a
  database, their reminders counted by status, and a wait until they are all settled.
- `testkit.bench`: for the benchmark scripts: a fresh migrated instance, percentiles, a process's
  CPU time, the host's load average.
"""
