"""Memory per replica and the nodes' plan for the engine (``[resources]``, ``sim.memory``)."""

from __future__ import annotations

from lab.scenario import Scenario
from lab.versions import VersionTables
from replay.errors import UserInputError
from sim.memory import MemoryPlan

__all__ = ["footprint_bytes", "memory_plan"]


def footprint_bytes(table: VersionTables, memory_mb: float | None, overhead_mb: float) -> float:
    """Declared, else (users + items) x factors x 4 bytes (float32 factors) + overhead."""
    if memory_mb is not None:
        return memory_mb * 2**20
    model = table.model
    rows = model.user_factors.shape[0] + model.item_factors.shape[0]
    return float(rows * model.user_factors.shape[1] * 4) + overhead_mb * 2**20


def memory_plan(
    scenario: Scenario, baseline: VersionTables, candidate: VersionTables, source: str
) -> MemoryPlan | None:
    """The nodes and both versions' footprints; refuses a footprint larger than any node."""
    resources = scenario.resources
    if resources is None or resources.nodes is None or resources.node_memory_gb is None:
        return None
    node_bytes = resources.node_memory_gb * 2**30
    footprints = []
    for table in (baseline, candidate):
        declared = scenario.models[table.name].memory_mb
        need = footprint_bytes(table, declared, resources.overhead_mb)
        if need > node_bytes:
            raise UserInputError(
                f"{source}: resources.node_memory_gb must hold one replica of {table.name} "
                f"({need / 2**30:.3f} GB from its factor tables and overhead_mb), got "
                f"{resources.node_memory_gb:g}"
            )
        footprints.append(need)
    return MemoryPlan(
        nodes=resources.nodes,
        node_bytes=node_bytes,
        restart_delay_s=resources.restart_delay,
        footprint_bytes=(footprints[0], footprints[1]),
    )
