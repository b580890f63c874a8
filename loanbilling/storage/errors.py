"""Driver errors in the project's own terms: nothing above storage names a driver.

A database out of reach (refused, dropped or timed-out connections, a pool with
no free connection in time) becomes StorageUnavailable, which the API answers
UNAVAILABLE so that clients retry; a unique request key taken by a concurrent
request becomes DuplicateKey, which the services answer by replaying it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg2
from sqlalchemy import exc as sa_exc

from loanbilling.domain.errors import DuplicateKey, StorageUnavailable


def is_unavailable(error: BaseException) -> bool:
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection in time
        return True
    if isinstance(error, sa_exc.DBAPIError):
        # OperationalError: refused, dropped or timed-out connections; InterfaceError:
        # a connection the server closed under us.
        return error.connection_invalidated or isinstance(
            error, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    # The same from the driver itself, where SQLAlchemy did not wrap it (pool upkeep).
    return isinstance(
        error,
        psycopg.OperationalError
        | psycopg.InterfaceError
        | psycopg2.OperationalError
        | psycopg2.InterfaceError,
    )


@contextmanager
def translated() -> Iterator[None]:
    """Runs the block; re-raises a driver's error as the project's own, when it has one."""
    try:
        yield
    except sa_exc.IntegrityError as error:
        raise DuplicateKey(str(error.orig).strip().splitlines()[0]) from error
    except (sa_exc.SQLAlchemyError, psycopg.Error, psycopg2.Error) as error:
        if is_unavailable(error):
            raise StorageUnavailable(error.__class__.__name__) from error
        raise
