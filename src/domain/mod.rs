//! Domain rules as pure logic: no I/O, no HTTP. PostgreSQL enforces the
//! same rules itself (see `migrations/postgres/`); this side lets strata
//! explain them (allowed next states, documentation) without a round trip.

pub mod state_machines;
