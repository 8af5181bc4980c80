"""The long-lived Spark Connect server the nightly DAG's Spark steps run on: Spark's own `SparkConnectServer`,
started by spark-submit with offerrank's Spark settings and Delta's cached jars, so a step pays for its work and not
for a JVM start and Delta's first load (20-25 s each).

`OFFERRANK_SPARK_REMOTE=local`: the first Spark step starts the server on this machine, detached, and later steps
and nights reuse it (`offerrank spark-server stop` ends it). `sc://host:port`: a server run elsewhere (compose runs
`offerrank spark-server run`). A local server keeps its pid and log in `spark-connect-<port>/` beside the jars cache.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from offerrank.errors import OfferrankError
from offerrank.settings import Settings

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
LOCAL = "local"
START_TIMEOUT_SECONDS = 180


class SparkServerError(OfferrankError, RuntimeError):
    """The local Spark Connect server did not start (the message ends with its log)."""


def server_command(settings: Settings, address: str | None = None) -> list[str]:
    """spark-submit's command line for the server: the master, Delta's jars and every Spark setting a session the
    CLI builds gets (driver memory before the JVM starts), plus the port it listens on (on `address` only, else on
    every interface)."""
    from pyspark.find_spark_home import _find_spark_home

    from offerrank.engines.jars import cached_jars, delta_coordinates, jars_folder

    command = [str(Path(_find_spark_home()) / "bin" / "spark-submit"), "--class", SERVER_CLASS]
    command += ["--name", "offerrank-spark-connect", "--master", settings.spark_master]
    jars = cached_jars(settings)
    if jars:
        command += ["--jars", ",".join(str(jar) for jar in jars)]
    else:
        command += ["--packages", ",".join(delta_coordinates(settings))]
        command += ["--conf", f"spark.jars.ivy={jars_folder(settings)}"]
    conf = settings.spark_session_conf() | {
        "spark.connect.grpc.binding.port": str(settings.spark_connect_port),
        "spark.log.level": "WARN",  # a long-lived driver: no INFO lines for every task of every night
    }
    if address:
        conf["spark.connect.grpc.binding.address"] = address
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return command


def remote_url(settings: Settings) -> str:
    """The Spark Connect URL sessions use; for `local`, starts the local server first when it is not running."""
    if settings.spark_remote != LOCAL:
        return settings.spark_remote
    ensure_local_server(settings)
    return f"sc://{settings.spark_local_ip}:{settings.spark_connect_port}"


def state_folder(settings: Settings) -> Path:
    """Where the local server of this port keeps its pid and log (one server per port, whichever home started it)."""
    return settings.jars_cache.parent / f"spark-connect-{settings.spark_connect_port}"


def listening(settings: Settings) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((settings.spark_local_ip, settings.spark_connect_port)) == 0


def ensure_local_server(settings: Settings) -> None:
    """Start the local server unless it already listens; one starter at a time (concurrent tasks wait on a lock)."""
    folder = state_folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if listening(settings):
            return
        log = folder / "server.log"
        env = {**os.environ, "SPARK_LOCAL_IP": settings.spark_local_ip}
        with log.open("ab") as output:
            server = subprocess.Popen(
                server_command(settings, settings.spark_local_ip),
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # outlives the step that started it, and is not killed with that step's group
            )
        (folder / "server.pid").write_text(str(server.pid))
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not listening(settings):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SparkServerError(f"the local Spark Connect server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)


def stop_local_server(settings: Settings) -> bool:
    """End the local server this machine started (its whole process group); False when none was running."""
    pid_file = state_folder(settings) / "server.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 30
    while listening(settings) and time.monotonic() < deadline:
        time.sleep(0.2)
    return True


def run_server(settings: Settings) -> None:
    """Run the server in the foreground (replaces this process): what a container runs."""
    command = server_command(settings)
    os.execv(command[0], command)
