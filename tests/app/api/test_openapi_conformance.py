"""schemathesis: the running app (WSGI, the test database) against its own OpenAPI document.

Every operation gets generated requests, valid and invalid; every answer must be no 5xx and
match the schema documented for its status (problem details included). Examples per
operation are kept low so the suite stays quick; `API_CONFORMANCE_EXAMPLES` raises them.
(schemathesis' pytest fixture loader does not run under pytest 9, so the operations are walked
here, each with its own Hypothesis run.)"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.db import db
from app.leads.service import upsert_lead
from tests.app.api.conftest import token_for

EXAMPLES = int(os.environ.get("API_CONFORMANCE_EXAMPLES", "25"))


def test_every_operation_answers_as_documented(app):
    token = token_for()
    for n in range(1, 4):
        upsert_lead(f"seed{n}@example.com", {"company": "Acme"}, source="api")
    db.session.commit()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.call_and_validate(headers=headers,
                                   checks=[not_a_server_error, response_schema_conformance])

        try:
            check()
        except Exception as exc:  # noqa: BLE001  every operation's failure is reported
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
