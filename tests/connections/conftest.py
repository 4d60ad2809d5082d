"""Fixtures for connections: a fake Atlassian/Bitbucket server and settings pointing at it."""

import pytest

from tests.fakes.atlassian import (
    BB_CLIENT_ID,
    BB_CLIENT_SECRET,
    CLIENT_ID,
    CLIENT_SECRET,
    FakeAtlassian,
)


@pytest.fixture
def fake_atlassian():
    fake = FakeAtlassian().start()
    yield fake
    fake.stop()


@pytest.fixture
def oauth(settings, fake_atlassian):
    """Settings for OAuth against the fake; returns the fake."""
    settings.ATLASSIAN_CLIENT_ID = CLIENT_ID
    settings.ATLASSIAN_CLIENT_SECRET = CLIENT_SECRET
    settings.ATLASSIAN_AUTH_URL = fake_atlassian.atlassian_auth_url
    settings.ATLASSIAN_API_URL = fake_atlassian.atlassian_api_url
    settings.ATLASSIAN_CALLBACK_URL = "http://testserver/connections/oauth/callback"
    settings.BITBUCKET_CLIENT_ID = BB_CLIENT_ID
    settings.BITBUCKET_CLIENT_SECRET = BB_CLIENT_SECRET
    settings.BITBUCKET_AUTH_URL = fake_atlassian.bitbucket_auth_url
    settings.BITBUCKET_API_URL = fake_atlassian.bitbucket_api_url
    settings.BITBUCKET_CALLBACK_URL = "http://testserver/connections/oauth/callback"
    return fake_atlassian
