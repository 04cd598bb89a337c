"""What happens when it is served: the SimPy engine, router, rollout, caches, servers, users."""
