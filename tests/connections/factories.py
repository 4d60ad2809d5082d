"""Factories for connections and CLI sessions (the tokens are real, sealed on save)."""

from datetime import timedelta

import factory
from django.utils import timezone

from accounts.tokens import cli_session_issue_tokens, cli_session_start
from connections.models import AccessibleResource, Connection
from tests.accounts.factories import UserFactory


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    user = factory.SubFactory(UserFactory)
    service = "jira"
    external_account_id = factory.Sequence(lambda n: f"5570{n:02d}:account")
    access_token = factory.Sequence(lambda n: f"atlassian-access-seeded-{n}")
    refresh_token = factory.Sequence(lambda n: f"atlassian-refresh-seeded-{n}")
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))
    scopes = "read:jira-work offline_access read:me"
    last_refreshed_at = factory.LazyFunction(timezone.now)


class AccessibleResourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AccessibleResource

    connection = factory.SubFactory(ConnectionFactory)
    resource_id = factory.Sequence(lambda n: f"site-{n}")
    name = factory.Sequence(lambda n: f"site {n}")
    url = factory.Sequence(lambda n: f"https://site{n}.atlassian.net")
    scopes = ["read:jira-work"]


def cli_tokens_for(user, origin="connection"):
    """A real CLI session for ``user`` and its first token pair."""
    session = cli_session_start(user=user, origin=origin)
    return cli_session_issue_tokens(session=session)
