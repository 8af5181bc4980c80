"""Checks of a deployment's secrets, run by compose's `airflow-init` before anything starts (`offerrank
check-deployment`): every secret must be set, be no placeholder from `.env.example`, and be long enough; the Fernet
key must be a real one. Reads only the environment it is given.
"""

from __future__ import annotations

from collections.abc import Mapping

PLACEHOLDER = "change-me"
# secret variable -> least length
SECRETS = {
    "POSTGRES_PASSWORD": 12,
    "AIRFLOW_API_SECRET_KEY": 32,
    "AIRFLOW_JWT_SECRET": 32,
    "AIRFLOW_ADMIN_PASSWORD": 12,
    "MINIO_WRITER_PASSWORD": 12,
    "MINIO_READER_PASSWORD": 12,
}
FERNET_KEY = "AIRFLOW_FERNET_KEY"


def deployment_problems(env: Mapping[str, str]) -> list[str]:
    """What is wrong with the deployment's secrets in `env`, one line each (none: it may start)."""
    problems = []
    for name, least in SECRETS.items():
        value = env.get(name, "")
        if not value:
            problems.append(f"{name} is not set")
        elif PLACEHOLDER in value:
            problems.append(f"{name} is still the placeholder of .env.example: set a secret of your own")
        elif len(value) < least:
            problems.append(f"{name} is {len(value)} characters: use at least {least}")
    key = env.get(FERNET_KEY, "")
    if PLACEHOLDER in key or not _is_fernet_key(key):
        problems.append(
            f"{FERNET_KEY} is not a Fernet key: make one with "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    return problems


def _is_fernet_key(key: str) -> bool:
    from cryptography.fernet import Fernet

    try:
        Fernet(key)
    except ValueError:
        return False
    return True
