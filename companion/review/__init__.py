"""The practitioner's review: queue, timeline, charts, exports, erasure."""
