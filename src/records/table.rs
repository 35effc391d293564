//! The generic record layer: every tenant collection is described once as
//! data (a [`Table`]: its columns, their wire names and kinds, which ones a
//! create, an update or a transition may set, and what a transition does
//! besides changing the status), and the SQL of create, get, list, update,
//! transition and soft delete is derived from that description.
//!
//! Values reach PostgreSQL as ONE `jsonb` parameter (`$3`) and are cast by
//! PostgreSQL itself (`($3->>'title')`, `($3->>'wordCount')::integer`): a
//! statement has at most four parameters whatever the collection, and the
//! SQL text only ever contains identifiers from the static descriptions,
//! never input. Every statement names the tenant (`t.tenant_id = $1`) AND
//! runs in a transaction on which row-level security is set to that tenant.
//!
//! Parameters: `$1` tenant id, `$2` record ref, `$3` the values (jsonb),
//! `$4` the actor (the token's name, e.g. for `approved_by`).

use serde_json::{Map, Value};
use sqlx::postgres::PgRow;

use super::page::{Cursor, Page};
use super::{RecordError, Tx};
use crate::stores::postgres::Postgres;

/// What a column holds, which decides how a wire value is cast and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Integer,
    BigInt,
    Timestamp,
    /// A ULID (a pointer into MongoDB, e.g. `output_ref`).
    Ulid,
    /// An IP address (`inet`), on the wire as text.
    Inet,
    /// `activity_id`: on the wire the activity's ref, resolved within the
    /// tenant (a ref of another tenant resolves to nothing).
    ActivityRef,
}

/// One column as the API sees it.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The Rust field of the record type and the SQL alias it is read as
    /// (snake_case of the wire name, e.g. `published_at`).
    pub name: &'static str,
    /// The table's column (e.g. `published_on`).
    pub column: &'static str,
    pub kind: Kind,
    /// May be set when creating.
    pub create: bool,
    /// May be changed by PATCH.
    pub update: bool,
    /// May be set with a transition (e.g. `error` when failing).
    pub transition: bool,
    /// SQL giving the value when a create leaves the field out (else the
    /// column's default).
    pub default: Option<&'static str>,
}

impl Field {
    pub const fn new(name: &'static str, column: &'static str, kind: Kind) -> Self {
        Self {
            name,
            column,
            kind,
            create: false,
            update: false,
            transition: false,
            default: None,
        }
    }

    pub const fn create(mut self) -> Self {
        self.create = true;
        self
    }

    pub const fn update(mut self) -> Self {
        self.update = true;
        self
    }

    pub const fn transition(mut self) -> Self {
        self.transition = true;
        self
    }

    pub const fn default(mut self, sql: &'static str) -> Self {
        self.default = Some(sql);
        self
    }

    /// The name on the wire (camelCase).
    pub fn wire(&self) -> String {
        camel(self.name)
    }

    /// How the column is read (aliased as [`Field::name`]).
    fn select(&self) -> String {
        let column = self.column;
        match self.kind {
            Kind::Ulid => format!("t.{column}::text"),
            Kind::Inet => format!("host(t.{column})"),
            Kind::ActivityRef => format!(
                "(SELECT x.ref_id::text FROM activities x \
                 WHERE x.tenant_id = t.tenant_id AND x.id = t.{column})"
            ),
            _ => format!("t.{column}"),
        }
    }

    /// The value of this field from `$3`, cast to the column's type.
    fn value(&self) -> String {
        let wire = self.wire();
        match self.kind {
            Kind::Text => format!("($3->>'{wire}')"),
            Kind::Integer => format!("($3->>'{wire}')::integer"),
            Kind::BigInt => format!("($3->>'{wire}')::bigint"),
            Kind::Timestamp => format!("($3->>'{wire}')::timestamptz"),
            Kind::Ulid => format!("($3->>'{wire}')::ulid"),
            Kind::Inet => format!("($3->>'{wire}')::inet"),
            Kind::ActivityRef => format!(
                "(SELECT x.id FROM activities x WHERE x.tenant_id = $1 \
                 AND x.ref_id = ($3->>'{wire}') AND x.deleted_on IS NULL)"
            ),
        }
    }
}

