"""The attack suite: schemathesis generates requests from the API's own OpenAPI document
(every phase: examples, coverage with its boundary values, undeclared methods and wrong
content types, fuzzing, stateful sequences) and checks each answer: no 5xx, a status and
a body the document declares, valid input accepted, invalid input refused.

Seeded and bounded (a fixed number of examples per operation), so a run is repeatable
and takes about a minute; `schemathesis` is pinned in requirements-dev.txt."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, from_schema
from schemathesis.engine.events import EngineFinished, NonFatalError, ScenarioFinished

from tests.support import run_cli, token

SEED = 20261202
MAX_EXAMPLES = 10  # per operation and phase: ~900 requests, about a minute on 2 cores

# Two rules no schema can state. A cursor is opaque: only one the API returned is valid,
# so a made-up one is rightly a 400. `wait` long-polls for up to 28 s per request, so the
# events stream is read without it (its bounds are in test_contract_errors).
CONFIG = """
seed = {seed}
headers = {{ Authorization = "Bearer {bearer}" }}

[generation]
max-examples = {max_examples}
deterministic = true
database = "none"

[cache]
enabled = false  # no crash replays from earlier runs: every run is the same run

[[operations]]
include-name = "GET /v1/telemetry/sessions"
checks.positive_data_acceptance.expected-statuses = ["2XX", "400", "401"]

[[operations]]
include-name = "GET /v1/jobs"
checks.positive_data_acceptance.expected-statuses = ["2XX", "400", "401"]

[[operations]]
include-name = "GET /v1/events"
parameters = {{ "query.wait" = 0 }}
"""


@dataclass
class Outcome:
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def attack(api: str, bearer: str) -> Outcome:
    """Every phase of schemathesis against the API at `api`, as the owner of `bearer`."""
    config = SchemathesisConfig.from_str(
        CONFIG.format(seed=SEED, bearer=bearer, max_examples=MAX_EXAMPLES)
    )
    schema = schemathesis.openapi.from_url(f"{api}/v1/openapi.json", config=config)
    outcome = Outcome()
    for event in from_schema(schema).execute():
        if isinstance(event, ScenarioFinished):
            outcome.cases += len(event.recorder.cases)
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None:
                    outcome.statuses[interaction.response.status_code] += 1
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        outcome.failures.append(
                            f"{failure.code} {failure.operation}: {failure.title}: "
                            f"{failure.message}\n  {check.failure_info.code_sample}"
                        )
        elif isinstance(event, NonFatalError):
            outcome.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, EngineFinished):
            outcome.failures += [f"{f.code} {f.operation}: {f.title}" for f in event.failures]
    return outcome


def test_schemathesis_finds_no_server_error_and_no_contract_violation(
    api: str, stack: dict[str, str]
) -> None:
    outcome = attack(api, token("schemathesis", "events:read", "ops:read", "ops:write"))
    assert outcome.cases > 500, f"too few cases to mean anything: {outcome.cases}"
    assert not outcome.errors, "\n".join(outcome.errors[:10])
    assert not outcome.failures, f"{len(outcome.failures)} failures:\n" + "\n".join(
        sorted(set(outcome.failures))[:20]
    )
    assert not [s for s in outcome.statuses if s >= 500], outcome.statuses
    # and whatever the attack stored: every blob holds its bytes, the log explains every row
    audit = run_cli("verify", "--blobs", env=os.environ | stack)
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-3000:]
