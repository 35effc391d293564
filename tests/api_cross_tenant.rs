//! Tenant isolation over HTTP, generated from the route table: every
//! operation of the served OpenAPI document is called with another tenant's
//! refs and with another tenant's token (and with none, and a revoked one).
//! A new route is covered without editing this test. Every answer must be
//! 404/401/403, and no answer may carry a row of the other tenant.

mod common;

use common::api::{Api, Reply};
use reqwest::Method;
use serde_json::{Map, Value, json};

/// A body that passes validation: the required properties of the
/// operation's request schema, each with a plausible value.
fn minimal_body(document: &Value, operation: &Value) -> Option<Value> {
    let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
    if schema.is_null() {
        return None;
    }
    let resolve = |s: &Value| -> Value {
        match s["$ref"].as_str() {
            Some(r) => {
                let name = r.rsplit('/').next().expect("ref name");
                document["components"]["schemas"][name].clone()
            }
            None => s.clone(),
        }
    };
    let schema = resolve(schema);
    let mut body = Map::new();
    for name in schema["required"].as_array().into_iter().flatten() {
        let name = name.as_str().expect("property name");
        let property = resolve(&schema["properties"][name]);
        let example = property
            .get("example")
            .or_else(|| property["examples"].as_array().and_then(|e| e.first()));
        let ulid_pattern = property["pattern"]
            .as_str()
            .is_some_and(|p| p.contains("0-7][0-9A-HJKMNP-TV-Z]{25}"));
        let value = if let Some(first) = property["enum"].as_array().and_then(|e| e.first()) {
            first.clone()
        } else if let Some(example) = example {
            example.clone()
        } else if ulid_pattern {
            json!(ulid::Ulid::generate().to_string())
        } else {
            match property["type"].as_str() {
                Some("integer") | Some("number") => json!(1),
                Some("boolean") => json!(false),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!("cross-tenant"),
            }
        };
        body.insert(name.to_string(), value);
    }
    Some(Value::Object(body))
}

struct Operation {
    method: Method,
    path: String,
    body: Option<Value>,
    /// Documents a 201 (it creates a record).
    creates: bool,
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut all = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                continue;
            };
            if operation.get("responses").is_none() {
                continue;
            }
            all.push(Operation {
                method,
                path: path.clone(),
                body: minimal_body(document, operation),
                creates: operation["responses"].get("201").is_some(),
            });
        }
    }
    all
}