/// What a transition to one of `to` does besides setting the status: SQL
/// assignments (may use `t.`, `$3` and `$4`).
#[derive(Debug, Clone, Copy)]
pub struct Effect {
    pub to: &'static [&'static str],
    pub set: &'static str,
}

/// Another record of the tenant that moves first, in the same transaction,
/// when a record moves to one of `to` (e.g. the active strategy is
/// superseded when another one becomes active). It is a transition of its
/// own: the state machine judges it, and it has its own audit diff.
#[derive(Debug, Clone, Copy)]
pub struct Before {
    pub to: &'static [&'static str],
    /// Which other records move (an SQL condition on `t`, besides the
    /// tenant, not deleted and not the record itself).
    pub which: &'static str,
    /// The state they move to.
    pub moves_to: &'static str,
    /// Further SQL assignments (may use `t.`).
    pub set: &'static str,
}

/// One tenant collection.
#[derive(Debug)]
pub struct Table {
    /// The table, which is also the state machine's entity name.
    pub name: &'static str,
    /// The URL segment (`blog-posts`).
    pub collection: &'static str,
    pub fields: &'static [Field],
    /// Has a `status` governed by `strata_transitions`.
    pub has_status: bool,
    /// Rows with `tenant_id IS NULL` (global templates) are readable by
    /// every tenant, never writable through the data API.
    pub globals: bool,
    /// Extra columns set on every insert, as SQL (may use `$1`, `$3`).
    pub on_insert: &'static [(&'static str, &'static str)],
    pub effects: &'static [Effect],
    pub before: &'static [Before],
}

/// The record types a [`Table`] is read into.
pub trait Versioned {
    fn record_ref(&self) -> &str;
    /// The ETag: changes with every write of the row.
    fn version(&self) -> &str;
}

/// A list's filters.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<String>,
    pub created_from: Option<chrono::DateTime<chrono::Utc>>,
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// Which operation a set of values is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Create,
    Update,
    Transition,
}

impl Table {
    /// The select list of a record (`t.` is the table).
    pub fn columns(&self) -> String {
        let mut select = String::from("t.ref_id::text AS record_ref");
        for field in self.fields {
            select.push_str(&format!(", {} AS {}", field.select(), field.name));
        }
        if self.has_status {
            select.push_str(", t.status");
        }
        if self.globals {
            select.push_str(", (t.tenant_id IS NULL) AS global");
        }
        select.push_str(
            ", t.created_on AS created_at, t.updated_on AS updated_at, \
             substr(md5(t.xmin::text || ':' || t.updated_on::text), 1, 20) AS etag",
        );
        select
    }

    /// Rows of this tenant (and global ones, for reads of a table that
    /// has them), not deleted.
    fn visible(&self, for_read: bool) -> &'static str {
        if self.globals && for_read {
            "(t.tenant_id = $1 OR t.tenant_id IS NULL) AND t.deleted_on IS NULL"
        } else {
            "t.tenant_id = $1 AND t.deleted_on IS NULL"
        }
    }

    /// The field behind a wire name.
    pub fn field(&self, wire: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.wire() == wire)
    }

    /// The wire name of the field a constraint is about, when PostgreSQL's
    /// name for it says so (`blog_posts_title_check`).
    pub fn field_of_constraint(&self, constraint: &str) -> Option<String> {
        let rest = constraint.strip_prefix(self.name)?.strip_prefix('_')?;
        self.fields
            .iter()
            .filter(|f| rest.starts_with(f.column))
            .max_by_key(|f| f.column.len())
            .map(|f| f.wire())
    }

    /// Checks that `values` only names fields `purpose` may set and that
    /// each value has its kind's form. The typed request bodies refuse
    /// unknown fields already; this holds the description to them.
    pub fn check(&self, values: &Map<String, Value>, purpose: Purpose) -> Result<(), RecordError> {
        for (wire, value) in values {
            let allowed = self.field(wire).filter(|f| match purpose {
                Purpose::Create => f.create,
                Purpose::Update => f.update,
                Purpose::Transition => f.transition,
            });
            let Some(field) = allowed else {
                // `status` and `to` are handled by the callers.
                if wire == "status" && purpose == Purpose::Create && self.has_status {
                    continue;
                }
                return Err(RecordError::InvalidField {
                    field: wire.clone(),
                    message: "cannot be set here".to_string(),
                });
            };
            check_value(field, wire, value)?;
        }
        Ok(())
    }
}

