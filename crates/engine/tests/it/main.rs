//! Integration tests of the engine.

mod memdest;
mod normalize;
mod reconcile;
mod state_trust;
mod trace;
