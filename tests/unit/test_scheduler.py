from __future__ import annotations

import random

from jobgate.backends.local.scheduler import (
    PRIORITY,
    RESOURCES,
    Allocation,
    Decision,
    Request,
    Resources,
    Running,
    schedule,
)

NOW = 1_000_000.0


def req(
    job_id: int,
    cpus: int = 1,
    *,
    memory: int = 0,
    gpus: int = 0,
    time_limit: float | None = None,
    priority: int = 0,
) -> Request:
    return Request(job_id, cpus, memory, gpus, time_limit, priority)


def run(
    job_id: int,
    cpus: tuple[int, ...],
    *,
    memory: int = 0,
    gpus: tuple[int, ...] = (),
    end: float | None = None,
) -> Running:
    return Running(job_id, Allocation(cpus, memory, gpus), end)


def node(cpus: int, memory: int = 1024, gpus: int = 0) -> Resources:
    return Resources(tuple(range(cpus)), memory, tuple(range(gpus)))


def started(decision: Decision) -> list[int]:
    return [job_id for job_id, _ in decision.start]


def test_empty() -> None:
    assert schedule(node(4), [], [], NOW) == Decision(start=[], waiting={})


def test_everything_fits_on_lowest_free_ids() -> None:
    resources = Resources(cpus=(0, 1, 2, 3, 4, 5), memory=1000, gpus=(0, 1, 2))
    running = [run(1, (0, 2), memory=100, gpus=(1,))]
    pending = [req(3, 1, memory=50), req(2, 2, memory=200, gpus=2)]

    decision = schedule(resources, running, pending, NOW)

    assert decision.start == [
        (2, Allocation(cpus=(1, 3), memory=200, gpus=(0, 2))),
        (3, Allocation(cpus=(4,), memory=50, gpus=())),
    ]
    assert decision.waiting == {}
    assert schedule(resources, running, list(reversed(pending)), NOW) == decision


def test_zero_cpus_is_treated_as_one() -> None:
    decision = schedule(node(2), [], [req(1, 0), req(2, 2)], NOW)
    assert decision.start == [(1, Allocation((0,), 0, ()))]
    assert decision.waiting == {2: RESOURCES}


def test_priority_beats_submit_order() -> None:
    decision = schedule(node(2), [], [req(1, 2), req(2, 2, priority=5)], NOW)
    assert started(decision) == [2]
    assert decision.waiting == {1: RESOURCES}


def test_submit_order_breaks_ties() -> None:
    decision = schedule(node(2), [], [req(2, 2, priority=5), req(1, 2, priority=5)], NOW)
    assert started(decision) == [1]
    assert decision.waiting == {2: RESOURCES}


def test_acceptance_backfill_only_jobs_ending_before_the_shadow() -> None:
    running = [run(1, (0,), end=NOW + 1000)]
    pending = [req(2, 2), req(3, 1, time_limit=2000), req(4, 1, time_limit=500)]

    decision = schedule(node(2), running, pending, NOW)

    assert decision.start == [(4, Allocation((1,), 0, ()))]
    assert decision.waiting == {2: RESOURCES, 3: PRIORITY}


def test_backfill_may_end_exactly_at_the_shadow() -> None:
    running = [run(1, (0,), end=NOW + 1000)]
    decision = schedule(node(2), running, [req(2, 2), req(3, 1, time_limit=1000)], NOW)
    assert started(decision) == [3]


def test_jobs_ending_together_all_count_in_the_extra() -> None:
    running = [run(1, (0,), end=NOW + 100), run(2, (1,), end=NOW + 100),
               run(3, (2,), end=NOW + 100)]
    decision = schedule(node(4), running, [req(4, 2), req(5, 1)], NOW)
    # At NOW+100 all four CPUs are free, not just the two job 4 needs.
    assert decision.start == [(5, Allocation((3,), 0, ()))]
    assert decision.waiting == {4: RESOURCES}


def test_overdue_running_job_holds_back_backfill() -> None:
    # Its end is past, so the top job could start any moment: nothing may backfill.
    running = [run(1, (0,), end=NOW - 50)]
    decision = schedule(node(2), running, [req(2, 2), req(3, 1, time_limit=10)], NOW)
    assert decision.waiting == {2: RESOURCES, 3: PRIORITY}