fn check_value(field: &Field, wire: &str, value: &Value) -> Result<(), RecordError> {
    let invalid = |message: &str| RecordError::InvalidField {
        field: wire.to_string(),
        message: message.to_string(),
    };
    let Some(text) = value.as_str() else {
        return match (field.kind, value) {
            (_, Value::Null) => Ok(()),
            (Kind::Integer | Kind::BigInt, Value::Number(_)) => Ok(()),
            _ => Err(invalid("has the wrong type")),
        };
    };
    match field.kind {
        Kind::Ulid | Kind::ActivityRef => match text.parse::<ulid::Ulid>() {
            Ok(parsed) if parsed.to_string() == text => Ok(()),
            _ => Err(invalid("must be a ULID")),
        },
        Kind::Inet => text
            .parse::<std::net::IpAddr>()
            .map(|_| ())
            .map_err(|_| invalid("must be an IP address")),
        Kind::Timestamp => chrono::DateTime::parse_from_rfc3339(text)
            .map(|_| ())
            .map_err(|_| invalid("must be an RFC 3339 timestamp")),
        Kind::Text => {
            if text.contains('\0') {
                Err(invalid("must not contain NUL characters"))
            } else {
                Ok(())
            }
        }
        Kind::Integer | Kind::BigInt => Err(invalid("must be an integer")),
    }
}

/// `published_at` → `publishedAt`.
pub fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn safe(sql: String) -> sqlx::AssertSqlSafe<String> {
    // Built from the static table descriptions only; values are bound.
    sqlx::AssertSqlSafe(sql)
}

/// A referenced activity that does not resolve (unknown, deleted, or of
/// another tenant): the insert/update stored NULL, so say which field.
fn check_activity_refs<R: serde::Serialize>(
    table: &Table,
    values: &Map<String, Value>,
    stored: &R,
) -> Result<(), RecordError> {
    let stored = serde_json::to_value(stored).unwrap_or_default();
    for field in table.fields.iter().filter(|f| f.kind == Kind::ActivityRef) {
        let wire = field.wire();
        let asked = values.get(&wire).and_then(Value::as_str);
        if asked.is_some() && stored.get(&wire).and_then(Value::as_str) != asked {
            return Err(RecordError::InvalidField {
                field: wire,
                message: "no such activity".to_string(),
            });
        }
    }
    Ok(())
}

