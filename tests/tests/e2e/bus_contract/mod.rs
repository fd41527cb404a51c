//! The bus contract: every test runs on the in-process implementation `switchyard dev`
//! uses and on NATS JetStream, one module per bus; tests of what only NATS does sit with
//! their bus.

/// Runs each named `async fn(Arc<dyn Bus>)` as two tests: on the in-process
/// implementation `switchyard dev` uses, and on NATS JetStream (made from `$client`).
macro_rules! contract {
    ($module:ident, $memory:expr, |$client:ident| $nats:expr; $($name:ident),* $(,)?) => {
        mod $module {
            mod in_memory {
                $(
                    #[tokio::test]
                    async fn $name() {
                        super::super::$name(std::sync::Arc::new($memory)).await;
                    }
                )*
            }
            mod on_nats {
                $(
                    #[tokio::test]
                    async fn $name() {
                        let nats = switchyard_tests::Stack::nats_server().await;
                        let $client = nats.client().await;
                        super::super::$name(std::sync::Arc::new($nats)).await;
                    }
                )*
            }
        }
    };
}

mod fleet;
mod grants;
mod policy;
mod queues;
mod sessions;
