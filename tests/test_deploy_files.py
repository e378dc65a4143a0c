"""The deployment files (Dockerfile, compose.yaml, .env.example) agree with the code.

No image is built or pulled here (that needs a Docker daemon and the registries); what can drift
silently is checked instead: every SHOPASSIST_* variable compose sets is one the code reads and
the README documents, every value parses as the settings would parse it, the commands the image
and the services run are real CLI commands whose options click accepts, and the ports, hosts and
names each service is reached by are the ones it listens on. compose.yaml is read the way
``docker compose`` reads it: ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` filled from
.env.example (an unset required variable fails, as it would there).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from click.testing import CliRunner
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from assistant.llm import LLMSettings
from shopassist.config import Settings
from ui.cli import main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shopassist", "retrieval", "assistant", "ranking", "evals", "ui")
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|-|:\?|\?)([^}]*))?\}")
ENV_LINE = re.compile(r"^\s*(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


# -- reading the files the way docker does ---------------------------------------------------------
def env_file(*, commented: bool = False) -> dict[str, str]:
    """.env.example's assignments; ``commented`` adds the commented-out ones (the GPU block),
    which then override the active ones of the same name."""
    values: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        match = ENV_LINE.match(line)
        if match and (commented or not match.group(1)):
            values[match.group(2)] = match.group(3).strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution (the forms compose.yaml uses; ``$$`` is a literal ``$``)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        value = env.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise AssertionError(f"compose.yaml needs {name} ({arg}) and .env.example does not set it")
        if op == ":-" and not value:
            return arg
        if op == "-" and value is None:
            return arg
        return value or ""

    return VARIABLE.sub(one, text.replace("$$", "\0")).replace("\0", "$")


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    loaded = yaml.safe_load(interpolate(text, env_file() if env is None else env))
    assert isinstance(loaded, dict)
    return loaded


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        instruction, _, args = pending.partition(" ")
        out.append((instruction.upper(), args.strip()))
        pending = ""
    return out


def instruction(name: str) -> list[str]:
    return [args for ins, args in dockerfile() if ins == name]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def shopassist_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    image = doc["services"]["api"]["image"]
    return {name: s for name, s in doc["services"].items() if s.get("image") == image}


def cli_command(args: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The click command ``shopassist ARGS`` runs, its name path and the arguments left for it."""
    command: click.Command = main
    path: list[str] = []
    rest = list(args)
    while isinstance(command, click.Group):
        assert rest, f"`shopassist {' '.join(args)}` names a group, not a command"
        sub = command.commands.get(rest[0])
        assert sub is not None, f"`shopassist {' '.join(path + rest[:1])}` is not a command"
        path.append(rest.pop(0))
        command = sub
    return command, path, rest


def check_cli(args: list[str]) -> click.Context:
    """``python -m ui.cli CMD --help`` exits 0 and click accepts every option and value in ARGS
    (types and ranges included) without running the command."""
    command, path, rest = cli_command(args)
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    return command.make_context(" ".join(["shopassist", *path]), rest)


