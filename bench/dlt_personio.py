#!/usr/bin/env python3
"""Runs dlt's own personio verified source against the sandbox into DuckDB (the dlt side of bench/bench.py).

    dlt_personio.py --base-url http://127.0.0.1:PORT --sources-dir DIR --resources a,b --workdir DIR

`DIR/personio/` is dlt-hub/verified-sources `sources/personio` as published (not part of this repository).
Its client has Personio's host built in; only that attribute is pointed at the sandbox. Employees are asked
for 100 at a time (Personio's limit on that endpoint since 2025-01-31, which the sandbox enforces), the
other resources use the source's default of 200. dlt >= 1.31 refuses the source's cursors
(`allow_external_schedulers=True`) when no scheduler is present; the runner restores the earlier behaviour
(load everything). Prints one JSON line: rows, tables, versions.
"""

import argparse
import json
import os
import sys
from pathlib import Path


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--sources-dir", required=True, type=Path)
    p.add_argument("--resources", required=True)
    p.add_argument("--workdir", required=True, type=Path)
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(args.sources_dir))

    import dlt
    import duckdb
    import personio
    from personio import helpers

    helpers.PersonioAPI.base_url = args.base_url.rstrip("/") + "/v1/"
    # The source declares its cursors with allow_external_schedulers=True; dlt >= 1.31 then refuses to run
    # without a scheduler's interval (ExternalSchedulerNotAvailable). Without one, earlier dlt versions
    # simply loaded everything: keep that behaviour.
    from dlt.extract.incremental import Incremental

    join = Incremental._join_external_scheduler

    def join_if_scheduled(self, ctx):
        if ctx.interval is not None:
            join(self, ctx)

    Incremental._join_external_scheduler = join_if_scheduled
    resources = [r.strip() for r in args.resources.split(",") if r.strip()]
    source = personio.personio_source(client_id="papi-sandbox-client", client_secret="papi-sandbox-secret")
    source = source.with_resources(*resources)
    if "employees" in resources:
        source.resources["employees"].bind(items_per_page=100)
    db = args.workdir / "dlt_bench.duckdb"
    pipeline = dlt.pipeline(
        pipeline_name="dlt_bench",
        destination=dlt.destinations.duckdb(str(db)),
        dataset_name="personio_data",
        pipelines_dir=str(args.workdir / "pipelines"),
    )
    pipeline.run(source)
    con = duckdb.connect(str(db), read_only=True)
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'personio_data' AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\'"
    ).fetchall()]
    rows = sum(con.execute(f'SELECT count(*) FROM personio_data."{t}"').fetchone()[0] for t in tables)
    commit = (args.sources_dir / "personio" / "COMMIT")
    print(json.dumps({
        "rows": rows,
        "tables": len(tables),
        "versions": f"dlt {dlt.__version__}, duckdb {duckdb.__version__}, verified-sources "
                    + (commit.read_text().strip()[:10] if commit.exists() else "unknown"),
    }))


if __name__ == "__main__":
    main()
