"""One run of a job of the definitions from a script (`make up`, `make backfill`), executed as clv.yaml's
`execution:` says: in this process, or by the run's executor with a process per step (orchestration/executor.py)."""
import dagster as dg

from ml import settings


def job_named(name: str) -> dg.JobDefinition:
    """The job as the code location defines it; a step process rebuilds it from here."""
    from orchestration.definitions import defs

    return defs.get_job_def(name)


def run_job(name: str, instance: dg.DagsterInstance, partition_key: str | None = None, tags: dict | None = None,
            asset_selection: list[dg.AssetKey] | None = None) -> dg.ExecuteInProcessResult | dg.JobExecutionResult:
    """Run `name` (or the `asset_selection` of it) to the end on `instance`; the result says whether it succeeded
    (failures are not raised)."""
    execution = settings.load_config().execution
    if execution.mode == "in_process":
        return job_named(name).execute_in_process(instance=instance, partition_key=partition_key, tags=tags,
                                                  asset_selection=asset_selection, raise_on_error=False)
    tags = {**(tags or {}), **({"dagster/partition": partition_key} if partition_key else {})}
    # a step process imports this module from the repository (Dagster drops its own sys.path[0] when it does)
    job = dg.build_reconstructable_job("orchestration.run", "job_named", (name,),
                                       reconstructor_working_directory=str(settings.REPO_ROOT))
    run_config = {"execution": {"config": {"multiprocess": {"max_concurrent": execution.max_concurrent}}}}
    return dg.execute_job(job, instance, run_config=run_config, tags=tags, asset_selection=asset_selection)
