#!/usr/bin/env python3
"""The lake check: readers no one here wrote must see exactly the DuckDB load's rows (docs/lake.md).

    check.py --bin BIN [--moto MOTO_SERVER] [--work DIR] [--keep]
        The end-to-end check lake/run.sh runs:
        A. `run --demo` into DuckDB (the reference), `run --demo --destination filesystem` into a local
           path and into s3:// on moto's server (started here on loopback, stopped at the end). Three readers,
           each on its own: pyarrow reads every table's current Parquet files (a Delta table's as its log
           lists them) as plain Parquet, Python deltalake reads the Delta tables' snapshots, PySpark (local
           mode, one session) reads the local lake's current files; each must see the reference's rows.
           Planted differences in a copy of the local lake must be caught (the comparison's self-test).
        B. Against one `personio-pipeline sandbox`: a load into DuckDB and into s3://, then employees
           change in the sandbox, then a second load into DuckDB and, from a fresh working directory,
           into the same bucket: the lake run must restore its state from the bucket and load only the
           changes, and the Delta employees table must hold one row per employee with the new values.
    check.py --compare --reference DB.duckdb --dataset DS --lake URL [--lake URL ...] [--spark]
        Compare lakes with a DuckDB dataset (no CLI runs). URL: a local path or s3://bucket/prefix (the
        S3 endpoint and keys from DESTINATION__FILESYSTEM__CREDENTIALS__* as for the CLI).

What "the same rows" means, per data table (every table of the reference dataset, children included):
* the table exists in the lake (a table with no rows in the reference may be absent: reported);
* the same column names (a reader of the Parquet files alone may lack a column that is NULL in every
  reference row: no current file has it; reported as a note); every reader's column types are the ones
  the DuckDB type maps to;
* the same multiset of rows, comparing every column except the per-load identifiers `_dlt_id`,
  `_dlt_load_id`, `_dlt_parent_id`, `_dlt_root_id` (random per load, so they differ between two loads of
  the same data); instead each child row is tagged with its parent row's content (recursively), so a
  child under the wrong parent is a difference;
* structure, on the lake alone: `_dlt_id` unique, every `_dlt_parent_id`/`_dlt_root_id` a `_dlt_id` of
  the parent/root table, every `_dlt_load_id` a completed load in the lake's `_dlt_loads`;
* layout: tables of merge resources (and their children) are Delta tables (`_delta_log/`); Parquet
  tables' files are named `<load_id>.<file_id>.parquet`;
* bookkeeping: the lake's `_dlt_loads` has as many completed loads as the reference's (same schema
  names); its newest `_dlt_version` schema has the reference's tables, parents, dispositions, columns and
  types; its `_dlt_pipeline_state` as many rows, the newest one (base64 -> zlib -> JSON) with the
  reference's `sources` (incremental cursors), pipeline, dataset and schema names.
Values are compared after one normalization per DuckDB type: timestamps in UTC, decimals without
trailing zeros, JSON parsed and re-serialized with sorted keys. A value of another Python type than the
column's never compares equal. Exit status: 0 when everything agrees, 1 on any difference, 2 when the
check cannot run (missing binary, Java, server failed to start).
"""

import argparse
import base64
import datetime as dt
import decimal
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections import Counter
from pathlib import Path

RANDOM_COLS = ("_dlt_id", "_dlt_load_id", "_dlt_parent_id", "_dlt_root_id")
BOOKKEEPING = ("_dlt_loads", "_dlt_version", "_dlt_pipeline_state")
# Readers of the Parquet files themselves (not of a Delta snapshot's schema).
FILE_READERS = ("pyarrow", "spark")
UTC = dt.timezone.utc
DATASET = "personio_data"
BUCKET = "lake"
S3_KEY, S3_SECRET, S3_REGION = "lake-check-key", "lake-check-secret", "us-east-1"
# The state keys that must agree with the reference's (the rest names the destination or counts versions).
STATE_COMPARED = ("sources", "pipeline_name", "dataset_name", "schema_names", "default_schema_name")
# Resource state keys holding the wall-clock time of the run that wrote them (the engine's
# `reconcile::STATE_KEY`): compared for presence, not value, since the reference ran at another time.
RUN_TIME_KEYS = ("reconciled_at",)


class CannotRun(Exception):
    """The check could not run (exit 2), as opposed to a difference (exit 1)."""


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------------
# values: one canonical form per DuckDB type

def kind_of(duck_type):
    """The comparison kind of a DuckDB column type."""
    t = duck_type.upper()
    if t.startswith("DECIMAL") or t.startswith("NUMERIC"):
        return "decimal"
    if t in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        return "timestamptz"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    return {"BIGINT": "int", "INTEGER": "int", "SMALLINT": "int", "TINYINT": "int", "HUGEINT": "int",
            "UBIGINT": "int", "VARCHAR": "text", "DOUBLE": "double", "FLOAT": "double", "REAL": "double",
            "BOOLEAN": "bool", "DATE": "date", "TIME": "time", "JSON": "json", "BLOB": "binary"}.get(t, "other:" + t)


