//! The Personio source for the pipeline engine.
//!
//! * [`resources`]: every resource as a declaration (endpoint, key, disposition, cursor, paging style).
//! * [`shape`]: how an API item becomes the record dlt's source would yield.
//! * [`source`]: [`PersonioSource`], the generic extractor that runs the declarations.
#![deny(missing_docs)]

pub mod resources;
pub mod shape;
pub mod source;

pub use source::{resource_specs, PersonioSource, PersonioSourceError, ProgressFn, SourceOptions};
