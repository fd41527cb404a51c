//! What no log filter turns on unless it names it: the debug and trace output of the
//! libraries that log whole messages (rmcp logs every request and answer with its
//! arguments and results, async-nats every JetStream request's payload). An operator who
//! sets `SWITCHYARD_LOG=debug` to chase a problem gets Switchyard's own detail, not the
//! tenants' data; one who really wants those messages names the library (`rmcp=debug`).

/// Libraries whose logs below `info` carry message payloads.
const PAYLOAD_LOGGERS: &[&str] = &["rmcp", "async_nats"];

/// `spec` (a tracing filter, e.g. `debug` or `info,switchyard_worker=trace`) with
/// `<library>=info` added for every payload logger it does not name.
pub fn with_payloads_quiet(spec: &str) -> String {
    let mut out = spec.trim().to_owned();
    for library in PAYLOAD_LOGGERS {
        let named = spec.split(',').any(|d| {
            let target = d.split('=').next().unwrap_or_default().trim();
            target == *library || target.starts_with(&format!("{library}::"))
        });
        if !named {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(library);
            out.push_str("=info");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_loggers_stay_at_info_unless_named() {
        assert_eq!(
            with_payloads_quiet("debug"),
            "debug,rmcp=info,async_nats=info"
        );
        assert_eq!(with_payloads_quiet(""), "rmcp=info,async_nats=info");
        assert_eq!(
            with_payloads_quiet("info,rmcp::service=debug"),
            "info,rmcp::service=debug,async_nats=info"
        );
        assert_eq!(
            with_payloads_quiet("warn,rmcp=trace,async_nats=debug"),
            "warn,rmcp=trace,async_nats=debug"
        );
    }
}
