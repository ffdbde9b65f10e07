"""The deployment files (docker-compose.yml, Dockerfile, Procfile) against the code they run.

Nothing here starts a container: the files are parsed and compared with the settings
models, the ``worker`` command line and the topic declarations, so that renaming a
setting or a command, or changing a declaration, fails here instead of at deploy time.
The Prometheus configuration, the Grafana provisioning and the dashboard are checked
against the worker's web endpoints and the metrics it registers (the e2e tests check
the dashboard once more against the /metrics of a running worker).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from packaging.specifiers import SpecifierSet
from prometheus_client import REGISTRY, generate_latest
from pydantic_settings import BaseSettings

from tests.support.metrics import (
    DASHBOARD,
    PENDING,
    dashboard_queries,
    load_dashboard,
    metric_names,
    series_names,
)
from worker.cache.metrics import CacheMetrics
from worker.cli.main import cli
from worker.observability import metrics as worker_metrics
from worker.observability.web import METRICS_PATH, READINESS_PATH
from worker.settings import (
    CacheSettings,
    ClickHouseHttpSettings,
    ClickHouseSettings,
    KafkaSettings,
    LimitsSettings,
    RedisSettings,
    SecuritySettings,
    WorkerSettings,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROCFILE = ROOT / "Procfile"
PYPROJECT = ROOT / "pyproject.toml"
TOPICS_FILE = ROOT / "topics" / "topics.toml"

SETTINGS_MODELS: tuple[type[BaseSettings], ...] = (
    CacheSettings,
    KafkaSettings,
    ClickHouseSettings,
    ClickHouseHttpSettings,
    RedisSettings,
    LimitsSettings,
    SecuritySettings,
    WorkerSettings,
)
PREFIXES = {str(model.model_config.get("env_prefix")): model for model in SETTINGS_MODELS}

WORKER = "worker"
ONE_SHOT = "service_completed_successfully"
HEALTHY = "service_healthy"
# Inside a container the web server must listen on every interface to be reachable.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


# ----------------------------------------------------------------------------- helpers


def image_is_pinned(image: str) -> bool:
    """True for ``name:tag`` with a version-like tag (or a digest); never ``latest``."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # no tag at all, or the colon belonged to a registry port
        return False
    return tag != "latest" and any(char.isdigit() for char in tag)


_VARIABLE = re.compile(
    r"\$\$"
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value: str) -> str:
    """Compose variable interpolation as on a host where none of the variables is set."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        op = match.group("op") or ""
        if op.endswith("?"):
            raise ValueError(f"{match.group('name')} must be set: {match.group('default')}")
        if op.endswith("-"):
            return match.group("default") or ""
        return ""

    return _VARIABLE.sub(replace, value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as compose passes it: names to interpolated strings."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    values = {}
    for name, value in raw.items():
        if isinstance(value, bool):
            text = str(value).lower()
        else:
            text = "" if value is None else str(value)
        values[name] = interpolate(text)
    return values


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency name -> condition (the short list form means ``service_started``)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def settings_model(name: str) -> type[BaseSettings] | None:
    """The settings model whose environment prefix ``name`` carries, if any.

    The longest matching prefix wins: ``CLICKHOUSE_HTTP_PORT`` belongs to the
    endpoint's model, not to ``CLICKHOUSE_``'s.
    """
    for prefix in sorted(PREFIXES, key=len, reverse=True):
        if name.upper().startswith(prefix):
            return PREFIXES[prefix]
    return None


def unknown_settings(env: dict[str, str]) -> list[str]:
    """The prefixed variables of ``env`` that name no field of their settings model."""
    unknown = []
    for name in env:
        model = settings_model(name)
        if model is None:
            continue
        field = name[len(str(model.model_config.get("env_prefix"))) :].lower()
        if field not in model.model_fields:
            unknown.append(f"{name} (no field {field!r} in {model.__name__})")
    return unknown


def resolve_command(args: list[str]) -> click.Command:
    """The ``worker`` subcommand that ``args`` runs; fails if any part of it is unknown."""
    command: click.Command = cli
    for arg in args:
        if not isinstance(command, click.Group):
            break
        found = command.commands.get(arg)
        assert found is not None, f"`worker {' '.join(args)}`: no command {arg!r}"
        command = found
    assert not isinstance(command, click.Group), f"`worker {' '.join(args)}` names a group"
    return command


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return instructions


def exec_form(args: str) -> list[str]:
    """The argument list of an exec-form (JSON array) ENTRYPOINT or CMD."""
    assert args.startswith("["), f"not in exec (JSON) form: {args}"
    value = json.loads(args)
    assert isinstance(value, list)
    return [str(item) for item in value]


def env_instruction(args: str) -> Iterator[tuple[str, str]]:
    """The variables one ENV instruction sets."""
    words = shlex.split(args)
    if "=" not in words[0]:  # legacy form: ENV NAME value with spaces
        yield words[0], " ".join(words[1:])
        return
    for word in words:
        name, _, value = word.partition("=")
        yield name, value


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict)
    assert found
    return found


@pytest.fixture(scope="module")
def worker_service(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert WORKER in services, "docker-compose.yml has no worker service"
    return services[WORKER]


@pytest.fixture(scope="module")
def worker_image_services(
    services: dict[str, dict[str, Any]], worker_service: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The worker and every service that runs the same image (the one-shot helpers)."""
    same = {
        name: service
        for name, service in services.items()
        if service.get("build") == worker_service.get("build")
        and service.get("image") == worker_service.get("image")
    }
    assert WORKER in same
    return same


