"""The registry of providers: one line per provider module."""

from __future__ import annotations

from pydantic import SecretStr

from playground.errors import ConfigError
from playground.providers import apixo, bfl, fal, kie, replicate, runapi, runflow
from playground.providers.base import Provider, ProviderConfig, ProviderSpec
from playground.settings import Settings

REGISTRY: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        # the five providers of the seed documents
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


def provider_config(spec: ProviderSpec, settings: Settings, key: SecretStr | None = None) -> ProviderConfig:
    """Where and as whom to reach ``spec``: base URL from settings, key from ``key`` or settings."""
    extra = {name: settings.value(name, default) for name, default in spec.extra_env.items()}
    secrets = {name: secret for name in spec.extra_env if (secret := settings.secret(name)) is not None}
    return ProviderConfig(
        name=spec.name,
        label=spec.label,
        base_url=settings.value(spec.base_url_env, spec.default_base_url),
        api_key=key or settings.secret(spec.key_env),
        key_env=spec.key_env,
        extra=extra,
        secrets=secrets,
    )


__all__ = ["REGISTRY", "Provider", "ProviderConfig", "ProviderSpec", "get_spec", "provider_config"]
