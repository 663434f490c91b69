//! `panoptes-runtime`: wires Panoptes actors to the world.
pub mod config;
