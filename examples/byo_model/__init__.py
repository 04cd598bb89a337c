"""Recommenders from other libraries, brought into rollout-lab (see README, 'Bring your own
model')."""
