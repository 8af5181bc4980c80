"""How a table is declared: `Table` (name, partition columns, the schema as (column, type) pairs) and the derivation of
the engines' types from it (`spark_schema`, `arrow_schema`). A type is one of Spark's DDL scalar names (string, long,
int, double, boolean, date, timestamp) or composed of them: `array<T>`, `map<K, V>`, `struct<name: T, ...>`.
Cheap to import: pyspark and pyarrow are imported by the method that needs them. The tables themselves are declared in
`offerrank.tables`.
"""

from __future__ import annotations

from dataclasses import dataclass

# A column's type, in Spark's DDL names; the only types the declared schemas use.
_SPARK_TYPES = {
    "string": "StringType",
    "long": "LongType",
    "int": "IntegerType",
    "double": "DoubleType",
    "boolean": "BooleanType",
    "date": "DateType",
    "timestamp": "TimestampType",
}
_ARROW_TYPES = {
    "string": "string",
    "long": "int64",
    "int": "int32",
    "double": "float64",
    "boolean": "bool_",
    "date": "date32",
    "timestamp": "timestamp",
}
_ARRAY = "array<"  # array<element type>: a list of one of these types
_MAP = "map<"  # map<key type, value type>
_STRUCT = "struct<"  # struct<name: type, ...>: a record of named fields


def _parts(inner: str) -> list[str]:
    """The comma-separated parts of a composite type's inside, split at its own level only."""
    parts, depth, start = [], 0, 0
    for at, char in enumerate(inner):
        depth += {"<": 1, ">": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(inner[start:at].strip())
            start = at + 1
    return [*parts, inner[start:].strip()]


def _engine_type(kind: str, scalar, array, mapping, struct):
    """An engine's type of a declared `kind`: `scalar(name)` of the types above, composed by `array(element)`,
    `mapping(key, value)` and `struct([(name, type), ...])`."""

    def convert(kind: str):
        for prefix, compose in ((_ARRAY, array), (_MAP, mapping)):
            if kind.startswith(prefix):
                return compose(*map(convert, _parts(kind[len(prefix) : -1])))
        if kind.startswith(_STRUCT):
            fields = [part.split(":", 1) for part in _parts(kind[len(_STRUCT) : -1])]
            return struct([(name.strip(), convert(inner.strip())) for name, inner in fields])
        return scalar(kind)

    return convert(kind)


@dataclass(frozen=True)
class Table:
    """One Delta table under the warehouse root."""

    name: str
    partitions: tuple[str, ...] = ()
    columns: tuple[tuple[str, str], ...] = ()  # declared for the tables other programs read
    # The columns Delta keeps per-file minimum and maximum of, for readers' data skipping (empty: Delta's default, the
    # first 32 columns). Statistics of every column cost about half the write of a day's interactions.
    stats_columns: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def ddl(self) -> str:
        """The schema as a Spark DDL string (what `createDataFrame` takes)."""
        return ", ".join(f"{name} {kind}" for name, kind in self.columns)

    def spark_schema(self):
        """The schema as a pyspark `StructType`."""
        from pyspark.sql import types as T

        def spark(kind: str):
            return _engine_type(
                kind,
                lambda scalar: getattr(T, _SPARK_TYPES[scalar])(),
                T.ArrayType,
                T.MapType,
                lambda fields: T.StructType([T.StructField(name, inner) for name, inner in fields]),
            )

        return T.StructType([T.StructField(name, spark(kind)) for name, kind in self.columns])

    def arrow_schema(self):
        """The schema as a pyarrow schema (timestamps in UTC microseconds, as Delta stores them)."""
        import pyarrow as pa

        def arrow(kind: str):
            return _engine_type(
                kind,
                lambda scalar: (
                    pa.timestamp("us", tz="UTC") if scalar == "timestamp" else getattr(pa, _ARROW_TYPES[scalar])()
                ),
                pa.list_,
                pa.map_,
                pa.struct,
            )

        return pa.schema([(name, arrow(kind)) for name, kind in self.columns])

    def arrow_rows(self, frame):
        """A pandas frame's declared columns as an Arrow table with the declared schema (what both engines write)."""
        import pyarrow as pa

        return pa.Table.from_pandas(frame[self.column_names], schema=self.arrow_schema(), preserve_index=False)
