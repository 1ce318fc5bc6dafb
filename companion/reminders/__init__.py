"""The timed path: protocol, planning, the outbox, the dispatcher, the push sender, the inbox."""
