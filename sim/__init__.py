"""What happens when it is served: the SimPy engine, router, caches, servers, users, monitor,
statistics, quality metrics and the rollout policies."""
