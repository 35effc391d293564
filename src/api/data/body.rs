//! JSON request bodies: size-limited (`api.max_body_bytes`, by axum's body
//! limit), depth-limited (`api.max_json_depth`, checked before parsing),
//! unknown fields refused by the types themselves, and every refusal a
//! problem naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::DataState;
use crate::api::problem::Problem;

pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<DataState> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &DataState) -> Result<Self, Problem> {
        if !is_json(request.headers().get(header::CONTENT_TYPE)) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the body is larger than {} bytes", state.max_body_bytes),
                )
            } else {
                Problem::new(StatusCode::BAD_REQUEST, "bad_body", e.body_text())
            }
        })?;
        parse(&bytes, state.max_json_depth).map(JsonBody)
    }
}

/// A batch's JSON body: like [`JsonBody`], with the batch body limit
/// (`api.max_batch_body_bytes`) in place of the ordinary one.
pub struct BatchBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<DataState> for BatchBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &DataState) -> Result<Self, Problem> {
        if !is_json(request.headers().get(header::CONTENT_TYPE)) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let limit = state.limits.max_body_bytes;
        // The ordinary limit (DefaultBodyLimit) only binds extractors that
        // ask for it; reading the body here applies the batch limit alone.
        let bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|e| {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                if too_large {
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!("the batch is larger than {limit} bytes"),
                    )
                } else {
                    Problem::new(StatusCode::BAD_REQUEST, "bad_body", e.to_string())
                }
            })?;
        parse(&bytes, state.max_json_depth).map(BatchBody)
    }
}

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a body: syntax errors are 400, a body of the wrong shape is 422
/// with the path of the offending field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8], max_depth: u32) -> Result<T, Problem> {
    if let Some(depth) = exceeds_depth(bytes, max_depth) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "json_too_deep",
            format!("the body nests deeper than {max_depth} levels (at least {depth})"),
        ));
    }
    let syntax = |inner: serde_json::Error| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {inner}"),
        )
    };
    // Every body is an object: serde would also read a struct from an
    // array of its fields in order (`[null, null]`), which no client means.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b == b'[') {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "the body must be a JSON object",
        )
        .with_errors(vec![crate::api::problem::FieldError {
            field: String::new(),
            message: "must be a JSON object".to_string(),
        }]));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return syntax(inner);
        }
        let field = if path == "." { String::new() } else { path };
        let message = inner.to_string();
        let detail = if field.is_empty() {
            message.clone()
        } else {
            format!("{field}: {message}")
        };
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            detail,
        )
        .with_errors(vec![crate::api::problem::FieldError { field, message }])
    })?;
    deserializer.end().map_err(syntax)?;
    Ok(value)
}

/// The nesting depth reached if it exceeds `max`: a byte scan that skips
/// strings, so a deep body costs nothing to refuse.
fn exceeds_depth(bytes: &[u8], max: u32) -> Option<u32> {
    let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(depth);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Thing {
        kind: String,
    }

    #[test]
    fn an_array_is_not_a_body_even_if_serde_could_read_it() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct AllOptional {
            a: Option<String>,
        }
        let refused = parse::<AllOptional>(b" [null]", 8).expect_err("refused");
        assert_eq!(refused.code, "validation_failed");
        assert!(parse::<AllOptional>(b"{}", 8).is_ok());
    }

    #[test]
    fn depth_is_counted_outside_strings_only() {
        assert_eq!(exceeds_depth(br#"{"a":[[1]]}"#, 3), None);
        assert_eq!(exceeds_depth(br#"{"a":[[[1]]]}"#, 3), Some(4));
        assert_eq!(exceeds_depth(br#"{"a":"[[[[\"[[["}"#, 1), None);
    }

    #[test]
    fn refusals_name_the_field() {
        let unknown = parse::<Thing>(br#"{"kind":"x","extra":1}"#, 8).expect_err("unknown");
        assert_eq!(unknown.status, 422);
        assert!(unknown.errors[0].message.contains("extra"), "{unknown:?}");
        let wrong = parse::<Thing>(br#"{"kind":5}"#, 8).expect_err("type");
        assert_eq!(wrong.errors[0].field, "kind");
        let syntax = parse::<Thing>(br#"{"kind":"#, 8).expect_err("syntax");
        assert_eq!((syntax.status, syntax.code.as_str()), (400, "invalid_json"));
        let deep = parse::<Thing>(br#"{"kind":[[[[]]]]}"#, 3).expect_err("deep");
        assert_eq!(deep.code, "json_too_deep");
        let trailing = parse::<Thing>(br#"{"kind":"x"} {}"#, 8).expect_err("trailing");
        assert_eq!(trailing.status, 400);
    }
}
