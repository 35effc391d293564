//! One macro per operation: each puts a thin handler with its OpenAPI
//! operation in front of the generic code of [`super::collection`]. A
//! collection module invokes the ones it offers (usage events, for
//! example, are append-only: no update, transition or delete).
//!
//! Arguments: the URL segment (`"blog-posts"`), a noun for the summaries,
//! the table description, the record type and the operation's input type.

#[macro_export]
macro_rules! op_create {
    ($coll:literal, $noun:literal, $table:path, $Record:ident, $Create:ident $(, check = $check:path)?) => {
        #[utoipa::path(
            post,
            path = concat!("/v1/tenants/{tenantRef}/", $coll),
            tag = $coll,
            operation_id = concat!("create", stringify!($Record)),
            summary = concat!("Create a ", $noun),
            params($crate::api::data::extract::TenantPath),
            request_body = $Create,
            responses(
                (status = 201, description = "Created", body = $Record, headers(
                    ("Location" = String, description = "The new record's URL path"),
                    ("ETag" = String, description = "Its version, for If-Match"),
                )),
                (status = 409, description = "A conflict (duplicate, or a state it may not start in)",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
                (status = 422, description = "Invalid fields", body = $crate::api::problem::Problem,
                 content_type = "application/problem+json"),
            )
        )]
        pub async fn create(
            _state: axum::extract::State<$crate::api::data::DataState>,
            work: $crate::api::data::extract::Work,
            $crate::api::data::body::JsonBody(body): $crate::api::data::body::JsonBody<$Create>,
        ) -> Result<axum::response::Response, $crate::api::problem::Problem> {
            $($check(&_state.0, &work.tenant_ref, &body).await?;)?
            $crate::api::data::collection::create::<$Record>(work, &$table, body).await
        }
    };
}

