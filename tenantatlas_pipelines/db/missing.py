"""How far a missing set can be trusted: the confidence grade of its reference run."""

from __future__ import annotations

from collections.abc import Collection

from tenantatlas_pipelines.db.records import SyncRunRow
from tenantatlas_pipelines.inventory.runs import Confidence, RunStatus, TypeOutcome

NO_REFERENCE_REASON = (
    "no completed sync run of this selection yet (running, pending and skipped runs never count): "
    "nothing can be called missing"
)


def failed_policy_types(run: SyncRunRow, policy_types: Collection[str]) -> tuple[str, ...]:
    """Types the run did not fetch completely (its ``type_results`` outcome is not success).

    A type of the selection absent from ``type_results`` counts as not fetched,
    unless the run succeeded outright.
    """
    failed = {
        key
        for key, result in run.type_results.items()
        if not isinstance(result, dict) or result.get("outcome") != TypeOutcome.SUCCESS.value
    }
    if run.status is not RunStatus.SUCCESS:
        failed |= set(policy_types) - set(run.type_results)
    return tuple(sorted(failed))


def assess_confidence(
    run: SyncRunRow, policy_types: Collection[str]
) -> tuple[Confidence, str, tuple[str, ...]]:
    """LOW when the reference run is partial, failed or had errors, else HIGH; with the reason."""
    failed = failed_policy_types(run, policy_types)
    problems: list[str] = []
    if run.status in (RunStatus.PARTIAL, RunStatus.FAILED):
        problems.append(f"is {run.status.value}")
    if run.had_errors:
        codes = ", ".join(run.error_codes) or "no code recorded"
        problems.append(f"had errors ({codes})")
    if failed:
        problems.append(f"failed to fetch policy types: {', '.join(failed)}")
    reference = f"reference sync run {run.id} (started {run.started_at.isoformat()})"
    if problems or run.status is not RunStatus.SUCCESS:
        return Confidence.LOW, f"low: {reference} " + "; ".join(problems or ["is not a success"]), failed
    return Confidence.HIGH, f"high: {reference} succeeded for every policy type, no errors", failed
