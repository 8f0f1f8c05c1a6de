//! Platform plumbing against a real nats-server.

mod consume;
mod publish;
mod topology;

use ledgerline_testkit::NatsServer;

pub async fn connect(nats: &NatsServer) -> (async_nats::Client, async_nats::jetstream::Context) {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client.clone());
    (client, js)
}
