"""The deployment's secret checks (what compose's airflow-init runs first), on hand-made environments."""

from __future__ import annotations

from offerrank.engines.deployment import SECRETS, deployment_problems
from tests.factories import REPO

GOOD_FERNET_KEY = "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg="


def example_env() -> dict[str, str]:
    lines = (REPO / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_the_example_env_is_refused_for_every_secret():
    problems = deployment_problems(example_env())
    assert len(problems) == len(SECRETS) + 1
    assert "AIRFLOW_JWT_SECRET is still the placeholder of .env.example: set a secret of your own" in problems
    assert any(p.startswith("AIRFLOW_FERNET_KEY is not a Fernet key") for p in problems)


def test_real_secrets_pass_and_short_or_missing_ones_are_named():
    env = {**example_env(), **{name: "s3cret-" + "x" * 40 for name in SECRETS}, "AIRFLOW_FERNET_KEY": GOOD_FERNET_KEY}
    assert deployment_problems(env) == []
    env["POSTGRES_PASSWORD"], env["AIRFLOW_JWT_SECRET"] = "short", ""
    assert deployment_problems(env) == [
        "POSTGRES_PASSWORD is 5 characters: use at least 12",
        "AIRFLOW_JWT_SECRET is not set",
    ]
