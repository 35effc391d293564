//! Contracts: the accepted PDF goes into the contracts bucket (Object Lock,
//! the bucket's default retention, COMPLIANCE by default) under
//! `{tenantRef}/contracts/{contractRef}/{pdfRef}.pdf`; then, in one
//! transaction, the contract moves to accepted with its whole acceptance
//! record (who, email, IP, user agent, when, SHA-256, the object's version
//! and retain-until) and is immutable from then on (PostgreSQL refuses any
//! change). No MongoDB document: the row holds everything.
//!
//! strata never deletes or overwrites a contract object: nothing here or
//! in reconciliation issues a delete on the contracts bucket, and S3 itself
//! refuses one for a version under retention.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Content, ContentError, Step, Stored, checkpoint};
use crate::records::collections::contracts::{Contract, TABLE};
use crate::records::{RecordError, Tx, table};
use crate::stores::postgres::Postgres;

pub const MEDIA_TYPE: &str = "application/pdf";

pub fn key(tenant_ref: &str, contract_ref: &str, pdf_ref: &str) -> String {
    format!("{tenant_ref}/contracts/{contract_ref}/{pdf_ref}.pdf")
}

/// Who accepted, as the platform recorded it.
#[derive(Debug, Clone)]
pub struct Acceptance {
    pub name: String,
    pub email: String,
    pub ip: String,
    pub user_agent: String,
}

/// A PDF under Object Lock.
#[derive(Debug, Clone)]
pub struct LockedPdf {
    pub pdf_ref: String,
    pub stored: Stored,
    pub retain_until: DateTime<Utc>,
}

/// Step one: the PDF into the Object Lock bucket, and its retention read
/// back from S3 (a bucket that gave it none is an error: nothing is
/// accepted without WORM).
pub async fn store_pdf<S, E>(
    content: &Content,
    tenant_ref: &str,
    contract_ref: &str,
    body: S,
) -> Result<LockedPdf, ContentError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let contracts = content.contracts();
    let pdf_ref = ulid::Ulid::generate().to_string();
    let key = key(tenant_ref, contract_ref, &pdf_ref);
    let limit = content.config().contract_max_bytes;
    let stored = contracts.put(&key, MEDIA_TYPE, limit, body).await?;
    let version = stored.version_id.clone().ok_or_else(|| {
        ContentError::Store("the contracts bucket gave the PDF no version id".into())
    })?;
    let retain_until = contracts
        .retain_until(&key, Some(&version))
        .await?
        .ok_or_else(|| {
            ContentError::Store("the contract PDF got no Object Lock retention".into())
        })?;
    checkpoint(Step::Object)?;
    Ok(LockedPdf {
        pdf_ref,
        stored,
        retain_until,
    })
}

/// Step two, in the caller's transaction: the acceptance record and the
/// move to accepted, in one statement (PostgreSQL checks that the record
/// is complete and the move legal).
pub async fn accept(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    contract_ref: &str,
    acceptance: &Acceptance,
    pdf: &LockedPdf,
    actor: &str,
) -> Result<(Contract, Contract), RecordError> {
    let mut values = Map::new();
    for (wire, value) in [
        ("acceptedByName", acceptance.name.clone()),
        ("acceptedByEmail", acceptance.email.clone()),
        ("acceptedIp", acceptance.ip.clone()),
        ("acceptedUserAgent", acceptance.user_agent.clone()),
        ("pdfSha256", pdf.stored.sha256.clone()),
        (
            "pdfVersionId",
            pdf.stored.version_id.clone().unwrap_or_default(),
        ),
        ("retainUntil", pdf.retain_until.to_rfc3339()),
        ("pdfRef", pdf.pdf_ref.clone()),
        ("pdfS3Key", pdf.stored.key.clone()),
    ] {
        values.insert(wire.to_string(), Value::String(value));
    }
    let moved: table::Moved<Contract> = table::transition(
        pg,
        tx,
        tenant_id,
        &TABLE,
        contract_ref,
        "accepted",
        None,
        &values,
        actor,
    )
    .await?;
    Ok((moved.before, moved.after))
}
