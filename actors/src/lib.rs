//! `panoptes-actors`: client-go's informer machinery as actix actors.
//!
//! INTERFACE CONTRACT (written before the implementation): `ids` and the messages in
//! `reflector` are shared between the reflector and the rest of the pipeline. Names and
//! signatures there are fixed; everything else is free.

pub mod backoff;
pub mod ids;
pub mod list_watch;
pub mod reflector;
