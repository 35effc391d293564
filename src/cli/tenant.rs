//! `strata tenant create`: a new tenant, on the administrative path.

use crate::cli::exit;
use crate::cli::token::{connect, exit_code};
use crate::config::Config;
use crate::records::admin::{self, NewTenant};

pub async fn create(config: Config, tenant: NewTenant, json: bool) -> u8 {
    let Some(pg) = connect(&config) else {
        return exit::BAD_CONFIG;
    };
    let result = admin::create_tenant(&pg, &tenant).await;
    pg.close().await;
    match result {
        Ok(tenant_ref) => {
            if json {
                let out = serde_json::json!({
                    "ref": tenant_ref,
                    "slug": tenant.slug,
                    "name": tenant.name,
                    "plan": tenant.plan,
                    "status": "active",
                });
                println!("{out}");
            } else {
                println!("{tenant_ref}");
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("strata: cannot create tenant {:?}: {e}", tenant.slug);
            exit_code(&e)
        }
    }
}
