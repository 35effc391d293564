//! A served strata with tenants and service tokens, and a small client for
//! its data API: what the `api_*` tests share.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use strata::records::admin::{self, NewTenant, TokenScope};
use strata::stores::postgres::Postgres;

use super::Fixture;
use super::serve::Served;

const BOOT: Duration = Duration::from_secs(120);

/// Field order matters: the server stops before its databases are dropped.
pub struct Api {
    pub served: Served,
    pub pg: Postgres,
    pub client: reqwest::Client,
    pub fixture: Fixture,
}

/// One answer: status, headers, body (JSON, or `Null`).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Api {
    /// `strata serve` on a fresh fixture, with extra `STRATA_*` settings;
    /// returns once it notified READY=1.
    pub async fn start(tag: &str, env: &[(&str, &str)]) -> Api {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Api::start_with(tag, |_| env).await
    }

    /// [`Api::start`] with settings that depend on the fixture (e.g. its
    /// database behind a relay).
    pub async fn start_with(tag: &str, env: impl FnOnce(&Fixture) -> Vec<(String, String)>) -> Api {
        let fixture = Fixture::new(tag).await;
        let mut command = fixture.strata(&["serve"]);
        command.envs(env(&fixture));
        let mut served = Served::start(command, fixture.admin_addr(), fixture.api_addr());
        assert!(
            served.wait_notification("READY=1", BOOT),
            "strata serve did not become ready:\n{}",
            served.stderr()
        );
        let pg = Postgres::new(&fixture.config().postgres).expect("postgres handle");
        Api {
            served,
            pg,
            client: reqwest::Client::new(),
            fixture,
        }
    }

    /// A new active tenant (administrative path); its ref.
    pub async fn tenant(&self, slug: &str) -> String {
        admin::create_tenant(
            &self.pg,
            &NewTenant {
                slug: slug.to_string(),
                name: format!("Tenant {slug}"),
                plan: "basic".to_string(),
            },
        )
        .await
        .expect("create tenant")
    }

    /// A service token for one tenant (or all, with `None`): its secret.
    pub async fn token(&self, tenant_ref: Option<&str>) -> String {
        self.token_with_ref(tenant_ref).await.0
    }

    /// [`Api::token`] and the token's ref.
    pub async fn token_with_ref(&self, tenant_ref: Option<&str>) -> (String, String) {
        let (secret, _) = strata::api::auth::new_token().expect("random token");
        let scope = match tenant_ref {
            Some(t) => TokenScope::Tenant(t.to_string()),
            None => TokenScope::AllTenants,
        };
        let info = admin::create_token(&self.pg, &secret, "test", &scope, None)
            .await
            .expect("create token");
        (secret, info.token_ref)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.served.api)
    }

    /// One request: `token` as bearer, `body` as JSON, extra headers.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the data API answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None, &[]).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(&body), &[])
            .await
    }
}

/// Asserts that `reply` is a problem with `status` and `code`.
#[track_caller]
pub fn assert_problem(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{reply:?}"
    );
    assert_eq!(reply.body["code"], code, "{reply:?}");
    assert_eq!(reply.body["status"], status, "{reply:?}");
    assert!(reply.body["type"].is_string() && reply.body["title"].is_string());
    assert_eq!(
        reply.body["requestId"].as_str(),
        reply.header("x-request-id"),
        "the problem carries the request id: {reply:?}"
    );
}
