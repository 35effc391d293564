//! Usage events in bulk and billing sums: a batch of events is ONE
//! statement (the items travel as one `jsonb` array), idempotent by the
//! events' own refs; summaries add quantities per metric and calendar
//! month in UTC, for one tenant (its transaction, row-level security) or
//! for every tenant (the administrative path, for invoicing).

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::batch::{ItemError, ItemResult, check_refs, is_ulid, outcome_of};
use super::{RecordError, Tx};
use crate::stores::postgres::Postgres;

/// One event to record.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUsageEvent {
    /// The event's ref, made by the client (a ULID): a retry with the same
    /// ref records nothing new.
    #[serde(rename = "ref")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub record_ref: String,
    /// e.g. `tokens.input`: lower-case, digits, `_` and `.`.
    #[schema(pattern = "^[a-z][a-z0-9_.]{0,99}$", example = "tokens.input")]
    pub metric: String,
    #[schema(minimum = 0)]
    pub quantity: i64,
    /// Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub activity_ref: Option<String>,
}

/// `^[a-z][a-z0-9_.]{0,99}$`, as the table's check says.
pub fn is_metric(metric: &str) -> bool {
    let bytes = metric.as_bytes();
    (1..=100).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'.')
}

fn check(event: &NewUsageEvent) -> Option<ItemError> {
    if !is_metric(&event.metric) {
        return Some(ItemError::invalid(
            "metric",
            "must match ^[a-z][a-z0-9_.]{0,99}$",
        ));
    }
    if event.quantity < 0 {
        return Some(ItemError::invalid("quantity", "must not be negative"));
    }
    if event.activity_ref.as_deref().is_some_and(|r| !is_ulid(r)) {
        return Some(ItemError::invalid("activityRef", "must be a ULID"));
    }
    None
}

/// Checks what the request's schema states (patterns, ranges) for every
/// event: one bad event refuses the whole batch (422 naming
/// `{list}[i].field`), before anything is written.
pub fn validate(events: &[NewUsageEvent], list: &str) -> Result<(), RecordError> {
    for (index, event) in events.iter().enumerate() {
        let error = if is_ulid(&event.record_ref) {
            check(event)
        } else {
            Some(ItemError::invalid("ref", "must be a ULID"))
        };
        if let Some(error) = error {
            let field = error.field.unwrap_or_default();
            return Err(RecordError::InvalidField {
                field: if list.is_empty() {
                    field
                } else {
                    format!("{list}[{index}].{field}")
                },
                message: error.message,
            });
        }
    }
    Ok(())
}

/// Records `events` for the tenant in one statement (after [`validate`]).
/// Every item gets a result: `created`, `existing` (its ref was recorded
/// before: a retry) or `refused` (a ref repeated in the batch, an activity
/// that does not resolve within the tenant, or a ref another tenant's
/// event holds).
pub async fn record(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    events: &[NewUsageEvent],
    list: &str,
) -> Result<Vec<ItemResult>, RecordError> {
    validate(events, list)?;
    let mut results = Vec::with_capacity(events.len());
    let mut refused = vec![false; events.len()];
    for (index, error) in check_refs(events.iter().map(|e| e.record_ref.as_str())) {
        refused[index] = true;
        results.push(ItemResult::refused(index, &events[index].record_ref, error));
    }
    let mut rows = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        if refused[index] {
            continue;
        }
        rows.push(json!({
            "i": index,
            "ref": event.record_ref,
            "metric": event.metric,
            "quantity": event.quantity,
            "occurred_at": event.occurred_at,
            "activity_ref": event.activity_ref,
        }));
    }
    if rows.is_empty() {
        return Ok(results);
    }
    // All sub-statements see one snapshot: `existing` is what was there
    // before this statement, `inserted` what it wrote.
    let reported: Vec<(i32, String)> = pg
        .query_as(
            "WITH input AS ( \
               SELECT * FROM jsonb_to_recordset($2::jsonb) AS x( \
                 i integer, ref text, metric text, quantity bigint, \
                 occurred_at timestamptz, activity_ref text) \
             ), resolved AS ( \
               SELECT input.*, a.id AS activity_id FROM input \
               LEFT JOIN activities a ON a.tenant_id = $1 \
                 AND a.ref_id = input.activity_ref AND a.deleted_on IS NULL \
             ), inserted AS ( \
               INSERT INTO usage_events (ref_id, tenant_id, activity_id, metric, quantity, occurred_on) \
               SELECT r.ref, $1, r.activity_id, r.metric, r.quantity, coalesce(r.occurred_at, now()) \
               FROM resolved r WHERE r.activity_ref IS NULL OR r.activity_id IS NOT NULL \
               ON CONFLICT (ref_id) DO NOTHING \
               RETURNING ref_id::text AS ref \
             ) \
             SELECT r.i, CASE \
                 WHEN r.activity_ref IS NOT NULL AND r.activity_id IS NULL THEN 'no_activity' \
                 WHEN n.ref IS NOT NULL THEN 'created' \
                 WHEN e.ref_id IS NOT NULL THEN 'existing' \
                 ELSE 'ref_taken' END \
             FROM resolved r \
             LEFT JOIN inserted n ON n.ref = r.ref \
             LEFT JOIN usage_events e ON e.tenant_id = $1 AND e.ref_id = r.ref \
             ORDER BY r.i",
        )
        .bind(tenant_id)
        .bind(Value::Array(rows))
        .fetch_all(&mut **tx)
        .await?;
    for (index, outcome) in reported {
        let index = index as usize;
        results.push(outcome_of(index, &events[index].record_ref, &outcome));
    }
    results.sort_by_key(|r| r.index);
    Ok(results)
}