def test_jobs_started_now_count_in_the_shadow() -> None:
    # Job 1 starts now and ends at NOW+100; job 2 then needs both CPUs (shadow NOW+100).
    pending = [req(1, 1, time_limit=100, priority=9), req(2, 2, priority=5),
               req(3, 1, time_limit=150), req(4, 1, time_limit=50)]
    decision = schedule(node(2), [], pending, NOW)
    assert decision.start == [(1, Allocation((0,), 0, ())), (4, Allocation((1,), 0, ()))]
    assert decision.waiting == {2: RESOURCES, 3: PRIORITY}


def test_memory_constraint() -> None:
    running = [run(1, (0,), memory=600, end=NOW + 100)]
    pending = [req(2, 1, memory=700), req(3, 1, memory=400, time_limit=200),
               req(4, 1, memory=300, time_limit=50)]
    decision = schedule(node(4, memory=1000), running, pending, NOW)
    # Job 2 waits for memory until NOW+100 and leaves 300 MiB extra then: job 3 would
    # overrun and needs more than that; job 4 ends in time.
    assert decision.start == [(4, Allocation((1,), 300, ()))]
    assert decision.waiting == {2: RESOURCES, 3: PRIORITY}


def test_memory_does_not_fit_now() -> None:
    running = [run(1, (0,), memory=900, end=NOW + 100)]
    decision = schedule(node(4, memory=1000), running, [req(2, 1, memory=500),
                        req(3, 1, memory=200, time_limit=10)], NOW)
    assert decision.start == []
    assert decision.waiting == {2: RESOURCES, 3: RESOURCES}


def test_gpus_all_taken() -> None:
    running = [run(1, (0,), gpus=(0, 1), end=NOW + 100)]
    pending = [req(2, 1, gpus=1), req(3, 1, gpus=1, time_limit=10), req(4, 2)]
    decision = schedule(node(4, gpus=2), running, pending, NOW)
    # Job 4 needs no GPU, so it fits in the extra beside job 2 and may run forever.
    assert decision.start == [(4, Allocation((1, 2), 0, ()))]
    assert decision.waiting == {2: RESOURCES, 3: RESOURCES}


def test_gpu_ids_lowest_free_first() -> None:
    running = [run(1, (0,), gpus=(1,))]
    decision = schedule(node(4, gpus=4), running, [req(2, 1, gpus=2)], NOW)
    assert decision.start == [(2, Allocation((1,), 0, (0, 2)))]


def test_unlimited_running_job_makes_the_shadow_infinite() -> None:
    # The unlimited job holds the only GPU, so job 2 cannot be given a time. Its
    # share of CPUs (2 of the 3 left once everything limited ended) stays protected.
    running = [run(1, (0,), gpus=(0,)), run(5, (1,), end=NOW + 10)]
    pending = [req(2, 2, gpus=1), req(3, 1, time_limit=1), req(4, 1), req(6, 1)]
    decision = schedule(node(4, gpus=1), running, pending, NOW)
    # Job 3 would end before any finite time, but an infinite shadow gives no
    # such time: only the extra CPU may be used, and job 3 comes first.
    assert decision.start == [(3, Allocation((2,), 0, ()))]
    assert decision.waiting == {2: RESOURCES, 4: PRIORITY, 6: PRIORITY}


def test_unlimited_running_job_blocking_cpus_leaves_no_extra() -> None:
    running = [run(1, (0, 1))]
    decision = schedule(node(4), running, [req(2, 3), req(3, 1, time_limit=5)], NOW)
    assert decision.start == []
    assert decision.waiting == {2: RESOURCES, 3: PRIORITY}


def test_backfill_into_extra_resources() -> None:
    running = [run(1, (0, 1), end=NOW + 100)]
    pending = [req(2, 3), req(3, 1), req(4, 1)]
    decision = schedule(node(4), running, pending, NOW)
    # Shadow NOW+100 frees 4 CPUs; job 2 takes 3, so one unlimited job may start.
    assert decision.start == [(3, Allocation((2,), 0, ()))]
    assert decision.waiting == {2: RESOURCES, 4: PRIORITY}


def test_short_backfill_does_not_use_the_extra() -> None:
    running = [run(1, (0, 1), end=NOW + 100)]
    pending = [req(2, 3), req(3, 1, time_limit=100), req(4, 1)]
    decision = schedule(node(4), running, pending, NOW)
    assert started(decision) == [3, 4]
    assert decision.waiting == {2: RESOURCES}


