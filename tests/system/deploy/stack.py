"""Throw-away services on loopback for the distributed path: a Spark standalone cluster (from the pyspark
installation), PostgreSQL (Debian's package) and Airflow (api-server, scheduler, dag-processor, LocalExecutor).

Every service runs in its own process group in a throw-away folder; `Stack.stop()` ends them by PID.
Used by tests/system/deploy/ and benchmarks/distributed_benchmark.py.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from offerrank.engines.spark_server import listening
from offerrank.settings import load_settings
from tests.factories import REPO, free_port


def wait_for(what: str, check, timeout: float, logs: list[Path] = ()) -> None:
    """Poll `check()` until it is truthy; on timeout fail with the tail of the service's logs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError, subprocess.SubprocessError):
            pass
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log}\n{log.read_text()[-3000:]}" for log in logs if log.exists())
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s\n{tails}")
        time.sleep(0.5)


class Stack:
    """Starts services under `workdir` and remembers their PIDs (process-group leaders) to stop them."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.pids: dict[str, int] = {}
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "SPARK_LOCAL_IP": "127.0.0.1",
        }

    def _spawn(self, name: str, command: list[str], env: dict, **kwargs) -> subprocess.Popen:
        log = self.workdir / f"{name}.log"
        process = subprocess.Popen(
            command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )
        self.pids[name] = process.pid
        return process

    # --- Spark standalone -------------------------------------------------------------------------------------

    def start_spark(self, worker_cores: int = 4, worker_memory: str = "4g") -> str:
        """A master and one worker on 127.0.0.1; returns the master URL."""
        import pyspark

        spark_home = Path(pyspark.__file__).parent
        folder = self.workdir / "spark"
        env = {
            **self.env,
            "SPARK_HOME": str(spark_home),
            "SPARK_LOG_DIR": str(folder / "logs"),
            "SPARK_PID_DIR": str(folder / "pids"),
            "SPARK_WORKER_DIR": str(folder / "work"),
        }
        port, master_ui, worker_ui = free_port(), free_port(), free_port()
        daemon = ["bash", str(spark_home / "sbin" / "spark-daemon.sh"), "start"]
        subprocess.run(
            [
                *daemon,
                "org.apache.spark.deploy.master.Master",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(master_ui),
            ],
            env=env,
            check=True,
            capture_output=True,
            start_new_session=True,
        )
        self._adopt_pids(folder / "pids")
        master = f"spark://127.0.0.1:{port}"
        subprocess.run(
            [
                *daemon,
                "org.apache.spark.deploy.worker.Worker",
                "1",
                master,
                "--host",
                "127.0.0.1",
                "--webui-port",
                str(worker_ui),
                "--cores",
                str(worker_cores),
                "--memory",
                worker_memory,
            ],
            env=env,
            check=True,
            capture_output=True,
            start_new_session=True,
        )
        self._adopt_pids(folder / "pids")
        logs = [Path(p) for p in glob.glob(str(folder / "logs" / "*.out"))]
        wait_for(
            "the Spark master with one worker",
            lambda: httpx.get(f"http://127.0.0.1:{master_ui}/json/").json()["aliveworkers"] >= 1,
            90,
            logs,
        )
        return master

    def _adopt_pids(self, folder: Path) -> None:
        for pid_file in folder.glob("*.pid"):
            self.pids[pid_file.stem] = int(pid_file.read_text())

    # --- PostgreSQL -------------------------------------------------------------------------------------------

    def start_postgres(self) -> str:
        """A throw-away cluster with trust auth on a free port; returns a SQLAlchemy URL of database `airflow`."""
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
        if not found:
            raise RuntimeError("PostgreSQL is not installed: `apt-get install postgresql` (.ci/run does)")
        bindir = Path(found[-1]).parent
        data = self.workdir / "postgres"
        data.mkdir()
        as_user = {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}
        if as_user:  # postgres refuses to run as root
            for folder in (self.workdir, data):
                os.chown(folder, *(_ids("postgres")))
        subprocess.run(
            [bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
            **as_user,
        )
        port = free_port()
        self._spawn(
            "postgres",
            [
                bindir / "postgres",
                "-D",
                data,
                "-p",
                str(port),
                "-k",
                data,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            self.env,
            **as_user,
        )
        wait_for(
            "PostgreSQL",
            lambda: subprocess.run([bindir / "pg_isready", "-h", "127.0.0.1", "-p", str(port)]).returncode == 0,
            60,
            [self.workdir / "postgres.log"],
        )
        subprocess.run(
            [bindir / "psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c", "CREATE DATABASE airflow"],
            check=True,
            capture_output=True,
        )
        return f"postgresql+psycopg2://postgres@127.0.0.1:{port}/airflow"

    # --- Airflow ----------------------------------------------------------------------------------------------

    def start_spark_connect(self, spark_master: str, offerrank_env: dict[str, str]) -> str:
        """The Spark Connect server the DAG's Spark steps run on (`offerrank spark-server run`, as compose runs
        it), its driver on `spark_master`; returns its URL."""
        port = free_port()
        env = {
            **self.env,
            **offerrank_env,
            "OFFERRANK_SPARK_MASTER": spark_master,
            "OFFERRANK_SPARK_CONNECT_PORT": str(port),
        }
        self._spawn("spark-connect", [str(Path(sys.executable).parent / "offerrank"), "spark-server", "run"], env)
        server = load_settings(spark_connect_port=port, spark_local_ip="127.0.0.1")
        wait_for("the Spark Connect server", lambda: listening(server), 180, [self.workdir / "spark-connect.log"])
        return f"sc://127.0.0.1:{port}"

    def start_airflow(
        self,
        database_url: str,
        spark_remote: str,
        offerrank_env: dict[str, str],
        scheduled_runs: tuple[str, ...] = (),
    ) -> AirflowAPI:
        """db migrate, then api-server, scheduler (LocalExecutor) and dag-processor over this repo's DAGs; the
        scheduler creates scheduled runs only of the DAGs in `scheduled_runs` (the others stay paused then)."""
        port = free_port()
        home = self.workdir / "airflow"
        home.mkdir()
        passwords = home / "passwords.json"
        password = secrets.token_urlsafe(12)
        passwords.write_text(json.dumps({"offerrank": password}))
        env = {
            **self.env,
            **offerrank_env,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(bool(scheduled_runs)),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(bool(scheduled_runs)),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "offerrank:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "OFFERRANK_SPARK_REMOTE": spark_remote,
        }
        airflow = [sys.executable, "-m", "airflow"]
        migrated = subprocess.run([*airflow, "db", "migrate"], env=env, capture_output=True, text=True)
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        self._spawn(
            "airflow-api-server",
            [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env,
        )
        self._spawn("airflow-scheduler", [*airflow, "scheduler"], env)
        self._spawn("airflow-dag-processor", [*airflow, "dag-processor"], env)
        api = AirflowAPI(
            f"http://127.0.0.1:{port}",
            "offerrank",
            password,
            [self.workdir / f"airflow-{n}.log" for n in ("api-server", "scheduler", "dag-processor")],
        )
        wait_for(
            "the Airflow API server",
            lambda: httpx.get(f"{api.base}/api/v2/monitor/health").status_code == 200,
            180,
            api.logs,
        )
        with api.client() as client:
            for dag_id in scheduled_runs:
                path = f"/dags/{dag_id}"
                wait_for(f"DAG {dag_id} in the API", lambda path=path: client.get(path).status_code == 200, 180)
                assert client.patch(path, json={"is_paused": False}).status_code == 200
        return api

    def stop(self) -> None:
        """SIGTERM every started process group, then SIGKILL what is still there after 30 s."""
        for pid in self.pids.values():
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in self.pids.values()):
            time.sleep(0.5)
        for pid in self.pids.values():
            _signal_group(pid, signal.SIGKILL)


class AirflowAPI:
    """The Airflow REST API (v2) with a JWT from the simple auth manager."""

    def __init__(self, base: str, username: str, password: str, logs: list[Path]):
        self.base, self.username, self.password, self.logs = base, username, password, logs
        self.seconds: dict[str, float] = {}  # each task's duration in the last run waited for

    def client(self) -> httpx.Client:
        token = httpx.post(f"{self.base}/auth/token", json={"username": self.username, "password": self.password})
        token.raise_for_status()
        return httpx.Client(
            base_url=f"{self.base}/api/v2",
            timeout=30,
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )

    def run_dag(self, dag_id: str, conf: dict, timeout: float) -> tuple[dict, dict[str, str], float]:
        """Trigger `dag_id` with `conf`, wait until it ends; (the run, task states, wall seconds)."""
        with self.client() as api:
            wait_for(f"DAG {dag_id} in the API", lambda: api.get(f"/dags/{dag_id}").status_code == 200, 180, self.logs)
            started = time.monotonic()
            triggered = api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
            assert triggered.status_code == 200, triggered.text
        run, tasks = self.wait_for_run(dag_id, triggered.json()["dag_run_id"], timeout)
        return run, tasks, time.monotonic() - started

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> tuple[dict, dict[str, str]]:
        """Wait until a DAG run ends; (the run, its task states by task id, `task[map index]` for mapped ones)."""
        with self.client() as api:
            state = {}

            def finished() -> bool:
                state.update(api.get(f"/dags/{dag_id}/dagRuns/{run_id}").json())
                return state.get("state") in ("success", "failed")

            wait_for(f"DAG run {run_id}", finished, timeout, self.logs)
            instances = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
        names = [f"{t['task_id']}[{t['map_index']}]" if t["map_index"] >= 0 else t["task_id"] for t in instances]
        self.seconds = {name: round(t["duration"] or 0, 1) for name, t in zip(names, instances)}
        return state, {name: t["state"] for name, t in zip(names, instances)}


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is gone for our purposes
        # the state follows the command name in parentheses, which may hold spaces ("(airflow api_ser)")
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
