"""Store: how it is kept, the only code that touches the database (SQLModel on SQLite by
default, PostgreSQL through ``REBAL_DATABASE_URL``). Tables (``tables``), engine, datasets
and bulk loads (``database``), the audit trail (``audit``).

May import: ``tables``, ``governance`` (the actor written to the audit), sqlmodel. Never
``services``, ``views`` or a page. The package re-exports ``database`` for its callers.
"""

from rebal_core.store.database import *  # noqa: F403
