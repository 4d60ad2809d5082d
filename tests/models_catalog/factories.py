from decimal import Decimal

import factory

from models_catalog.models import Model, ModelEndpoint, Provider


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider
        django_get_or_create = ["slug"]

    slug = factory.Sequence(lambda n: f"provider-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    headquarters = "US"
    datacenters = factory.LazyFunction(lambda: ["US"])
    listed = True


class ModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Model

    openrouter_id = factory.Sequence(lambda n: f"author/model-{n}")
    author = factory.LazyAttribute(lambda o: o.openrouter_id.split("/")[0])
    name = factory.Sequence(lambda n: f"Author: Model {n}")
    description = "A model for tests."
    context_length = 128_000
    top_context_length = factory.LazyAttribute(lambda o: o.context_length)
    top_max_completion_tokens = 16_000
    input_modalities = factory.LazyFunction(lambda: ["text"])
    output_modalities = factory.LazyFunction(lambda: ["text"])
    modality = "text->text"
    prompt_price = Decimal("0.000001")
    completion_price = Decimal("0.000002")
    pricing = factory.LazyAttribute(
        lambda o: {"prompt": f"{o.prompt_price:f}", "completion": f"{o.completion_price:f}"}
    )
    supported_parameters = factory.LazyFunction(lambda: ["max_tokens", "temperature"])


class ModelEndpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelEndpoint

    model = factory.SubFactory(ModelFactory)
    provider = factory.SubFactory(ProviderFactory)
    tag = factory.LazyAttribute(lambda o: o.provider.slug)
    name = factory.LazyAttribute(lambda o: f"{o.provider.name} | {o.model.openrouter_id}")
    context_length = factory.LazyAttribute(lambda o: o.model.context_length)
    max_completion_tokens = factory.LazyAttribute(lambda o: o.model.top_max_completion_tokens)
    prompt_price = factory.LazyAttribute(lambda o: o.model.prompt_price)
    completion_price = factory.LazyAttribute(lambda o: o.model.completion_price)
    pricing = factory.LazyAttribute(
        lambda o: {"prompt": f"{o.prompt_price:f}", "completion": f"{o.completion_price:f}"}
    )
    supported_parameters = factory.LazyAttribute(lambda o: list(o.model.supported_parameters))
    status = 0


def offer(*, provider=None, **model_fields):
    """A model served by one provider (the provider's endpoint mirrors the model)."""
    model = ModelFactory(**model_fields)
    return ModelEndpointFactory(model=model, provider=provider or ProviderFactory())
