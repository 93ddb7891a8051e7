"""The registry of providers: one line per provider module. Nothing else in the playground lists them."""

from __future__ import annotations

from playground.errors import ConfigError
from playground.providers import apixo, bfl, fal, kie, replicate, runapi, runflow
from playground.providers.base import Provider, ProviderConfig, ProviderSpec

REGISTRY: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        # the five providers the playground was started for
        kie.KIE,
        kie.FLUXAPI,
        runapi.SPEC,
        runflow.SPEC,
        apixo.SPEC,
        # the references users compare them against
        bfl.SPEC,
        fal.SPEC,
        replicate.SPEC,
    )
}


def get_spec(name: str) -> ProviderSpec:
    """The spec for a provider name, or ConfigError listing the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise ConfigError(f"Unknown provider {name!r}; choose one of: {known}.") from None


def env_names() -> set[str]:
    """Every environment variable some registered provider reads."""
    return {name for spec in REGISTRY.values() for name in spec.env_names}


def served_by(model: str) -> list[ProviderSpec]:
    """The registered providers that serve ``model``, in registry order."""
    return [spec for spec in REGISTRY.values() if spec.serves(model)]


__all__ = ["REGISTRY", "Provider", "ProviderConfig", "ProviderSpec", "env_names", "get_spec", "served_by"]
