"""Send reads to the read replica when ``DATABASE_REPLICA_URL`` is set (seed 000)."""

from typing import Any


class ReplicaRouter:
    def db_for_read(self, model: type, **hints: Any) -> str:
        return "replica"

    def db_for_write(self, model: type, **hints: Any) -> str:
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        # The replica receives its schema by replication, never by migrate.
        return db == "default"
