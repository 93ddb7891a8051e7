"""One typed Settings object, read once from a mapping (the environment, after .env is loaded)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from playground.errors import ConfigError
from playground.providers import env_names

_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")


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
            public_base_url=env.get("PUBLIC_BASE_URL"),
            sandbox=_flag(env, "PLAYGROUND_SANDBOX"),
            allow_private_urls=_flag(env, "PLAYGROUND_ALLOW_PRIVATE_URLS"),
            arena_votes_per_minute=_count(env, "PLAYGROUND_ARENA_VOTES_PER_MINUTE", 10),
        )


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


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise ConfigError(f"{name} is {raw!r}; it must be a whole number, 0 or more.")
    return int(raw)


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").lower() in {"1", "true", "yes", "on"}
