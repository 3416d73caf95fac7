"""Which pending jobs may run at all now, whatever the resources: holds, begin
times, deadlines, dependencies and array throttles, with Slurm's pending reasons."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from jobgate.domain.arrays import parse_array
from jobgate.domain.dependencies import (
    Dependencies,
    DependencyState,
    JobRef,
    evaluate,
    parse_dependencies,
)
from jobgate.domain.job import JobRecord
from jobgate.domain.states import JobState

StatesOf = Callable[[Iterable[JobRef]], Mapping[JobRef, Sequence[JobState]]]


@dataclass
class Triage:
    eligible: list[JobRecord] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)
    past_deadline: list[JobRecord] = field(default_factory=list)
    # Dependencies that can never be satisfied, on jobs that asked to be
    # cancelled then (kill_on_invalid_dependency).
    never_runnable: list[JobRecord] = field(default_factory=list)


def triage(
    pending: Sequence[JobRecord], active: Sequence[JobRecord], now: datetime,
    states_of: StatesOf,
) -> Triage:
    """Sort pending jobs (in queue order) into eligible ones and waiting ones."""
    result = Triage()
    dependencies = {job.id: parse_dependencies(job.spec.dependencies)
                    for job in pending if job.spec.dependencies}
    states = states_of({ref for deps in dependencies.values()
                        for condition in deps.conditions for ref in condition.refs})
    singletons = {(job.user_name, job.name) for job in active}
    running_tasks = Counter(job.array_job_id for job in active if job.array_job_id is not None)
    for job in pending:
        if job.held:
            result.reasons[job.id] = job.state_reason or "JobHeldUser"
            continue
        if job.spec.deadline is not None and now >= job.spec.deadline:
            result.past_deadline.append(job)
            continue
        if job.spec.begin is not None and now < job.spec.begin:
            result.reasons[job.id] = "BeginTime"
            continue
        deps = dependencies.get(job.id)
        if deps is not None:
            verdict = evaluate(deps, states,
                               singleton_clear=(job.user_name, job.name) not in singletons)
            if verdict is DependencyState.NEVER:
                if job.spec.kill_on_invalid_dependency:
                    result.never_runnable.append(job)
                else:
                    result.reasons[job.id] = "DependencyNeverSatisfied"
                continue
            if verdict is DependencyState.WAITING:
                result.reasons[job.id] = "Dependency"
                continue
            if _is_singleton(deps):
                singletons.add((job.user_name, job.name))
        if job.array_job_id is not None and job.spec.array:
            throttle = parse_array(job.spec.array).throttle
            if throttle is not None and running_tasks[job.array_job_id] >= throttle:
                result.reasons[job.id] = "JobArrayTaskLimit"
                continue
            running_tasks[job.array_job_id] += 1
        result.eligible.append(job)
    return result


def _is_singleton(deps: Dependencies) -> bool:
    return any(condition.kind == "singleton" for condition in deps.conditions)
