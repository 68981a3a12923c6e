//! End-to-end tests of the simulated API over real loopback sockets.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::akua::{DraftStatus, TerminationReason};
use crate::sim::{AuthCheck, DraftSpec, Endpoint, ErrorShape, Fault, OfferSpec, Pagination, SimApi, World};

const START: i64 = 1_764_000_000;

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Sends an authenticated GET for `path` (relative to the base URL) and returns status and body.
async fn get(api: &SimApi, path: &str) -> (u16, Value) {
    let response = client().get(format!("{}{path}", api.base_url())).bearer_auth(api.token()).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn world_with_offer() -> (World, String) {
    let mut world = World::with_seed(42);
    world.set_now(START);
    let offer = world.add_offer(OfferSpec::paid()).unwrap();
    (world, offer)
}

fn assert_envelope(body: &Value, code: u64) -> String {
    assert_eq!(body["success"], json!(false), "{body}");
    assert_eq!(body["result"], json!({}), "{body}");
    assert_eq!(body["errors"][0]["code"], json!(code), "{body}");
    body["errors"][0]["message"].as_str().expect("error has a message").to_owned()
}

/// Lists every page of an offer's drafts and returns the pages' bodies.
async fn list_all(api: &SimApi, query: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/order_drafts?{query}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, body) = get(api, &path).await;
        assert_eq!(status, 200, "{body}");
        cursor = body["next_cursor"].as_str().map(str::to_owned);
        pages.push(body);
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "listing does not end");
    }
}

#[tokio::test]
async fn auth_failure_envelope_shape() {
    let (world, offer) = world_with_offer();
    let api = SimApi::start(world).await.unwrap();
    let url = format!("{}/order_drafts?offer={offer}", api.base_url());

    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let message = assert_envelope(&response.json().await.unwrap(), 10000);
    assert!(message.contains("bearer"), "{message}");

    let response = client().get(&url).bearer_auth("sk_akua_wrong").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_envelope(&response.json().await.unwrap(), 10000);

    let auths: Vec<AuthCheck> = api.requests().iter().map(|record| record.auth).collect();
    assert_eq!(auths, [AuthCheck::Missing, AuthCheck::Rejected]);
    assert_eq!(api.counters().unauthorized, 2);
    let token = api.token();
    assert!(api.requests().iter().all(|record| !format!("{record:?}").contains(&token)));
    api.shutdown().await;
}

#[tokio::test]
async fn auth_failure_legacy_shape() {
    let (mut world, offer) = world_with_offer();
    world.set_error_shape(ErrorShape::Legacy);
    let api = SimApi::start(world).await.unwrap();

    let url = format!("{}/order_drafts?offer={offer}", api.base_url());
    let response = client().get(&url).bearer_auth("sk_akua_wrong").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!(10000), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body.get("success").is_none(), "{body}");

    let (status, body) = get(&api, "/order_drafts").await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("offer"), "{body}");
    api.shutdown().await;
}

#[tokio::test]
async fn pagination_three_pages_each_once() {
    let (mut world, offer) = world_with_offer();
    let other = world.add_offer(OfferSpec::free()).unwrap();
    let mut expected = HashSet::new();
    for index in 0..250 {
        expected.insert(world.add_draft(DraftSpec::new(&offer)).unwrap());
        if index % 10 == 0 {
            world.add_draft(DraftSpec::new(&other)).unwrap();
        }
    }
    let api = SimApi::start(world).await.unwrap();

    let pages = list_all(&api, &format!("offer={offer}&limit=100")).await;

    let sizes: Vec<usize> = pages.iter().map(|page| page["data"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let has_more: Vec<&Value> = pages.iter().map(|page| &page["has_more"]).collect();
    assert_eq!(has_more, [&json!(true), &json!(true), &json!(false)]);
    assert!(pages[0]["next_cursor"].is_string());
    assert!(pages[1]["next_cursor"].is_string());
    assert_eq!(pages[2]["next_cursor"], Value::Null);
    assert!(pages[2].as_object().unwrap().contains_key("next_cursor"), "next_cursor is present as null");

    let ids: Vec<String> = pages
        .iter()
        .flat_map(|page| page["data"].as_array().unwrap())
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 250);
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), expected);
    api.shutdown().await;
}

