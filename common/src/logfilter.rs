//! What no log filter turns on unless it names it: the output of the libraries that log
//! messages. rmcp logs every request and answer with its arguments and results at `debug`,
//! and at `info` every notification it receives and a line as each 2026-07-28 request's
//! service starts and ends (two lines per call, formatted on the call's path); async-nats
//! logs each JetStream request's payload below `info`. An operator who sets
//! `SWITCHYARD_LOG=debug` to chase a problem gets Switchyard's own detail, not the tenants'
//! data; one who really wants those messages names the library (`rmcp=debug`).

use tracing::level_filters::LevelFilter;

/// Libraries that log messages, and the most each logs unless the filter names it.
const CAPPED: &[(&str, LevelFilter)] = &[
    ("rmcp", LevelFilter::WARN),
    ("async_nats", LevelFilter::INFO),
];

/// `spec` (a tracing filter, e.g. `debug` or `info,switchyard_worker=trace`) with a
/// directive added for every capped library it does not name: the library's cap, or the
/// spec's own default level where that is lower (`error` keeps them at `error` too).
pub fn with_libraries_capped(spec: &str) -> String {
    let default = spec
        .split(',')
        .map(str::trim)
        // tracing reads an empty string as `error`; here it is no directive at all.
        .filter(|d| !d.is_empty())
        .filter_map(|d| d.parse::<LevelFilter>().ok())
        .next_back();
    let mut out = spec.trim().to_owned();
    for (library, cap) in CAPPED {
        let named = spec.split(',').any(|d| {
            let target = d.split('=').next().unwrap_or_default().trim();
            target == *library || target.starts_with(&format!("{library}::"))
        });
        if !named {
            let level = default.map_or(*cap, |d| d.min(*cap));
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&format!("{library}={level}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_loggers_stay_at_their_cap_unless_named() {
        assert_eq!(
            with_libraries_capped("debug"),
            "debug,rmcp=warn,async_nats=info"
        );
        assert_eq!(with_libraries_capped(""), "rmcp=warn,async_nats=info");
        assert_eq!(
            with_libraries_capped("info,rmcp::service=debug"),
            "info,rmcp::service=debug,async_nats=info"
        );
        assert_eq!(
            with_libraries_capped("warn,rmcp=trace,async_nats=debug"),
            "warn,rmcp=trace,async_nats=debug"
        );
    }

    #[test]
    fn a_lower_default_level_is_not_raised_for_them() {
        assert_eq!(
            with_libraries_capped("warn"),
            "warn,rmcp=warn,async_nats=warn"
        );
        assert_eq!(
            with_libraries_capped("error,switchyard_worker=debug"),
            "error,switchyard_worker=debug,rmcp=error,async_nats=error"
        );
        assert_eq!(with_libraries_capped("off"), "off,rmcp=off,async_nats=off");
    }

    #[test]
    fn what_it_makes_is_a_filter_that_parses() {
        for spec in ["", "debug", "warn,", "info,switchyard_worker=trace", "off"] {
            let made = with_libraries_capped(spec);
            assert!(
                tracing_subscriber::EnvFilter::try_new(&made).is_ok(),
                "{made}"
            );
        }
    }
}
