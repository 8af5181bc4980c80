"""Spark jobs, importable as `offerrank.jobs`: pure DataFrame transformations plus a `main()` per job
that reads, calls and writes. Each module also runs as a file under spark-submit."""
