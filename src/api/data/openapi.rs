//! The parts of the OpenAPI document that no handler states: its info, the
//! bearer scheme, and the problem responses every operation may give.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, SecurityRequirement};

use crate::api::problem::{CONTENT_TYPE, FieldError, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "strata data API",
        description = "Tenant records over HTTP: one PostgreSQL transaction per request, \
                       isolated by row-level security. Errors are application/problem+json."
    ),
    components(schemas(Problem, FieldError))
)]
struct Base;

pub fn base() -> utoipa::openapi::OpenApi {
    let mut document = Base::openapi();
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    document.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    document
}

/// Lists the problem body under `4XX` and `5XX` on every operation (beside
/// the statuses a handler documents itself), so no error answer is outside
/// the document.
pub fn finish(document: &mut utoipa::openapi::OpenApi) {
    for item in document.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            for (range, description) in [
                ("4XX", "A client error (problem details)"),
                ("5XX", "A server or store error (problem details)"),
            ] {
                operation
                    .responses
                    .responses
                    .entry(range.to_string())
                    .or_insert_with(|| RefOr::T(problem_response(description)));
            }
        }
    }
}

pub fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            CONTENT_TYPE,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}
