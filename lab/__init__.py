"""Runs assembled from scenarios: the scenario file, world and versions prepared once, the
simulation, release trains, replications, sweeps and operating characteristics."""
