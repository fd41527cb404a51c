//! Latency histograms with bounded labels: MCP requests per tenant (time to the response's
//! headers: for a streamed answer, its start) and real calls per tenant and connector (from
//! the call's arrival to its answer, retries included). Each histogram holds at most
//! [`MAX_SERIES`] label sets; beyond that, observations go to the series labelled `other`,
//! so a worker serving many tenants keeps a bounded number of series. Requests that did not
//! authenticate are labelled `unauthenticated`, whatever tenant their path names.

use crate::sync::lock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// Label sets per histogram at most, beyond the `other` one.
pub const MAX_SERIES: usize = 500;
/// The label of observations beyond [`MAX_SERIES`].
pub const OTHER: &str = "other";
/// The tenant label of requests that did not authenticate.
pub const UNAUTHENTICATED: &str = "unauthenticated";

const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    pub tenant: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    pub tenant: String,
    pub connector: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Which label sets a histogram holds already.
#[derive(Debug, Default)]
struct Seen<K>(Mutex<HashSet<K>>);

impl<K: std::hash::Hash + Eq + Clone> Seen<K> {
    /// Whether `key` has (or now takes) a series of its own.
    fn admit(&self, key: &K) -> bool {
        let mut seen = lock(&self.0);
        if seen.contains(key) {
            return true;
        }
        if seen.len() >= MAX_SERIES {
            return false;
        }
        seen.insert(key.clone());
        true
    }
}

#[derive(Debug)]
pub struct Latency {
    pub requests: Histograms<TenantLabel>,
    pub calls: Histograms<CallLabel>,
    tenants: Seen<String>,
    pairs: Seen<(String, String)>,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            requests: Family::new_with_constructor(histogram),
            calls: Family::new_with_constructor(histogram),
            tenants: Seen::default(),
            pairs: Seen::default(),
        }
    }
}

impl Latency {
    /// A request to `tenant` (`None`: it did not authenticate) answered after `took`.
    pub fn request(&self, tenant: Option<&str>, took: Duration) {
        let tenant = match tenant {
            None => UNAUTHENTICATED.to_owned(),
            Some(t) if self.tenants.admit(&t.to_owned()) => t.to_owned(),
            Some(_) => OTHER.to_owned(),
        };
        self.requests
            .get_or_create(&TenantLabel { tenant })
            .observe(took.as_secs_f64());
    }

    /// A real call of `tenant` to `connector` answered after `took`.
    pub fn call(&self, tenant: &str, connector: &str, took: Duration) {
        let pair = (tenant.to_owned(), connector.to_owned());
        let label = if self.pairs.admit(&pair) {
            CallLabel {
                tenant: pair.0,
                connector: pair.1,
            }
        } else {
            CallLabel {
                tenant: OTHER.to_owned(),
                connector: OTHER.to_owned(),
            }
        };
        self.calls.get_or_create(&label).observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_beyond_the_bound_go_to_other() {
        let latency = Latency::default();
        for i in 0..MAX_SERIES + 50 {
            latency.call(&format!("t{i}"), "c", Duration::from_millis(3));
            latency.request(Some(&format!("t{i}")), Duration::from_millis(3));
        }
        latency.request(None, Duration::from_millis(3));
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("calls", "", latency.calls.clone());
        registry.register("requests", "", latency.requests.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap_or_default();
        let count = |prefix: &str| {
            text.lines()
                .filter(|l| l.starts_with(prefix) && l.contains("_count"))
                .count()
        };
        assert_eq!(count("calls"), MAX_SERIES + 1);
        assert_eq!(count("requests"), MAX_SERIES + 2);
        assert!(
            text.contains("calls_count{tenant=\"other\",connector=\"other\"} 50"),
            "{text}"
        );
        assert!(text.contains("requests_count{tenant=\"unauthenticated\"} 1"));
    }
}
