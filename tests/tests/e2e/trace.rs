//! One webhook, one trace: webhook-ingest, normalizer and xero-writer run as child processes
//! exporting OTLP/HTTP to a receiver inside the test, and the webhook's trace id is on spans
//! of all three; the writer's Xero call spans link to the message spans they worked for.

use axum::body::Bytes;
use ledgerline_demo::{Options, Stack};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A span as exported: service, name, trace id, and the trace ids it links to.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace: Vec<u8>,
    links: Vec<Vec<u8>>,
}

/// An OTLP/HTTP trace receiver on a free port.
async fn receiver() -> (String, Arc<Mutex<Vec<Exported>>>) {
    let spans: Arc<Mutex<Vec<Exported>>> = Default::default();
    let store = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let store = store.clone();
            async move {
                let Ok(req) = ExportTraceServiceRequest::decode(body) else {
                    return axum::http::StatusCode::BAD_REQUEST;
                };
                let mut out = store.lock().unwrap();
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| a.value.as_ref()?.value.as_ref())
                        .map(|v| match v {
                            Value::StringValue(s) => s.clone(),
                            other => format!("{other:?}"),
                        })
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        for s in ss.spans {
                            out.push(Exported {
                                service: service.clone(),
                                name: s.name,
                                trace: s.trace_id,
                                links: s.links.into_iter().map(|l| l.trace_id).collect(),
                            });
                        }
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

/// Trace ids with a span from each of `services`.
fn traces_across(spans: &[Exported], services: &[&str]) -> Vec<Vec<u8>> {
    let mut by_trace: BTreeMap<Vec<u8>, BTreeSet<String>> = BTreeMap::new();
    for s in spans {
        by_trace
            .entry(s.trace.clone())
            .or_default()
            .insert(s.service.clone());
    }
    by_trace
        .into_iter()
        .filter(|(_, seen)| services.iter().all(|s| seen.contains(*s)))
        .map(|(t, _)| t)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_webhook_is_one_trace_across_ingest_normalizer_and_writer() {
    let (url, spans) = receiver().await;
    let mut opts = Options::small(3);
    opts.faults = String::new();
    opts.service_env = vec![
        format!("OTEL_EXPORTER_OTLP_ENDPOINT={url}"),
        // Export within a fraction of a second rather than the default 5 s.
        "OTEL_BSP_SCHEDULE_DELAY=100".into(),
    ];
    let stack = Stack::start(&opts).await.unwrap();
    assert!(stack.missing.is_empty(), "{:?}", stack.missing);
    let truth = stack.send_orders(&opts).await.unwrap();
    let tie = stack
        .wait_converged(&truth, Duration::from_secs(120), |_| {})
        .await
        .unwrap();
    assert!(tie.ok(), "{tie}");
    let services = ["webhook-ingest", "normalizer", "xero-writer"];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (joined, linked) = loop {
        let got = spans.lock().unwrap().clone();
        let joined = traces_across(&got, &services);
        // A Xero call span links to a message span of a trace that crossed every service.
        let linked = got.iter().any(|s| {
            s.service == "xero-writer"
                && s.name == "xero.call"
                && s.links.iter().any(|l| joined.contains(l))
        });
        if !joined.is_empty() && linked {
            break (joined, got);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no trace across {services:?} with a linked Xero call; {} spans: {:?}",
            got.len(),
            got.iter()
                .map(|s| format!("{}:{}", s.service, s.name))
                .collect::<BTreeSet<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let names: BTreeSet<String> = linked
        .iter()
        .filter(|s| joined.contains(&s.trace))
        .map(|s| format!("{}:{}", s.service, s.name))
        .collect();
    assert!(
        names.contains("xero-writer:xero_writer.message"),
        "{names:?}"
    );
    assert!(names.contains("normalizer:normalize"), "{names:?}");
}
