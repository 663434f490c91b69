//! `panoptes-runtime`: wires Panoptes actors to the world.
pub mod config;
pub mod metrics;
pub mod health;
pub mod connection;
pub mod telemetry;
