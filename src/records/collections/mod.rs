//! The ten tenant collections (SPEC section 2), each described once as
//! data for [`crate::records::table`]: the table, its fields and what a
//! transition does, plus the record type it is read into and the typed
//! inputs a create, update or transition accepts.

pub mod activities;
pub mod blog_posts;
pub mod contracts;
pub mod integrations;
pub mod onboarding_runs;
pub mod skills;
pub mod social_posts;
pub mod strategies;
pub mod tool_calls;
pub mod usage_events;

use super::table::Table;

/// Every collection's table, for tests and tooling that walk them all.
pub const ALL: [&Table; 10] = [
    &activities::TABLE,
    &blog_posts::TABLE,
    &social_posts::TABLE,
    &onboarding_runs::TABLE,
    &strategies::TABLE,
    &contracts::TABLE,
    &tool_calls::TABLE,
    &skills::TABLE,
    &integrations::TABLE,
    &usage_events::TABLE,
];
