//! Personio source: resource declarations.
