"""What a test sees of a run's SQL in the worker service (``run_execute``): the statements
of one run, and a numbered listing for a failure's message."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from assistant.services.runs import run_ask_start, run_execute

SEARCH = {"jql": "project = KAN"}


def _listing(queries: list[str]) -> str:
    return "\n".join(f"  {n:>3}. {sql[:200]}" for n, sql in enumerate(queries, 1))


def _run(user, chat, *rounds) -> list[str]:
    """The statements of one run of ``rounds`` (scripted model answers), to completion."""
    chat.script(*rounds)
    started = run_ask_start(user=user, prompt="List KAN")
    run_id = getattr(started, "run", started).pk
    with CaptureQueriesContext(connection) as captured:
        assert run_execute(run_id=run_id) == "completed"
    return [query["sql"] for query in captured.captured_queries]
