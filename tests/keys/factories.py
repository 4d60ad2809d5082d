import factory

from keys.models import ApiKey, Project
from keys.services import mask_secret
from tests.accounts.factories import UserFactory


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Project {n}")
    description = "Keys for one app"


class ApiKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiKey

    owner = factory.SubFactory(UserFactory)
    project = None
    provider = "openai"
    name = factory.Sequence(lambda n: f"key {n}")
    secret = factory.Sequence(lambda n: f"sk-proj-TestSecret{n:06d}abcdefghijklmnopWx9z")
    masked_key = factory.LazyAttribute(lambda o: mask_secret(o.secret))
    status = ApiKey.Status.VALID
