from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core import (
            checks,  # noqa: F401  (registers the deployment checks)
            schema,  # noqa: F401  (registers OpenAPI extensions)
        )