pub async fn create<R>(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    table: &Table,
    values: &Map<String, Value>,
    actor: &str,
) -> Result<R, RecordError>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + serde::Serialize + Send + Unpin,
{
    table.check(values, Purpose::Create)?;
    let mut columns = vec!["ref_id".to_string(), "tenant_id".to_string()];
    let mut exprs = vec!["$2::ulid".to_string(), "$1".to_string()];
    for field in table.fields.iter().filter(|f| f.create) {
        if values.contains_key(&field.wire()) {
            columns.push(field.column.to_string());
            exprs.push(field.value());
        } else if let Some(default) = field.default {
            columns.push(field.column.to_string());
            exprs.push(default.to_string());
        }
    }
    if table.has_status && values.contains_key("status") {
        columns.push("status".to_string());
        exprs.push("($3->>'status')".to_string());
    }
    for (column, expr) in table.on_insert {
        columns.push(column.to_string());
        exprs.push(expr.to_string());
    }
    let sql = format!(
        "INSERT INTO {name} AS t ({columns}) VALUES ({exprs}) RETURNING {select}",
        name = table.name,
        columns = columns.join(", "),
        exprs = exprs.join(", "),
        select = table.columns(),
    );
    let created: R = pg
        .query_as(safe(sql))
        .bind(tenant_id)
        .bind(ulid::Ulid::generate().to_string())
        .bind(Value::Object(values.clone()))
        .bind(actor)
        .fetch_one(&mut **tx)
        .await?;
    check_activity_refs(table, values, &created)?;
    Ok(created)
}

// Refs are compared as text (`t.ref_id = $2`), never cast to the `ulid`
// domain in a WHERE clause: PostgreSQL does not fold a domain cast into a
// constant, so it skipped the ref's index and re-checked the domain's regex
// on every row of a sequential scan (a GET took 380 ms over 21,000 rows,
// 0.08 ms compared as text; found by the side-by-side bench). The refs are
// ULIDs already: the API checks them, and cursors hold parsed ones.
pub async fn get<R>(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    table: &Table,
    record_ref: &str,
) -> Result<R, RecordError>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    let sql = format!(
        "SELECT {select} FROM {name} t WHERE {visible} AND t.ref_id = $2",
        select = table.columns(),
        name = table.name,
        visible = table.visible(true),
    );
    pg.query_as(safe(sql))
        .bind(tenant_id)
        .bind(record_ref)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(RecordError::NotFound)
}

/// The tenant's records of these refs (a batch's, read back in one query),
/// in no particular order; refs without a visible record are left out.
pub async fn get_many<R>(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    table: &Table,
    record_refs: &[String],
) -> Result<Vec<R>, RecordError>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    if record_refs.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        // Compared as text: a cast of the array to the `ulid` domain would be
        // re-checked per row under row-level security (measured: 41 s for
        // 1,000 refs over 8,000 rows, against 3 ms as text).
        "SELECT {select} FROM {name} t WHERE {visible} AND t.ref_id::text = ANY($2::text[])",
        select = table.columns(),
        name = table.name,
        visible = table.visible(true),
    );
    Ok(pg
        .query_as(safe(sql))
        .bind(tenant_id)
        .bind(record_refs)
        .fetch_all(&mut **tx)
        .await?)
}

/// Locks the tenant's own row for the rest of the transaction and checks
/// the version the client last saw, if it sent one.
pub async fn lock<R>(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    table: &Table,
    record_ref: &str,
    if_match: Option<&str>,
) -> Result<R, RecordError>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Versioned + Send + Unpin,
{
    let sql = format!(
        "SELECT {select} FROM {name} t WHERE {visible} AND t.ref_id = $2 FOR UPDATE",
        select = table.columns(),
        name = table.name,
        visible = table.visible(false),
    );
    let current: R = pg
        .query_as(safe(sql))
        .bind(tenant_id)
        .bind(record_ref)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(RecordError::NotFound)?;
    match if_match {
        Some(version) if version != current.version() => Err(RecordError::StaleVersion),
        _ => Ok(current),
    }
}

