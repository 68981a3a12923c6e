//! Integration tests: the real binary and the real pipeline against the simulated Akua API
//! and recording receivers, all on 127.0.0.1.

mod active;
mod cli;
mod delivery;
mod detect;
mod model;
mod pipeline;
mod receiver;
mod sidecar;
mod support;