def option_value(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def healthcheck_url(test: list[str] | str) -> str:
    text = test if isinstance(test, str) else " ".join(test)
    match = re.search(r"https?://[^\s'\"]+", text)
    assert match, f"no URL in healthcheck {test!r}"
    return match.group(0)


def read_by_code(name: str) -> bool:
    return any(name in path.read_text(encoding="utf-8") for pkg in PACKAGES for path in (ROOT / pkg).rglob("*.py"))


# -- the tests -------------------------------------------------------------------------------------
def test_every_variable_compose_uses_is_set_or_documented_in_env_example():
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    used = {m.group(1) for m in VARIABLE.finditer(text)}
    documented = set(env_file(commented=True))
    assert used - documented == set(), "add these to .env.example"
    compose()  # every ${VAR:?} is satisfied by .env.example's active values
    compose(env_file(commented=True))  # and by the GPU variant


def test_every_shopassist_variable_is_read_by_the_code_and_documented():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    config = (ROOT / "shopassist" / "config.py").read_text(encoding="utf-8")
    doc = compose()
    names = set(env_file(commented=True))
    for service in doc["services"].values():
        names |= set(environment(service))
    names = {n for n in names if n.startswith("SHOPASSIST_")}
    assert "SHOPASSIST_REDIS_URL" in names and "SHOPASSIST_DATABASE_URL" in names
    for name in sorted(names):
        assert read_by_code(name), f"{name} is set for the containers but no code reads it"
        assert f"`{name}`" in readme or name in config, f"{name} is in neither README.md nor shopassist/config.py"


@pytest.mark.parametrize("variant", ["embedded", "gpu"])
def test_the_environment_parses_as_the_settings_parse_it(variant, monkeypatch, tmp_path):
    from ui.api import default_llm_slots

    env = env_file(commented=variant == "gpu")
    doc = compose(env)
    api = environment(doc["services"]["api"])
    for name in [n for n in os.environ if n.startswith("SHOPASSIST_")]:
        monkeypatch.delenv(name)
    for name, value in api.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SHOPASSIST_HOME", str(tmp_path))  # the container path is not ours to create
    settings = Settings.from_env()
    assert settings.redis_url and settings.database_url and settings.chroma_host
    assert settings.api_secret == env["SHOPASSIST_API_SECRET"]
    llm = LLMSettings.from_env()
    assert default_llm_slots() >= 1
    if variant == "gpu":
        assert not llm.embedded and llm.base_url == env["SHOPASSIST_LLM_BASE_URL"]
    else:
        assert llm.embedded and llm.shared  # one model server per api container, shared by its workers


def test_services_reach_each_other_where_they_listen():
    doc = compose(env_file(commented=True))
    services = doc["services"]
    api_env = environment(services["api"])

    redis = urlsplit(api_env["SHOPASSIST_REDIS_URL"])
    redis_args = services[redis.hostname]["command"]
    assert (redis.port or 6379) == int(option_value(redis_args, "--port") or 6379)

    pg = urlsplit(api_env["SHOPASSIST_DATABASE_URL"])
    pg_env = environment(services[pg.hostname])
    assert pg.port == 5432 and pg.username == pg_env["POSTGRES_USER"] and pg.password == pg_env["POSTGRES_PASSWORD"]
    assert pg.path.lstrip("/") == pg_env["POSTGRES_DB"]
    assert pg_env["POSTGRES_USER"] in " ".join(services[pg.hostname]["healthcheck"]["test"])

    chroma = services[api_env["SHOPASSIST_CHROMA_HOST"]]
    assert urlsplit(healthcheck_url(chroma["healthcheck"]["test"])).port == int(api_env["SHOPASSIST_CHROMA_PORT"])

    llm = urlsplit(api_env["SHOPASSIST_LLM_BASE_URL"])  # the GPU variant
    vllm_args = [str(a) for a in services[llm.hostname]["command"]]
    assert llm.port == int(option_value(vllm_args, "--port") or 0)
    assert urlsplit(healthcheck_url(services[llm.hostname]["healthcheck"]["test"])).port == llm.port
    assert option_value(vllm_args, "--served-model-name") == api_env["SHOPASSIST_LLM_MODEL"]
    assert option_value(vllm_args, "--host") == "0.0.0.0"
    assert "--enable-auto-tool-choice" in vllm_args and option_value(vllm_args, "--tool-call-parser") == "hermes"


def test_the_api_listens_publishes_and_is_health_checked_on_one_port():
    doc = compose()
    api = doc["services"]["api"]
    args = [str(a) for a in api["command"]]
    ctx = check_cli(args)
    port = ctx.params["port"]
    assert ctx.params["host"] == "0.0.0.0" and ctx.params["workers"] >= 1
    published = [str(p) for p in api["ports"]]
    assert len(published) == 1 and published[0].rsplit(":", 1)[1] == str(port)
    assert urlsplit(healthcheck_url(api["healthcheck"]["test"])).port == port
    assert [int(p.split("/")[0]) for p in instruction("EXPOSE")] == [port]
    image_check = instruction("HEALTHCHECK")
    assert len(image_check) == 1 and f"127.0.0.1:{port}/healthz" in image_check[0]
    api_code = (ROOT / "ui" / "api.py").read_text(encoding="utf-8")
    assert '@app.get("/healthz"' in api_code


def test_dependencies_wait_for_health_and_profiles_are_optional():
    services = compose()["services"]
    for name, service in services.items():
        for dep, rule in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy but it has no check"
            if services[dep].get("profiles") and not service.get("profiles"):
                assert rule.get("required") is False, f"{name} needs {dep}, which only runs with a profile"
    assert not services["api"].get("profiles")
    assert services["vllm"]["profiles"] == ["gpu"] and services["ingest"]["profiles"] == ["init"]
    gpu = services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


def test_state_lives_in_named_volumes_and_redis_fsyncs_every_write():
    doc = compose()
    services, volumes = doc["services"], doc["volumes"]
    mounts = {
        name: {str(v).split(":")[0]: str(v).split(":")[1] for v in s.get("volumes", [])} for name, s in services.items()
    }
    assert mounts["redis"] == {"redis-data": "/data"}
    assert mounts["postgres"] == {"pg-data": "/var/lib/postgresql/data"}
    assert mounts["chroma"] == {"chroma-data": "/data"}
    for name in ("redis", "postgres", "chroma"):
        assert set(mounts[name]) <= set(volumes)
    args = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in args and "--appendfsync always" in args
    # the API and the ingest job share one home: the pseudonym secret that keys sessions in Redis
    home = environment(services["api"])["SHOPASSIST_HOME"]
    assert mounts["api"]["home"] == home and mounts["ingest"]["home"] == home and "home" in volumes
    assert f"SHOPASSIST_HOME={home}" in " ".join(instruction("ENV"))


def test_images_are_pinned_to_what_the_code_was_built_against():
    services = compose()["services"]
    assert services["redis"]["image"].split(":")[1].split(".")[0] == "7"
    assert services["postgres"]["image"].split(":")[1].split(".")[0] == "15"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    chroma_pin = next(d for d in project["dependencies"] if d.startswith("chromadb"))
    server = Version(services["chroma"]["image"].split(":")[1])
    assert server in SpecifierSet(chroma_pin.removeprefix("chromadb")), f"{server} vs {chroma_pin}"
    assert ":" in services["vllm"]["image"] and not services["vllm"]["image"].endswith(":latest")


def test_the_image_runs_the_console_script_as_a_non_root_user():
    froms = instruction("FROM")
    assert froms and froms[-1].split()[0] == "python:3.11-slim"
    entrypoint = [exec_form(a) for a in instruction("ENTRYPOINT")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert entrypoint == [["shopassist"]] and project["scripts"]["shopassist"] == "ui.cli:main"
    [cmd] = [exec_form(a) for a in instruction("CMD")]
    ctx = check_cli(cmd)
    assert ctx.info_name == "shopassist serve" and ctx.params["host"] == "0.0.0.0"
    users = instruction("USER")
    assert users and users[-1] not in ("root", "0")
    runs = " ".join(instruction("RUN"))
    assert "pip install ." in runs and "[torch]" not in runs and "torch" not in shlex.split(runs)


def test_every_service_command_on_the_image_is_a_real_cli_command():
    doc = compose()
    for name, service in shopassist_services(doc).items():
        args = [str(a) for a in service["command"]]
        if name == "ingest":
            assert args[:2] == ["catalog", "ingest"]
        check_cli(args)


def test_the_default_catalog_of_the_ingest_job_is_the_packaged_demo_catalog():
    import shopassist.resources as resources

    args = [str(a) for a in compose()["services"]["ingest"]["command"]]
    path = args[-1]
    assert path == env_file()["CATALOG_FILE"]
    runs = " ".join(instruction("RUN"))
    assert f"{path}" in runs and "demo_catalog.jsonl" in runs  # the Dockerfile links it there
    assert (Path(resources.__file__).parent / Path(path).name).is_file()
