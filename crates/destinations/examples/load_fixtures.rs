//! Load run N of a fixture case into DuckDB with the engine (used by `parity/run.sh`).
//!
//! `load_fixtures --fixtures <case_dir> --run <N> --duckdb <file> --pipeline-name <name> --dataset <ds> --workdir <dir>`

use std::path::PathBuf;
use std::process::ExitCode;

use pipeline_destinations::duckdb::DuckDbConfig;
use pipeline_engine::fixture::FixtureSource;
use pipeline_engine::pipeline::{Pipeline, PipelineConfig};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(fixtures), Some(run), Some(db), Some(name), Some(dataset), Some(workdir)) = (
        arg(&args, "--fixtures"),
        arg(&args, "--run"),
        arg(&args, "--duckdb"),
        arg(&args, "--pipeline-name"),
        arg(&args, "--dataset"),
        arg(&args, "--workdir"),
    ) else {
        eprintln!("usage: load_fixtures --fixtures <case_dir> --run <N> --duckdb <file> --pipeline-name <name> --dataset <ds> --workdir <dir>");
        return ExitCode::from(2);
    };
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
        let mut destination = DuckDbConfig::at(PathBuf::from(&db), &dataset).build().map_err(|e| e.to_string())?;
        let pipeline = Pipeline::open(PipelineConfig::new(&name, &dataset, PathBuf::from(&workdir))).map_err(|e| e.to_string())?;
        let report = pipeline.run(&source, Some(&selected), &mut destination).await.map_err(|e| e.to_string())?;
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
