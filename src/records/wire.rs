//! Helpers shared by the collections' record and input types.

use serde::{Deserialize, Deserializer};

/// A present field (even `null`) as `Some`, so that `null` can clear it:
/// `Option<Option<T>>` with `#[serde(default, deserialize_with = "present")]`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A state machine's states as an enum (snake_case on the wire), for the
/// OpenAPI document and to refuse an unknown state before PostgreSQL does.
#[macro_export]
macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }
    };
}

/// Implements [`crate::records::table::Versioned`] for a record type with
/// `record_ref` and `etag` fields.
#[macro_export]
macro_rules! versioned {
    ($name:ident) => {
        impl $crate::records::table::Versioned for $name {
            fn record_ref(&self) -> &str {
                &self.record_ref
            }
            fn version(&self) -> &str {
                &self.etag
            }
        }
    };
}
