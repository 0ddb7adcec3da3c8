//! Integration tests of the engine.

mod normalize;
