"""How failures that are not the client's map to statuses: storage translates a
driver's errors (storage.errors.translated), the API maps the result
(api.errors.status_of)."""

from __future__ import annotations

import grpc
import psycopg
import psycopg2
import pytest
from sqlalchemy import exc as sa_exc

from loanbilling.api.errors import status_of
from loanbilling.domain.errors import DuplicateKey, StorageUnavailable
from loanbilling.storage.errors import translated

# psycopg 3 drives the pool, psycopg2 the dedicated connections: both drivers' errors.
OUT_OF_REACH = [
    psycopg2.OperationalError("server closed the connection unexpectedly"),
    psycopg2.InterfaceError("connection already closed"),
    sa_exc.OperationalError("SELECT 1", {}, psycopg2.OperationalError("refused")),
    psycopg.OperationalError("consuming input failed: server closed the connection"),
    psycopg.InterfaceError("the connection is closed"),
    sa_exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("refused")),
    sa_exc.TimeoutError("QueuePool limit of size 8 overflow 0 reached"),
]
OUT_OF_REACH_IDS = [
    "raw-operational",
    "raw-interface",
    "wrapped-operational",
    "raw-operational-psycopg3",
    "raw-interface-psycopg3",
    "wrapped-operational-psycopg3",
    "pool-timeout",
]


def translate(error: Exception) -> Exception:
    with pytest.raises(Exception) as raised, translated():
        raise error
    return raised.value


@pytest.mark.parametrize("error", OUT_OF_REACH, ids=OUT_OF_REACH_IDS)
def test_a_database_out_of_reach_is_unavailable(error):
    translated_error = translate(error)
    assert isinstance(translated_error, StorageUnavailable)
    assert translated_error.__cause__ is error
    status = status_of("MakePayment", translated_error)
    assert status.code is grpc.StatusCode.UNAVAILABLE
    assert "idempotency key" in status.details


def test_a_unique_key_taken_concurrently_is_a_duplicate_key():
    error = sa_exc.IntegrityError(
        "INSERT", {}, psycopg2.IntegrityError("duplicate key value violates unique constraint")
    )
    assert isinstance(translate(error), DuplicateKey)


def test_other_driver_errors_pass_unchanged_and_are_internal():
    error = sa_exc.ProgrammingError("SELEC 1", {}, psycopg2.ProgrammingError("syntax error"))
    assert translate(error) is error
    assert status_of("MakePayment", error).code is grpc.StatusCode.INTERNAL


def test_a_bug_is_internal_with_an_incident_to_quote():
    status = status_of("MakePayment", KeyError("oops"))
    assert status.code is grpc.StatusCode.INTERNAL
    assert "incident" in status.details and "oops" not in status.details
