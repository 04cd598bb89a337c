"""What happened and what was built from it: logs, events, synthetic traffic, models, registry."""