@pytest.fixture(scope="module")
def one_shots(services: dict[str, dict[str, Any]]) -> set[str]:
    """Services that another waits on to complete: init jobs, not long-running."""
    return {
        name
        for service in services.values()
        for name, condition in depends_on(service).items()
        if condition == ONE_SHOT
    }


@pytest.fixture(scope="module")
def worker_env(worker_service: dict[str, Any]) -> dict[str, str]:
    return environment(worker_service)


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


@pytest.fixture
def clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No variable of this process's environment can reach the settings models."""
    for name in list(os.environ):
        if settings_model(name) is not None:
            monkeypatch.delenv(name)
    return monkeypatch


# ----------------------------------------------------------------------------- the helpers


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("redis:7.4.6-alpine", True),
        ("apache/kafka:4.1.1", True),
        ("python:3.11.13-slim-bookworm", True),
        ("redis@sha256:" + "0" * 64, True),
        ("registry.local:5000/team/app:1.2", True),
        ("redis", False),
        ("redis:latest", False),
        ("redis:alpine", False),
        ("registry.local:5000/team/app", False),
    ],
)
def test_image_is_pinned(image: str, pinned: bool) -> None:
    assert image_is_pinned(image) is pinned


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://u:${PW:-dev}@h:1", "http://u:dev@h:1"),
        ("${PW-dev}", "dev"),
        ("${PW}", ""),
        ("$$(hostname)", "$(hostname)"),
        ("plain", "plain"),
    ],
)
def test_interpolate(text: str, expected: str) -> None:
    assert interpolate(text) == expected


def test_interpolate_refuses_required_variables() -> None:
    with pytest.raises(ValueError, match="PW must be set"):
        interpolate("${PW:?set a password}")


def test_unknown_settings_names_renamed_fields() -> None:
    env = {"WORKER_WEB_HOST": ALL_INTERFACES, "WORKER_WEB_HOSTNAME": "x", "PATH": "/bin"}
    assert unknown_settings(env) == [
        "WORKER_WEB_HOSTNAME (no field 'web_hostname' in WorkerSettings)"
    ]
    endpoint = {
        "CLICKHOUSE_HTTP_PORT": "8124",
        "CLICKHOUSE_HTTP_PORTS": "1",
        "CLICKHOUSE_PATH": "x",
    }
    assert unknown_settings(endpoint) == [
        "CLICKHOUSE_HTTP_PORTS (no field 'ports' in ClickHouseHttpSettings)"
    ]


def test_resolve_command_rejects_unknown_commands() -> None:
    assert resolve_command(["topics", "create"]).name == "create"
    with pytest.raises(AssertionError, match="no command 'start'"):
        resolve_command(["start"])
    with pytest.raises(AssertionError, match="names a group"):
        resolve_command(["topics"])


def test_settings_prefixes_are_the_documented_ones() -> None:
    assert set(PREFIXES) == {
        "CACHE_",
        "KAFKA_",
        "CLICKHOUSE_",
        "CLICKHOUSE_HTTP_",
        "REDIS_",
        "LIMITS_",
        "SECURITY_",
        "WORKER_",
    }


# ----------------------------------------------------------------------------- docker-compose.yml


def test_compose_file_uses_the_current_format(compose: dict[str, Any]) -> None:
    assert "version" not in compose, "the top-level version key is obsolete"
    assert compose.get("name"), "a top-level name fixes the project name"
    assert set(compose["services"]) >= {
        "kafka",
        "clickhouse",
        "redis",
        "topics",
        WORKER,
        "prometheus",
        "grafana",
    }


