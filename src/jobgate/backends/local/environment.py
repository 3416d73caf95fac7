"""The environment a job runs in: what a Slurm batch script expects to find."""

from __future__ import annotations

import os

from jobgate.backends.local.resources import node_name
from jobgate.domain.arrays import parse_array
from jobgate.domain.job import JobRecord
from jobgate.domain.spec import job_memory


def gateway_environment() -> dict[str, str]:
    """What every job inherits: the gateway's environment less jobgate's settings
    (which may carry secrets such as a database URL)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("JOBGATE_")}


def job_environment(job: JobRecord, base: dict[str, str]) -> dict[str, str]:
    """The job's environment: `base` (see gateway_environment), the request's
    variables, then the SLURM_* variables a batch script expects, each with a
    JOBGATE_* twin."""
    env = base | job.spec.environment
    allocation = job.allocation or {}
    node = str(allocation.get("node") or node_name())
    slurm = {
        "JOB_ID": str(job.id),
        "JOBID": str(job.id),  # the older name, still read by many scripts
        "JOB_NAME": job.name,
        "JOB_USER": job.user_name,
        "JOB_UID": str(os.getuid()),  # whom the job runs as here: the gateway's user
        "JOB_GID": str(os.getgid()),
        "SUBMIT_DIR": job.working_directory,
        "SUBMIT_HOST": node,  # the gateway's machine, which is the node
        "CPUS_PER_TASK": str(job.cpus_per_task),
        "NTASKS": str(job.ntasks),
        "JOB_PARTITION": job.partition,
        "JOB_NUM_NODES": str(job.num_nodes),
        "NNODES": str(job.num_nodes),
        "CLUSTER_NAME": job.cluster,
        "JOB_NODELIST": node,
        "NODELIST": node,
        "JOB_CPUS_PER_NODE": str(job.cpus),
        "CPUS_ON_NODE": str(job.cpus),
        "TASKS_PER_NODE": str(job.ntasks),
        # The batch script is task 0 of node 0, as slurmd starts it.
        "NODEID": "0", "PROCID": "0", "LOCALID": "0",
        "RESTART_COUNT": str(job.requeue_count),
    }
    memory = job_memory(job.memory, job.memory_per_cpu, job.cpus)
    if job.memory is None and job.memory_per_cpu:
        slurm["MEM_PER_CPU"] = str(job.memory_per_cpu)
    elif memory:
        slurm["MEM_PER_NODE"] = str(memory)
    if job.account:
        slurm["JOB_ACCOUNT"] = job.account
    if job.spec.qos:
        slurm["JOB_QOS"] = job.spec.qos
    if job.array_job_id is not None and job.array_task_id is not None and job.spec.array:
        tasks = parse_array(job.spec.array)
        slurm |= {
            "ARRAY_JOB_ID": str(job.array_job_id), "ARRAY_TASK_ID": str(job.array_task_id),
            "ARRAY_TASK_COUNT": str(tasks.count), "ARRAY_TASK_MIN": str(tasks.min),
            "ARRAY_TASK_MAX": str(tasks.max),
        }
        if len(tasks.indices) > 1:
            steps = {b - a for a, b in zip(tasks.indices, tasks.indices[1:], strict=False)}
            slurm["ARRAY_TASK_STEP"] = str(steps.pop() if len(steps) == 1 else 1)
    gpus = allocation.get("gpus", [])
    if gpus:
        slurm["JOB_GPUS"] = ",".join(map(str, gpus))
    for key, value in slurm.items():
        env[f"SLURM_{key}"] = value
        env[f"JOBGATE_{key}"] = value
    env["SLURMD_NODENAME"] = node
    # Only the allocated GPUs are visible; none at all when none were asked for.
    env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
    return env
