//! The route table of the data API: every collection and the operations it
//! offers, over the descriptions in [`crate::records::collections`].
//! Adding a collection is a module here and one line in [`routes`].

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::DataState;

pub mod activities {
    use crate::records::collections::activities::*;
    crate::list_filter!(ActivityFilter, ActivityStatus);
    crate::op_list!("activities", "activities", TABLE, Activity, ActivityFilter);
    crate::op_create!(
        "activities",
        "activity",
        TABLE,
        Activity,
        CreateActivity,
        check = crate::api::data::content_entities::check_output_ref
    );
    crate::op_get!("activities", "activity", TABLE, Activity);
    crate::op_history!("activities", "activity", TABLE, Activity);
    crate::op_update!(
        "activities",
        "activity",
        TABLE,
        Activity,
        UpdateActivity,
        check = crate::api::data::content_entities::check_output_ref
    );
    crate::op_delete!("activities", "activity", TABLE, Activity);
    crate::op_transition!(
        "activities",
        "activity",
        TABLE,
        Activity,
        ActivityTransition
    );
}

pub mod blog_posts {
    use crate::records::collections::blog_posts::*;
    crate::list_filter!(BlogPostFilter, BlogPostStatus);
    crate::op_list!("blog-posts", "blog posts", TABLE, BlogPost, BlogPostFilter);
    crate::op_create!(
        "blog-posts",
        "blog post",
        TABLE,
        BlogPost,
        CreateBlogPost,
        check = crate::api::data::content_entities::check_output_ref
    );
    crate::op_get!("blog-posts", "blog post", TABLE, BlogPost);
    crate::op_history!("blog-posts", "blog post", TABLE, BlogPost);
    crate::op_update!(
        "blog-posts",
        "blog post",
        TABLE,
        BlogPost,
        UpdateBlogPost,
        check = crate::api::data::content_entities::check_output_ref
    );
    crate::op_delete!("blog-posts", "blog post", TABLE, BlogPost);
    crate::op_transition!(
        "blog-posts",
        "blog post",
        TABLE,
        BlogPost,
        BlogPostTransition
    );
}

pub mod social_posts {
    use crate::records::collections::social_posts::*;
    crate::list_filter!(SocialPostFilter, SocialPostStatus);
    crate::op_list!(
        "social-posts",
        "social posts",
        TABLE,
        SocialPost,
        SocialPostFilter
    );
    crate::op_create!(
        "social-posts",
        "social post",
        TABLE,
        SocialPost,
        CreateSocialPost,
        check = crate::api::data::content_entities::check_output_ref
    );
    crate::op_get!("social-posts", "social post", TABLE, SocialPost);
    crate::op_history!("social-posts", "social post", TABLE, SocialPost);
    crate::op_update!(
        "social-posts",
        "social post",
        TABLE,
        SocialPost,
        UpdateSocialPost,
        check = crate::api::data::content_entities::check_output_ref
    );
    crate::op_delete!("social-posts", "social post", TABLE, SocialPost);
    crate::op_transition!(
        "social-posts",
        "social post",
        TABLE,
        SocialPost,
        SocialPostTransition
    );
}

pub mod onboarding_runs {
    use crate::records::collections::onboarding_runs::*;
    crate::list_filter!(OnboardingRunFilter, OnboardingRunStatus);
    crate::op_list!(
        "onboarding-runs",
        "onboarding runs",
        TABLE,
        OnboardingRun,
        OnboardingRunFilter
    );
    crate::op_create!(
        "onboarding-runs",
        "onboarding run",
        TABLE,
        OnboardingRun,
        CreateOnboardingRun
    );
    crate::op_get!("onboarding-runs", "onboarding run", TABLE, OnboardingRun);
    crate::op_history!("onboarding-runs", "onboarding run", TABLE, OnboardingRun);
    crate::op_update!(
        "onboarding-runs",
        "onboarding run",
        TABLE,
        OnboardingRun,
        UpdateOnboardingRun
    );
    crate::op_delete!("onboarding-runs", "onboarding run", TABLE, OnboardingRun);
    crate::op_transition!(
        "onboarding-runs",
        "onboarding run",
        TABLE,
        OnboardingRun,
        OnboardingRunTransition
    );
}

pub mod strategies {
    use crate::records::collections::strategies::*;
    crate::list_filter!(StrategyFilter, StrategyStatus);
    crate::op_list!("strategies", "strategies", TABLE, Strategy, StrategyFilter);
    crate::op_create!("strategies", "strategy", TABLE, Strategy, CreateStrategy);
    crate::op_get!("strategies", "strategy", TABLE, Strategy);
    crate::op_history!("strategies", "strategy", TABLE, Strategy);
    crate::op_update!("strategies", "strategy", TABLE, Strategy, UpdateStrategy);
    crate::op_delete!("strategies", "strategy", TABLE, Strategy);
    crate::op_transition!(
        "strategies",
        "strategy",
        TABLE,
        Strategy,
        StrategyTransition
    );
}

