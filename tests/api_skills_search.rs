//! Skills' full-text search through `strata serve`, PgBouncer and MongoDB:
//! a name match ranks above a content match, global templates are found,
//! soft-deleted skills and other tenants' never are, tags filter, pages do
//! not overlap, and an update's new text replaces the old one in search.

mod common;

use common::api::{Api, assert_problem};
use reqwest::Method;
use serde_json::{Value, json};
use strata::logs::skills::{self, SkillText};

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|h| h["skill"]["name"].as_str().expect("name").to_string())
        .collect()
}

fn position(names: &[String], name: &str) -> usize {
    names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("{name} not in {names:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn search_ranks_by_field_weight_within_the_tenant_and_the_global_templates() {
    let api = Api::start("api-skills", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let other = api.tenant("other").await;
    let other_token = api.token(Some(&other)).await;
    let mongo = strata::stores::mongo::Mongo::new(&api.fixture.config().mongo)
        .await
        .expect("mongo");
    skills::create_global(
        &api.pg,
        &mongo,
        "paraphrase",
        &SkillText {
            name: "Paraphrase".into(),
            description: Some("Rewrite a passage about invoices".into()),
            content: "Keep the meaning.".into(),
            tags: vec!["writing".into()],
        },
    )
    .await
    .expect("global template");

    let base = format!("/v1/tenants/{tenant}/skills");
    let create = |slug: &str, body: Value| {
        let mut body = body;
        body["slug"] = json!(slug);
        api.post(&base, &token, body)
    };
    for (slug, body) in [
        (
            "extract",
            json!({"name": "Invoice extraction", "content": "Pull the fields out of documents."}),
        ),
        (
            "summarise",
            json!({"name": "Summarise", "content": "Summarise a long text, such as an invoice."}),
        ),
        (
            "triage",
            json!({"name": "Triage", "description": "Sort each invoice by urgency",
                   "tags": ["finance", "ops"]}),
        ),
        (
            "gone",
            json!({"name": "Invoice archive", "content": "Old invoices."}),
        ),
        ("plain", json!({"name": "No text at all"})),
    ] {
        let reply = create(slug, body).await;
        assert_eq!(reply.status, 201, "{reply:?}");
        if slug == "gone" {
            let record = reply.body["ref"].as_str().expect("ref");
            let deleted = api
                .call(
                    Method::DELETE,
                    &format!("{base}/{record}"),
                    Some(&token),
                    None,
                    &[],
                )
                .await;
            assert_eq!(deleted.status, 204);
        }
        if slug == "plain" {
            assert_eq!(
                reply.body["contentRef"],
                Value::Null,
                "no text, no document"
            );
        }
    }
    let theirs = api
        .post(
            &format!("/v1/tenants/{other}/skills"),
            &other_token,
            json!({"name": "Invoice of another tenant", "slug": "theirs", "content": "invoice"}),
        )
        .await;
    assert_eq!(theirs.status, 201);

    let api = &api;
    let search = |query: String| {
        let token = token.clone();
        let tenant = tenant.clone();
        async move {
            api.get(
                &format!("/v1/tenants/{tenant}/skills:search?{query}"),
                &token,
            )
            .await
        }
    };
    let all = search("q=invoice".into()).await;
    assert_eq!(all.status, 200, "{all:?}");
    let found = names(&all.body);
    assert_eq!(found.len(), 4, "{found:?}");
    // Name (10) and description (5) matches rank above a content match (1).
    assert!(position(&found, "Invoice extraction") < position(&found, "Summarise"));
    assert!(position(&found, "Triage") < position(&found, "Summarise"));
    assert!(
        found.contains(&"Paraphrase".to_string()),
        "the global template"
    );
    assert!(
        !found
            .iter()
            .any(|n| n.contains("archive") || n.contains("another"))
    );
    let scores: Vec<f64> = all.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|h| h["score"].as_f64().expect("score"))
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );
    let global = &all.body["items"][position(&found, "Paraphrase")];
    assert_eq!(global["skill"]["global"], true);
    assert_eq!(global["tags"], json!(["writing"]));

    // English stemming: "invoices" finds the same skills.
    assert_eq!(names(&search("q=invoices".into()).await.body).len(), 4);
    // Tags filter: every tag given.
    assert_eq!(
        names(&search("q=invoice&tags=finance".into()).await.body),
        vec!["Triage"]
    );
    assert!(names(&search("q=invoice&tags=finance,writing".into()).await.body).is_empty());

    // Pages of 3 and 1, no overlap, the same hits.
    let first = search("q=invoice&limit=3".into()).await;
    let next = first.body["next"]
        .as_str()
        .expect("a next page")
        .to_string();
    let second = search(format!("q=invoice&limit=3&cursor={next}")).await;
    assert!(second.body.get("next").is_none(), "{second:?}");
    let mut paged = names(&first.body);
    paged.extend(names(&second.body));
    assert_eq!(paged, found);

    // New text replaces the old one in search.
    let summarise = all.body["items"][position(&found, "Summarise")]["skill"]["ref"]
        .as_str()
        .expect("ref")
        .to_string();
    let current = api.get(&format!("{base}/{summarise}"), &token).await;
    let etag = current.header("etag").expect("etag").to_string();
    let changed = api
        .call(
            Method::PATCH,
            &format!("{base}/{summarise}"),
            Some(&token),
            Some(&json!({"content": "Shorten any text."})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_ne!(changed.body["contentRef"], current.body["contentRef"]);
    let after = names(&search("q=invoice".into()).await.body);
    assert!(!after.contains(&"Summarise".to_string()), "{after:?}");
    assert_eq!(
        names(&search("q=shorten".into()).await.body),
        vec!["Summarise"]
    );

    // The other tenant sees its own and the template only.
    let theirs = api
        .get(
            &format!("/v1/tenants/{other}/skills:search?q=invoice"),
            &other_token,
        )
        .await;
    let mut seen = names(&theirs.body);
    seen.sort();
    assert_eq!(seen, vec!["Invoice of another tenant", "Paraphrase"]);

    for bad in ["q=", "q=x&limit=0", "q=x&cursor=zz"] {
        let refused = search(bad.into()).await;
        assert_problem(&refused, 422, "validation_failed");
    }
}
