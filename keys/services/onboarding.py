"""The first-run wizard's progress (seed 002): 1 project → 2 keys → 3 validate → 4 done.

Progress is saved on the server (``current_step``, ``progress``, ``completed_at``), so a
user who leaves resumes where they were, on any device.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from core.errors import ApplicationError
from keys.models import ApiKey, OnboardingSession, Project

LAST_STEP = len(OnboardingSession.STEPS)


def onboarding_start(*, user: User) -> OnboardingSession:
    """The user's session, created on first visit. A user who already has a project
    (made outside the wizard) starts at step 2."""
    with transaction.atomic():
        session, _ = OnboardingSession.objects.get_or_create(user=user)
        if session.current_step == 1 and Project.objects.filter(owner=user).exists():
            _advance(session, 2)
    return session


def onboarding_step_done(*, user: User, step: int) -> OnboardingSession:
    """Record that ``step`` (1 project, 2 keys, 3 validate) is finished."""
    if step not in (1, 2, 3):
        raise ApplicationError("Unknown onboarding step.")
    if step == 1 and not Project.objects.filter(owner=user).exists():
        raise ApplicationError("Create a project first.")
    if step == 2 and not ApiKey.objects.filter(owner=user).exists():
        raise ApplicationError("Add at least one key first.")
    with transaction.atomic():
        session = onboarding_start(user=user)
        if step >= session.current_step:
            _advance(session, step + 1)
    return session


def _advance(session: OnboardingSession, step: int) -> None:
    session.current_step = step
    session.progress = round((step - 1) / (LAST_STEP - 1), 3)
    if step == LAST_STEP and session.completed_at is None:
        session.completed_at = timezone.now()
    session.save(update_fields=["current_step", "progress", "completed_at"])