#[macro_export]
macro_rules! op_get {
    ($coll:literal, $noun:literal, $table:path, $Record:ident) => {
        #[utoipa::path(
            get,
            path = concat!("/v1/tenants/{tenantRef}/", $coll, "/{ref}"),
            tag = $coll,
            operation_id = concat!("get", stringify!($Record)),
            summary = concat!("Get a ", $noun),
            params($crate::api::data::extract::RecordPath),
            responses(
                (status = 200, description = "The record", body = $Record, headers(
                    ("ETag" = String, description = "Its version, for If-Match"),
                )),
                (status = 404, description = "No such record (or deleted)",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn get(
            work: $crate::api::data::extract::Work,
            path: $crate::api::data::extract::RecordPath,
        ) -> Result<axum::response::Response, $crate::api::problem::Problem> {
            $crate::api::data::collection::get::<$Record>(work, &$table, path).await
        }
    };
}

#[macro_export]
macro_rules! op_list {
    ($coll:literal, $noun:literal, $table:path, $Record:ident, $Filter:ident) => {
        #[utoipa::path(
            get,
            path = concat!("/v1/tenants/{tenantRef}/", $coll),
            tag = $coll,
            operation_id = concat!("list", stringify!($Record)),
            summary = concat!("List ", $noun, ", oldest first, a page at a time"),
            params(
                $crate::api::data::extract::TenantPath,
                $crate::api::data::extract::Paging,
                $Filter
            ),
            responses(
                (status = 200, description = "One page; `next` continues it",
                 body = $crate::api::data::collection::RecordPage<$Record>),
                (status = 422, description = "Invalid parameters",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn list(
            work: $crate::api::data::extract::Work,
            paging: $crate::api::data::extract::Paging,
            $crate::api::data::extract::QueryParams(filter): $crate::api::data::extract::QueryParams<$Filter>,
        ) -> Result<
            axum::Json<$crate::api::data::collection::RecordPage<$Record>>,
            $crate::api::problem::Problem,
        > {
            $crate::api::data::collection::list::<$Record>(work, &$table, paging, filter.into())
                .await
        }
    };
}

#[macro_export]
macro_rules! op_update {
    ($coll:literal, $noun:literal, $table:path, $Record:ident, $Update:ident $(, check = $check:path)?) => {
        #[utoipa::path(
            patch,
            path = concat!("/v1/tenants/{tenantRef}/", $coll, "/{ref}"),
            tag = $coll,
            operation_id = concat!("update", stringify!($Record)),
            summary = concat!("Change a ", $noun, " (If-Match required)"),
            params(
                $crate::api::data::extract::RecordPath,
                $crate::api::data::extract::IfMatchRequired
            ),
            request_body = $Update,
            responses(
                (status = 200, description = "The changed record", body = $Record, headers(
                    ("ETag" = String, description = "Its new version"),
                )),
                (status = 404, description = "No such record (or deleted)",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
                (status = 409, description = "A conflict (e.g. a duplicate, or an immutable record)",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
                (status = 412, description = "If-Match is stale",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
                (status = 422, description = "Invalid fields",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
                (status = 428, description = "If-Match is missing",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn update(
            _state: axum::extract::State<$crate::api::data::DataState>,
            work: $crate::api::data::extract::Work,
            path: $crate::api::data::extract::RecordPath,
            if_match: $crate::api::data::extract::IfMatch,
            $crate::api::data::body::JsonBody(body): $crate::api::data::body::JsonBody<$Update>,
        ) -> Result<axum::response::Response, $crate::api::problem::Problem> {
            $($check(&_state.0, &work.tenant_ref, &body).await?;)?
            $crate::api::data::collection::update::<$Record>(work, &$table, path, if_match, body)
                .await
        }
    };
}

#[macro_export]
macro_rules! op_transition {
    ($coll:literal, $noun:literal, $table:path, $Record:ident, $Transition:ident) => {
        /// PostgreSQL judges the move; an illegal one is 409
        /// `illegal_transition` with `currentState` and `allowedStates`. Of
        /// two concurrent moves, the second is judged from the first one's
        /// result.
        #[utoipa::path(
            post,
            path = concat!("/v1/tenants/{tenantRef}/", $coll, "/{ref}/transitions"),
            tag = $coll,
            operation_id = concat!("transition", stringify!($Record)),
            summary = concat!("Move a ", $noun, " to another state"),
            params(
                $crate::api::data::extract::RecordPath,
                $crate::api::data::extract::IfMatch
            ),
            request_body = $Transition,
            responses(
                (status = 200, description = "The record in its new state", body = $Record, headers(
                    ("ETag" = String, description = "Its new version"),
                )),
                (status = 404, description = "No such record (or deleted)",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
                (status = 409, description = "Not allowed from the current state",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
                (status = 412, description = "If-Match is stale",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
                (status = 422, description = "The new state needs fields it lacks",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn transition(
            work: $crate::api::data::extract::Work,
            path: $crate::api::data::extract::RecordPath,
            if_match: $crate::api::data::extract::IfMatch,
            $crate::api::data::body::JsonBody(body): $crate::api::data::body::JsonBody<$Transition>,
        ) -> Result<axum::response::Response, $crate::api::problem::Problem> {
            $crate::api::data::collection::transition::<$Record>(work, &$table, path, if_match, body)
                .await
        }
    };
}

#[macro_export]
macro_rules! op_delete {
    ($coll:literal, $noun:literal, $table:path, $Record:ident) => {
        #[utoipa::path(
            delete,
            path = concat!("/v1/tenants/{tenantRef}/", $coll, "/{ref}"),
            tag = $coll,
            operation_id = concat!("delete", stringify!($Record)),
            summary = concat!("Delete a ", $noun, " (soft: it disappears from gets and lists)"),
            params(
                $crate::api::data::extract::RecordPath,
                $crate::api::data::extract::IfMatch
            ),
            responses(
                (status = 204, description = "Deleted"),
                (status = 404, description = "No such record (or already deleted)",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
                (status = 409, description = "Refused in its current state",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
                (status = 412, description = "If-Match is stale",
                 body = $crate::api::problem::Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn delete(
            work: $crate::api::data::extract::Work,
            path: $crate::api::data::extract::RecordPath,
            if_match: $crate::api::data::extract::IfMatch,
        ) -> Result<axum::http::StatusCode, $crate::api::problem::Problem> {
            $crate::api::data::collection::delete::<$Record>(work, &$table, path, if_match).await
        }
    };
}
