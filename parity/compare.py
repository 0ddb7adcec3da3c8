#!/usr/bin/env python3
"""Compare the dataset dlt loaded with the dataset the Rust engine loaded (docs/parity.md).

    compare.py --dlt A.duckdb --rust B.duckdb --dataset DS [--case-dir DIR] [--label TEXT]
        Exit 0 when both datasets agree, 1 on any mismatch (a diff is printed), 2 on a usage error.
    compare.py --dump A.duckdb --dataset DS
        Print one dataset's tables, columns (ordinal order), row counts, bookkeeping and rows
        (used to write parity/expected/<case>.txt).
    compare.py --self-test
        Load every fixture case twice with dlt (dlt_load.py, this interpreter), check the two outputs
        compare equal after every run, then check that planted differences are caught.

What must agree, per dataset schema (DuckDB schema DS; `DS_staging` is not compared):
* the set of tables;
* per table, the set of (column name, DuckDB type, nullable);
* per data table, the multiset of rows without `_dlt_id`, `_dlt_load_id`, `_dlt_parent_id`,
  `_dlt_root_id`, each child row tagged with its parent's row content (recursively), so a child attached
  to the wrong parent shows; this implies equal row counts;
* `_dlt_loads`: row count, status values, schema names;
* `_dlt_version`: row count, schema names;
* `_dlt_pipeline_state`: row count, pipeline names, and per row (by version) the top-level keys of the
  decoded `state` (base64 -> zlib -> JSON);
* structure, on each side alone: every child row's `_dlt_parent_id` is a `_dlt_id` of its parent table,
  every `_dlt_root_id` a `_dlt_id` of the root table, every root `_dlt_load_id` a status-0 load, every
  `_dlt_loads.schema_version_hash` a `_dlt_version.version_hash`.
Reported without failing (warnings): column order, `_dlt_version.version` and state `_state_version`
numbers, extra DuckDB schemas.

A case may relax one thing in `<case_dir>/compare.json`:
  {"arbitrary_duplicates": {"<root table>": [{"<pk column>": <value>, ...}, ...]}}
dlt keeps an arbitrary one of several rows with the same primary key in one merge package
(`ROW_NUMBER() OVER (PARTITION BY pk ORDER BY (SELECT NULL))`). That entity's root and descendant rows are
left out of the row comparison.
For each listed key, each side must hold the same number of root rows with it, at most one.

scd2 resources (`"merge_strategy": "scd2"` in `<case_dir>/resources.json`): their validity columns hold
the load time, which legitimately differs between the two loads. Each validity value that is a load's
boundary (its load id's time, to within a second: dlt takes the package's creation time, the Rust engine
the load id's) is replaced by `<boundary of load N>`, N the load's position in `_dlt_loads`; any other
value (the active record timestamp, a configured boundary) is compared as it is. In exchange the root's
`_dlt_id`, the row hash, IS compared (it is deterministic), and each side must hold at most one active
version per row hash, a unique (`_dlt_id`, valid-from) and no NULL valid-from.
"""

import argparse
import base64
import bisect
import datetime as dt
import decimal
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from pathlib import Path

import duckdb

RANDOM_COLS = ("_dlt_id", "_dlt_load_id", "_dlt_parent_id", "_dlt_root_id")
LOADS, VERSION, STATE = "_dlt_loads", "_dlt_version", "_dlt_pipeline_state"
HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------------------
# reading one dataset


def canon(v):
    """A hashable, printable, type-tagged form of a DuckDB value."""
    if v is None:
        return None
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("float", repr(v))
    if isinstance(v, decimal.Decimal):
        return ("decimal", str(v))
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc)
        return ("timestamp", v.isoformat())
    if isinstance(v, (dt.date, dt.time)):
        return (type(v).__name__, v.isoformat())
    if isinstance(v, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(v).hex())
    if isinstance(v, (list, tuple)):
        return ("list", tuple(canon(x) for x in v))
    if isinstance(v, dict):
        return ("struct", tuple(sorted((k, canon(x)) for k, x in v.items())))
    return (type(v).__name__, str(v))


def show(v):
    if v is None:
        return "NULL"
    if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str):
        return f"{v[1]!s}::{v[0]}"
    return str(v)


def q(name):
    return '"' + name.replace('"', '""') + '"'