def canon(v, kind):
    """A hashable canonical form of value `v` of a column of `kind`; a wrong Python type stays distinct."""
    if v is None:
        return None
    wrong = ("!type", kind, type(v).__name__, repr(v))
    if kind == "int":
        return ("i", v) if isinstance(v, int) and not isinstance(v, bool) else wrong
    if kind == "text":
        return ("s", v) if isinstance(v, str) else wrong
    if kind == "double":
        return ("f", repr(float(v))) if isinstance(v, float) else wrong
    if kind == "bool":
        return ("b", v) if isinstance(v, bool) else wrong
    if kind == "decimal":
        return ("n", format(v.normalize(), "f")) if isinstance(v, decimal.Decimal) else wrong
    if kind in ("timestamptz", "timestamp"):
        if not isinstance(v, dt.datetime):
            return wrong
        # Naive values come from Spark, which returns TIMESTAMP columns in the process's zone: UTC here.
        if v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        return ("ts", v.astimezone(UTC).isoformat())
    if kind == "date":
        return ("d", v.isoformat()) if isinstance(v, dt.date) and not isinstance(v, dt.datetime) else wrong
    if kind == "time":
        return ("t", v.isoformat()) if isinstance(v, dt.time) else wrong
    if kind == "json":
        if isinstance(v, (bytes, bytearray)):
            v = bytes(v).decode("utf-8", "replace")
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                return ("!json", v)
        return ("j", json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    if kind == "binary":
        return ("x", bytes(v).hex()) if isinstance(v, (bytes, bytearray, memoryview)) else wrong
    return ("?", repr(v))


def arrow_type_ok(kind, duck_type, t):
    """Whether Arrow type `t` (pyarrow, deltalake) is what a column of DuckDB type `duck_type` maps to."""
    import pyarrow.types as pt
    if kind == "int":
        return pt.is_int64(t)
    if kind in ("text", "json"):
        return pt.is_string(t) or pt.is_large_string(t) or pt.is_string_view(t)
    if kind == "double":
        return pt.is_float64(t)
    if kind == "bool":
        return pt.is_boolean(t)
    if kind == "decimal":
        m = re.match(r"DECIMAL\((\d+),\s*(\d+)\)", duck_type.upper())
        return pt.is_decimal(t) and (not m or (t.precision, t.scale) == (int(m.group(1)), int(m.group(2))))
    if kind == "timestamptz":
        return pt.is_timestamp(t) and t.tz is not None
    if kind == "timestamp":
        return pt.is_timestamp(t) and t.tz is None
    if kind == "date":
        return pt.is_date32(t)
    if kind == "time":
        return pt.is_time(t)
    if kind == "binary":
        return pt.is_binary(t) or pt.is_large_binary(t) or pt.is_binary_view(t)
    return False


def spark_type_ok(kind, duck_type, t):
    """Whether Spark SQL type `t` is what a column of DuckDB type `duck_type` maps to."""
    from pyspark.sql import types as st
    if kind == "decimal":
        m = re.match(r"DECIMAL\((\d+),\s*(\d+)\)", duck_type.upper())
        return isinstance(t, st.DecimalType) and (not m or (t.precision, t.scale) == (int(m.group(1)), int(m.group(2))))
    want = {"int": st.LongType, "text": st.StringType, "json": st.StringType, "double": st.DoubleType,
            "bool": st.BooleanType, "timestamptz": st.TimestampType, "timestamp": st.TimestampNTZType,
            "date": st.DateType, "binary": st.BinaryType}.get(kind)
    return want is not None and type(t) is want


# ---------------------------------------------------------------------------------------------------
# one dataset as rows: the reference (DuckDB) and each reader of a lake

class Table:
    """One table as a reader saw it: columns (name -> type text, or None when unknown) and rows (dicts)."""

    def __init__(self, columns, rows, source):
        self.columns = columns
        self.rows = rows
        self.source = source


class Reference:
    """The DuckDB load: data tables, column types, the dlt schema (parents, dispositions, keys), bookkeeping."""

    def __init__(self, path, dataset):
        import duckdb
        con = duckdb.connect(str(path), read_only=True)
        try:
            names = [r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1", [dataset]).fetchall()]
            if not names:
                raise CannotRun(f"the reference {path} has no tables in dataset {dataset}")
            self.types = {}
            self.tables = {}
            for name in names:
                cols = con.execute(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                    "ORDER BY ordinal_position", [dataset, name]).fetchall()
                self.types[name] = dict(cols)
                cur = con.execute(f'SELECT * FROM "{dataset}"."{name}"')
                header = [d[0] for d in cur.description]
                rows = [dict(zip(header, r)) for r in cur.fetchall()]
                self.tables[name] = Table(dict(cols), rows, "duckdb")
        finally:
            con.close()
        versions = self.tables.get("_dlt_version")
        if versions is None or not versions.rows:
            raise CannotRun(f"the reference {path} has no _dlt_version rows: cannot tell parents and dispositions")
        newest = max(versions.rows, key=lambda r: (r["version"], str(r["inserted_at"])))
        self.schema = json.loads(newest["schema"])

    def data_tables(self):
        return [t for t in self.tables if not t.startswith("_dlt_")]

    def parent(self, table):
        return self.schema.get("tables", {}).get(table, {}).get("parent")

    def root(self, table):
        while self.parent(table):
            table = self.parent(table)
        return table

    def disposition(self, table):
        return self.schema.get("tables", {}).get(self.root(table), {}).get("write_disposition", "append")


def schema_diff(want, have):
    """Differences between two dlt schemas' tables: names, parents, dispositions, columns and their types."""
    out = []
    wt, ht = want.get("tables", {}), have.get("tables", {})
    for t in sorted(set(wt) | set(ht)):
        if t not in ht or t not in wt:
            out.append(f"table {t} only in the {'reference' if t in wt else 'lake'}")
            continue
        for k in ("parent", "write_disposition"):
            if wt[t].get(k) != ht[t].get(k):
                out.append(f"{t}.{k}: {wt[t].get(k)} vs {ht[t].get(k)}")
        wc = {c: v.get("data_type") for c, v in wt[t].get("columns", {}).items()}
        hc = {c: v.get("data_type") for c, v in ht[t].get("columns", {}).items()}
        if wc != hc:
            out.append(f"{t} columns: {sorted(set(wc.items()) ^ set(hc.items()))[:6]}")
    return out


def decode_state(text):
    return json.loads(zlib.decompress(base64.b64decode(text)))


def mask_run_times(value):
    """`value` with every RUN_TIME_KEYS entry replaced by a placeholder (present stays present)."""
    if isinstance(value, dict):
        return {k: ("<time of the run>" if k in RUN_TIME_KEYS and v is not None else mask_run_times(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_run_times(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------
# a lake: a local path or s3://bucket/prefix, read with pyarrow's filesystems

class Lake:
    def __init__(self, url, dataset, s3=None):
        import pyarrow.fs as pafs
        self.url = url
        self.dataset = dataset
        self.s3 = s3
        if url.startswith("s3://"):
            if not s3:
                raise CannotRun(f"{url}: no S3 endpoint and keys given")
            self.fs = pafs.S3FileSystem(access_key=s3["key"], secret_key=s3["secret"], region=s3["region"],
                                        endpoint_override=s3["endpoint"].split("://", 1)[1],
                                        scheme=s3["endpoint"].split("://", 1)[0])
            self.root = url[len("s3://"):].rstrip("/") + "/" + dataset
        else:
            path = url[len("file://"):] if url.startswith("file://") else url
            self.fs = pafs.LocalFileSystem()
            self.root = str(Path(path).resolve() / dataset)
        self._files = None

    def files(self):
        """Every file under the dataset: {relative path: size}."""
        import pyarrow.fs as pafs
        if self._files is None:
            infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True, allow_not_found=True))
            self._files = {i.path[len(self.root) + 1:]: i.size for i in infos if i.type == pafs.FileType.File}
        return self._files

    def tables(self):
        return sorted({p.split("/", 1)[0] for p in self.files() if "/" in p})

    def is_delta(self, table):
        return any(p.startswith(f"{table}/_delta_log/") for p in self.files())

    def parquet_files(self, table):
        return sorted(p for p in self.files() if p.startswith(table + "/") and p.count("/") == 1 and p.endswith(".parquet"))

    def uri(self, table):
        return ("s3://" if self.url.startswith("s3://") else "") + self.root + "/" + table

    def delta_storage_options(self):
        if not self.s3:
            return None
        return {"AWS_ENDPOINT_URL": self.s3["endpoint"], "AWS_ACCESS_KEY_ID": self.s3["key"],
                "AWS_SECRET_ACCESS_KEY": self.s3["secret"], "AWS_REGION": self.s3["region"], "AWS_ALLOW_HTTP": "true"}

    def delta_table(self, table):
        from deltalake import DeltaTable
        return DeltaTable(self.uri(table), storage_options=self.delta_storage_options())

    def read_records(self, table):
        """Rows of a bookkeeping table: its JSONL (dlt's format for these) or Parquet files."""
        import pyarrow.parquet as pq
        rows = []
        for p in sorted(self.files()):
            if not p.startswith(table + "/"):
                continue
            full = self.root + "/" + p
            if p.endswith(".jsonl"):
                with self.fs.open_input_stream(full) as f:
                    text = f.read().decode("utf-8")
                rows += [json.loads(line) for line in text.splitlines() if line.strip()]
            elif p.endswith(".parquet"):
                rows += pq.read_table(full, filesystem=self.fs).to_pylist()
        return rows


def read_with_pyarrow(lake, paths):
    """Parquet files (paths in `lake.fs`) as one table, schemas unified (columns added by later loads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    if not paths:
        return Table(None, [], "pyarrow")
    t = pa.concat_tables([pq.read_table(p, filesystem=lake.fs) for p in paths], promote_options="permissive")
    return Table({f.name: f.type for f in t.schema}, t.to_pylist(), "pyarrow")


def read_with_deltalake(lake, table):
    """A Delta table through delta-rs' Python binding: the current snapshot."""
    t = lake.delta_table(table).to_pyarrow_table()
    return Table({f.name: f.type for f in t.schema}, t.to_pylist(), "deltalake")


class SparkReader:
    """One local-mode SparkSession for every table (the JVM starts once)."""

    def __init__(self):
        os.environ["TZ"] = "UTC"
        time.tzset()
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        from pyspark.sql import SparkSession
        t0 = time.time()
        self.spark = (SparkSession.builder.master("local[2]").appName("lake-check")
                      .config("spark.ui.enabled", "false")
                      .config("spark.sql.session.timeZone", "UTC")
                      .config("spark.driver.bindAddress", "127.0.0.1")
                      .config("spark.driver.host", "127.0.0.1")
                      .config("spark.sql.shuffle.partitions", "2")
                      .config("spark.ui.showConsoleProgress", "false")
                      .getOrCreate())
        self.spark.sparkContext.setLogLevel("ERROR")
        log(f"  spark {self.spark.version} local session started in {time.time() - t0:.1f}s")

    def read(self, paths):
        if not paths:
            return Table(None, [], "spark")
        # Merging the files' schemas costs a Spark job: only when there is more than one file.
        df = self.spark.read.option("mergeSchema", str(len(paths) > 1).lower()).parquet(*paths)
        return Table({f.name: f.dataType for f in df.schema.fields}, [r.asDict() for r in df.collect()], "spark")

    def stop(self):
        self.spark.stop()


# ---------------------------------------------------------------------------------------------------
# comparison

class Report:
    def __init__(self, label):
        self.label = label
        self.errors = []
        self.notes = []

    def err(self, msg):
        self.errors.append(msg)
        log(f"  DIFF {self.label}: {msg}")

    def note(self, msg):
        self.notes.append(msg)
        log(f"  note {self.label}: {msg}")


def signatures(ref, tables, rep, reader):
    """Per table, a Counter of row signatures: content without RANDOM_COLS, children tagged with their parent."""
    cache = {}

    def index(table):
        if table not in cache:
            cache[table] = {r.get("_dlt_id"): r for r in tables[table].rows} if table in tables else {}
        return cache[table]

    def content(table, r):
        # Over the reference's columns and the row's: a column a reader lacks compares as NULL (its absence
        # is reported once per table by compare_tables).
        kinds = {c: kind_of(t) for c, t in ref.types[table].items()}
        cols = (set(kinds) | set(r)) - set(RANDOM_COLS)
        return tuple(sorted((c, canon(r.get(c), kinds.get(c, "other"))) for c in cols))

    memo = {}

    def sig(table, r):
        key = (table, r.get("_dlt_id"))
        if key in memo and r.get("_dlt_id") is not None:
            return memo[key]
        own = content(table, r)
        parent = ref.parent(table)
        if parent:
            p = index(parent).get(r.get("_dlt_parent_id"))
            s = (own, sig(parent, p) if p is not None else ("orphan",))
        else:
            s = (own,)
        memo[key] = s
        return s

    return {t: Counter(sig(t, r) for r in tables[t].rows) for t in tables}


def show_row(s):
    own = {c: (v[1] if isinstance(v, tuple) and len(v) == 2 else v) for c, v in s[0]}
    text = json.dumps(own, default=str, ensure_ascii=False)
    if len(s) > 1:
        text += " under parent " + (show_row(s[1]) if s[1] != ("orphan",) else "<none>")
    return text[:400]


def compare_tables(ref, got, rep, reader, loads):
    """Compare the tables one reader saw (`got`: name -> Table) with the reference, and their structure."""
    want_sig = signatures(ref, ref.tables, rep, "duckdb")
    got_sig = signatures(ref, got, rep, reader)
    for t in ref.data_tables():
        if t not in got:
            continue
        g = got[t]
        ref_cols = set(ref.types[t])
        if g.columns is None:
            if ref.tables[t].rows:
                rep.err(f"{reader}: {t} has no data files but the reference has {len(ref.tables[t].rows)} rows")
            else:
                rep.note(f"{reader}: {t} has no data files (the reference table is empty): columns not compared")
        else:
            missing, extra = ref_cols - set(g.columns), set(g.columns) - ref_cols
            if reader in FILE_READERS:
                # Parquet files written before a column existed lack it; when no file has it, readers of the
                # files alone see no such column. Only a column that is NULL in every reference row may be absent.
                absent = {c for c in missing if all(r.get(c) is None for r in ref.tables[t].rows)}
                if absent:
                    rep.note(f"{reader}: {t}: no current file has column(s) {sorted(absent)} (NULL in every reference row)")
                missing -= absent
            if missing or extra:
                rep.err(f"{reader}: {t} columns differ: missing {sorted(missing)}, extra {sorted(extra)}")
            check_type = spark_type_ok if reader == "spark" else arrow_type_ok
            for c, ty in g.columns.items():
                if c in ref.types[t] and not check_type(kind_of(ref.types[t][c]), ref.types[t][c], ty):
                    rep.err(f"{reader}: {t}.{c} has type {ty}, expected the equivalent of DuckDB {ref.types[t][c]}")
        w, h = want_sig[t], got_sig.get(t, Counter())
        if w != h:
            missing, extra = w - h, h - w
            rep.err(f"{reader}: {t}: {sum(w.values())} rows in the reference, {sum(h.values())} read; "
                    f"{sum(missing.values())} missing, {sum(extra.values())} extra")
            for s in list(missing)[:3]:
                log(f"      missing: {show_row(s)}")
            for s in list(extra)[:3]:
                log(f"      extra:   {show_row(s)}")
        # structure on the lake alone
        ids = [r.get("_dlt_id") for r in g.rows]
        if None in ids:
            rep.err(f"{reader}: {t}: {ids.count(None)} row(s) without _dlt_id")
        dup = [i for i, n in Counter(ids).items() if n > 1 and i is not None]
        if dup:
            rep.err(f"{reader}: {t}: {len(dup)} duplicate _dlt_id value(s), e.g. {dup[0]}")
        parent = ref.parent(t)
        if parent and parent in got:
            pids = {r.get("_dlt_id") for r in got[parent].rows}
            orphans = sum(1 for r in g.rows if r.get("_dlt_parent_id") not in pids)
            if orphans:
                rep.err(f"{reader}: {t}: {orphans} row(s) whose _dlt_parent_id is no _dlt_id of {parent}")
            root = ref.root(t)
            if "_dlt_root_id" in (g.columns or {}) and root in got:
                rids = {r.get("_dlt_id") for r in got[root].rows}
                bad = sum(1 for r in g.rows if r.get("_dlt_root_id") not in rids)
                if bad:
                    rep.err(f"{reader}: {t}: {bad} row(s) whose _dlt_root_id is no _dlt_id of {root}")
        if "_dlt_load_id" in (g.columns or {}):
            bad = Counter(r.get("_dlt_load_id") for r in g.rows if loads.get(r.get("_dlt_load_id")) != 0)
            if bad:
                rep.err(f"{reader}: {t}: rows of load(s) not completed in the lake's _dlt_loads: {dict(bad)}")


def check_lake(ref, lake, rep, spark=None, only=None):
    """Everything about one lake: layout, bookkeeping, and each reader's rows (`only`: these tables)."""
    t0 = time.time()
    files = lake.files()
    if not files:
        rep.err(f"nothing under {lake.url}/{lake.dataset}")
        return
    present = lake.tables()
    log(f"  {lake.url}: {len(files)} files, {len(present)} folders")

    # bookkeeping
    loads_rows = lake.read_records("_dlt_loads")
    loads = {r.get("load_id"): r.get("status") for r in loads_rows}
    ref_loads = ref.tables["_dlt_loads"].rows
    if sum(1 for s in loads.values() if s == 0) != sum(1 for r in ref_loads if r["status"] == 0):
        rep.err(f"_dlt_loads: {len(loads_rows)} rows ({sorted(loads)}), the reference has {len(ref_loads)} completed loads")
    if {r.get("schema_name") for r in loads_rows} != {r["schema_name"] for r in ref_loads}:
        rep.err(f"_dlt_loads schema names {sorted({str(r.get('schema_name')) for r in loads_rows})} "
                f"!= {sorted({r['schema_name'] for r in ref_loads})}")
    versions = lake.read_records("_dlt_version")
    if not versions:
        rep.err("_dlt_version: no stored schema in the lake (a fresh worker could not restore it)")
    else:
        try:
            mine = json.loads(max(versions, key=lambda r: (r.get("version", 0), str(r.get("inserted_at"))))["schema"])
            diff = schema_diff(ref.schema, mine)
            if diff:
                rep.err(f"_dlt_version: the newest stored schema differs from the reference's: {diff[:5]}")
            elif {r.get("version_hash") for r in versions} != {r["version_hash"] for r in ref.tables["_dlt_version"].rows}:
                rep.note("_dlt_version: same tables, columns and types as the reference, other version hashes "
                         "(destination-specific hints such as table_format)")
        except (ValueError, KeyError, TypeError) as e:
            rep.err(f"_dlt_version: cannot read the stored schema: {e}")
    states = lake.read_records("_dlt_pipeline_state")
    ref_states = ref.tables["_dlt_pipeline_state"].rows
    if len(states) != len(ref_states):
        rep.err(f"_dlt_pipeline_state: {len(states)} rows, the reference {len(ref_states)}")
    if states and ref_states:
        try:
            mine = mask_run_times(decode_state(max(states, key=lambda r: r.get("version", 0))["state"]))
            theirs = mask_run_times(decode_state(max(ref_states, key=lambda r: r["version"])["state"]))
            for k in STATE_COMPARED:
                if mine.get(k) != theirs.get(k):
                    rep.err(f"newest pipeline state: {k} differs: lake {json.dumps(mine.get(k), sort_keys=True)[:300]} "
                            f"vs reference {json.dumps(theirs.get(k), sort_keys=True)[:300]}")
            other = sorted(k for k in set(mine) | set(theirs) if k not in STATE_COMPARED and mine.get(k) != theirs.get(k))
            if other:
                rep.note(f"newest pipeline state: {other} differ (destination-specific or version counters)")
        except (ValueError, KeyError, TypeError, zlib.error) as e:
            rep.err(f"_dlt_pipeline_state: cannot decode the state: {e}")

    # layout and formats
    tables = {}
    current = {}  # table -> its current data files, as paths in lake.fs
    for t in ref.data_tables():
        if only is not None and t not in only:
            continue
        if t not in present:
            if ref.tables[t].rows:
                rep.err(f"table {t} ({len(ref.tables[t].rows)} rows in the reference) is not in the lake")
            else:
                rep.note(f"table {t} is empty in the reference and absent from the lake")
            continue
        delta = lake.is_delta(t)
        if ref.disposition(t) == "merge" and not delta:
            rep.err(f"table {t} (merge, root {ref.root(t)}) is not a Delta table")
        if delta:
            tables[t] = "delta"
            try:
                current[t] = [re.sub(r"^(file|s3)://", "", u) for u in lake.delta_table(t).file_uris()]
            except Exception as e:  # a DeltaError: the log cannot be read
                rep.err(f"deltalake: cannot open Delta table {t}: {str(e).splitlines()[0][:300]}")
        else:
            tables[t] = "parquet"
            files_t = lake.parquet_files(t)
            bad = [f for f in files_t if not re.fullmatch(r"[^/]+/\d+\.\d+\.[A-Za-z0-9_-]+\.parquet", f)]
            if bad:
                rep.err(f"table {t}: files not named <load_id>.<file_id>.parquet: {bad[:3]}")
            other = [p for p in files if p.startswith(t + "/") and p not in files_t]
            if other:
                rep.note(f"table {t}: non-Parquet files {other[:3]}")
            current[t] = [lake.root + "/" + f for f in files_t]
    extra = [t for t in present if t not in ref.tables and t not in BOOKKEEPING and only is None]
    if extra:
        rep.err(f"tables in the lake and not in the reference: {extra}")
    fmt = Counter(tables.values())
    log(f"  {dict(fmt)} tables: " + ", ".join(f"{t}:{f}" for t, f in sorted(tables.items()) if f == "delta"))

    # readers. pyarrow: every table's current Parquet files (a Delta table's as its log lists them), read
    # as plain Parquet; deltalake: the Delta tables' snapshots; Spark: every table's current files.
    def read_all(name, read, which):
        t1 = time.time()
        out = {}
        for t in which:
            try:
                out[t] = read(t)
            except Exception as e:  # OSError, ArrowInvalid, DeltaError, Py4JJavaError: the reader refused it
                rep.err(f"{name}: cannot read {t}: {str(e).splitlines()[0][:300]}")
        compare_tables(ref, out, rep, name, loads)
        log(f"  {name} read {sum(len(x.rows) for x in out.values())} rows of {len(out)} tables in {time.time() - t1:.1f}s")
        return out

    files_read = read_all("pyarrow", lambda t: read_with_pyarrow(lake, current[t]), [t for t in tables if t in current])
    delta_read = read_all("deltalake", lambda t: read_with_deltalake(lake, t), [t for t, f in tables.items() if f == "delta"])
    if spark is not None:
        read_all("spark", lambda t: spark.read(current[t]), [t for t in tables if t in current])
        log("  (spark reads the Delta tables' current files as listed by deltalake: its own Delta reader needs the "
            "delta-spark jars, which PyPI's pyspark does not ship and which cannot be downloaded here)")
    log(f"  {lake.url} checked in {time.time() - t0:.1f}s")
    return {**files_read, **delta_read}


# ---------------------------------------------------------------------------------------------------
# processes: moto, the sandbox, the CLI

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise CannotRun(f"{what} exited with status {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise CannotRun(f"{what} did not answer {url} within {timeout}s")


class Server:
    """A child process on a loopback port, stopped (TERM, then KILL) when the check ends."""

    def __init__(self, argv, probe, what, logfile):
        self.what = what
        self.log = open(logfile, "wb")
        t0 = time.time()
        try:
            self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as e:
            raise CannotRun(f"cannot start {what} ({argv[0]}): {e}")
        try:
            wait_http(probe, self.proc, what)
        except CannotRun:
            self.stop()
            raise
        log(f"{what} up in {time.time() - t0:.1f}s (pid {self.proc.pid})")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


class Cli:
    def __init__(self, binary, s3_env):
        self.binary = binary
        self.s3_env = s3_env

    def run(self, project, args, bucket=None, extra_env=None, label=""):
        """`personio-pipeline --json run ARGS` in its own project and pipelines folder; the JSON report."""
        project.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DESTINATION__", "SOURCES__"))}
        if bucket:
            env["DESTINATION__FILESYSTEM__BUCKET_URL"] = bucket
            if bucket.startswith("s3://"):
                env.update(self.s3_env)
        env.update(extra_env or {})
        argv = [self.binary, "--project-dir", str(project), "--pipelines-dir", str(project / "pipelines"), "--json", "run", *args]
        t0 = time.time()
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
        secs = time.time() - t0
        (project / "stderr.txt").write_text(p.stderr)
        if p.returncode != 0:
            log(p.stdout[-2000:])
            log(p.stderr[-3000:])
            raise Failed(f"{label}: `{' '.join(argv[5:])}` exited with {p.returncode} (stderr in {project}/stderr.txt)")
        try:
            report = json.loads(p.stdout)
        except ValueError:
            raise Failed(f"{label}: the --json report is not JSON: {p.stdout[:300]}")
        rows = sum(report.get("rows", {}).values())
        log(f"{label}: {rows} rows, {len(report.get('loaded_packages', []))} package(s) in {secs:.1f}s")
        report["_stderr"] = p.stderr
        report["_secs"] = secs
        return report


class Failed(Exception):
    """A difference or a failed run: exit 1."""


# ---------------------------------------------------------------------------------------------------
# the self-test of the comparison: planted differences in a copy of the local lake must be caught

def self_test(ref, lake_dir, work, dataset=DATASET):
    """Plant differences in copies of a local lake: each must be reported; a stray file must not be."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import write_deltalake
    results = []
    base = Lake(str(lake_dir), dataset)
    with_rows = [t for t in ref.data_tables() if t in base.tables() and ref.tables[t].rows]
    parquet_tables = [t for t in with_rows if not base.is_delta(t) and base.parquet_files(t)]
    delta_tables = [t for t in with_rows if base.is_delta(t)]

    def change_value(path):
        tab = pq.read_table(path)
        for i, f in enumerate(tab.schema):
            if f.name in RANDOM_COLS or not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                                               or pa.types.is_integer(f.type)):
                continue
            vals = tab.column(i).to_pylist()
            if vals and vals[0] is not None:
                vals[0] = vals[0] + "?" if isinstance(vals[0], str) else vals[0] + 1
                pq.write_table(tab.set_column(i, f, pa.array(vals, f.type)), path)
                return f.name
        raise Failed(f"self-test: no text or integer value to change in {path}")

    def plant(name, must_catch, fn, table):
        copy = work / f"planted-{len(results)}"
        shutil.copytree(lake_dir, copy)
        lake = Lake(str(copy), dataset)
        what = fn(lake)
        rep = Report(f"planted {name}")
        saved = sys.stdout
        sys.stdout = open(os.devnull, "w")
        try:
            check_lake(ref, Lake(str(copy), dataset), rep, only={table})
        finally:
            sys.stdout.close()
            sys.stdout = saved
        ok = bool(rep.errors) == must_catch
        results.append(ok)
        verdict = ("caught" if rep.errors else "NOT CAUGHT") if must_catch else ("tolerated" if not rep.errors else
                                                                                 f"WRONGLY REPORTED: {rep.errors[:2]}")
        log(f"  self-test: {name} ({what}): {verdict}")
        shutil.rmtree(copy)

    if parquet_tables:
        t = parquet_tables[0]
        plant("changed value in a Parquet table", True,
              lambda lake: f"{t}.{change_value(lake.root + '/' + lake.parquet_files(t)[0])} of one row", t)

        def leftover(lake):
            f = lake.parquet_files(t)[0]
            shutil.copy(lake.root + "/" + f, lake.root + "/" + f[:-len(".parquet")] + "0.parquet")
            return f"a second copy of {f}"
        plant("leftover Parquet file", True, leftover, t)
    if delta_tables:
        t = delta_tables[0]

        def delete_row(lake):
            dtab = lake.delta_table(t)
            victim = dtab.to_pyarrow_table().column("_dlt_id")[0].as_py()
            dtab.delete(f"_dlt_id = '{victim}'")
            return f"one row of {t} deleted in a new Delta commit"
        plant("row missing from a Delta table", True, delete_row, t)

        def duplicate_row(lake):
            write_deltalake(lake.uri(t), lake.delta_table(t).to_pyarrow_table().slice(0, 1), mode="append")
            return f"one row of {t} appended again"
        plant("duplicate Delta row", True, duplicate_row, t)

        def stray(lake):
            src = lake.delta_table(t).file_uris()[0]
            src = src[len("file://"):] if src.startswith("file://") else src
            shutil.copy(src, lake.root + f"/{t}/stray-not-in-the-log.parquet")
            return f"a copy of a data file in {t}/ that the Delta log does not name"
        plant("file outside the Delta log", False, stray, t)
    if len(results) < 3:
        raise Failed(f"the self-test could plant only {len(results)} cases (no table with rows?)")
    if not all(results):
        raise Failed("the comparison missed a planted difference or reported a stray file")


# ---------------------------------------------------------------------------------------------------
# the end-to-end check

def phase_a(cli, work, s3, spark_on):
    log("== A. run --demo: DuckDB (reference), local path, s3:// on moto ==")
    ref_dir, fs_dir, s3_dir = work / "a-duckdb", work / "a-local", work / "a-s3"
    cli.run(ref_dir, ["--demo"], label="A duckdb")
    lake_dir = work / "a-lake"
    cli.run(fs_dir, ["--demo", "--destination", "filesystem"], bucket=str(lake_dir), label="A filesystem (local)")
    cli.run(s3_dir, ["--demo", "--destination", "filesystem"], bucket=f"s3://{BUCKET}/demo", label="A filesystem (s3)")
    ref = Reference(ref_dir / "personio_demo.duckdb", DATASET)
    log(f"reference: {len(ref.data_tables())} data tables, {sum(len(ref.tables[t].rows) for t in ref.data_tables())} rows")
    errors = []
    spark = None
    if spark_on:
        spark = SparkReader()
    try:
        for label, lake, sp in (("local", Lake(str(lake_dir), DATASET), spark), ("s3", Lake(f"s3://{BUCKET}/demo", DATASET, s3), None)):
            log(f"-- lake {label}: {lake.url}" + ("" if sp else " (Spark: not read, see below)" if label == "s3" else ""))
            rep = Report(f"A {label}")
            check_lake(ref, lake, rep, sp)
            errors += rep.errors
    finally:
        if spark:
            spark.stop()
    log("  (Spark reads s3:// only through hadoop-aws and the AWS SDK jars, which PyPI's pyspark does not ship: "
        "the S3 lake is read by pyarrow and deltalake)")
    log("-- self-test: planted differences in copies of the local lake")
    self_test(ref, lake_dir, work)
    return errors


def phase_b(cli, binary, work, s3):
    log("== B. changed employees between two runs; a fresh working directory resumes from the bucket ==")
    port = free_port()
    sandbox = Server([binary, "sandbox", "--port", str(port), "--host", "127.0.0.1"], f"http://127.0.0.1:{port}/_sandbox/health",
                     "sandbox", work / "sandbox.log")
    errors = []
    try:
        base = f"http://127.0.0.1:{port}"
        src = {"SOURCES__PERSONIO__BASE_URL": base, "SOURCES__PERSONIO__CLIENT_ID": "papi-sandbox-client",
               "SOURCES__PERSONIO__CLIENT_SECRET": "papi-sandbox-secret"}
        bucket = f"s3://{BUCKET}/resume"
        name = ["--pipeline-name", "lake_check"]
        cli.run(work / "b-duckdb", name, extra_env=src, label="B1 duckdb")
        cli.run(work / "b-lake-1", name + ["--destination", "filesystem"], bucket=bucket, extra_env=src, label="B1 filesystem (s3)")
        http("POST", base + "/_sandbox/clock/advance", {"hours": 2})
        changed = set(http("POST", base + "/_sandbox/employees/update", {"count": 5})["ids"])
        added = set(http("POST", base + "/_sandbox/employees/add", {"count": 2})["ids"])
        log(f"sandbox: employees {sorted(changed)} changed, {sorted(added)} added")
        cli.run(work / "b-duckdb", name, extra_env=src, label="B2 duckdb")
        http("DELETE", base + "/_sandbox/requests")
        fresh = work / "b-lake-2"
        r2 = cli.run(fresh, name + ["--destination", "filesystem"], bucket=bucket,
                     extra_env={**src, "PERSONIO_LOG": "pipeline_engine=info"}, label="B2 filesystem (s3), fresh working dir")
        counts = http("GET", base + "/_sandbox/requests/counts")["by_path"]
        truth = http("GET", base + "/_sandbox/truth")
    finally:
        sandbox.stop()
    rep = Report("B")
    if "restored pipeline state from the destination" not in r2["_stderr"]:
        rep.err("the fresh working directory did not restore the pipeline state from the bucket (no "
                "'restored pipeline state from the destination' in its log)")
    else:
        log("  B2: restored pipeline state from the destination (the bucket)")
    emp_rows = r2.get("rows", {}).get("employees")
    if emp_rows != len(changed | added):
        rep.err(f"B2 loaded {emp_rows} employee rows; an incremental run loads the {len(changed | added)} changed ones")
    if r2.get("refreshed"):
        rep.err(f"B2 reloaded from scratch: {r2['refreshed']}")
    pages = counts.get("/v1/company/employees", 0)
    log(f"  B2: {emp_rows} employee rows, {pages} employee page request(s), {sum(counts.values())} requests in all")
    if pages != 1:
        rep.err(f"B2 asked for {pages} pages of employees; the changes fit in one")
    ref = Reference(work / "b-duckdb" / "lake_check.duckdb", DATASET)
    lake = Lake(bucket, DATASET, s3)
    got = check_lake(ref, lake, rep)
    if got is not None and "employees" in got:
        emp = got["employees"].rows
        ids = Counter(r["id"] for r in emp)
        dup = {i: n for i, n in ids.items() if n > 1}
        want_ids = {int(e["attributes"]["id"]["value"]) for e in truth["employees"]}
        if dup:
            rep.err(f"Delta employees: more than one row for {len(dup)} employee(s), e.g. {next(iter(dup.items()))}")
        if set(ids) != want_ids:
            rep.err(f"Delta employees: ids differ from the sandbox's: missing {sorted(want_ids - set(ids))[:5]}, "
                    f"extra {sorted(set(ids) - want_ids)[:5]}")
        load2 = r2["loaded_packages"][0] if r2.get("loaded_packages") else None
        in_load2 = {r["id"] for r in emp if r["_dlt_load_id"] == load2}
        if in_load2 != changed | added:
            rep.err(f"Delta employees: rows of the second load {sorted(in_load2)} != changed/added {sorted(changed | added)}")
        by_id = {r["id"]: r for r in emp}
        stale = []
        for e in truth["employees"]:
            i = int(e["attributes"]["id"]["value"])
            want = dt.datetime.fromisoformat(e["attributes"]["last_modified_at"]["value"]).astimezone(UTC)
            have = by_id.get(i, {}).get("last_modified_at")
            if have is None or have.astimezone(UTC) != want:
                stale.append((i, str(have), want.isoformat()))
            # What the sandbox changes: the position, or the custom attribute labelled City (column `city`).
            city = next((a.get("value") for a in e["attributes"].values() if isinstance(a, dict) and a.get("label") == "City"), None)
            for column, tv in (("position", e["attributes"].get("position", {}).get("value")), ("city", city)):
                if i in by_id and tv is not None and by_id[i].get(column) != tv:
                    stale.append((i, column, by_id[i].get(column), tv))
        if stale:
            rep.err(f"Delta employees: {len(stale)} value(s) differ from the sandbox, e.g. {stale[:3]}")
        versions = lake.delta_table("employees").history()
        log(f"  Delta employees: {len(emp)} rows, {len(ids)} ids, {len(in_load2)} from the second load; "
            f"{len(versions)} commits: {[v.get('operation') for v in versions]}")
    errors += rep.errors
    return errors


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", help="the personio-pipeline binary")
    p.add_argument("--moto", help="moto_server (default: beside this interpreter)")
    p.add_argument("--work", type=Path, help="work folder (default: a temporary one, removed unless --keep)")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--no-spark", action="store_true", help="development only: skip PySpark (printed as a gap)")
    p.add_argument("--compare", action="store_true")
    p.add_argument("--reference", type=Path)
    p.add_argument("--dataset", default=DATASET)
    p.add_argument("--lake", action="append", default=[])
    p.add_argument("--spark", action="store_true", help="with --compare: PySpark reads the local lakes too")
    p.add_argument("--self-test", action="store_true", help="with --compare: plant differences in copies of the first lake")
    args = p.parse_args()
    t0 = time.time()
    try:
        if args.compare:
            if not args.reference or not args.lake:
                p.error("--compare needs --reference and --lake")
            s3 = None
            creds = "DESTINATION__FILESYSTEM__CREDENTIALS__"
            if os.environ.get(creds + "ENDPOINT_URL"):
                s3 = {"endpoint": os.environ[creds + "ENDPOINT_URL"], "key": os.environ.get(creds + "AWS_ACCESS_KEY_ID", ""),
                      "secret": os.environ.get(creds + "AWS_SECRET_ACCESS_KEY", ""),
                      "region": os.environ.get(creds + "REGION_NAME", S3_REGION)}
            ref = Reference(args.reference, args.dataset)
            spark = SparkReader() if args.spark else None
            errors = []
            for url in args.lake:
                rep = Report(url)
                check_lake(ref, Lake(url, args.dataset, s3), rep, spark if not url.startswith("s3://") else None)
                errors += rep.errors
            if spark:
                spark.stop()
            if args.self_test:
                with tempfile.TemporaryDirectory(prefix="lake-self-test-") as tmp:
                    self_test(ref, Path(args.lake[0]), Path(tmp), args.dataset)
            log(f"{'OK' if not errors else 'FAILED'}: {len(errors)} difference(s) in {time.time() - t0:.1f}s")
            return 1 if errors else 0
        if not args.bin or not os.access(args.bin, os.X_OK):
            raise CannotRun(f"no personio-pipeline binary at {args.bin} (build it with `cargo test --workspace`)")
        moto = args.moto or str(Path(sys.executable).parent / "moto_server")
        work = args.work or Path(tempfile.mkdtemp(prefix="lake-check-"))
        work.mkdir(parents=True, exist_ok=True)
        log(f"lake check: work folder {work}")
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        s3 = {"endpoint": endpoint, "key": S3_KEY, "secret": S3_SECRET, "region": S3_REGION}
        moto_srv = Server([moto, "-H", "127.0.0.1", "-p", str(port)], endpoint + "/moto-api/", "moto S3 server", work / "moto.log")
        errors = []
        try:
            urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT"), timeout=10).close()
            c = "DESTINATION__FILESYSTEM__CREDENTIALS__"
            cli = Cli(args.bin, {c + "AWS_ACCESS_KEY_ID": S3_KEY, c + "AWS_SECRET_ACCESS_KEY": S3_SECRET,
                                 c + "ENDPOINT_URL": endpoint, c + "REGION_NAME": S3_REGION})
            ta = time.time()
            errors += phase_a(cli, work, s3, not args.no_spark)
            log(f"-- A took {time.time() - ta:.1f}s")
            tb = time.time()
            errors += phase_b(cli, args.bin, work, s3)
            log(f"-- B took {time.time() - tb:.1f}s")
        finally:
            moto_srv.stop()
            log("moto S3 server stopped")
        if args.no_spark:
            log("NOTE: --no-spark: PySpark did not read the lake (development run; lake/run.sh never passes it)")
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
        if errors:
            log(f"lake check FAILED: {len(errors)} difference(s) in {time.time() - t0:.1f}s")
            return 1
        log(f"lake check OK in {time.time() - t0:.1f}s")
        return 0
    except Failed as e:
        log(f"lake check FAILED: {e}")
        return 1
    except CannotRun as e:
        log(f"lake check: ERROR: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
