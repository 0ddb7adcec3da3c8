//! Load run N of a fixture case into DuckDB or PostgreSQL with the engine (used by `parity/run.sh`).
//!
//! `load_fixtures --fixtures <case_dir> --run <N> (--duckdb <file> | --postgres <url>) --pipeline-name <name> --dataset <ds> --workdir <dir>`
//!
//! `--postgres postgresql://user[:password]@host:port/database`: the dataset is a schema of that database.

use std::path::PathBuf;
use std::process::ExitCode;

use pipeline_destinations::duckdb::DuckDbConfig;
use pipeline_destinations::postgres::PostgresConfig;
use pipeline_engine::fixture::FixtureSource;
use pipeline_engine::load::Destination;
use pipeline_engine::pipeline::{Pipeline, PipelineConfig};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: load_fixtures --fixtures <case_dir> --run <N> (--duckdb <file> | --postgres <url>) --pipeline-name <name> --dataset <ds> --workdir <dir>";
    let (Some(fixtures), Some(run), Some(name), Some(dataset), Some(workdir)) = (
        arg(&args, "--fixtures"),
        arg(&args, "--run"),
        arg(&args, "--pipeline-name"),
        arg(&args, "--dataset"),
        arg(&args, "--workdir"),
    ) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let (duckdb, postgres) = (arg(&args, "--duckdb"), arg(&args, "--postgres"));
    if duckdb.is_some() == postgres.is_some() {
        eprintln!("{usage}\n(exactly one of --duckdb and --postgres)");
        return ExitCode::from(2);
    }
    let Ok(run) = run.parse::<u32>() else {
        eprintln!("--run must be a number");
        return ExitCode::from(2);
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let result: Result<(), String> = rt.block_on(async {
        let (source, selected) = FixtureSource::from_case_dir(&PathBuf::from(&fixtures), run)?;
        let mut destination: Box<dyn Destination> = match (&duckdb, &postgres) {
            (Some(db), _) => Box::new(DuckDbConfig::at(PathBuf::from(db), &dataset).build().map_err(|e| e.to_string())?),
            (_, Some(url)) => Box::new(
                PostgresConfig::from_connection_string(url, &dataset).and_then(|c| c.build()).map_err(|e| e.to_string())?,
            ),
            (None, None) => return Err(usage.to_string()),
        };
        let pipeline = Pipeline::open(PipelineConfig::new(&name, &dataset, PathBuf::from(&workdir))).map_err(|e| e.to_string())?;
        let report = pipeline.run(&source, Some(&selected), destination.as_mut()).await.map_err(|e| e.to_string())?;
        print!("{report}");
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