def test_too_big_job_does_not_block_others() -> None:
    running = [run(1, (0,), end=NOW + 100)]
    pending = [req(2, 8, priority=9), req(3, 1, gpus=1, priority=8), req(4, 2),
               req(5, 1, time_limit=200), req(6, 1, time_limit=50)]
    decision = schedule(node(2), running, pending, NOW)
    # Jobs 2 and 3 never fit this node; job 4 becomes the top waiting job and its
    # shadow (NOW+100) holds back job 5 but lets job 6 backfill.
    assert decision.start == [(6, Allocation((1,), 0, ()))]
    assert decision.waiting == {2: RESOURCES, 3: RESOURCES, 4: RESOURCES, 5: PRIORITY}

    decision = schedule(node(2), [], [*pending[:2], req(7, 1)], NOW)
    assert started(decision) == [7]


def test_only_one_reservation() -> None:
    # Job 2 holds the reservation (NOW+1000). Job 3 would get 3 CPUs at NOW+100 but
    # has no reservation, so job 4 may start although it delays job 3.
    running = [run(1, (0, 1), end=NOW + 100), run(5, (2,), end=NOW + 1000)]
    pending = [req(2, 4), req(3, 3), req(4, 1, time_limit=500)]
    decision = schedule(node(4), running, pending, NOW)
    assert decision.start == [(4, Allocation((3,), 0, ()))]
    assert decision.waiting == {2: RESOURCES, 3: RESOURCES}


def _random_scenario(rng: random.Random) -> tuple[Resources, list[Running], list[Request]]:
    resources = Resources(
        cpus=tuple(sorted(rng.sample(range(16), rng.randint(1, 12)))),
        memory=rng.choice([0, 500, 4000]),
        gpus=tuple(range(rng.randint(0, 3))),
    )
    free_cpus, free_gpus = list(resources.cpus), list(resources.gpus)
    memory = resources.memory
    running = []
    for job_id in range(rng.randint(0, 4)):
        cpus = [free_cpus.pop(rng.randrange(len(free_cpus))) for _ in range(
            rng.randint(0, min(3, len(free_cpus))))]
        gpus = [free_gpus.pop() for _ in range(rng.randint(0, len(free_gpus)))]
        mem = rng.randint(0, memory)
        memory -= mem
        end = rng.choice([None, NOW - 5, NOW + rng.randint(1, 500)])
        running.append(run(1000 + job_id, tuple(cpus), memory=mem, gpus=tuple(gpus), end=end))
    pending = [
        req(job_id, rng.randint(0, 6), memory=rng.choice([0, 100, 1000, 5000]),
            gpus=rng.choice([0, 0, 1, 2, 4]), time_limit=rng.choice([None, 10.0, 300.0, 900.0]),
            priority=rng.randint(0, 2))
        for job_id in range(rng.randint(0, 10))
    ]
    return resources, running, pending


def test_allocations_never_overlap_nor_exceed() -> None:
    rng = random.Random(1)
    for _ in range(300):
        resources, running, pending = _random_scenario(rng)
        decision = schedule(resources, running, pending, NOW)

        cpus = [c for job in running for c in job.allocation.cpus]
        gpus = [g for job in running for g in job.allocation.gpus]
        memory = sum(job.allocation.memory for job in running)
        by_id = {r.job_id: r for r in pending}
        for job_id, allocation in decision.start:
            asked = by_id[job_id]
            assert len(allocation.cpus) == max(asked.cpus, 1)
            assert len(allocation.gpus) == asked.gpus
            assert allocation.memory == asked.memory
            assert set(allocation.cpus) <= set(resources.cpus)
            assert set(allocation.gpus) <= set(resources.gpus)
            cpus += allocation.cpus
            gpus += allocation.gpus
            memory += allocation.memory
        assert len(cpus) == len(set(cpus))
        assert len(gpus) == len(set(gpus))
        assert memory <= resources.memory
        # Every request is accounted for exactly once, with a known reason.
        assert sorted(started(decision) + list(decision.waiting)) == sorted(by_id)
        assert set(decision.waiting.values()) <= {PRIORITY, RESOURCES}
        # The order requests arrive in does not matter.
        assert schedule(resources, running, list(reversed(pending)), NOW) == decision