#[tokio::test]
async fn default_limit_is_fifty() {
    let (mut world, offer) = world_with_offer();
    for _ in 0..50 {
        world.add_draft(DraftSpec::new(&offer)).unwrap();
    }
    let api = SimApi::start(world).await.unwrap();

    let (status, body) = get(&api, &format!("/order_drafts?offer={offer}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 50);
    assert_eq!(body["has_more"], json!(false), "an exactly full last page has no more");
    assert_eq!(body["next_cursor"], Value::Null);

    api.with_world(|world| world.add_draft(DraftSpec::new(&offer))).unwrap();
    let (_, body) = get(&api, &format!("/order_drafts?offer={offer}")).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 50);
    assert_eq!(body["has_more"], json!(true));
    api.shutdown().await;
}

#[tokio::test]
async fn bad_queries_return_400() {
    let (mut world, offer) = world_with_offer();
    let other = world.add_offer(OfferSpec::free()).unwrap();
    for _ in 0..3 {
        world.add_draft(DraftSpec::new(&offer)).unwrap();
        world.add_draft(DraftSpec::new(&other)).unwrap();
    }
    let api = SimApi::start(world).await.unwrap();

    for limit in ["0", "101", "ten", "-5"] {
        let (status, body) = get(&api, &format!("/order_drafts?offer={offer}&limit={limit}")).await;
        assert_eq!(status, 400, "limit {limit}");
        let message = assert_envelope(&body, 7001);
        assert!(message.contains("limit"), "{message}");
        assert_eq!(body["errors"][0]["path"], json!(["query", "limit"]));
    }

    let (status, body) = get(&api, "/order_drafts?limit=10").await;
    assert_eq!(status, 400);
    assert!(assert_envelope(&body, 7001).contains("offer"));

    let (status, body) = get(&api, &format!("/order_drafts?offer={offer}&cursor=bm90LWEtY3Vyc29y")).await;
    assert_eq!(status, 400);
    assert!(assert_envelope(&body, 7001).contains("cursor"));

    let (status, body) = get(&api, &format!("/order_drafts?offer={offer}&status=shipped")).await;
    assert_eq!(status, 400);
    assert!(assert_envelope(&body, 7001).contains("shipped"));

    let (_, first) = get(&api, &format!("/order_drafts?offer={offer}&limit=1")).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (status, body) = get(&api, &format!("/order_drafts?offer={other}&limit=1&cursor={cursor}")).await;
    assert_eq!(status, 400, "cursor of another offer: {body}");

    api.with_world(World::invalidate_cursors);
    let (status, body) = get(&api, &format!("/order_drafts?offer={offer}&limit=1&cursor={cursor}")).await;
    assert_eq!(status, 400);
    assert!(assert_envelope(&body, 7001).contains("expired"));
    api.shutdown().await;
}

#[tokio::test]
async fn status_filter_selects_phase() {
    let (mut world, offer) = world_with_offer();
    let mut in_payment = HashSet::new();
    for index in 0..30 {
        let status = if index % 3 == 0 { DraftStatus::Payment } else { DraftStatus::Configure };
        let id = world.add_draft(DraftSpec::new(&offer).status(status.clone())).unwrap();
        if status == DraftStatus::Payment {
            in_payment.insert(id);
        }
    }
    let api = SimApi::start(world).await.unwrap();

    let pages = list_all(&api, &format!("offer={offer}&status=payment&limit=4")).await;

    let drafts: Vec<&Value> = pages.iter().flat_map(|page| page["data"].as_array().unwrap()).collect();
    assert!(drafts.iter().all(|draft| draft["status"] == "payment"));
    let ids: HashSet<String> = drafts.iter().map(|draft| draft["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, in_payment);
    assert_eq!(pages.len(), 3);
    api.shutdown().await;
}

#[tokio::test]
async fn get_by_id_and_404() {
    let (mut world, offer) = world_with_offer();
    let id = world.add_draft(DraftSpec::new(&offer).status(DraftStatus::Install)).unwrap();
    let hidden = world.add_draft(DraftSpec::new(&offer)).unwrap();
    world.set_hidden(&hidden, true).unwrap();
    let operation_id = world.draft(&id).unwrap()["install_operation_id"].as_str().unwrap().to_owned();
    let api = SimApi::start(world).await.unwrap();

    let (status, body) = get(&api, &format!("/order_drafts/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(Some(&body), api.with_world(|world| world.draft(&id).cloned()).as_ref());

    let (status, body) = get(&api, "/order_drafts/odft_missing").await;
    assert_eq!(status, 404);
    assert!(assert_envelope(&body, 7002).contains("odft_missing"));

    let (status, body) = get(&api, &format!("/operations/{operation_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], json!("RUNNING"));
    assert_eq!(body["owner_type"], json!("install"));

    let (status, body) = get(&api, "/operations/op_missing").await;
    assert_eq!(status, 404);
    assert_envelope(&body, 7002);

    let (status, _) = get(&api, &format!("/order_drafts/{hidden}")).await;
    assert_eq!(status, 403);
    let (_, listing) = get(&api, &format!("/order_drafts?offer={offer}")).await;
    let listed: Vec<&str> = listing["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [id.as_str()]);
    api.shutdown().await;
}

#[tokio::test]
async fn removed_draft_returns_404() {
    let (mut world, offer) = world_with_offer();
    let id = world.add_draft(DraftSpec::new(&offer).status(DraftStatus::Done)).unwrap();
    let api = SimApi::start(world).await.unwrap();

    assert_eq!(get(&api, &format!("/order_drafts/{id}")).await.0, 200);
    api.with_world(|world| world.remove(&id)).unwrap();
    assert_eq!(get(&api, &format!("/order_drafts/{id}")).await.0, 404);
    api.shutdown().await;
}

#[tokio::test]
async fn fault_on_page_one_once() {
    let (mut world, offer) = world_with_offer();
    let other = world.add_offer(OfferSpec::free()).unwrap();
    for _ in 0..250 {
        world.add_draft(DraftSpec::new(&offer)).unwrap();
        world.add_draft(DraftSpec::new(&other)).unwrap();
    }
    world.inject(Fault::new(Endpoint::ListDrafts, 500).for_offer(&offer).on_page(1));
    let api = SimApi::start(world).await.unwrap();

    let other_pages = list_all(&api, &format!("offer={other}&limit=100")).await;
    assert_eq!(other_pages.len(), 3, "a fault for one offer leaves the other alone");

    let (status, first) = get(&api, &format!("/order_drafts?offer={offer}&limit=100")).await;
    assert_eq!(status, 200);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();

    let page_one = format!("/order_drafts?offer={offer}&limit=100&cursor={cursor}");
    let (status, body) = get(&api, &page_one).await;
    assert_eq!(status, 500);
    assert_envelope(&body, 1000);

    let (status, body) = get(&api, &page_one).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 100);

    assert_eq!(api.counters().faults, 1);
    assert_eq!(api.with_world(|world| world.pending_faults()), 0);
    let statuses: Vec<u16> = api.requests().iter().rev().take(2).map(|record| record.status).collect();
    assert_eq!(statuses, [200, 500]);
    api.shutdown().await;
}

#[tokio::test]
async fn fault_sends_headers_and_raw_body() {
    let (world, _) = world_with_offer();
    let api = SimApi::start(world).await.unwrap();
    api.with_world(|world| {
        let fault = Fault::new(Endpoint::ListOffers, 429).with_header("retry-after", "7").times(2);
        world.inject(fault);
        world.inject(Fault::new(Endpoint::ListOffers, 502).with_raw_body("text/html", "<html>bad gateway</html>"));
    });
    let url = format!("{}/offers", api.base_url());

    for _ in 0..2 {
        let response = client().get(&url).bearer_auth(api.token()).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(response.headers()["retry-after"], "7");
    }
    let response = client().get(&url).bearer_auth(api.token()).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 502);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert_eq!(response.text().await.unwrap(), "<html>bad gateway</html>");

    let (status, _) = get(&api, "/offers").await;
    assert_eq!(status, 200);
    api.shutdown().await;
}

#[tokio::test]
async fn endpoint_outage_until_cleared() {
    let (mut world, offer) = world_with_offer();
    world.add_draft(DraftSpec::new(&offer)).unwrap();
    world.fail_endpoint(Endpoint::ListDrafts, 503);
    let api = SimApi::start(world).await.unwrap();

    for _ in 0..3 {
        assert_eq!(get(&api, &format!("/order_drafts?offer={offer}")).await.0, 503);
    }
    assert_eq!(get(&api, "/offers").await.0, 200, "other endpoints still respond");

    api.with_world(|world| world.clear_faults_for(Endpoint::ListDrafts));
    assert_eq!(get(&api, &format!("/order_drafts?offer={offer}")).await.0, 200);
    api.shutdown().await;
}

#[tokio::test]
async fn slow_fault_trips_client_timeout() {
    let (mut world, _) = world_with_offer();
    world.inject(Fault::slow(Endpoint::ListOffers, Duration::from_millis(600)));
    let api = SimApi::start(world).await.unwrap();
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(150)).build().unwrap();
    let url = format!("{}/offers", api.base_url());

    let error = client.get(&url).bearer_auth(api.token()).send().await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    let response = client.get(&url).bearer_auth(api.token()).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    api.shutdown().await;
}

#[tokio::test]
async fn context_mismatch_returns_403() {
    let (mut world, offer) = world_with_offer();
    let workspace = world.seller_workspace().to_owned();
    world.require_context(Some(workspace.clone()));
    let api = SimApi::start(world).await.unwrap();
    let url = format!("{}/order_drafts?offer={offer}", api.base_url());
    let send = |context: Option<&str>| {
        let mut request = client().get(&url).bearer_auth(api.token());
        if let Some(context) = context {
            request = request.header("akua-context", context);
        }
        request.send()
    };

    assert_eq!(send(Some(&workspace)).await.unwrap().status().as_u16(), 200);
    assert_eq!(send(None).await.unwrap().status().as_u16(), 200);
    let response = send(Some("ws_someone_else")).await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert_envelope(&response.json().await.unwrap(), 10003);
    let too_long = format!("ws_{}", "x".repeat(60));
    assert_eq!(send(Some(&too_long)).await.unwrap().status().as_u16(), 400);

    let contexts: Vec<Option<String>> = api.requests().iter().map(|record| record.context.clone()).collect();
    assert_eq!(contexts[..3], [Some(workspace), None, Some("ws_someone_else".to_owned())]);
    assert_eq!(api.counters().forbidden, 1);
    api.shutdown().await;
}

#[tokio::test]
async fn offers_newest_first_filtered() {
    let mut world = World::with_seed(3);
    world.set_now(START);
    let oldest = world.add_offer(OfferSpec::paid().product_id("prod_a")).unwrap();
    let middle = world.add_offer(OfferSpec::free().product_id("prod_b").status("archived")).unwrap();
    let newest = world.add_offer(OfferSpec::paid().product_id("prod_a")).unwrap();
    let api = SimApi::start(world).await.unwrap();

    let (status, body) = get(&api, "/offers?limit=2").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|offer| offer["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [newest.as_str(), middle.as_str()]);
    assert_eq!(body["data"][1]["status"], json!("archived"));
    let cursor = body["next_cursor"].as_str().unwrap().to_owned();

    let (_, body) = get(&api, &format!("/offers?limit=2&cursor={cursor}")).await;
    assert_eq!(body["data"][0]["id"], json!(oldest));
    assert_eq!(body["has_more"], json!(false));

    let (_, body) = get(&api, "/offers?product_id=prod_a").await;
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|offer| offer["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [newest.as_str(), oldest.as_str()]);

    for field in ["id", "short_hash", "package_id", "package_version_id", "status", "created_at"] {
        assert!(body["data"][0].get(field).is_some(), "offer lacks {field}");
    }
    api.shutdown().await;
}

#[tokio::test]
async fn offset_pagination_repeats_rows() {
    let run = |pagination: Pagination| async move {
        let (mut world, offer) = world_with_offer();
        world.set_pagination(pagination);
        for _ in 0..3 {
            world.add_draft(DraftSpec::new(&offer)).unwrap();
        }
        let api = SimApi::start(world).await.unwrap();

        let (_, first) = get(&api, &format!("/order_drafts?offer={offer}&limit=2")).await;
        let cursor = first["next_cursor"].as_str().unwrap().to_owned();
        api.with_world(|world| world.add_draft(DraftSpec::new(&offer))).unwrap();
        let (_, second) = get(&api, &format!("/order_drafts?offer={offer}&limit=2&cursor={cursor}")).await;
        api.shutdown().await;

        let ids = |page: &Value| -> Vec<String> {
            page["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect()
        };
        let mut all = ids(&first);
        all.extend(ids(&second));
        all
    };

    let keyset = run(Pagination::Keyset).await;
    assert_eq!(keyset.len(), 3);
    assert_eq!(keyset.iter().collect::<HashSet<_>>().len(), 3);

    let offset = run(Pagination::Offset).await;
    assert_eq!(offset.len(), 4);
    assert_eq!(offset.iter().collect::<HashSet<_>>().len(), 3, "one row is listed twice");
}

#[tokio::test]
async fn millisecond_timestamps_option() {
    let (mut world, offer) = world_with_offer();
    let id = world.add_draft(DraftSpec::new(&offer)).unwrap();
    world.set_millisecond_timestamps(true);
    let api = SimApi::start(world).await.unwrap();

    let (_, body) = get(&api, &format!("/order_drafts/{id}")).await;
    assert_eq!(body["created_at"], json!(START * 1000));
    assert_eq!(body["updated_at"], json!(START * 1000));
    assert_eq!(api.with_world(|world| world.draft(&id).unwrap()["created_at"].clone()), json!(START));
    api.shutdown().await;
}

#[tokio::test]
async fn listing_follows_world_changes() {
    let (mut world, offer) = world_with_offer();
    let id = world.add_draft(DraftSpec::new(&offer).status(DraftStatus::Payment)).unwrap();
    let api = SimApi::start(world).await.unwrap();

    let (_, before) = get(&api, &format!("/order_drafts/{id}")).await;
    api.with_world(|world| world.set_status(&id, DraftStatus::Terminated, Some(TerminationReason::Timeout))).unwrap();
    let (_, after) = get(&api, &format!("/order_drafts/{id}")).await;

    assert_eq!(after["status"], json!("terminated"));
    assert_eq!(after["termination_reason"], json!("timeout"));
    assert_ne!(before["etag"], after["etag"]);
    api.shutdown().await;
}

#[tokio::test]
async fn unknown_route_and_method() {
    let (world, _) = world_with_offer();
    let api = SimApi::start(world).await.unwrap();

    let (status, body) = get(&api, "/widgets").await;
    assert_eq!(status, 404);
    assert_envelope(&body, 7002);

    let response =
        client().post(format!("{}/order_drafts", api.base_url())).bearer_auth(api.token()).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    api.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_port() {
    let (world, _) = world_with_offer();
    let api = SimApi::start(world).await.unwrap();
    let url = format!("{}/offers", api.base_url());
    assert!(api.base_url().starts_with("http://127.0.0.1:"));

    api.shutdown().await;
    assert!(client().get(&url).send().await.is_err());
}

#[tokio::test]
async fn scenario_runs_against_server() {
    let world = World::demo_at(9, START);
    let api = SimApi::start(world).await.unwrap();
    let mut scenario = crate::sim::Scenario::new(9);
    let offers: Vec<String> = api.with_world(|world| world.offer_ids());

    for _ in 0..20 {
        api.with_world(|world| {
            world.advance(30);
            scenario.step(world)
        });
    }

    for offer in offers {
        let pages = list_all(&api, &format!("offer={offer}&limit=5")).await;
        for draft in pages.iter().flat_map(|page| page["data"].as_array().unwrap()) {
            let parsed = crate::akua::Draft::from_value(draft.clone()).unwrap();
            assert!(parsed.status.is_known(), "{}", parsed.status);
            assert!(!parsed.etag.is_empty());
        }
    }
    api.shutdown().await;
}
