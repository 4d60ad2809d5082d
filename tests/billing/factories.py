import factory

from billing.models import CheckoutSession
from tests.accounts.factories import UserFactory


class CheckoutSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CheckoutSession

    user = factory.SubFactory(UserFactory)
    stripe_session_id = factory.Sequence(lambda n: f"cs_test_factory{n:04d}")
    pack_id = "10"
    amount_total = 1000
