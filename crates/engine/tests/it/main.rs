//! Integration tests of the engine.

mod memdest;
mod normalize;
mod state_trust;
mod trace;
