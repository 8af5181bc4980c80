# One image for every service of the docker-compose deployment: Airflow (api-server, scheduler, dag-processor,
# triggerer, Celery workers), the Spark master and workers, the Spark Connect server, and the lookup service.
# Spark and Delta come from the same pinned pyspark / delta-spark as everywhere else; Delta's jars are fetched
# from Maven Central while the image builds (`offerrank setup`), so containers start offline.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps curl \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OFFERRANK_JARS_CACHE=/opt/offerrank-jars \
    AIRFLOW_HOME=/opt/airflow

WORKDIR /opt/offerrank
COPY pyproject.toml README.md ./
COPY src ./src
COPY jobs ./jobs
COPY dags ./dags
COPY expectations ./expectations
# Editable, as on a developer machine (the DAGs and Spark's Python workers import the same offerrank).
RUN pip install -e '.[deploy]' && offerrank setup

# Every service runs as this user (uid 50000, as Airflow's images), never as root; the volumes' mount points are its.
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/offerrank offerrank \
    && mkdir -p /data /opt/airflow \
    && chown -R offerrank:0 /data /opt/airflow
USER offerrank

EXPOSE 8000 8080 7077 15002
CMD ["offerrank", "--help"]
