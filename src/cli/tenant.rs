//! `strata tenant create|list|get|suspend|resume|delete`: tenants on the
//! administrative path, through the same functions as the admin API's
//! `/admin/tenants`.

use crate::cli::admin_path::with_postgres;
use crate::cli::exit;
use crate::config::Config;
use crate::records::admin::{self, NewTenant, Tenant, TenantStatus};
use crate::records::page::{Cursor, MAX_LIMIT};

pub async fn create(config: Config, tenant: NewTenant, json: bool) -> u8 {
    match with_postgres(&config, "tenant", async |pg| {
        admin::create_tenant(pg, &tenant).await
    })
    .await
    {
        Ok(created) => {
            if json {
                print_json(&created);
            } else {
                println!("{}", created.tenant_ref);
            }
            exit::OK
        }
        Err(code) => code,
    }
}

pub async fn list(config: Config, status: Option<TenantStatus>, json: bool) -> u8 {
    // Every page, in ref order.
    let all = with_postgres(&config, "tenant", async |pg| {
        let mut all = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = admin::list_tenants(pg, status, MAX_LIMIT, cursor.as_ref()).await?;
            all.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    })
    .await;
    match all {
        Ok(tenants) => {
            if json {
                print_json(&tenants);
            } else {
                for tenant in &tenants {
                    println!("{}", line(tenant));
                }
            }
            exit::OK
        }
        Err(code) => code,
    }
}

pub async fn get(config: Config, tenant_ref: String, json: bool) -> u8 {
    match with_postgres(&config, "tenant", async |pg| {
        admin::get_tenant(pg, &tenant_ref).await
    })
    .await
    {
        Ok(tenant) => {
            if json {
                print_json(&tenant);
            } else {
                print_details(&tenant);
            }
            exit::OK
        }
        Err(code) => code,
    }
}

/// `suspend`, `resume` or `delete` (soft): PostgreSQL's state machine
/// judges the change; the data API sees it on its next request.
pub async fn set_status(config: Config, tenant_ref: String, to: TenantStatus, json: bool) -> u8 {
    match with_postgres(&config, "tenant", async |pg| {
        admin::set_tenant_status(pg, &tenant_ref, to).await
    })
    .await
    {
        Ok(tenant) => {
            if json {
                print_json(&tenant);
            } else {
                println!("{} {}", tenant.tenant_ref, tenant.status);
            }
            exit::OK
        }
        Err(code) => code,
    }
}

fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(value).unwrap_or_default());
}

fn line(tenant: &Tenant) -> String {
    format!(
        "{}  {:<9}  {}  records={}  {}",
        tenant.tenant_ref,
        tenant.status,
        tenant.slug,
        tenant.counts.total(),
        tenant.name
    )
}

fn print_details(tenant: &Tenant) {
    println!("ref:        {}", tenant.tenant_ref);
    println!("slug:       {}", tenant.slug);
    println!("name:       {}", tenant.name);
    println!("plan:       {}", tenant.plan);
    println!("status:     {}", tenant.status);
    println!("created:    {}", tenant.created_at.to_rfc3339());
    println!("updated:    {}", tenant.updated_at.to_rfc3339());
    if let Some(deleted) = tenant.deleted_at {
        println!("deleted:    {}", deleted.to_rfc3339());
    }
    println!(
        "records:    {} (live, not soft-deleted)",
        tenant.counts.total()
    );
    for (table, count) in tenant.counts.per_table() {
        println!("  {table:<16} {count}");
    }
}
