//! Seeded fault schedules (issue 11): a seed becomes a [`schedule::Schedule`] of pod writes
//! and injected faults, a [`lane::Lane`] of `sim` clusters runs it under a fresh
//! `Runtime`, and [`history`] holds what each handler saw and the rules it must keep.
#![allow(dead_code)]

pub mod history;
pub mod lane;
pub mod schedule;
