import factory

from keys.models import ApiKey, KeyAuditEvent, Project
from keys.services import mask_secret
from tests.accounts.factories import UserFactory


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Project {n}")
    description = "Keys for one app"


# A key in each provider's real format (keys/providers/*), numbered so each is distinct.
SHAPES = {
    "openai": "sk-proj-TestSecret{n:06d}abcdefghijklmnopWx9z",
    "anthropic": "sk-ant-api03-TestSecret{n:06d}abcdefghijklmnopqrstuvwxyz0AA",
    "gemini": "AIzaSyTestSecret{n:06d}abcdefghijklmnopq",
    "openrouter": "sk-or-v1-{n:064x}",
    "mistral": "TestSecret{n:06d}abcdefghijklmnop",
    "groq": "gsk_TestSecret{n:06d}abcdefghijklmnopqrstuvwxyz0123456789",
    "exa": "1a2b3c4d-0000-4000-8000-{n:012x}",
    "copilotkit": "ck_pub_{n:032x}",
    "openai_compatible": "local-token-{n:06d}",
}


def secret_for(provider: str, n: int) -> str:
    return SHAPES[provider].format(n=n)


class ApiKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiKey

    owner = factory.SubFactory(UserFactory)
    project = None
    provider = "openai"
    name = factory.Sequence(lambda n: f"key {n}")
    secret = factory.LazyAttributeSequence(lambda o, n: secret_for(o.provider, n))
    masked_key = factory.LazyAttribute(lambda o: mask_secret(o.secret))
    status = ApiKey.Status.VALID


class KeyAuditEventFactory(factory.django.DjangoModelFactory):
    """One line of a key's audit trail, done by its owner."""

    class Meta:
        model = KeyAuditEvent

    api_key = factory.SubFactory(ApiKeyFactory)
    owner = factory.SelfAttribute("api_key.owner")
    actor = factory.SelfAttribute("api_key.owner")
    key_label = factory.LazyAttribute(lambda o: o.api_key.name)
    action = KeyAuditEvent.Action.VALIDATED
    source = KeyAuditEvent.Source.API
    ip_address = "192.0.2.7"
