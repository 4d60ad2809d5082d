import pytest

from tests.billing.events import WEBHOOK_SECRET
from tests.fakes.stripe_api import SECRET_KEY, FakeStripe


@pytest.fixture
def fake_stripe(settings):
    """The fake Stripe API, with Kay's settings pointing at it."""
    fake = FakeStripe().start()
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_API_BASE = fake.origin
    yield fake
    fake.stop()


@pytest.fixture
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    return WEBHOOK_SECRET
