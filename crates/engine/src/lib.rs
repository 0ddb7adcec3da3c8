//! The pipeline engine: extract → normalize → load, dlt-compatible, knowing nothing about Personio.
//!
//! * [`extract`]: a [`extract::Source`] declares [`extract::ResourceSpec`]s and sends pages of JSON records.
//! * [`incremental`]: cursors with a closed lower bound and boundary dedup, pushed into API queries.
//! * [`normalize`]: JSON records → relational rows in Arrow batches, dlt's naming and typing.
//! * [`schema`]: the versioned dataset schema.
//! * [`package`]: load packages on disk between normalize and load.
//! * [`state`]: the pipeline state document, committed with the data.
//! * [`load`]: the [`load::Destination`] trait and the [`load::Capabilities`] a destination declares.
//! * [`merge`]: dlt's merge strategies (`delete-insert`, `upsert`, `scd2`) and merge hints.
//! * [`plan`]: the [`plan::LoadPlan`] a package becomes: what each destination executes.
//! * [`memory`]: the in-memory reference destination.
//! * [`reconcile`]: deletion detection: rows whose keys the source no longer serves, hard or soft.
//! * [`pipeline`]: a run that ties them together.
//! * [`trace`]: the steps of a run, written to `trace.json`.
#![deny(missing_docs)]

pub mod extract;
pub mod fixture;
pub mod incremental;
pub mod load;
pub mod memory;
pub mod merge;
pub mod naming;
pub mod normalize;
pub mod package;
pub mod pipeline;
pub mod plan;
pub mod reconcile;
pub mod schema;
pub mod state;
pub mod trace;
pub mod typed;