pub mod contracts {
    use crate::records::collections::contracts::*;
    crate::list_filter!(ContractFilter, ContractStatus);
    crate::op_list!("contracts", "contracts", TABLE, Contract, ContractFilter);
    crate::op_create!("contracts", "contract", TABLE, Contract, CreateContract);
    crate::op_get!("contracts", "contract", TABLE, Contract);
    crate::op_history!("contracts", "contract", TABLE, Contract);
    crate::op_update!("contracts", "contract", TABLE, Contract, UpdateContract);
    crate::op_delete!("contracts", "contract", TABLE, Contract);
    crate::op_transition!("contracts", "contract", TABLE, Contract, ContractTransition);
}

pub mod tool_calls {
    use crate::records::collections::tool_calls::*;
    crate::list_filter!(ToolCallFilter, ToolCallStatus);
    crate::op_list!("tool-calls", "tool calls", TABLE, ToolCall, ToolCallFilter);
    crate::op_create!("tool-calls", "tool call", TABLE, ToolCall, CreateToolCall);
    crate::op_get!("tool-calls", "tool call", TABLE, ToolCall);
    crate::op_history!("tool-calls", "tool call", TABLE, ToolCall);
    crate::op_update!("tool-calls", "tool call", TABLE, ToolCall, UpdateToolCall);
    crate::op_delete!("tool-calls", "tool call", TABLE, ToolCall);
    crate::op_transition!(
        "tool-calls",
        "tool call",
        TABLE,
        ToolCall,
        ToolCallTransition
    );
}

pub mod skills {
    use crate::records::collections::skills::*;
    crate::list_filter!(SkillFilter);
    crate::op_list!("skills", "skills", TABLE, Skill, SkillFilter);
    crate::op_get!("skills", "skill", TABLE, Skill);
    crate::op_history!("skills", "skill", TABLE, Skill);
}

pub mod integrations {
    use crate::records::collections::integrations::*;
    crate::list_filter!(IntegrationFilter, IntegrationStatus);
    crate::op_list!(
        "integrations",
        "integrations",
        TABLE,
        Integration,
        IntegrationFilter
    );
    crate::op_create!(
        "integrations",
        "integration",
        TABLE,
        Integration,
        CreateIntegration
    );
    crate::op_get!("integrations", "integration", TABLE, Integration);
    crate::op_history!("integrations", "integration", TABLE, Integration);
    crate::op_update!(
        "integrations",
        "integration",
        TABLE,
        Integration,
        UpdateIntegration
    );
    crate::op_delete!("integrations", "integration", TABLE, Integration);
    crate::op_transition!(
        "integrations",
        "integration",
        TABLE,
        Integration,
        IntegrationTransition
    );
}

pub mod usage_events {
    use crate::records::collections::usage_events::*;
    crate::list_filter!(UsageEventFilter);
    crate::op_list!(
        "usage-events",
        "usage events",
        TABLE,
        UsageEvent,
        UsageEventFilter
    );
    crate::op_get!("usage-events", "usage event", TABLE, UsageEvent);
    crate::op_history!("usage-events", "usage event", TABLE, UsageEvent);
}

/// Every collection's routes.
pub fn routes() -> OpenApiRouter<DataState> {
    macro_rules! full {
        ($router:expr, $m:ident) => {
            $router
                .routes(routes!($m::list, $m::create))
                .routes(routes!($m::get, $m::update, $m::delete))
                .routes(routes!($m::transition))
                .routes(routes!($m::history))
        };
    }
    let router = OpenApiRouter::new();
    let router = full!(router, activities);
    let router = full!(router, blog_posts);
    let router = full!(router, social_posts);
    let router = full!(router, onboarding_runs);
    let router = full!(router, strategies);
    let router = full!(router, contracts);
    let router = full!(router, tool_calls);
    let router = full!(router, integrations);
    router
        .routes(routes!(skills::list, super::skills::create))
        .routes(routes!(
            skills::get,
            super::skills::update,
            super::skills::delete
        ))
        .routes(routes!(skills::history))
        .routes(routes!(super::skills::search))
        .routes(routes!(usage_events::list, super::usage::create))
        .routes(routes!(usage_events::get))
        .routes(routes!(usage_events::history))
        .routes(routes!(super::usage::record_batch))
        .routes(routes!(super::usage::summary))
        .routes(routes!(super::tool_call_batch::ingest))
        .routes(routes!(super::payloads::append, super::payloads::list))
}