/// A calendar month (`YYYY-MM`), always read in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    /// `YYYY-MM`, years 1970–9999.
    pub fn parse(text: &str) -> Option<Month> {
        let (year, month) = text.split_once('-')?;
        if year.len() != 4
            || month.len() != 2
            || !(year.bytes().chain(month.bytes())).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let (year, month): (i32, u32) = (year.parse().ok()?, month.parse().ok()?);
        ((1970..=9999).contains(&year) && (1..=12).contains(&month))
            .then_some(Month { year, month })
    }

    pub fn of(time: DateTime<Utc>) -> Month {
        Month {
            year: time.year(),
            month: time.month(),
        }
    }

    /// Its first instant (00:00 UTC on the 1st).
    pub fn start(self) -> DateTime<Utc> {
        let day = NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or_default();
        Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The sum of one metric in one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct MonthlyUsage {
    /// `YYYY-MM` (UTC).
    #[schema(example = "2026-11")]
    pub month: String,
    pub metric: String,
    /// The sum of the events' quantities.
    pub quantity: i64,
    /// How many events.
    pub events: i64,
}

/// [`MonthlyUsage`] of one tenant, for invoicing across tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TenantMonthlyUsage {
    pub tenant_ref: String,
    pub month: String,
    pub metric: String,
    pub quantity: i64,
    pub events: i64,
}

/// What one tenant's summary reads: per month of `$2..=$3` (the months'
/// first instants as UTC wall-clock `timestamp`s, so that month arithmetic
/// never meets a time zone), one range scan of the tenant's events in
/// `[month, month + 1)` summed per metric in a small hash table; no sort of
/// the events themselves.
pub const TENANT_SUMMARY_SQL: &str = "\
    SELECT to_char(m.month, 'YYYY-MM') AS month, s.metric, s.quantity, s.events \
    FROM generate_series($2::timestamp, $3::timestamp, interval '1 month') AS m(month) \
    CROSS JOIN LATERAL ( \
      SELECT u.metric, sum(u.quantity)::bigint AS quantity, count(*) AS events \
      FROM usage_events u \
      WHERE u.tenant_id = $1 AND u.deleted_on IS NULL \
        AND u.occurred_on >= (m.month AT TIME ZONE 'UTC') \
        AND u.occurred_on < ((m.month + interval '1 month') AT TIME ZONE 'UTC') \
      GROUP BY u.metric) s \
    ORDER BY 1, 2";

/// Every tenant's: the same scans per tenant and month (an index on
/// (tenant_id, occurred_on) cannot serve a time range across tenants by
/// itself).
pub const ADMIN_SUMMARY_SQL: &str = "\
    SELECT t.ref_id::text AS tenant_ref, to_char(m.month, 'YYYY-MM') AS month, \
           s.metric, s.quantity, s.events \
    FROM tenants t \
    CROSS JOIN generate_series($1::timestamp, $2::timestamp, interval '1 month') AS m(month) \
    CROSS JOIN LATERAL ( \
      SELECT u.metric, sum(u.quantity)::bigint AS quantity, count(*) AS events \
      FROM usage_events u \
      WHERE u.tenant_id = t.id AND u.deleted_on IS NULL \
        AND u.occurred_on >= (m.month AT TIME ZONE 'UTC') \
        AND u.occurred_on < ((m.month + interval '1 month') AT TIME ZONE 'UTC') \
      GROUP BY u.metric) s \
    ORDER BY 2, 1, 3";

/// One tenant's usage from the month `from` to the month `to` (both
/// included).
pub async fn summary(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    from: Month,
    to: Month,
) -> Result<Vec<MonthlyUsage>, RecordError> {
    Ok(pg
        .query_as(TENANT_SUMMARY_SQL)
        .bind(tenant_id)
        .bind(from.start().naive_utc())
        .bind(to.start().naive_utc())
        .fetch_all(&mut **tx)
        .await?)
}

/// Every tenant's usage (the administrative path: the migration role sees
/// every tenant's rows), for invoicing.
pub async fn summary_all(
    pg: &Postgres,
    from: Month,
    to: Month,
) -> Result<Vec<TenantMonthlyUsage>, RecordError> {
    let mut tx = pg.begin_admin().await?;
    let rows = pg
        .query_as(ADMIN_SUMMARY_SQL)
        .bind(from.start().naive_utc())
        .bind(to.start().naive_utc())
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_strictly_and_bound_in_utc() {
        let m = Month::parse("2026-12").expect("month");
        assert_eq!(m.to_string(), "2026-12");
        assert_eq!(m.start().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(m.next().start().to_rfc3339(), "2027-01-01T00:00:00+00:00");
        for bad in [
            "2026-13", "2026-00", "26-01", "2026-1", "2026/01", "1969-12", "+026-01", "",
        ] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
        assert!(Month::parse("2026-01") < Month::parse("2026-02"));
    }

    #[test]
    fn metrics_follow_the_table_check() {
        for good in ["tokens.input", "a", "x_1.y"] {
            assert!(is_metric(good), "{good}");
        }
        for bad in ["", "Tokens", "1x", "a-b", &"a".repeat(101)] {
            assert!(!is_metric(bad), "{bad}");
        }
    }
}