def test_every_service_uses_a_pinned_image_or_builds_one(
    services: dict[str, dict[str, Any]],
) -> None:
    unpinned = [
        f"{name}: {service.get('image')!r}"
        for name, service in services.items()
        if "build" not in service and not image_is_pinned(str(service.get("image", "")))
    ]
    assert not unpinned


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]], one_shots: set[str]
) -> None:
    missing = []
    for name, service in services.items():
        if name in one_shots:
            continue
        check = service.get("healthcheck") or {}
        if check.get("disable") or not check.get("test") or check["test"] in (["NONE"], "NONE"):
            missing.append(name)
    assert not missing, f"long-running services without a healthcheck: {missing}"


def test_one_shot_services_exit_and_stay_down(
    services: dict[str, dict[str, Any]], one_shots: set[str]
) -> None:
    assert {"topics"} <= one_shots
    for name in one_shots:
        assert services[name].get("restart", "no") in ("no", "on-failure"), name


def test_worker_waits_for_healthy_services_and_the_topics(worker_service: dict[str, Any]) -> None:
    conditions = depends_on(worker_service)
    for name in ("kafka", "clickhouse", "redis"):
        assert conditions.get(name) == HEALTHY, name
    assert conditions.get("topics") == ONE_SHOT


def test_the_topics_job_creates_topics_once_kafka_is_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    topics = services["topics"]
    assert topics.get("command") in (["topics", "create"], "topics create")
    assert depends_on(topics).get("kafka") == HEALTHY


