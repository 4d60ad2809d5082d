"""The reaper (beat, every minute): runs whose worker died, or whose task the broker
lost, are failed and what waits on them ended; conversations nobody will answer are freed;
calls that a completed run kept unrecorded are recorded (on credits, charged)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from assistant.events import DONE, run_event_publish
from assistant.models import AssistantRun, PendingConfirmation
from assistant.services.conversation import calls_from_json
from assistant.services.runs import failed_done, runs_fail_where
from assistant.services.sessions import session_turn_end, sessions_free_abandoned
from billing.models import CreditHold
from billing.services import credits_charge
from core.errors import ApplicationError
from usage.services.metering import UnrecordableCall, usage_record_llm_calls

logger = logging.getLogger(__name__)

REAP_MARGIN_SECONDS = 60
RUN_LOST = (
    "This run stopped without finishing: the worker running it went away (restarted, or "
    "past the time limit). Nothing more will happen; ask again. If it was running an "
    "action you approved, check Jira first: it may have been done."
)
RUN_NOT_STARTED = (
    "No worker ever started this run (the queue lost it), so nothing was done, an approved "
    "action included. Ask again."
)


def _holds_of(run: AssistantRun, **where: Any) -> list[CreditHold]:
    """The credit holds ``run`` opened (its calls on credits are charged, and its holds
    closed, together: see ``Conversation.meter``), narrowed by ``where``."""
    return list(
        CreditHold.objects.filter(
            account__user_id=run.owner_id, reference__startswith=f"assistant-run-{run.pk}-", **where
        ).select_related("account")
    )


def _holds_close(run: AssistantRun) -> None:
    """A lost run's holds released: the calls it made were neither recorded nor charged
    (its worker died holding them), so nothing is charged for them."""
    credits_charge(holds=_holds_of(run, status=CreditHold.Status.OPEN), metered_calls=[])


def runs_reap() -> int:
    """Fail runs still ``running`` past the task's hard time limit (and a margin): their
    worker died, and a redelivered task skips a run already claimed. Each is failed by a
    conditional UPDATE (a run that finished meanwhile is left alone), its credit holds
    released, its conversation freed and a ``done`` published so waiting requests and
    streams end. Runs still ``queued`` as long after they were stored (or resumed by an
    approval) are failed the same way (``run_not_started``: the broker lost the task).
    Conversations held by an approval that can no longer come are freed too, and calls
    that a completed run kept unrecorded a minute on are recorded (on credits, charged).
    How many runs were failed."""
    limit = int(settings.CELERY_TASK_TIME_LIMIT) + REAP_MARGIN_SECONDS
    cutoff = timezone.now() - timedelta(seconds=limit)
    running = AssistantRun.objects.filter(status=AssistantRun.Status.RUNNING, started_at__lt=cutoff)
    reaped = _runs_fail(running, ApplicationError(RUN_LOST, code="run_lost", status=500))
    # Queued that long (since stored, or since its approval resumed it): the broker lost
    # its task (a worker that still finds it late skips it once failed). Nothing of it ran.
    resumed_since = PendingConfirmation.objects.filter(run=OuterRef("pk"), used_at__gte=cutoff)
    lost = AssistantRun.objects.filter(
        status=AssistantRun.Status.QUEUED, created_at__lt=cutoff
    ).exclude(Exists(resumed_since))
    reaped += _runs_fail(
        lost, ApplicationError(RUN_NOT_STARTED, code="run_not_started", status=503)
    )
    sessions_free_abandoned()
    _calls_record_left(before=timezone.now() - timedelta(seconds=REAP_MARGIN_SECONDS))
    return reaped


def _calls_record_left(*, before: datetime) -> int:
    """Record the calls that completed runs kept because their worker died between the
    answer and the records: on the user's own key, or on credits (holds opened since its
    last claim), charged and the holds closed. Recording is first-wins by call id and a charge
    names its record, so a worker finishing meanwhile never counts one twice; how many
    runs had some."""
    left = AssistantRun.objects.filter(calls_unrecorded__isnull=False, finished_at__lt=before)
    done = 0
    for run in left.select_related("owner", "api_key").order_by("pk"):
        try:
            with transaction.atomic():
                # The run's row first, as its worker takes it: a row its worker holds is
                # left for the next pass.
                calls = (
                    AssistantRun.objects.select_for_update(skip_locked=True)
                    .filter(pk=run.pk, calls_unrecorded__isnull=False)
                    .values_list("calls_unrecorded", flat=True)
                    .first()
                )
                if calls is None:
                    continue  # its worker recorded them meanwhile, or is at it
                # On credits when it has no key of the user's and opened holds since its
                # last claim (open or not: holds of a part before a pause say nothing).
                holds = (
                    _holds_of(run, created_at__gte=run.started_at)
                    if run.api_key is None and run.started_at is not None
                    else []
                )
                if holds:
                    # Calls on credits: recorded and charged, the holds closed (those the
                    # reaper released meanwhile, taking the run for lost, stay released).
                    metered = usage_record_llm_calls(
                        owner=run.owner, api_key=None, calls=calls_from_json(calls)
                    )
                    credits_charge(holds=holds, metered_calls=metered)
                elif run.api_key is not None:  # else its key was deleted, with its usage
                    usage_record_llm_calls(
                        owner=run.owner, api_key=run.api_key, calls=calls_from_json(calls)
                    )
                AssistantRun.objects.filter(pk=run.pk).update(calls_unrecorded=None)
                done += 1
        except UnrecordableCall as exc:
            # Calls no record can hold (figures a provider made up, kept before Kay read
            # them strictly): they would fail every minute for ever. Set aside, said once.
            # Any other failure is retried at the next pass.
            AssistantRun.objects.filter(pk=run.pk).update(calls_unrecorded=None)
            logger.warning("assistant run %s: its left calls cannot be recorded (%s)", run.pk, exc)
        except Exception:
            # One run's calls that cannot be recorded must not stop the others'.
            logger.exception("assistant run %s: its left calls could not be recorded", run.pk)
    return done


def _runs_fail(stuck: QuerySet[AssistantRun], error: ApplicationError) -> int:
    """Fail each of ``stuck`` still matching it, and end what waits on it; how many."""
    reaped = 0
    for run in stuck.only("pk", "owner_id"):
        if not runs_fail_where(stuck.filter(pk=run.pk), error):
            continue
        reaped += 1
        _holds_close(run)
        session_turn_end(run_id=run.pk)
        run_event_publish(run_id=run.pk, kind=DONE, data=failed_done(error))
    return reaped