pub async fn list<R>(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    table: &Table,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: u32,
) -> Result<Page<R>, RecordError>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Versioned + Send + Unpin,
{
    // Unnamed statements are planned with their values, so the `IS NULL`
    // branches fold away and the (tenant_id, [status,] ref_id) indexes apply.
    let status = if table.has_status {
        "AND ($4::text IS NULL OR t.status = $4)"
    } else {
        "AND $4::text IS NULL"
    };
    let sql = format!(
        "SELECT {select} FROM {name} t WHERE {visible} \
           AND ($2::text IS NULL OR t.ref_id > $2) {status} \
           AND ($5::timestamptz IS NULL OR t.created_on >= $5) \
           AND ($6::timestamptz IS NULL OR t.created_on < $6) \
         ORDER BY t.ref_id LIMIT $3",
        select = table.columns(),
        name = table.name,
        visible = table.visible(true),
    );
    let rows: Vec<R> = pg
        .query_as(safe(sql))
        .bind(tenant_id)
        .bind(after.map(|c| c.after.to_string()))
        .bind(i64::from(limit) + 1)
        .bind(&filter.status)
        .bind(filter.created_from)
        .bind(filter.created_before)
        .fetch_all(&mut **tx)
        .await?;
    Ok(Page::from_rows(rows, limit, |r| {
        r.record_ref().parse().unwrap_or_default()
    }))
}

/// A partial update: the fields present in `values` are set (`null`
/// clears), the others stay. Returns the record before and after.
#[allow(clippy::too_many_arguments)]
pub async fn update<R>(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    table: &Table,
    record_ref: &str,
    if_match: Option<&str>,
    values: &Map<String, Value>,
    actor: &str,
) -> Result<(R, R), RecordError>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Versioned + serde::Serialize + Send + Unpin,
{
    table.check(values, Purpose::Update)?;
    // The version is compared after PostgreSQL judged the values, so that
    // an invalid change is 422 whatever If-Match says (a stale version of
    // a valid change is 412); the caller's transaction rolls back either way.
    let before: R = lock(pg, tx, tenant_id, table, record_ref, None).await?;
    let stale = if_match.is_some_and(|version| version != before.version());
    let assignments: Vec<String> = table
        .fields
        .iter()
        .filter(|f| f.update && values.contains_key(&f.wire()))
        .map(|f| format!("{} = {}", f.column, f.value()))
        .collect();
    if assignments.is_empty() {
        if stale {
            return Err(RecordError::StaleVersion);
        }
        return get(pg, tx, tenant_id, table, record_ref)
            .await
            .map(|after| (before, after));
    }
    let after: R = write(
        pg,
        tx,
        tenant_id,
        table,
        record_ref,
        &assignments,
        values,
        actor,
    )
    .await?;
    check_activity_refs(table, values, &after)?;
    if stale {
        return Err(RecordError::StaleVersion);
    }
    Ok((before, after))
}

/// Sets a pointer field that only the split path writes (a [`Kind::Ulid`]
/// field no create or update may set, e.g. `content_ref`), with the row
/// locked. Returns the record before and after; a pointer already equal
/// to `value` writes nothing.
#[allow(clippy::too_many_arguments)]
pub async fn set_pointer<R>(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    table: &Table,
    record_ref: &str,
    wire: &str,
    value: &str,
    actor: &str,
) -> Result<(R, R), RecordError>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Versioned + serde::Serialize + Send + Unpin,
{
    let field = table
        .field(wire)
        .filter(|f| f.kind == Kind::Ulid)
        .ok_or_else(|| RecordError::Invalid {
            constraint: None,
            message: format!("{wire} is not a pointer of {}", table.name),
        })?;
    let before: R = lock(pg, tx, tenant_id, table, record_ref, None).await?;
    let current = serde_json::to_value(&before).unwrap_or_default();
    if current.get(wire).and_then(Value::as_str) == Some(value) {
        let after = get(pg, tx, tenant_id, table, record_ref).await?;
        return Ok((before, after));
    }
    let mut values = Map::new();
    values.insert(wire.to_string(), Value::String(value.to_string()));
    let assignment = format!("{} = {}", field.column, field.value());
    let after: R = write(
        pg,
        tx,
        tenant_id,
        table,
        record_ref,
        &[assignment],
        &values,
        actor,
    )
    .await?;
    Ok((before, after))
}

