"""``analyzer ingest --engine spark``: the ingest's per-file work on Apache Spark executors.

::

    session.py   SparkSession from --master / --spark-conf; one-line errors without pyspark/Java
    task.py      executor side: one input path -> Parquet parts in staging + its manifest entry
    job.py       driver side: the loader handed to ``store.pipeline.run_ingest`` (lock, staging
                 and the one atomic commit stay the store's)

Executors run the store's own per-file function (``store.pipeline.load_one``: the format
readers, ``_screen.screen``, hashing, ``PartWriter``), so rows, parts, skipped reasons and
line numbers are those of the local ingest by construction. pyspark is imported lazily: this
package imports without it.
"""

from __future__ import annotations

from analyzer.spark.job import spark_ingest

__all__ = ["spark_ingest"]
