//! Tenant records in PostgreSQL: the narrow data layer under the data API.
//! Every function takes the request's transaction (on which the tenant is
//! already set for row-level security) and speaks in record terms, not
//! HTTP. The collections are described as data ([`collections`]) and
//! served by one generic layer ([`table`]). Cross-tenant administration
//! (tenants, service tokens) runs on the administrative path instead (see
//! [`admin`]).

pub mod admin;
pub mod auth;
pub mod batch;
pub mod collections;
pub mod error;
pub mod page;
pub mod table;
pub mod usage;
pub mod wire;

pub use error::RecordError;

/// The transaction of one unit of work.
pub type Tx = sqlx::Transaction<'static, sqlx::Postgres>;