/// Moves the record to `to`, setting the transition's fields from
/// `values`. PostgreSQL's trigger refuses an illegal move (ST409, with the
/// allowed states); two concurrent transitions serialise on the row lock,
/// and the second one is judged from the first one's result. Moving to the
/// current state changes nothing.
#[allow(clippy::too_many_arguments)]
pub async fn transition<R>(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    table: &Table,
    record_ref: &str,
    to: &str,
    if_match: Option<&str>,
    values: &Map<String, Value>,
    actor: &str,
) -> Result<Moved<R>, RecordError>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Versioned + serde::Serialize + Send + Unpin,
{
    table.check(values, Purpose::Transition)?;
    let before: R = lock(pg, tx, tenant_id, table, record_ref, if_match).await?;
    let current = serde_json::to_value(&before).unwrap_or_default();
    if current.get("status").and_then(Value::as_str) == Some(to) {
        let after = get(pg, tx, tenant_id, table, record_ref).await?;
        return Ok(Moved {
            before,
            after,
            moved_first: Vec::new(),
        });
    }
    let mut moved_first = Vec::new();
    for step in table.before.iter().filter(|b| b.to.contains(&to)) {
        let sql = format!(
            "SELECT {select} FROM {name} t WHERE t.tenant_id = $1 AND t.deleted_on IS NULL \
             AND t.ref_id <> $2 AND ({which}) ORDER BY t.id FOR UPDATE",
            select = table.columns(),
            name = table.name,
            which = step.which,
        );
        let others: Vec<R> = pg
            .query_as(safe(sql))
            .bind(tenant_id)
            .bind(record_ref)
            .fetch_all(&mut **tx)
            .await?;
        let sql = format!(
            "UPDATE {name} AS t SET status = $3, {set} \
             WHERE t.tenant_id = $1 AND t.ref_id = $2 RETURNING {select}",
            name = table.name,
            set = step.set,
            select = table.columns(),
        );
        for other in others {
            let after: R = pg
                .query_as(safe(sql.clone()))
                .bind(tenant_id)
                .bind(other.record_ref())
                .bind(step.moves_to)
                .fetch_one(&mut **tx)
                .await?;
            moved_first.push((other, after));
        }
    }
    let effects: Vec<&str> = table
        .effects
        .iter()
        .filter(|e| e.to.contains(&to))
        .map(|e| e.set)
        .collect();
    // An effect that assigns a column replaces the plain assignment of
    // that field (it reads the sent value from $3 itself).
    let by_effect = |column: &str| {
        let needle = format!(" {column} = ");
        effects.iter().any(|e| format!(" {e}").contains(&needle))
    };
    let mut assignments = vec!["status = $5".to_string()];
    assignments.extend(
        table
            .fields
            .iter()
            .filter(|f| f.transition && values.contains_key(&f.wire()) && !by_effect(f.column))
            .map(|f| format!("{} = {}", f.column, f.value())),
    );
    assignments.extend(effects.iter().map(|e| e.to_string()));
    let sql = format!(
        "UPDATE {name} AS t SET {assignments} \
         WHERE t.tenant_id = $1 AND t.ref_id = $2 AND t.deleted_on IS NULL \
         RETURNING {select}",
        name = table.name,
        assignments = assignments.join(", "),
        select = table.columns(),
    );
    let after: R = pg
        .query_as(safe(sql))
        .bind(tenant_id)
        .bind(record_ref)
        .bind(Value::Object(values.clone()))
        .bind(actor)
        .bind(to)
        .fetch_one(&mut **tx)
        .await?;
    Ok(Moved {
        before,
        after,
        moved_first,
    })
}

/// A transition's result: the record before and after, and the other
/// records that moved first ([`Before`]), each before and after.
#[derive(Debug)]
pub struct Moved<R> {
    pub before: R,
    pub after: R,
    pub moved_first: Vec<(R, R)>,
}

