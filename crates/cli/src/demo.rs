//! The demo app's campaigns, created by `herald dev` in its workspace when missing (by
//! name, so a restart or a campaign the operator edited is left alone):
//! - "Demo: welcome": a modal on `signed_up`, two variants, converting on
//!   `report_created` within a day;
//! - "Demo: export tip": a tooltip on the Export button when `reports_opened`;
//! - "Demo: upgrade banner": a banner on `pricing_viewed`, with a 20% control holdout;
//! - "Demo: note": an inbox-only message on `note_requested`.
//!
//! Each targets only the demo app's users (the `demo_app` trait, which the demo page
//! sets), so the README walkthrough's own campaigns on the same events are not
//! out-prioritised for its users. The tip and the note are exempt from the workspace's minimum in-app interval (30 s by
//! default), so they show right after the welcome modal.

use std::time::Duration;

use herald_proto::common::v1::{
    Action, ActionKind, BannerPosition, ComparisonOperator, InAppContent, InAppFormat,
    MessageContent, TooltipPlacement, TooltipTarget, message_content::Body,
};
use herald_proto::trigger::v1::trigger_service_client::TriggerServiceClient;
use herald_proto::trigger::v1::{
    Audience, Campaign, CampaignStatus, ConversionGoal, CreateCampaignRequest, EventTrigger,
    ListCampaignsRequest, PropertyFilter, Trigger, Variant, trigger,
};
use herald_runtime::{Downstream, Secret};

/// The trait the demo page sets on its users.
pub const DEMO_TRAIT: &str = "demo_app";

fn action(id: &str, label: &str, kind: ActionKind) -> Action {
    Action {
        id: id.into(),
        label: label.into(),
        kind: kind as i32,
        url: String::new(),
    }
}

fn in_app(format: InAppFormat, title: &str, body: &str, actions: Vec<Action>) -> InAppContent {
    InAppContent {
        format: format as i32,
        title: title.into(),
        body: body.into(),
        actions,
        ..Default::default()
    }
}

fn variant(id: &str, weight: u32, content: InAppContent) -> Variant {
    Variant {
        id: id.into(),
        name: format!("Variant {}", id.to_uppercase()),
        weight,
        contents: vec![MessageContent {
            body: Some(Body::InApp(content)),
        }],
        ..Default::default()
    }
}

fn on_event(name: &str, event: &str, variants: Vec<Variant>) -> Campaign {
    Campaign {
        name: name.into(),
        status: CampaignStatus::Active as i32,
        trigger: Some(Trigger {
            kind: Some(trigger::Kind::Event(EventTrigger {
                event_name: event.into(),
                property_filters: Vec::new(),
            })),
        }),
        variants,
        audience: Some(Audience {
            trait_filters: vec![PropertyFilter {
                property: DEMO_TRAIT.into(),
                operator: ComparisonOperator::Eq as i32,
                value: Some(prost_types::Value {
                    kind: Some(prost_types::value::Kind::BoolValue(true)),
                }),
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The demo campaigns, as created.
pub fn campaigns() -> Vec<Campaign> {
    let greeting = r#"{{ user.first_name | default: "there" }}"#;
    let welcome_actions = || {
        vec![
            action("create-report", "Create a report", ActionKind::Custom),
            action("later", "Later", ActionKind::Dismiss),
        ]
    };
    let mut welcome = on_event(
        "Demo: welcome",
        "signed_up",
        vec![
            variant(
                "a",
                50,
                in_app(
                    InAppFormat::Modal,
                    &format!("Welcome, {greeting}!"),
                    "Your workspace is ready. **Create your first report** to see what Herald counts.",
                    welcome_actions(),
                ),
            ),
            variant(
                "b",
                50,
                in_app(
                    InAppFormat::Modal,
                    &format!("You're in, {greeting}"),
                    "One step to go: *create a report* and your numbers show up here.",
                    welcome_actions(),
                ),
            ),
        ],
    );
    welcome.conversion_goal = Some(ConversionGoal {
        event_name: "report_created".into(),
        attribution_window: Some(prost_types::Duration {
            seconds: 86_400,
            nanos: 0,
        }),
    });

    let mut tip = in_app(
        InAppFormat::Tooltip,
        "Export in one click",
        "Download this report as a CSV file.",
        vec![action("got-it", "Got it", ActionKind::Dismiss)],
    );
    tip.tooltip_target = Some(TooltipTarget {
        selector: "#export-button".into(),
        placement: TooltipPlacement::Bottom as i32,
    });
    let mut tip = on_event(
        "Demo: export tip",
        "reports_opened",
        vec![variant("a", 1, tip)],
    );
    tip.exempt_from_cap_rules = true;

    let mut banner = in_app(
        InAppFormat::Banner,
        "Teams save 20% on yearly plans",
        "Switch to yearly billing any time from **Settings → Billing**.",
        vec![action("see-plans", "See plans", ActionKind::Custom)],
    );
    banner.banner_position = BannerPosition::Top as i32;
    let mut banner = on_event(
        "Demo: upgrade banner",
        "pricing_viewed",
        vec![variant("a", 80, banner)],
    );
    banner.control_weight = 20;
    banner.conversion_goal = Some(ConversionGoal {
        event_name: "plan_upgraded".into(),
        attribution_window: None,
    });

    let mut note = on_event(
        "Demo: note",
        "note_requested",
        vec![variant(
            "a",
            1,
            in_app(
                InAppFormat::InboxOnly,
                "A note for you",
                "Messages like this one wait in the inbox:\n\n- no pop-up\n- an unread badge\n- read and archive from the list",
                Vec::new(),
            ),
        )],
    );
    note.exempt_from_cap_rules = true;
    vec![welcome, tip, banner, note]
}

/// Creates the demo campaigns the workspace does not have yet (by name); returns how many
/// were created.
pub async fn seed(trigger_url: &str, key: Secret) -> anyhow::Result<usize> {
    let trigger =
        Downstream::connect_lazy("trigger", trigger_url, Some(key), Duration::from_secs(5))?;
    let mut client = TriggerServiceClient::new(trigger.channel());
    let mut existing = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_campaigns(trigger.request(
                ListCampaignsRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                    status: None,
                },
                None,
            ))
            .await?
            .into_inner();
        existing.extend(page.campaigns.into_iter().map(|c| c.name));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut created = 0;
    for campaign in campaigns() {
        if existing.contains(&campaign.name) {
            continue;
        }
        client
            .create_campaign(trigger.request(
                CreateCampaignRequest {
                    campaign: Some(campaign),
                },
                None,
            ))
            .await?;
        created += 1;
    }
    Ok(created)
}