def test_dependency_conditions_can_be_met(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            if condition == HEALTHY:
                assert services[target].get("healthcheck", {}).get("test"), (
                    f"{name} waits for {target} to be healthy, which has no healthcheck"
                )


def test_worker_runs_restartable_and_stops_gracefully(worker_service: dict[str, Any]) -> None:
    assert worker_service.get("restart") == "unless-stopped"
    assert worker_service.get("stop_grace_period") == "30s"
    assert "/data" in [str(volume).rsplit(":", 1)[-1] for volume in worker_service["volumes"]]


def test_worker_env_names_are_settings_fields(
    worker_image_services: dict[str, dict[str, Any]],
) -> None:
    for name, service in worker_image_services.items():
        env = environment(service)
        assert env, f"{name} passes no configuration"
        assert not unknown_settings(env), f"{name}: {unknown_settings(env)}"


def test_worker_env_values_load_into_the_settings(
    worker_env: dict[str, str], clean_settings_env: pytest.MonkeyPatch
) -> None:
    for name, value in worker_env.items():
        clean_settings_env.setenv(name, value)
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == worker_env["KAFKA_BOOTSTRAP_SERVERS"]
    assert not settings.clickhouse.embedded
    assert settings.worker.web_host == ALL_INTERFACES
    assert settings.worker.data_dir == Path("/data")


def test_worker_reaches_each_service_by_its_name(
    services: dict[str, dict[str, Any]], worker_env: dict[str, str]
) -> None:
    kafka_env = environment(services["kafka"])
    for server in worker_env["KAFKA_BOOTSTRAP_SERVERS"].split(","):
        host, _, port = server.strip().rpartition(":")
        assert host in services
        assert f"//{host}:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]

    redis = urlsplit(worker_env["REDIS_URL"])
    assert (redis.scheme, redis.hostname) == ("redis", "redis")
    assert redis.hostname in services


def test_worker_clickhouse_credentials_match_the_server(
    services: dict[str, dict[str, Any]], worker_env: dict[str, str]
) -> None:
    url = urlsplit(worker_env["CLICKHOUSE_URL"])
    server_env = environment(services["clickhouse"])
    assert url.scheme in ("http", "https")
    assert url.hostname == "clickhouse"
    assert url.port == 8123
    assert url.username == server_env["CLICKHOUSE_USER"]
    assert url.password == server_env["CLICKHOUSE_PASSWORD"]
    assert url.password, "the server and the worker need a (development) password"
    database = worker_env.get("CLICKHOUSE_DATABASE", ClickHouseSettings().database)
    assert database == server_env["CLICKHOUSE_DB"]


def test_worker_web_port_is_published_and_probed(
    worker_service: dict[str, Any], worker_env: dict[str, str]
) -> None:
    port = worker_env.get("WORKER_WEB_PORT", str(WorkerSettings().web_port))
    assert worker_env["WORKER_WEB_HOST"] == ALL_INTERFACES
    container_ports = [str(mapping).rsplit(":", 1)[-1] for mapping in worker_service["ports"]]
    assert port in container_ports
    probe = " ".join(worker_service["healthcheck"]["test"])
    assert f":{port}{READINESS_PATH}" in probe, "healthy means ready"


def test_commands_of_the_worker_image_exist(
    worker_image_services: dict[str, dict[str, Any]],
) -> None:
    assert len(worker_image_services) >= 2, "the topics job runs the worker image"
    for service in worker_image_services.values():
        command = service["command"]
        resolve_command(command if isinstance(command, list) else shlex.split(command))


def test_kafka_is_one_node_that_fits_the_topic_declarations(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = environment(services["kafka"])
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka["CLUSTER_ID"]
    voters = kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    for name in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert int(kafka[name]) <= len(voters), name
    declared = tomllib.loads(TOPICS_FILE.read_text(encoding="utf-8"))["topic"]
    too_replicated = [t["name"] for t in declared if t["replication_factor"] > len(voters)]
    assert not too_replicated, f"more replicas than the compose broker has: {too_replicated}"


def test_the_worker_ends_its_graceful_stop_before_compose_kills_it(
    worker_service: dict[str, Any], worker_env: dict[str, str]
) -> None:
    grace = worker_service["stop_grace_period"]
    assert grace.endswith("s")
    timeout = float(
        worker_env.get("WORKER_SHUTDOWN_TIMEOUT_S", WorkerSettings().shutdown_timeout_s)
    )
    assert timeout < float(grace[:-1])


# ----------------------------------------------------------------------------- Prometheus, Grafana


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository path of a service's bind mounts (named volumes skipped)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("./"):
            found[target] = ROOT / source[2:]
    return found


@pytest.fixture(scope="module")
def prometheus_config(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    files = mounts(services["prometheus"])
    config_path = files["/etc/prometheus/prometheus.yml"]
    assert config_path.is_file()
    flags = services["prometheus"]["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in flags
    loaded = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def grafana_files(services: dict[str, dict[str, Any]]) -> dict[str, Path]:
    files = mounts(services["grafana"])
    for path in files.values():
        assert path.exists(), path
    return files


def test_prometheus_scrapes_the_worker_metrics_endpoint(
    prometheus_config: dict[str, Any],
    services: dict[str, dict[str, Any]],
    worker_env: dict[str, str],
) -> None:
    [job] = prometheus_config["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == METRICS_PATH
    targets = [t for config in job["static_configs"] for t in config["targets"]]
    port = worker_env.get("WORKER_WEB_PORT", str(WorkerSettings().web_port))
    assert targets == [f"{WORKER}:{port}"]
    interval = prometheus_config["global"]["scrape_interval"]
    assert re.fullmatch(r"\d+s", interval)
    assert "prometheus" in services


def test_grafana_provisions_prometheus_and_the_dashboard(
    grafana_files: dict[str, Path], services: dict[str, dict[str, Any]]
) -> None:
    grafana = services["grafana"]
    provisioning = grafana_files["/etc/grafana/provisioning"]
    [datasource] = yaml.safe_load(
        (provisioning / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in services["prometheus"]["ports"]
    [provider] = yaml.safe_load(
        (provisioning / "dashboards" / "worker.yml").read_text(encoding="utf-8")
    )["providers"]
    dashboards_in_container = provider["options"]["path"]
    assert grafana_files[dashboards_in_container] == DASHBOARD.parent
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_in_container}/{DASHBOARD.name}"
    assert depends_on(grafana) == {"prometheus": HEALTHY}
    for panel in load_dashboard()["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]


def test_the_dashboard_shows_throughput_latency_errors_cache_and_lag() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "request-worker"
    used = {name for _, expr in dashboard_queries(dashboard) for name in metric_names(expr)}
    assert {
        "worker_events_in_total",  # throughput
        "worker_end_to_end_latency_seconds_bucket",  # latency
        "worker_errors_total",  # errors
        "worker_cache_requests_total",  # cache hit ratio
        "worker_consumer_lag_messages",  # lag
    } <= used


def test_dashboard_queries_are_well_formed() -> None:
    for title, expr in dashboard_queries(load_dashboard()):
        assert metric_names(expr), f"{title}: reads no worker metric: {expr}"
        for opening, closing in ("()", "{}", "[]"):
            assert expr.count(opening) == expr.count(closing), f"{title}: unbalanced {expr}"
        for call in re.finditer(r"\b(rate|increase)\(([^()]*)\)", expr):
            assert re.search(r"\[\d+[smh]\]$", call[2]), f"{title}: {call[1]} without a range"
        for quantile in re.finditer(r"histogram_quantile\(([^,]+),(.*)\)", expr):
            assert 0 < float(quantile[1]) < 1, title
            assert "_bucket" in quantile[2], title
            assert re.search(r"by \(le\b", quantile[2]), f"{title}: quantile needs le"


def test_dashboard_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in load_dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_dashboard_metric_is_registered_by_the_worker_or_pending() -> None:
    assert worker_metrics.READY is not None  # the module registered its metrics on import
    assert CacheMetrics.shared() is not None  # the cache's, once a worker builds its cache
    exported = series_names(generate_latest(REGISTRY).decode())
    used = {name for _, expr in dashboard_queries(load_dashboard()) for name in metric_names(expr)}
    missing = used - exported - set(PENDING)
    assert not missing, f"the dashboard reads metrics the worker does not export: {missing}"
    arrived = set(PENDING) & exported
    assert not arrived, f"exported now, remove them from PENDING: {arrived}"
    assert set(PENDING) <= used, "PENDING lists only what the dashboard reads"


# ----------------------------------------------------------------------------- Procfile


def test_procfile_runs_the_worker_console_script(pyproject: dict[str, Any]) -> None:
    processes = dict(
        line.split(":", 1)
        for line in PROCFILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert WORKER in processes
    script, *args = shlex.split(processes[WORKER])
    assert script in pyproject["project"]["scripts"]
    assert pyproject["project"]["scripts"][script] == "worker.cli.main:main"
    assert resolve_command(args).name == "run"


# ----------------------------------------------------------------------------- Dockerfile


def _args(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for name, args in instructions if name == keyword]


def test_dockerfile_base_image_is_a_pinned_python(
    dockerfile: list[tuple[str, str]], pyproject: dict[str, Any]
) -> None:
    (base,) = _args(dockerfile, "FROM")
    match = re.fullmatch(r"python:(\d+\.\d+\.\d+)-slim-bookworm(@sha256:[0-9a-f]{64})?", base)
    assert match, f"base image is not a pinned python slim image: {base}"
    assert image_is_pinned(base)
    assert match.group(1) in SpecifierSet(pyproject["project"]["requires-python"])


def test_dockerfile_installs_within_the_constraints(dockerfile: list[tuple[str, str]]) -> None:
    copied = [shlex.split(args) for args in _args(dockerfile, "COPY")]
    sources = {Path(src).as_posix() for words in copied for src in words[:-1] if src[:2] != "--"}
    assert {"constraints.txt", "pyproject.toml", "README.md"} <= sources
    assert {"worker", "topics", "schemas"} <= sources
    installs = [args for args in _args(dockerfile, "RUN") if "pip install" in args]
    assert installs
    for args in installs:
        words = shlex.split(args)
        assert "-c" in words, f"pip install without constraints: {args}"
        assert words[words.index("-c") + 1] == "constraints.txt"
        assert "." in words


def test_dockerfile_runs_the_worker_unprivileged(dockerfile: list[tuple[str, str]]) -> None:
    assert _args(dockerfile, "WORKDIR") == ["/app"]
    users = _args(dockerfile, "USER")
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    assert exec_form(_args(dockerfile, "ENTRYPOINT")[-1]) == ["worker"]
    command = exec_form(_args(dockerfile, "CMD")[-1])
    assert command == ["run"]
    resolve_command(command)


def test_dockerfile_env_configures_the_settings(
    dockerfile: list[tuple[str, str]], clean_settings_env: pytest.MonkeyPatch
) -> None:
    env = dict(pair for args in _args(dockerfile, "ENV") for pair in env_instruction(args))
    assert not unknown_settings(env)
    for name, value in env.items():
        if settings_model(name) is not None:
            clean_settings_env.setenv(name, value)
    settings = load_settings()
    assert settings.worker.web_host == ALL_INTERFACES
    exposed = {port.split("/")[0] for args in _args(dockerfile, "EXPOSE") for port in args.split()}
    assert str(settings.worker.web_port) in exposed


def test_dockerignore_keeps_what_the_image_copies(dockerfile: list[tuple[str, str]]) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".venv", ".git", ".services", ".data"} <= set(patterns)
    for args in _args(dockerfile, "COPY"):
        for source in shlex.split(args)[:-1]:
            if source.startswith("--"):
                continue
            name = source.rstrip("/")
            excluded = [p for p in patterns if not p.startswith("!") and fnmatch.fnmatch(name, p)]
            assert not excluded, f"{name} is copied but excluded by {excluded}"