def is_postgres(where):
    return str(where).startswith(("postgresql://", "postgres://"))


def redact(where):
    """A connection string without its password, for messages."""
    text = str(where)
    if not is_postgres(text) or "@" not in text:
        return text
    head, tail = text.split("://", 1)
    userinfo, rest = tail.rsplit("@", 1)
    return f"{head}://{userinfo.split(':', 1)[0]}@{rest}"


class Dataset:
    """Everything compare needs from one dataset, read once: a DuckDB file, or a PostgreSQL database
    given as a connection string (`postgresql://user@host:port/db`), the dataset being a schema there."""

    def __init__(self, where, dataset):
        self.path, self.dataset = str(where), dataset
        self.constraints = {}  # table -> sorted [(kind, columns)]; PostgreSQL only
        if is_postgres(self.path):
            self._read_postgres()
        else:
            self._read_duckdb()

    def _read_duckdb(self):
        dataset = self.dataset
        if not os.path.exists(self.path):
            raise SystemExit(f"no such DuckDB file: {self.path}")
        con = duckdb.connect(self.path, read_only=True)
        try:
            self.schemas = sorted(
                r[0] for r in con.execute(
                    "select distinct schema_name from information_schema.schemata "
                    "where catalog_name = current_database()").fetchall())
            cols = con.execute(
                "select table_name, column_name, data_type, is_nullable from information_schema.columns "
                "where table_catalog = current_database() and table_schema = ? "
                "order by table_name, ordinal_position", [dataset]).fetchall()
            self.columns = {}  # table -> [(name, type, nullable)] in ordinal order
            for t, c, ty, nl in cols:
                self.columns.setdefault(t, []).append((c, ty, nl == "YES"))
            self.rows = {}  # table -> list of dicts
            for t, cs in self.columns.items():
                names = [c for c, _, _ in cs]
                res = con.execute(
                    f"select {', '.join(q(n) for n in names)} from {q(dataset)}.{q(t)}").fetchall()
                self.rows[t] = [dict(zip(names, r)) for r in res]
        finally:
            con.close()

    def _read_postgres(self):
        """Types as PostgreSQL reports them (`format_type`: `character varying`, `numeric(38,9)`, …),
        nullability from the catalog, rows through psycopg2 (timestamptz as aware datetimes, numeric as
        Decimal, jsonb decoded)."""
        import psycopg2  # only the PostgreSQL check needs it

        try:
            con = psycopg2.connect(self.path)
        except psycopg2.Error as e:
            raise SystemExit(f"cannot connect to {redact(self.path)}: {e}")
        try:
            con.set_session(readonly=True, autocommit=True)
            cur = con.cursor()
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(
                "select nspname from pg_namespace where nspname not like 'pg\\_%' "
                "and nspname not in ('information_schema', 'public') order by 1")
            self.schemas = [r[0] for r in cur.fetchall()]
            cur.execute(
                "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod), not a.attnotnull "
                "from pg_attribute a join pg_class c on c.oid = a.attrelid "
                "join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = %s and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped "
                "order by c.relname, a.attnum", [self.dataset])
            self.columns = {}
            for t, c, ty, nl in cur.fetchall():
                self.columns.setdefault(t, []).append((c, ty, nl))
            cur.execute(
                "select cl.relname, co.contype, array(select a.attname from unnest(co.conkey) with ordinality k(n, i) "
                "join pg_attribute a on a.attrelid = co.conrelid and a.attnum = k.n order by k.i) "
                "from pg_constraint co join pg_class cl on cl.oid = co.conrelid "
                "join pg_namespace n on n.oid = cl.relnamespace where n.nspname = %s and co.contype in ('p', 'u')",
                [self.dataset])
            kinds = {"p": "PRIMARY KEY", "u": "UNIQUE"}
            for t, kind, cols in cur.fetchall():
                self.constraints.setdefault(t, []).append((kinds[kind], tuple(cols)))
            for t in self.constraints:
                self.constraints[t].sort()
            self.rows = {}
            for t, cs in self.columns.items():
                names = [c for c, _, _ in cs]
                cur.execute(f"select {', '.join(q(n) for n in names)} from {q(self.dataset)}.{q(t)}")
                self.rows[t] = [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            con.close()

    @property
    def tables(self):
        return set(self.columns)

    def data_tables(self):
        return sorted(t for t in self.columns if not t.startswith("_dlt_"))

    def parent_of(self, table):
        """The longest `__`-prefix of `table` that is a table here (child tables only)."""
        parts = table.split("__")
        for i in range(len(parts) - 1, 0, -1):
            cand = "__".join(parts[:i])
            if cand in self.columns:
                return cand
        return None

    def root_of(self, table):
        p = self.parent_of(table)
        return table if p is None else self.root_of(p)

    def is_child(self, table):
        return "_dlt_parent_id" in {c for c, _, _ in self.columns.get(table, [])}


def decode_state(text):
    return json.loads(zlib.decompress(base64.b64decode(text)))


# ---------------------------------------------------------------------------------------------------
# comparing


class Report:
    def __init__(self, label):
        self.label, self.errors, self.warnings = label, [], []

    def err(self, msg):
        self.errors.append(msg)

    def warn(self, msg):
        self.warnings.append(msg)

    def print(self, out=sys.stdout):
        head = f"[{self.label}] " if self.label else ""
        for w in self.warnings:
            print(f"{head}note: {w}", file=out)
        for e in self.errors:
            print(f"{head}MISMATCH: {e}", file=out)
        status = "OK" if not self.errors else f"{len(self.errors)} mismatch(es)"
        print(f"{head}{status}", file=out)


def set_diff(rep, what, a, b, names=("dlt", "rust")):
    only_a, only_b = sorted(set(a) - set(b), key=str), sorted(set(b) - set(a), key=str)
    if only_a or only_b:
        lines = [f"{what} differ:"]
        lines += [f"    only in {names[0]}: {x}" for x in only_a]
        lines += [f"    only in {names[1]}: {x}" for x in only_b]
        rep.err("\n".join(lines))
        return False
    return True


def relaxed_keys(case_dir):
    if not case_dir:
        return {}
    f = Path(case_dir) / "compare.json"
    if not f.exists():
        return {}
    spec = json.loads(f.read_text(encoding="utf-8"))
    return spec.get("arbitrary_duplicates", {})


def scd2_tables(case_dir):
    """Root tables of the case's scd2 resources -> (valid-from, valid-to, active value or None)."""
    if not case_dir:
        return {}
    f = Path(case_dir) / "resources.json"
    if not f.exists():
        return {}
    out = {}
    for spec in json.loads(f.read_text(encoding="utf-8")):
        if spec.get("write_disposition") == "merge" and spec.get("merge_strategy") == "scd2":
            frm, to = spec.get("validity_column_names") or ("_dlt_valid_from", "_dlt_valid_to")
            active = spec.get("active_record_timestamp")
            if active is not None:
                active = dt.datetime.fromisoformat(active.replace("Z", "+00:00"))
                if active.tzinfo is None:
                    active = active.replace(tzinfo=dt.timezone.utc)
            out[spec["name"]] = (frm, to, active)
    return out


def micros_of_load_id(load_id):
    """A load id `<unix seconds>.<fraction>` as integer microseconds."""
    secs, _, frac = str(load_id).partition(".")
    return int(secs) * 1_000_000 + int((frac + "000000")[:6])


def micros_of(ts):
    ts = ts if ts.tzinfo else ts.replace(tzinfo=dt.timezone.utc)
    delta = ts.astimezone(dt.timezone.utc) - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def normalise_validity(ds, scd2):
    """Replace the scd2 validity values that are load boundaries by the load's ordinal (see the module
    docs). Returns the number of values replaced."""
    loads = sorted(micros_of_load_id(r["load_id"]) for r in ds.rows.get(LOADS, []))
    replaced = 0
    for t, (frm, to, _active) in scd2.items():
        for r in ds.rows.get(t, []):
            for c in (frm, to):
                v = r.get(c)
                if not isinstance(v, dt.datetime):
                    continue
                m = micros_of(v)
                i = bisect.bisect_right(loads, m) - 1
                if i >= 0 and m - loads[i] < 1_000_000:
                    r[c] = f"<boundary of load {i + 1}>"
                    replaced += 1
    return replaced


def check_scd2(ds, scd2, rep, side):
    """One side's scd2 invariants: a valid-from on every version, (row hash, valid-from) unique, at most
    one active version per row hash."""
    for t, (frm, to, active) in scd2.items():
        rows = ds.rows.get(t, [])
        if not rows:
            continue
        if any(r.get(frm) is None for r in rows):
            rep.err(f"{side}: {t} has versions without {frm}")
        keys = Counter((r.get("_dlt_id"), str(r.get(frm))) for r in rows)
        dup = [k for k, n in keys.items() if n > 1]
        if dup:
            rep.err(f"{side}: {t} repeats (_dlt_id, {frm}): {dup}")
        is_active = (lambda r: r.get(to) is None) if active is None else (lambda r: isinstance(r.get(to), dt.datetime) and micros_of(r.get(to)) == micros_of(active))
        act = Counter(r.get("_dlt_id") for r in rows if is_active(r))
        many = [k for k, n in act.items() if n > 1]
        if many:
            rep.err(f"{side}: {t} has several active versions of row hash(es) {many}")


def lineage_rows(ds, table, cols, relaxed, common):
    """Counter of row keys for a data table: own content (cols) plus the parent's key, recursively.

    Rows belonging to a relaxed entity are left out. Returns (Counter, number left out). `common` maps a
    table to the columns both sides have, so a column missing on one side (reported on its own) does not
    make every descendant row differ too.
    """
    cache = ds.__dict__.setdefault("_lineage", {})

    def table_index(t):
        if t not in cache:
            own_cols = common.get(t) or sorted(c for c, _, _ in ds.columns[t] if c not in RANDOM_COLS)
            parent = ds.parent_of(t) if ds.is_child(t) else None
            pidx = table_index(parent) if parent else None
            relaxed_spec = relaxed.get(t, []) if parent is None else []
            by_id = {}
            for r in ds.rows[t]:
                own = tuple((c, canon(r.get(c))) for c in own_cols)
                if parent is None:
                    skip = any(all(canon(r.get(k)) == canon(v) for k, v in key.items())
                               for key in relaxed_spec)
                    by_id.setdefault(r.get("_dlt_id"), (own, None, skip))
                else:
                    p = pidx.get(r.get("_dlt_parent_id"))
                    pkey = (p[0], p[1]) if p else ("<orphan>",)
                    skip = p[2] if p else False
                    by_id.setdefault(r.get("_dlt_id"), (own, pkey, skip))
            cache[t] = by_id
        return cache[t]

    parent = ds.parent_of(table) if ds.is_child(table) else None
    pidx = table_index(parent) if parent else None
    own_cols = sorted(cols)
    relaxed_spec = relaxed.get(table, []) if parent is None else []
    out, skipped = Counter(), 0
    for r in ds.rows[table]:
        own = tuple((c, canon(r.get(c))) for c in own_cols)
        if parent is None:
            if any(all(canon(r.get(k)) == canon(v) for k, v in key.items()) for key in relaxed_spec):
                skipped += 1
                continue
            out[(own, None)] += 1
        else:
            p = pidx.get(r.get("_dlt_parent_id"))
            if p and p[2]:
                skipped += 1
                continue
            out[(own, (p[0], p[1]) if p else ("<orphan>",))] += 1
    return out, skipped


def fmt_row(key, depth=0):
    own, parent = key
    s = "{" + ", ".join(f"{c}={show(v)}" for c, v in own) + "}"
    if parent is not None and parent != ("<orphan>",):
        s += " under " + fmt_row(parent, depth + 1)
    elif parent == ("<orphan>",):
        s += " under <no parent row>"
    return s


def check_structure(ds, rep, side):
    """Checks that need one side only."""
    ids = {t: {r.get("_dlt_id") for r in ds.rows[t]} for t in ds.data_tables()}
    loads = {r["load_id"]: r["status"] for r in ds.rows.get(LOADS, [])}
    for t in ds.data_tables():
        colnames = {c for c, _, _ in ds.columns[t]}
        if "_dlt_id" not in colnames:
            rep.err(f"{side}: table {t} has no _dlt_id column")
            continue
        if ds.is_child(t):
            parent, root = ds.parent_of(t), ds.root_of(t)
            if parent is None:
                rep.err(f"{side}: child table {t} has no parent table")
                continue
            orphans = [r for r in ds.rows[t] if r.get("_dlt_parent_id") not in ids[parent]]
            if orphans:
                rep.err(f"{side}: {len(orphans)} row(s) of {t} have a _dlt_parent_id not in {parent}")
            if "_dlt_root_id" in colnames:
                bad = [r for r in ds.rows[t] if r.get("_dlt_root_id") not in ids[root]]
                if bad:
                    rep.err(f"{side}: {len(bad)} row(s) of {t} have a _dlt_root_id not in {root}")
        elif "_dlt_load_id" in colnames and LOADS in ds.rows:
            bad = Counter(r.get("_dlt_load_id") for r in ds.rows[t] if loads.get(r.get("_dlt_load_id")) != 0)
            if bad:
                rep.err(f"{side}: rows of {t} carry load ids without a status-0 _dlt_loads row: {dict(bad)}")
    if LOADS in ds.rows and VERSION in ds.rows:
        hashes = {r["version_hash"] for r in ds.rows[VERSION]}
        for r in ds.rows[LOADS]:
            if r.get("schema_version_hash") not in hashes:
                rep.err(f"{side}: _dlt_loads {r['load_id']} schema_version_hash "
                        f"{r.get('schema_version_hash')} is not in _dlt_version")
    if STATE in ds.rows:
        for r in ds.rows[STATE]:
            if r.get("_dlt_load_id") not in loads:
                rep.err(f"{side}: _dlt_pipeline_state row version {r.get('version')} has load id "
                        f"{r.get('_dlt_load_id')} with no _dlt_loads row")


def compare(a, b, relaxed=None, label="", names=("dlt", "rust"), scd2=None):
    rep = Report(label)
    relaxed = relaxed or {}
    scd2 = scd2 or {}
    A, B = names
    for ds, side in ((a, A), (b, B)):
        check_scd2(ds, scd2, rep, side)
        n = normalise_validity(ds, scd2)
        if n:
            rep.warn(f"{side}: {n} scd2 validity value(s) compared as the load they are the boundary of")

    extra_a = set(a.schemas) - set(b.schemas)
    extra_b = set(b.schemas) - set(a.schemas)
    if extra_a or extra_b:
        rep.warn(f"database schemas differ (not compared): only {A}: {sorted(extra_a)}, only {B}: {sorted(extra_b)}")
    if not a.columns:
        rep.err(f"{A}: dataset {a.dataset} has no tables in {a.path}")
    if not b.columns:
        rep.err(f"{B}: dataset {b.dataset} has no tables in {b.path}")

    set_diff(rep, "tables", a.tables, b.tables, names)
    common = sorted(a.tables & b.tables)

    for t in common:
        ca, cb = a.columns[t], b.columns[t]
        fmt = lambda c: f"{c[0]} {c[1]}{'' if c[2] else ' NOT NULL'}"
        set_diff(rep, f"columns of {t} (name, type, nullable)", [fmt(c) for c in ca], [fmt(c) for c in cb], names)
        oa = [c[0] for c in ca if c[0] in {x[0] for x in cb}]
        ob = [c[0] for c in cb if c[0] in {x[0] for x in ca}]
        if oa != ob:
            rep.warn(f"column order of {t} differs: {A} {oa} / {B} {ob}")
        ka, kb = a.constraints.get(t, []), b.constraints.get(t, [])
        if ka != kb:
            fmtk = lambda ks: ", ".join(f"{k} ({', '.join(c)})" for k, c in ks) or "none"
            rep.warn(f"constraints of {t} differ (not compared): {A} {fmtk(ka)} / {B} {fmtk(kb)}")

    # data tables: row multisets with lineage
    common_cols = {t: sorted({c for c, _, _ in a.columns[t]} & {c for c, _, _ in b.columns[t]} - set(RANDOM_COLS))
                   for t in common}
    for t in scd2:
        if t in common_cols:
            # The scd2 row hash is deterministic: it must be dlt's.
            common_cols[t] = sorted(common_cols[t] + ["_dlt_id"])
    for t in common:
        if t.startswith("_dlt_"):
            continue
        cols = common_cols[t]
        ra, sa = lineage_rows(a, t, cols, relaxed, common_cols)
        rb, sb = lineage_rows(b, t, cols, relaxed, common_cols)
        if sa == 0 and sb == 0 and len(a.rows[t]) != len(b.rows[t]):
            rep.err(f"row count of {t}: {A} {len(a.rows[t])}, {B} {len(b.rows[t])}")
        only_a, only_b = ra - rb, rb - ra
        if only_a or only_b:
            lines = [f"rows of {t} differ (compared columns: {', '.join(cols)}):"]
            for k, n in sorted(only_a.items(), key=lambda kv: str(kv[0])):
                lines.append(f"    only in {A} (x{n}): {fmt_row(k)}")
            for k, n in sorted(only_b.items(), key=lambda kv: str(kv[0])):
                lines.append(f"    only in {B} (x{n}): {fmt_row(k)}")
            rep.err("\n".join(lines))
        if sa or sb:
            rep.warn(f"{t}: {sa} {A} / {sb} {B} row(s) of arbitrary-duplicate entities left out of the row comparison")
        for key in relaxed.get(t, []) if not a.is_child(t) else []:
            counts = {}
            for ds, side in ((a, A), (b, B)):
                counts[side] = sum(all(canon(r.get(k)) == canon(v) for k, v in key.items()) for r in ds.rows[t])
                if counts[side] > 1:
                    rep.err(f"{side}: {t} holds {counts[side]} rows with primary key {key}, expected at most 1")
            if counts[A] != counts[B]:
                rep.err(f"{t}: rows with primary key {key}: {A} {counts[A]}, {B} {counts[B]}")

    # bookkeeping
    if LOADS in a.rows and LOADS in b.rows:
        la, lb = a.rows[LOADS], b.rows[LOADS]
        if len(la) != len(lb):
            rep.err(f"_dlt_loads row count: {A} {len(la)}, {B} {len(lb)}")
        sta = sorted(r["status"] for r in la)
        stb = sorted(r["status"] for r in lb)
        if sta != stb:
            rep.err(f"_dlt_loads status values: {A} {sta}, {B} {stb}")
        sna = sorted(str(r.get("schema_name")) for r in la)
        snb = sorted(str(r.get("schema_name")) for r in lb)
        if sna != snb:
            rep.err(f"_dlt_loads schema_name values: {A} {sna}, {B} {snb}")
    if VERSION in a.rows and VERSION in b.rows:
        va, vb = a.rows[VERSION], b.rows[VERSION]
        if len(va) != len(vb):
            rep.err(f"_dlt_version row count: {A} {len(va)}, {B} {len(vb)}")
        if sorted(r["schema_name"] for r in va) != sorted(r["schema_name"] for r in vb):
            rep.err(f"_dlt_version schema_name values: {A} {sorted(r['schema_name'] for r in va)}, "
                    f"{B} {sorted(r['schema_name'] for r in vb)}")
        nva, nvb = sorted(r["version"] for r in va), sorted(r["version"] for r in vb)
        if nva != nvb:
            rep.warn(f"_dlt_version.version values: {A} {nva}, {B} {nvb}")
    if STATE in a.rows and STATE in b.rows:
        sa_, sb_ = a.rows[STATE], b.rows[STATE]
        if len(sa_) != len(sb_):
            rep.err(f"_dlt_pipeline_state row count: {A} {len(sa_)}, {B} {len(sb_)}")
        pa = sorted(r["pipeline_name"] for r in sa_)
        pb = sorted(r["pipeline_name"] for r in sb_)
        if pa != pb:
            rep.err(f"_dlt_pipeline_state pipeline_name values: {A} {pa}, {B} {pb}")
        decoded = {}
        for rows, side in ((sa_, A), (sb_, B)):
            out = []
            for r in sorted(rows, key=lambda r: (r["version"], str(r["_dlt_load_id"]))):
                try:
                    out.append(decode_state(r["state"]))
                except Exception as e:  # noqa: BLE001 - any decode failure is a mismatch
                    rep.err(f"{side}: _dlt_pipeline_state version {r['version']}: state does not decode "
                            f"(base64 -> zlib -> JSON): {e}")
                    out.append(None)
            decoded[side] = out
        for i, (da, db) in enumerate(zip(decoded[A], decoded[B])):
            if da is None or db is None:
                continue
            set_diff(rep, f"top-level keys of state row {i + 1}", da.keys(), db.keys(), names)
            if da.get("_state_version") != db.get("_state_version"):
                rep.warn(f"state row {i + 1} _state_version: {A} {da.get('_state_version')}, "
                         f"{B} {db.get('_state_version')}")

    check_structure(a, rep, A)
    check_structure(b, rep, B)
    return rep


# ---------------------------------------------------------------------------------------------------
# dump


def dump(ds, out=sys.stdout):
    w = lambda s="": print(s, file=out)
    w(f"dataset {ds.dataset}: {len(ds.columns)} tables")
    w(f"{'postgres' if is_postgres(ds.path) else 'duckdb'} schemas: {', '.join(s for s in ds.schemas if s not in ('information_schema', 'pg_catalog', 'main'))}")
    for t in sorted(ds.columns):
        w()
        w(f"table {t} ({len(ds.rows[t])} rows)")
        for c, ty, nl in ds.columns[t]:
            w(f"    {c}: {ty}{'' if nl else ' NOT NULL'}")
        for kind, cols in ds.constraints.get(t, []):
            w(f"    {kind} ({', '.join(cols)})")
    w()
    if LOADS in ds.rows:
        w(f"_dlt_loads: {len(ds.rows[LOADS])} rows, status {sorted(r['status'] for r in ds.rows[LOADS])}, "
          f"schema_name {sorted({r['schema_name'] for r in ds.rows[LOADS]})}")
    if VERSION in ds.rows:
        w(f"_dlt_version: {len(ds.rows[VERSION])} rows, versions {sorted(r['version'] for r in ds.rows[VERSION])}, "
          f"engine_version {sorted({r['engine_version'] for r in ds.rows[VERSION]})}")
    if STATE in ds.rows:
        for r in sorted(ds.rows[STATE], key=lambda r: r["version"]):
            st = decode_state(r["state"])
            w(f"_dlt_pipeline_state: version {r['version']}, engine_version {r['engine_version']}, "
              f"pipeline_name {r['pipeline_name']}, state keys {sorted(st)}, "
              f"sources {json.dumps(st.get('sources'), sort_keys=True)}")
    for t in ds.data_tables():
        cols = [c for c, _, _ in ds.columns[t] if c not in RANDOM_COLS]
        w()
        w(f"rows of {t} (without {', '.join(c for c in RANDOM_COLS if c in {x for x, _, _ in ds.columns[t]})}), sorted:")
        lines = sorted(" | ".join(f"{c}={show(canon(r.get(c)))}" for c in cols) for r in ds.rows[t])
        for line in lines:
            w(f"    {line}")


# ---------------------------------------------------------------------------------------------------
# self-test


def self_test():
    """dlt vs dlt must agree; planted differences must be caught."""
    fixtures = HERE / "fixtures"
    cases = sorted(p for p in fixtures.iterdir() if (p / "resources.json").exists())
    tmp = Path(tempfile.mkdtemp(prefix="parity-selftest-"))
    failures = 0
    env = dict(os.environ)
    try:
        for case in cases:
            runs = sorted(int(p.name[3:]) for p in case.iterdir() if p.is_dir() and p.name.startswith("run"))
            dbs = {}
            for side in ("a", "b"):
                dbs[side] = tmp / case.name / side / "out.duckdb"
            for n in runs:
                for side in ("a", "b"):
                    r = subprocess.run(
                        [sys.executable, str(HERE / "dlt_load.py"), "--fixtures", str(case), "--run", str(n),
                         "--duckdb", str(dbs[side]), "--pipeline-name", f"parity_{case.name}",
                         "--dataset", "parity_data", "--workdir", str(tmp / case.name / side / "work")],
                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                    if r.returncode != 0:
                        print(r.stdout)
                        raise SystemExit(f"dlt_load.py failed on {case.name}/run{n}")
                rep = compare(Dataset(dbs["a"], "parity_data"), Dataset(dbs["b"], "parity_data"),
                              relaxed_keys(case), f"self-test {case.name}/run{n}", ("dlt-a", "dlt-b"),
                              scd2_tables(case))
                rep.print()
                failures += bool(rep.errors)
        # planted differences, on the last state of the first case that has a child table
        case = next(c for c in cases if c.name == "merge")
        base = tmp / case.name / "a" / "out.duckdb"
        plants = {
            "row deleted": "delete from parity_data.employees_absences_balance where employee_id = 8003",
            "value changed": "update parity_data.employees set status = 'changed' where id = 8001",
            "column added": "alter table parity_data.employees add column extra VARCHAR",
            "type changed": "alter table parity_data.employees alter column first_name type BLOB",
            "table dropped": "drop table parity_data.employees__tags",
            "child moved to other parent": (
                "update parity_data.employees__cost_centers set _dlt_parent_id = "
                "(select _dlt_id from parity_data.employees where id = 8001), _dlt_root_id = "
                "(select _dlt_id from parity_data.employees where id = 8001) where id = 303"),
            "orphan child": "update parity_data.employees__tags set _dlt_parent_id = 'nope'",
            "load row missing": "delete from parity_data._dlt_loads where load_id = (select max(load_id) from parity_data._dlt_loads)",
            "state row added": "insert into parity_data._dlt_pipeline_state select * from parity_data._dlt_pipeline_state",
            "state undecodable": "update parity_data._dlt_pipeline_state set state = 'bm90IHpsaWI='",
            "load status": "update parity_data._dlt_loads set status = 1",
        }
        plants = {what: (case, sql) for what, sql in plants.items()}
        # scd2: a version retired by another load, a row hash that is not dlt's, a second active version
        scd2_case = fixtures / "scd2"
        plants.update({
            "scd2 retired by another load": (scd2_case,
                "update parity_data.employees set _dlt_valid_to = (select min(_dlt_valid_from) from parity_data.employees) "
                "where id = 2 and _dlt_valid_to is not null"),
            "scd2 row hash differs": (scd2_case, "update parity_data.employees set _dlt_id = 'x' || _dlt_id where id = 3"),
            "scd2 two active versions": (scd2_case,
                "update parity_data.employees set _dlt_valid_to = null, _dlt_id = (select _dlt_id from parity_data.employees "
                "where id = 3) where id = 3 or (id = 2 and _dlt_valid_to is not null)"),
        })
        for what, (plant_case, sql) in plants.items():
            base = tmp / plant_case.name / "a" / "out.duckdb"
            planted = tmp / f"planted-{len(what)}-{abs(hash(what))}.duckdb"
            shutil.copy(base, planted)
            con = duckdb.connect(str(planted))
            con.execute(sql)
            con.close()
            rep = compare(Dataset(base, "parity_data"), Dataset(planted, "parity_data"),
                          relaxed_keys(plant_case), f"plant: {what}", ("dlt", "planted"), scd2_tables(plant_case))
            if rep.errors:
                print(f"[plant: {what}] caught: {rep.errors[0].splitlines()[0]}")
            else:
                print(f"[plant: {what}] NOT CAUGHT")
                failures += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = sum(1 for c in cases for p in c.iterdir() if p.is_dir() and p.name.startswith("run")) + len(plants)
    print(f"self-test: {total - failures} passed, {failures} failed")
    return 1 if failures else 0


def main(argv=None):
    p = argparse.ArgumentParser(description="dlt parity: compare two DuckDB datasets")
    p.add_argument("--dlt", help="DuckDB file dlt loaded")
    p.add_argument("--rust", help="DuckDB file the Rust engine loaded")
    p.add_argument("--dataset", default="parity_data")
    p.add_argument("--case-dir", help="fixture case directory (reads compare.json, and resources.json for scd2 tables)")
    p.add_argument("--label", default="")
    p.add_argument("--dump", help="print one DuckDB file's dataset instead of comparing")
    p.add_argument("--self-test", action="store_true")
    args = p.parse_args(argv)
    if args.self_test:
        return self_test()
    if args.dump:
        ds = Dataset(args.dump, args.dataset)
        normalise_validity(ds, scd2_tables(args.case_dir))
        dump(ds)
        return 0
    if not (args.dlt and args.rust):
        p.error("--dlt and --rust are required (or --dump / --self-test)")
    rep = compare(Dataset(args.dlt, args.dataset), Dataset(args.rust, args.dataset),
                  relaxed_keys(args.case_dir), args.label, scd2=scd2_tables(args.case_dir))
    rep.print()
    return 1 if rep.errors else 0


if __name__ == "__main__":
    sys.exit(main())
