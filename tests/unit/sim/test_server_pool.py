"""sim.servers.ServerPool admits exactly as simpy.Resource does, without its events."""

from __future__ import annotations

from dataclasses import dataclass

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.servers import ServerPool


@dataclass(eq=False)
class Ticket:
    number: int
    granted: bool = False


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.just(0)),
        st.tuples(st.just("release"), st.just(0)),
        st.tuples(st.just("cancel"), st.integers(0, 20)),
        st.tuples(st.just("capacity"), st.integers(0, 5)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(1, 4), ops=OPS)
def test_pool_admits_the_same_requests_in_the_same_order_as_simpy(
    capacity: int, ops: list[tuple[str, int]]
) -> None:
    env = simpy.Environment()
    resource = simpy.Resource(env, capacity=capacity)
    simpy_order: list[int] = []
    pool_order: list[int] = []
    pool = ServerPool(capacity, lambda ticket: pool_order.append(ticket.number))
    requests: dict[int, simpy.resources.resource.Request] = {}
    tickets: dict[int, Ticket] = {}
    in_service: list[int] = []
    waiting: list[int] = []

    def granted(number: int) -> None:
        simpy_order.append(number)
        waiting.remove(number)
        in_service.append(number)

    for op, arg in ops:
        if op == "request":
            number = len(requests)
            request = resource.request()
            request.callbacks.append(lambda _ev, number=number: granted(number))
            requests[number], tickets[number] = request, Ticket(number)
            waiting.append(number)
            pool.request(tickets[number])
        elif op == "release" and in_service:
            number = in_service.pop(0)
            resource.release(requests[number])
            pool.release()
        elif op == "cancel" and waiting:
            number = waiting.pop(arg % len(waiting))
            requests[number].cancel()
            pool.cancel(tickets[number])
        elif op == "capacity":
            resource._capacity = arg  # what a replica crash did to the SimPy resource
            resource._trigger_put(None)
            pool.set_capacity(arg)
        env.run()  # SimPy grants through events at the same simulated time
        assert pool_order == simpy_order
        assert pool.busy == len(resource.users) and len(pool.waiting) == len(resource.queue)