/// The path with `{tenantRef}` and every other parameter (a record ref)
/// filled in.
fn fill(path: &str, tenant_ref: &str, record_ref: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("closing brace") + start;
        out.push_str(&rest[..start]);
        out.push_str(if &rest[start + 1..end] == "tenantRef" {
            tenant_ref
        } else {
            record_ref
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

async fn call(api: &Api, op: &Operation, path: &str, token: Option<&str>) -> Reply {
    // If-Match: * so that a write reaches the record lookup instead of 428.
    api.call(
        op.method.clone(),
        path,
        token,
        op.body.as_ref(),
        &[("if-match", "*")],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_the_other_tenants_refs_and_tokens() {
    let api = Api::start("api-xtenant", &[]).await;
    let a = api.tenant("tenant-a").await;
    let b = api.tenant("tenant-b").await;
    let token_a = api.token(Some(&a)).await;
    let token_b = api.token(Some(&b)).await;
    let platform = api.token(None).await;
    let (revoked, revoked_ref) = api.token_with_ref(Some(&a)).await;
    strata::records::admin::revoke_token(&api.pg, &revoked_ref)
        .await
        .expect("revoke");

    // One record in each tenant, per collection that the document lists.
    let document = reqwest::get(api.url("/v1/openapi.json"))
        .await
        .expect("document")
        .json::<Value>()
        .await
        .expect("JSON document");
    assert_eq!(document["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    let ops = operations(&document);
    let mut b_rows = Vec::new();
    let mut a_rows = Vec::new();
    // A POST without a record ref in its path creates in a collection.
    for op in ops
        .iter()
        .filter(|o| o.method == Method::POST && !o.path.contains("{ref}") && o.creates)
    {
        for (tenant, token, rows) in [(&a, &token_a, &mut a_rows), (&b, &token_b, &mut b_rows)] {
            let created = call(&api, op, &fill(&op.path, tenant, ""), Some(token)).await;
            if created.status == 422 {
                // A body this generator cannot make valid (it needs a ref
                // of an existing record): the route is still called with
                // the other tenant's refs and tokens below.
                continue;
            }
            assert_eq!(
                created.status, 201,
                "{} {}: {created:?}",
                op.method, op.path
            );
            rows.push((
                op.path.clone(),
                created.body["ref"].as_str().expect("ref").to_string(),
                created.text,
            ));
        }
    }
    assert!(
        !b_rows.is_empty(),
        "the document lists at least one collection"
    );
    assert!(
        ops.len() >= 6,
        "every route of activities is in the document: {}",
        ops.len()
    );

    let mut calls = 0;
    for op in &ops {
        for (collection, b_ref, _) in &b_rows {
            // Routes of this collection (or tenant-wide ones).
            if !op.path.starts_with(collection.as_str()) {
                continue;
            }
            let cases: Vec<(String, Option<&str>, &[u16])> = vec![
                // A's token, A's tenant, B's record: no such record.
                (fill(&op.path, &a, b_ref), Some(token_a.as_str()), &[404]),
                // A's token on B's tenant: no such tenant.
                (fill(&op.path, &b, b_ref), Some(token_a.as_str()), &[404]),
                // A platform token, A's tenant, B's record.
                (fill(&op.path, &a, b_ref), Some(platform.as_str()), &[404]),
                // No token, a revoked one.
                (fill(&op.path, &b, b_ref), None, &[401]),
                (fill(&op.path, &b, b_ref), Some(revoked.as_str()), &[401]),
            ];
            for (path, token, expected) in cases {
                let reply = call(&api, op, &path, token).await;
                calls += 1;
                let record_route = op.path.contains("{ref}");
                // A collection route of A's own tenant (list, create) is
                // allowed: it must only not show B's rows.
                let own_collection = !record_route
                    && path.contains(&a)
                    && token.is_some()
                    && token != Some(revoked.as_str());
                if own_collection {
                    // A second create in A's tenant may meet A's own unique
                    // keys (409); either way it may not show B's rows.
                    assert!(
                        reply.status < 300 || reply.status == 409 || reply.status == 422,
                        "{} {path}: {reply:?}",
                        op.method
                    );
                } else {
                    assert!(
                        expected.contains(&reply.status),
                        "{} {path} with {token:?}: {reply:?}",
                        op.method
                    );
                    assert_eq!(
                        reply.header("content-type"),
                        Some("application/problem+json")
                    );
                }
                // Nothing of B in any answer: neither its rows' refs nor its
                // own ref (problems never echo what was asked for).
                for (_, other_ref, _) in &b_rows {
                    assert!(
                        !reply.text.contains(other_ref.as_str()) && !reply.text.contains(&b),
                        "{} {path}: B leaked: {}",
                        op.method,
                        reply.text
                    );
                }
            }
        }
    }
    assert!(calls >= 30, "{calls} calls");

    // B's rows are untouched: B still reads exactly what it created.
    for (collection, b_ref, created) in &b_rows {
        let path = format!("{}/{b_ref}", fill(collection, &b, ""));
        let reply = api.get(&path, &token_b).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let created: Value = serde_json::from_str(created).expect("created JSON");
        assert_eq!(reply.body, created, "B's row changed");
    }
    // And A's lists never contain B's rows, with either token that may read A.
    for token in [&token_a, &platform] {
        for (collection, _, _) in &a_rows {
            let listed = api.get(&fill(collection, &a, ""), token).await;
            assert_eq!(listed.status, 200);
            for (_, b_ref, _) in &b_rows {
                assert!(!listed.text.contains(b_ref.as_str()));
            }
        }
    }
}
