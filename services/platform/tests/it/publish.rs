use crate::connect;
use futures::StreamExt;
use ledgerline_contract::streams::Limits;
use ledgerline_contract::v1::{EventMeta, OrderEvent, OrderEventType};
use ledgerline_contract::{Schema, subjects};
use ledgerline_platform::nats::ensure_topology;
use ledgerline_platform::publish::{PublishError, Publisher};
use ledgerline_platform::telemetry;
use ledgerline_testkit::NatsServer;
use prost::Message;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

fn event(id: &str) -> OrderEvent {
    OrderEvent {
        meta: Some(EventMeta {
            event_id: id.into(),
            store: "main".into(),
            ..Default::default()
        }),
        r#type: OrderEventType::Created as i32,
        order: None,
    }
}

#[tokio::test]
async fn dedups_by_msg_id_and_sets_house_headers() {
    let nats = NatsServer::start();
    let (_c, js) = connect(&nats).await;
    ensure_topology(&js, Limits::default(), &[], &[])
        .await
        .unwrap();
    let p = Publisher::new(js.clone(), Duration::from_secs(5));
    let subject = subjects::orders("main", OrderEventType::Created, "1", "SO-1");
    let first = p
        .publish_proto(subject.clone(), "oe-1", &event("oe-1"), Default::default())
        .await
        .unwrap();
    let again = p
        .publish_proto(subject.clone(), "oe-1", &event("oe-1"), Default::default())
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(first.sequence, again.sequence);
    let mut s = js.get_stream("ORDERS").await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 1);

    let m = s.get_raw_message(first.sequence).await.unwrap();
    assert_eq!(m.headers.get("Nats-Msg-Id").unwrap().as_str(), "oe-1");
    assert_eq!(
        m.headers.get("Ledgerline-Schema").unwrap().as_str(),
        OrderEvent::NAME
    );
    assert_eq!(
        m.headers.get("content-type").unwrap().as_str(),
        "application/protobuf"
    );
    let tp = m.headers.get("traceparent").unwrap().as_str().to_owned();
    assert!(tp.starts_with("00-") && tp.len() == 55, "{tp}");
    assert_eq!(OrderEvent::decode(m.payload).unwrap(), event("oe-1"));
}

#[tokio::test]
async fn a_missing_stream_is_an_error_not_success() {
    let nats = NatsServer::start();
    let (_c, js) = connect(&nats).await;
    let p = Publisher::new(js, Duration::from_secs(5));
    let err = p
        .publish_proto(
            "orders.main.created".into(),
            "oe-x",
            &event("oe-x"),
            Default::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::NoStream(_)), "{err:?}");
}

#[tokio::test]
async fn trace_context_survives_a_publish_consume_hop() {
    let nats = NatsServer::start();
    let (_c, js) = connect(&nats).await;
    ensure_topology(&js, Limits::default(), &[], &[])
        .await
        .unwrap();
    let p = Publisher::new(js.clone(), Duration::from_secs(5));

    // A real OpenTelemetry layer, as services install, scoped to this test.
    use opentelemetry::trace::TracerProvider as _;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let producer = tracing::info_span!("producer");
    let producer_trace = {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        producer
            .context()
            .span()
            .span_context()
            .trace_id()
            .to_string()
    };
    {
        use tracing::Instrument;
        p.publish_proto(
            "orders.main.created".into(),
            "oe-t",
            &event("oe-t"),
            Default::default(),
        )
        .instrument(producer.clone())
        .await
        .unwrap();
    }

    let stream = js.get_stream("ORDERS").await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("trace-test".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = consumer.messages().await.unwrap();
    let msg = msgs.next().await.unwrap().unwrap();
    assert_eq!(
        telemetry::trace_id(msg.headers.as_ref()).as_deref(),
        Some(producer_trace.as_str())
    );

    // The consumer's span joins the producer's trace.
    let consumer_span = tracing::info_span!("consumer");
    telemetry::join_trace(&consumer_span, msg.headers.as_ref());
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    assert_eq!(
        consumer_span
            .context()
            .span()
            .span_context()
            .trace_id()
            .to_string(),
        producer_trace
    );
}