#[allow(clippy::too_many_arguments)]
async fn write<R>(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    table: &Table,
    record_ref: &str,
    assignments: &[String],
    values: &Map<String, Value>,
    actor: &str,
) -> Result<R, RecordError>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    let sql = format!(
        "UPDATE {name} AS t SET {assignments} \
         WHERE t.tenant_id = $1 AND t.ref_id = $2 AND t.deleted_on IS NULL \
         RETURNING {select}",
        name = table.name,
        assignments = assignments.join(", "),
        select = table.columns(),
    );
    Ok(pg
        .query_as(safe(sql))
        .bind(tenant_id)
        .bind(record_ref)
        .bind(Value::Object(values.clone()))
        .bind(actor)
        .fetch_one(&mut **tx)
        .await?)
}

/// Soft delete: the row stays (for audit and purges) but is invisible to
/// gets and lists from now on. Returns the record as it was.
pub async fn delete<R>(
    pg: &Postgres,
    tx: &mut Tx,
    tenant_id: uuid::Uuid,
    table: &Table,
    record_ref: &str,
    if_match: Option<&str>,
) -> Result<R, RecordError>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Versioned + Send + Unpin,
{
    let before: R = lock(pg, tx, tenant_id, table, record_ref, if_match).await?;
    let sql = format!(
        "UPDATE {name} SET deleted_on = now() \
         WHERE tenant_id = $1 AND ref_id = $2 AND deleted_on IS NULL",
        name = table.name,
    );
    pg.query(safe(sql))
        .bind(tenant_id)
        .bind(record_ref)
        .execute(&mut **tx)
        .await?;
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[Field] = &[
        Field::new("title", "title", Kind::Text).create().update(),
        Field::new("published_at", "published_on", Kind::Timestamp),
        Field::new("activity_ref", "activity_id", Kind::ActivityRef).create(),
    ];
    const TABLE: Table = Table {
        name: "blog_posts",
        collection: "blog-posts",
        fields: FIELDS,
        has_status: true,
        globals: false,
        on_insert: &[],
        effects: &[],
        before: &[],
    };

    #[test]
    fn wire_names_are_camel_case() {
        assert_eq!(camel("published_at"), "publishedAt");
        assert_eq!(camel("title"), "title");
        assert_eq!(
            TABLE.field("activityRef").map(|f| f.column),
            Some("activity_id")
        );
    }

    #[test]
    fn constraints_name_their_field() {
        assert_eq!(
            TABLE
                .field_of_constraint("blog_posts_title_check")
                .as_deref(),
            Some("title")
        );
        assert_eq!(
            TABLE
                .field_of_constraint("blog_posts_activity_fkey")
                .as_deref(),
            None,
            "activity_fkey is not activity_id"
        );
        assert_eq!(TABLE.field_of_constraint("social_posts_title_check"), None);
    }

    #[test]
    fn values_are_checked_against_the_description() {
        let values = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert!(
            TABLE
                .check(&values(serde_json::json!({"title": "x"})), Purpose::Create)
                .is_ok()
        );
        for (bad, purpose) in [
            (
                serde_json::json!({"publishedAt": "2026-01-01T00:00:00Z"}),
                Purpose::Create,
            ),
            (
                serde_json::json!({"activityRef": "not-a-ulid"}),
                Purpose::Create,
            ),
            (
                serde_json::json!({"activityRef": "01arz3ndektsv4rrffq69g5fav"}),
                Purpose::Create,
            ),
            (serde_json::json!({"title": 3}), Purpose::Create),
            (serde_json::json!({"title": "a\u{0}b"}), Purpose::Update),
            (serde_json::json!({"activityRef": null}), Purpose::Update),
        ] {
            assert!(
                matches!(
                    TABLE.check(&values(bad.clone()), purpose),
                    Err(RecordError::InvalidField { .. })
                ),
                "{bad} for {purpose:?}"
            );
        }
    }
}
