"""Engines: landing files, Delta through deltalake (no JVM) and through Spark, the Spark session and server, the GX
glue, process exit. Depends only on `offerrank.settings` and `offerrank.tables`."""
