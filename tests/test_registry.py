"""The provider seam is closed: the registry is the only list of providers, and a new one needs nothing else."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import pytest
from pydantic import SecretStr

from playground.cli import main
from playground.models import MODELS
from playground.providers import REGISTRY, env_names
from playground.providers.base import PollSchedule, ProviderSpec
from playground.providers.kie import KieProvider
from playground.sandbox import kie as kie_protocol
from playground.sandbox.core import SandboxState
from playground.sandbox.server import SandboxServer
from playground.service import GenerationService
from playground.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SANDBOX_HELPERS = {"__init__", "core", "common", "draw", "faults", "server"}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_provider_names_a_sandbox_protocol_that_exists(name):
    module = importlib.import_module(f"playground.sandbox.{REGISTRY[name].sandbox}")
    assert callable(module.build) and isinstance(module.SANDBOX_SECRETS, dict)


def test_every_sandbox_protocol_is_spoken_by_a_registered_provider():
    protocols = {path.stem for path in (ROOT / "playground" / "sandbox").glob("*.py")} - SANDBOX_HELPERS
    assert protocols == {spec.sandbox for spec in REGISTRY.values()}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registry_entry_has_what_the_page_and_docs_need(name):
    spec = REGISTRY[name]
    assert spec.models and set(spec.models) <= set(MODELS)
    assert spec.docs_url.startswith("https://") and spec.key_url.startswith("https://")
    for price in spec.prices.values():
        assert price.source.startswith("https://"), "a price source a person can open, not an internal reference"
    assert set(spec.prices) <= set(spec.models)
    env_example = (ROOT / ".env.example").read_text()
    for env in spec.env_names:
        assert f"\n{env}=" in env_example, f"{env} is not in .env.example"


def test_settings_read_exactly_the_variables_the_providers_declare():
    settings = Settings.from_env({"KIE_API_KEY": "k", "KIE_BASE_URL": "http://x", "SOMEONE_ELSES_TOKEN": "t"})
    assert settings.secret("KIE_API_KEY") is not None and settings.value("KIE_BASE_URL", "") == "http://x"
    assert settings.secret("SOMEONE_ELSES_TOKEN") is None
    assert {"KIE_API_KEY", "FAL_KEY", "REPLICATE_API_TOKEN", "RUNFLOW_CALLBACK_SECRET"} <= env_names()


# --- a ninth provider, added in the test only ----------------------------------------------------------


def acme_spec() -> ProviderSpec:
    """A provider that speaks KIE's protocol under its own name, key and base URL."""
    spec: ProviderSpec

    def factory(config, http):
        return KieProvider(spec, config, http)

    spec = ProviderSpec(
        name="acme",
        label="Acme Images",
        key_env="ACME_API_KEY",
        base_url_env="ACME_BASE_URL",
        default_base_url="https://api.acme.invalid",
        factory=factory,
        capabilities=REGISTRY["fluxapi"].capabilities,
        poll=PollSchedule(first_s=2.0, interval_s=3.0),
        models={"flux-kontext-pro": "flux-kontext-pro"},
        sandbox="acme",
        key_url="https://acme.invalid/keys",
    )
    return spec


@pytest.fixture
def acme(monkeypatch):
    """The registry line and the sandbox module of a new provider; no other file is edited."""
    sandbox_module = types.ModuleType("playground.sandbox.acme")
    sandbox_module.build = kie_protocol.build
    sandbox_module.SANDBOX_SECRETS = {}
    monkeypatch.setitem(sys.modules, "playground.sandbox.acme", sandbox_module)
    spec = acme_spec()
    monkeypatch.setitem(REGISTRY, "acme", spec)
    return spec


def test_a_new_providers_key_reaches_its_adapter_from_real_settings(acme):
    settings = Settings.from_env({"ACME_API_KEY": "acme-real-key", "ACME_BASE_URL": "http://127.0.0.1:9/acme"})
    provider = GenerationService(settings).provider("acme")
    assert provider._config.api_key == SecretStr("acme-real-key")
    assert provider._config.base_url == "http://127.0.0.1:9/acme"


def test_a_new_provider_runs_end_to_end_through_the_cli_with_its_key_from_the_environment(
    acme, monkeypatch, tmp_path, capsys
):
    with SandboxServer(SandboxState(job_seconds=0.2, keys={"acme": "acme-real-key"})) as sandbox:
        for name, value in {
            "ACME_API_KEY": "acme-real-key",
            "ACME_BASE_URL": f"{sandbox.url}/acme",
            "PLAYGROUND_DATA_DIR": str(tmp_path / "data"),
            "PLAYGROUND_OUT_DIR": str(tmp_path / "out"),
            "PLAYGROUND_POLL_INTERVAL_S": "0.05",
        }.items():
            monkeypatch.setenv(name, value)
        code = main(["generate", "--provider", "acme", "--prompt", "a red fox", "--json"])
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert code == 0, lines
        assert lines[-1]["provider"] == "acme" and lines[-1]["state"] == "succeeded"
        assert Path(lines[-1]["files"][0]).is_file()
        assert sandbox.state.count("acme", "create") == 1, "the sandbox accepted only the key from the environment"


# --- a new model: one line in models.py, one line in each provider that serves it ------------------------


@pytest.fixture
def dev_model(monkeypatch):
    import dataclasses

    from playground import models

    dev = models.ModelInfo("flux-kontext-dev", "FLUX.1 Kontext [dev]", "dev")
    monkeypatch.setattr(models, "MODEL_INFO", (*models.MODEL_INFO, dev))
    monkeypatch.setattr(models, "MODELS", (*models.MODELS, dev.id))
    fal = REGISTRY["fal"]
    served = dataclasses.replace(fal, models={**fal.models, dev.id: "fal-ai/flux-kontext/dev"})
    monkeypatch.setitem(REGISTRY, "fal", served)
    return dev.id


def test_a_model_a_provider_does_not_serve_is_refused_naming_who_serves_it(dev_model, settings, sandbox):
    from playground.models import GenerationRequest

    service = GenerationService(settings)
    plan = service.plan(GenerationRequest(prompt="a fox", model=dev_model), [("kie", dev_model), ("fal", dev_model)])
    assert plan.targets == [("fal", dev_model)]
    (refused,) = plan.refused
    assert refused.reason == "KIE AI does not serve FLUX.1 Kontext [dev]; it is served by fal.ai."
    assert sandbox.state.count() == 0


def test_a_model_nobody_serves_says_so(dev_model, settings, monkeypatch):
    import dataclasses

    from playground.models import GenerationRequest

    monkeypatch.setitem(REGISTRY, "fal", dataclasses.replace(REGISTRY["fal"], models={}))
    plan = GenerationService(settings).plan(GenerationRequest(prompt="a fox", model=dev_model), [("bfl", dev_model)])
    assert (
        plan.refused[0].reason == "Black Forest Labs does not serve FLUX.1 Kontext [dev]; no provider here serves it."
    )


def test_an_unknown_model_id_is_refused_with_the_known_ones():
    from playground.errors import InvalidInputError
    from playground.request import build_request

    with pytest.raises(InvalidInputError, match="unknown model 'flux-kontext-ultra'; the playground knows"):
        build_request("a fox", model="flux-kontext-ultra")
