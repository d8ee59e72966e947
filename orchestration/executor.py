"""The executor of every run the instance launches: in process (steps one after another, the default) or one
process per step (clv.yaml `execution:`, or per run in the launchpad's `execution:` config).

Either way the run holds its workspace's lock from its first step to its last, taken once in the process that
runs or starts the steps, under the run's id: step processes inherit its token and enter it (ml/lock.py), so none
of them waits for its own run or is ended as a leftover of it. Within the run, steps that open DuckDB go one at a
time (a writer excludes every other process, readers included) and so do the Evidently workspace's writers; the
limits are op tags counted by the run's own executor, not slots kept in the instance's storage, which a run
killed with SIGKILL could leave claimed. Other steps (training on saved datasets, the feature drift report,
publishing) run beside them.
"""
import dagster as dg

from ml import settings
from ml.lock import workspace_lock
from orchestration.resources import LOCK_WAIT_SECONDS

OPENS_WAREHOUSE = {"clv/warehouse": "duckdb"}  # op tags of a step that connects to DuckDB, read-only or not
WRITES_EVIDENTLY = {"clv/evidently": "workspace"}  # the local Evidently workspace is not safe for two writers
TAG_LIMITS = [{"key": key, "limit": 1} for key in (*OPENS_WAREHOUSE, *WRITES_EVIDENTLY)]

_DEFAULT = settings.load_config().execution
CONFIG = dg.Field(
    dg.Selector({
        "in_process": dg.Field({}, description="Steps one after another in the run's process."),
        "multiprocess": dg.Field(
            {"max_concurrent": dg.Field(int, default_value=_DEFAULT.max_concurrent,
                                        description="Step processes at once.")},
            description="Each step in a process of its own; warehouse steps still one at a time."),
    }),
    default_value={"multiprocess": {"max_concurrent": _DEFAULT.max_concurrent}} if _DEFAULT.mode == "multiprocess"
    else {"in_process": {}},
)


def _requirements(config) -> list:
    return dg.multiple_process_executor_requirements() if "multiprocess" in config else []


@dg.executor(name="clv", config_schema=CONFIG, requirements=_requirements)
def clv_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    mode, chosen = next(iter(init_context.executor_config.items()))
    retries = {"retries": {"enabled": {}}}  # Dagster's default
    inner = ({"multiprocess": {**retries, "max_concurrent": chosen["max_concurrent"],
                               "tag_concurrency_limits": TAG_LIMITS}}
             if mode == "multiprocess" else {"in_process": retries})
    # multiprocess starts steps with `spawn` (Dagster's default): each one from the run's environment, its token
    # included (a forkserver, started by an earlier run, would hand out that run's token)
    built = dg.multi_or_in_process_executor.executor_creation_fn(dg.InitExecutorContext(
        job=init_context.job, executor_def=init_context.executor_def, executor_config=inner,
        instance=init_context.instance))
    return RunHoldsWorkspace(built)


class RunHoldsWorkspace(dg.Executor):
    """Runs `inner` (Dagster's in-process or multiprocess executor) holding the workspace's lock for the run."""

    def __init__(self, inner: dg.Executor):
        self.inner = inner

    @property
    def retries(self):
        return self.inner.retries

    @property
    def step_dependency_config(self):
        return self.inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        run_id = plan_context.run_id
        folder = settings.duckdb_path().parent  # the Warehouse resource's folder (orchestration/resources.py)
        with workspace_lock(folder, f"Dagster run {run_id[:8]}", LOCK_WAIT_SECONDS, key=run_id) as holder:
            if holder["reaped"]:
                plan_context.log.warning(f"ended {holder['reaped']} process(es) a killed earlier run left behind")
            yield from self.inner.execute(plan_context, execution_plan)
