//! `RequestOptions::connection_log`: every attempt of one request captured
//! from its start, success or not, with the name looked up, the addresses
//! answered, the address connected to and when each stage ended; a failed
//! attempt's detail also in the packet, whose finding sentence says what
//! was proved and where the evidence changed. And the packet of an AI
//! request names its model, read from nothing but a small JSON body.
#![cfg(feature = "hyper-util")]

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{Backoff, Owner, Profile, RetryRules, Stage};
use tower_triage::{ConnectionLog, RequestOptions, TriageLayer};
use triage_testkit::{Resolver, Upstream};

type Svc = tower_triage::Triage<
    Client<
        tower_triage::connect::TagConnect<
            hyper_util::client::legacy::connect::HttpConnector<
                tower_triage::connect::TagResolver<Resolver>,
            >,
        >,
        Full<Bytes>,
    >,
>;

fn service(layer: TriageLayer) -> Svc {
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    layer.layer(client)
}

fn logged(url: &str, log: &ConnectionLog) -> Request<Full<Bytes>> {
    let mut request = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    request
        .extensions_mut()
        .insert(RequestOptions::new().connection_log(log.clone()));
    request
}

#[tokio::test]
async fn a_success_is_captured_from_its_first_attempt() {
    let upstream = Upstream::start().await.unwrap();
    let mut svc = service(TriageLayer::new());
    let log = ConnectionLog::new();
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(logged(&upstream.url("/ok"), &log))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let details = log.details();
    assert_eq!(details.len(), 1, "{details:?}");
    let detail = &details[0];
    assert_eq!(detail.attempt(), 1);
    assert_eq!(detail.name(), Some("svc.test"));
    assert_eq!(detail.answers(), ["127.0.0.1"]);
    assert_eq!(
        detail.connected(),
        Some(format!("127.0.0.1:{}", upstream.addr().port()).as_str())
    );
    let stages: Vec<(Stage, bool)> = detail
        .stages()
        .iter()
        .map(|m| (m.stage(), m.ok()))
        .collect();
    assert_eq!(stages, [(Stage::Dns, true), (Stage::Connect, true)]);
    assert!(detail.stages()[0].at() <= detail.stages()[1].at());
    assert!(detail.error_chain().is_empty());

    // Without a log, the healthy route is not captured (nothing to read:
    // the log given before stays as it was).
    let again = svc
        .ready()
        .await
        .unwrap()
        .call(
            Request::get(upstream.url("/ok"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(log.details().len(), 1);
}

#[tokio::test]
async fn every_failed_attempt_is_in_the_log_and_the_packet() {
    let port = triage_testkit::closed_port().unwrap().port();
    let mut svc =
        service(
            TriageLayer::new().rules(RetryRules::default().max_retries(2).backoff(
                Backoff::new(Duration::from_millis(1), Duration::from_millis(5)).unwrap(),
            )),
        );
    let log = ConnectionLog::new();
    let error = svc
        .ready()
        .await
        .unwrap()
        .call(logged(&format!("http://svc.test:{port}/v1"), &log))
        .await
        .unwrap_err();
    assert_eq!(error.owner(), Some(Owner::ConnectionPath));
    assert_eq!(error.attempts(), 3);
    let details = log.details();
    assert_eq!(
        details.iter().map(|d| d.attempt()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for detail in &details {
        let last = detail.stages().last().unwrap();
        assert_eq!((last.stage(), last.ok()), (Stage::Connect, false));
        assert!(
            detail.error_chain().iter().any(|l| l.contains("refused")),
            "{detail}"
        );
    }
    let packet = error.packet();
    assert_eq!(packet.details().len(), 3);
    assert_eq!(packet.attempts().len(), 3);
    let finding = packet.finding();
    assert!(
        finding.starts_with("DNS resolved svc.test to 127.0.0.1 in "),
        "{finding}"
    );
    assert!(
        finding.contains("; TCP connect to 127.0.0.1 failed after "),
        "{finding}"
    );
    assert!(
        finding.ends_with(
            "; no status, no body, no request ID; the evidence changed at connect \
             (transport.connect.refused)"
        ),
        "{finding}"
    );
    // Told once per failure: a wrapping connector adds no second mark.
    assert_eq!(details[0].stages().len(), 2, "{}", details[0]);
    assert!(
        packet
            .to_string()
            .contains(&format!("  finding:     {finding}"))
    );
}

#[tokio::test]
async fn an_ai_packet_names_the_model_and_nothing_else_of_the_body() {
    let upstream = Upstream::start().await.unwrap();
    let body = r#"{"input":"SECRET-PROMPT","model":"gpt-test-mini","user":"SECRET-USER"}"#;
    let post = || {
        Request::post(upstream.url("/status/500"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let layer =
        || {
            TriageLayer::new()
                .rules(RetryRules::default().max_retries(1).backoff(
                    Backoff::new(Duration::from_millis(1), Duration::from_millis(5)).unwrap(),
                ))
                .errors_for_status(true)
        };

    // The OpenAI profile reads the model from the JSON body.
    let mut svc = service(layer().profile(Profile::openai().clone()));
    let error = svc.ready().await.unwrap().call(post()).await.unwrap_err();
    let packet = error.packet();
    assert_eq!(packet.model(), Some("gpt-test-mini"));
    let text = format!("{packet}{}", packet.to_json());
    assert!(text.contains("  model:       gpt-test-mini"), "{text}");
    assert!(text.contains("\"model\":\"gpt-test-mini\""), "{text}");
    assert!(!text.contains("SECRET"), "{text}");

    // A profile whose bodies name no model reads nothing.
    let mut svc = service(layer().profile(Profile::generic().clone()));
    let error = svc.ready().await.unwrap().call(post()).await.unwrap_err();
    assert_eq!(error.packet().model(), None);
    assert!(!error.packet().to_json().contains("\"model\""));
}
