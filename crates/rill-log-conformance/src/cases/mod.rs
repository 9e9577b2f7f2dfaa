//! The conformance cases, one public function per case, grouped by area. Each module's
//! `FEATURE` names the feature group its cases need (`None`: every backend must pass them).
//!
//! Cases take the harness as `&mut dyn Harness` and fail by panicking with a message that says
//! what was expected and what happened.

pub mod admin;
pub mod dense_offsets;
pub mod errors;
pub mod group_admin;
pub mod group_offsets;
pub mod groups;
pub mod offsets;
pub mod produce_consume;
pub mod recovery;
pub mod retention;
pub mod timestamps;
pub mod topic_admin;
pub mod transactions;
