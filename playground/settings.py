"""One typed Settings object, read once from a mapping (the environment, after .env is loaded)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from playground.errors import ConfigError, PlaygroundError
from playground.models import model_info
from playground.providers import env_names, get_spec

_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
# Callback bodies are a few kilobytes (ids, status, a result URL); Replicate's carries the prediction's input,
# so an edit sent as an inline image is larger: such a delivery is refused and the job confirmed by its reads.
DEFAULT_WEBHOOK_MAX_BYTES = 256 * 1024


def is_secret_name(name: str) -> bool:
    """Whether an environment variable holds a secret that must never be shown."""
    return name.endswith(_SECRET_SUFFIXES)


class Settings(BaseModel):
    """Everything the playground reads from its environment. Keys are SecretStr."""

    model_config = ConfigDict(frozen=True)

    values: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, SecretStr] = Field(default_factory=dict, repr=False)
    poll_interval_s: float | None = None
    job_timeout_s: float = 300.0
    http_timeout_s: float = 60.0
    out_dir: Path = Path("outputs")
    data_dir: Path = Path("data")
    public_base_url: str | None = None
    sandbox: bool = False
    allow_private_urls: bool = False
    prices: dict[str, float] = Field(default_factory=dict)
    """Per-image prices the operator set (PLAYGROUND_PRICES), by "provider:model" or "provider" for all."""

    def price_set_for(self, provider: str, model: str) -> float | None:
        """The price PLAYGROUND_PRICES sets for one provider and model, if any."""
        return self.prices.get(f"{provider}:{model}", self.prices.get(provider))

    database_url: str | None = None  # postgresql://... : the shared store of several replicas (else SQLite)
    storage_url: str | None = None  # s3://bucket/prefix : where results are kept (else out_dir)
    lease_s: float = 30.0  # with replicas: a job whose owner stops renewing is taken over this long after
    webhook_max_bytes: int = DEFAULT_WEBHOOK_MAX_BYTES
    arena_votes_per_minute: int = 10  # per visitor, on a shared page; 0: no limit

    def secret(self, name: str) -> SecretStr | None:
        """The secret named ``name``, or None when unset or blank."""
        return self.secrets.get(name)

    def value(self, name: str, default: str) -> str:
        """A non-secret provider value (a base URL, say), or its default."""
        return self.values.get(name) or default

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from environment variables; blank values count as unset.

        Provider variables are exactly those the registered providers declare (key, base URL, extras).
        """
        env = {k: v.strip() for k, v in (os.environ if environ is None else environ).items()}
        env = {k: v for k, v in env.items() if v}
        declared = env_names()
        provider_vars = {k: v for k, v in env.items() if k in declared}
        return cls(
            values={k: v for k, v in provider_vars.items() if not is_secret_name(k)},
            secrets={k: SecretStr(v) for k, v in provider_vars.items() if is_secret_name(k)},
            poll_interval_s=_number(env, "PLAYGROUND_POLL_INTERVAL_S", None),
            job_timeout_s=_number(env, "PLAYGROUND_JOB_TIMEOUT_S", 300.0) or 300.0,
            http_timeout_s=_number(env, "PLAYGROUND_HTTP_TIMEOUT_S", 60.0) or 60.0,
            out_dir=Path(env.get("PLAYGROUND_OUT_DIR", "outputs")),
            data_dir=Path(env.get("PLAYGROUND_DATA_DIR", "data")),
            public_base_url=env.get("PUBLIC_BASE_URL") or space_url(env),
            sandbox=_flag(env, "PLAYGROUND_SANDBOX"),
            allow_private_urls=_flag(env, "PLAYGROUND_ALLOW_PRIVATE_URLS"),
            prices=parse_prices(env.get(PRICES_ENV, "")),
            database_url=_database_url(env),
            storage_url=_storage_url(env),
            lease_s=_number(env, "PLAYGROUND_LEASE_S", 30.0) or 30.0,
            webhook_max_bytes=_count(env, "PLAYGROUND_WEBHOOK_MAX_BYTES", DEFAULT_WEBHOOK_MAX_BYTES, minimum=1),
            arena_votes_per_minute=_count(env, "PLAYGROUND_ARENA_VOTES_PER_MINUTE", 10),
        )


PRICES_ENV = "PLAYGROUND_PRICES"


def parse_prices(raw: str) -> dict[str, float]:
    """``kie:pro=0.025,fluxapi=0.02``: dollars per image by provider and model (pro, max, or a full model id),
    or by provider alone for all its models. ConfigError with one sentence when an entry is not of that shape."""
    prices: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        target, sep, amount = item.partition("=")
        provider, _, model = target.strip().partition(":")
        try:
            usd = float(amount)
            spec = get_spec(provider.strip()) if sep else None
            full = _model_id(model.strip()) if model else None
            if full is not None:
                model_info(full)
        except (ValueError, PlaygroundError):
            usd, spec, full = -1.0, None, None
        if spec is None or usd < 0:
            raise ConfigError(
                f"{PRICES_ENV} has {item!r}; write provider:model=dollars, e.g. kie:pro=0.025 or fluxapi=0.02."
            )
        prices[f"{spec.name}:{full}" if full else spec.name] = usd
    return prices


def _model_id(word: str) -> str:
    return word if word.startswith("flux-") else f"flux-kontext-{word}"


def space_url(env: Mapping[str, str]) -> str | None:
    """The public address of a Hugging Face Space, from SPACE_HOST (the first of a comma-separated list)."""
    host = env.get("SPACE_HOST", "").split(",")[0].strip()
    return f"https://{host}" if host else None


def _database_url(env: Mapping[str, str]) -> str | None:
    url = env.get("PLAYGROUND_DATABASE_URL")
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"PLAYGROUND_DATABASE_URL must start with postgresql:// (got {url.split(':')[0]}:...).")
    return url


def _storage_url(env: Mapping[str, str]) -> str | None:
    url = env.get("PLAYGROUND_STORAGE_URL")
    if url is not None and (not url.startswith("s3://") or not url[5:].strip("/")):
        raise ConfigError("PLAYGROUND_STORAGE_URL must look like s3://bucket or s3://bucket/prefix.")
    return url


def _number(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} is {raw!r}, which is not a number of seconds.") from None
    if value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {raw}.")
    return value


def _count(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise ConfigError(f"{name} is {raw!r}; it must be a whole number, {minimum} or more.")
    return int(raw)


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").lower() in {"1", "true", "yes", "on"}
