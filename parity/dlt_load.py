#!/usr/bin/env python3
"""Load run N of a parity fixture case into DuckDB or PostgreSQL with real dlt.

The dlt half of the parity check (docs/parity.md). Same command line as the Rust example
`load_fixtures`:

    dlt_load.py --fixtures <case_dir> --run <N> (--duckdb <file.duckdb> | --postgres <url>)
                --pipeline-name <name> --dataset <dataset> --workdir <dir>

`--postgres postgresql://user@host:port/database`: load into that database, dataset = PostgreSQL schema.

* `<case_dir>/resources.json` lists every resource of the case:
  `[{"name", "primary_key": [...], "write_disposition": "merge|replace|append", "cursor": null|"field"}]`,
  merge resources optionally with `merge_strategy`, `hard_delete`, `dedup_sort`, `validity_column_names`,
  `active_record_timestamp`, `boundary_timestamp` (see `merge_hints`).
* `<case_dir>/run<N>/<resource>.json` is a JSON array of records. A missing file means the resource is not
  selected in run N; an empty array means selected, yielding nothing.
* `--workdir` holds dlt's local pipeline state (`pipelines_dir`); reuse it for every run of one case.

The resources form one source named `fixtures` (so the schema is `fixtures` and the state lives under
`sources.fixtures`). Replace resources use the replace strategy `insert-from-staging`.
"""

import argparse
import json
import os
import sys
from pathlib import Path

SOURCE_NAME = "fixtures"
REPLACE_STRATEGY = "insert-from-staging"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fixtures", required=True, type=Path, help="case directory")
    p.add_argument("--run", required=True, type=int, help="run number N (reads run<N>/)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--duckdb", type=Path, help="DuckDB file to load into")
    where.add_argument("--postgres", help="PostgreSQL connection string (postgresql://user@host:port/db)")
    p.add_argument("--pipeline-name", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--workdir", required=True, type=Path, help="dlt pipelines_dir, kept across runs")
    return p.parse_args(argv)


def read_case(case_dir: Path, run: int):
    specs = json.loads((case_dir / "resources.json").read_text(encoding="utf-8"))
    if not isinstance(specs, list):
        raise SystemExit(f"{case_dir}/resources.json must be a JSON list")
    run_dir = case_dir / f"run{run}"
    if not run_dir.is_dir():
        raise SystemExit(f"{run_dir} does not exist")
    records = {}
    for spec in specs:
        f = run_dir / f"{spec['name']}.json"
        if f.exists():
            data = json.loads(f.read_text(encoding="utf-8"))
            if not isinstance(data, list):
                raise SystemExit(f"{f} must be a JSON array")
            records[spec["name"]] = data
    return specs, records


MERGE_OPTIONS = ("validity_column_names", "active_record_timestamp", "boundary_timestamp")


def merge_hints(spec):
    """dlt's form of a resource's merge options (docs/parity.md): `merge_strategy` and the scd2 options
    go into the `write_disposition` dict, `hard_delete` and `dedup_sort` become column hints."""
    hints = {}
    if spec.get("write_disposition") == "merge" and ("merge_strategy" in spec or any(k in spec for k in MERGE_OPTIONS)):
        wd = {"disposition": "merge", "strategy": spec.get("merge_strategy", "delete-insert")}
        for k in MERGE_OPTIONS:
            if spec.get(k) is not None:
                wd[k] = spec[k]
        hints["write_disposition"] = wd
    columns = {}
    if spec.get("hard_delete"):
        columns[spec["hard_delete"]] = {"hard_delete": True}
    sort = spec.get("dedup_sort")
    if sort:
        col, order = (sort, "desc") if isinstance(sort, str) else (sort[0], sort[1] if len(sort) > 1 else "desc")
        columns.setdefault(col, {})["dedup_sort"] = order
    if columns:
        hints["columns"] = columns
    return hints


def main(argv=None):
    args = parse_args(argv)
    args.fixtures, args.workdir = args.fixtures.resolve(), args.workdir.resolve()
    if args.duckdb is not None:
        args.duckdb = args.duckdb.resolve()
    # Keep dlt hermetic: no telemetry, no config from the caller's working directory.
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DLT_DATA_DIR", str(args.workdir / "dlt_data"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(args.workdir)

    import dlt

    specs, records = read_case(args.fixtures, args.run)

    @dlt.source(name=SOURCE_NAME)
    def fixtures():
        out = []
        for spec in specs:
            name = spec["name"]
            rows = records.get(name, [])
            pk = list(spec.get("primary_key") or [])
            hints = dict(
                name=name,
                # One key column is passed as a string, as the personio source does: dlt's incremental
                # dedup hashes the bare value then (`1`), a list hint hashes a list (`[1]`).
                primary_key=(pk[0] if len(pk) == 1 else pk) or None,
                write_disposition=spec.get("write_disposition", "append"),
            )
            if spec.get("cursor"):
                hints["incremental"] = dlt.sources.incremental(spec["cursor"], initial_value=None)
            hints.update(merge_hints(spec))
            # A list is yielded as one page, like one fixture file.
            out.append(dlt.resource(list(rows), **hints))
        return out

    selected = [s["name"] for s in specs if s["name"] in records]
    source = fixtures().with_resources(*selected) if selected else None
    if source is None:
        print("no resource selected in this run: nothing to load")
        return 0

    if args.postgres:
        # dlt's defaults for PostgreSQL (insert_values files, create_indexes=True).
        destination = dlt.destinations.postgres(credentials=args.postgres, replace_strategy=REPLACE_STRATEGY)
    else:
        destination = dlt.destinations.duckdb(str(args.duckdb), replace_strategy=REPLACE_STRATEGY)
    pipeline = dlt.pipeline(
        pipeline_name=args.pipeline_name,
        destination=destination,
        dataset_name=args.dataset,
        pipelines_dir=str(args.workdir / "pipelines"),
    )
    info = pipeline.run(source)
    info.raise_on_failed_jobs()
    print(f"dlt {dlt.__version__}: {args.fixtures.name} run{args.run}: "
          f"{len(info.loads_ids)} package(s) loaded, selected {selected}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
