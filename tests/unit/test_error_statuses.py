"""How failures that are not the client's map to statuses (api.errors.status_of)."""

from __future__ import annotations

import grpc
import psycopg2
import pytest
from sqlalchemy import exc as sa_exc

from loanbilling.api.errors import status_of


@pytest.mark.parametrize(
    "error",
    [
        psycopg2.OperationalError("server closed the connection unexpectedly"),
        psycopg2.InterfaceError("connection already closed"),
        sa_exc.OperationalError("SELECT 1", {}, psycopg2.OperationalError("refused")),
        sa_exc.TimeoutError("QueuePool limit of size 8 overflow 0 reached"),
    ],
    ids=["raw-operational", "raw-interface", "wrapped-operational", "pool-timeout"],
)
def test_a_database_out_of_reach_is_unavailable(error):
    status = status_of("MakePayment", error)
    assert status.code is grpc.StatusCode.UNAVAILABLE
    assert "idempotency key" in status.details


def test_a_bug_is_internal_with_an_incident_to_quote():
    status = status_of("MakePayment", KeyError("oops"))
    assert status.code is grpc.StatusCode.INTERNAL
    assert "incident" in status.details and "oops" not in status.details
