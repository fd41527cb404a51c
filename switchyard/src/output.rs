//! Rendering of admin API objects: one JSON shape per object, shown as JSON with `-o json`,
//! as CSV with `-o csv` (a header row, then a row per item; a single object as
//! `field,value` rows), or as a table (lists) / key-value table (single objects) by default.

use serde_json::{Value, json};
use switchyard_proto::admin::v1 as pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Writes `rows` as CSV to stdout.
fn print_csv<R: IntoIterator<Item = String>>(rows: impl IntoIterator<Item = R>) {
    let mut out = csv::Writer::from_writer(std::io::stdout());
    for row in rows {
        if let Err(e) = out.write_record(row) {
            eprintln!("error: writing CSV: {e}");
            return;
        }
    }
    let _ = out.flush();
}

pub fn time(ts: Option<&prost_types::Timestamp>) -> Value {
    let Some(ts) = ts else { return Value::Null };
    let nanos = i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
}

pub fn tenant(t: &pb::Tenant) -> Value {
    let q = t.quotas.unwrap_or_default();
    let state = match pb::TenantState::try_from(t.state) {
        Ok(pb::TenantState::Active) => "active",
        Ok(pb::TenantState::Suspended) => "suspended",
        _ => "unknown",
    };
    let tier = match pb::TenantTier::try_from(t.tier) {
        Ok(pb::TenantTier::Isolated) => "isolated",
        _ => "shared",
    };
    let mut v = json!({
        "slug": t.slug,
        "display_name": t.display_name,
        "state": state,
        "tier": tier,
        "compute_profile": t.compute_profile,
        "audit": t.audit.as_ref().map(|a| json!({
            "arguments": match pb::AuditArguments::try_from(a.arguments) {
                Ok(pb::AuditArguments::Digest) => "digest",
                Ok(pb::AuditArguments::Redacted) => "redacted",
                _ => "none",
            },
            "sensitive_keys": a.sensitive_keys,
            "retention_days": a.retention_days,
            "fail_closed": a.fail_closed,
        })),
        "identity": t.identity.as_ref().map(identity),
        "suspend_reason": t.suspend_reason,
        "quotas": {
            "requests_per_second": q.requests_per_second,
            "burst": q.burst,
            "max_concurrent_requests": q.max_concurrent_requests,
            "max_sessions": q.max_sessions,
            "monthly_tool_calls": q.monthly_tool_calls,
            "max_connectors": q.max_connectors,
            "max_concurrent_other_requests": q.max_concurrent_other_requests,
        },
        "policy_revision": t.policy_revision,
        "etag": t.etag,
        "created": time(t.create_time.as_ref()),
        "updated": time(t.update_time.as_ref()),
    });
    if let Some(s) = &t.status {
        v["status"] = json!({
            "published_revision": s.published_revision,
            "published": time(s.publish_time.as_ref()),
            "publish_error": s.publish_error,
            "publish_error_at": time(s.publish_error_time.as_ref()),
        });
        if let Some(i) = &s.isolation {
            v["status"]["isolation"] = json!({
                "namespace": i.namespace,
                "reconciled_revision": i.reconciled_revision,
                "reconciled": time(i.reconcile_time.as_ref()),
                "reconcile_error": i.reconcile_error,
                "reconcile_error_at": time(i.reconcile_error_time.as_ref()),
                "dedicated_workers_serving": i.dedicated_workers_serving,
            });
        }
    }
    v
}

pub fn usage(u: &pb::TenantUsage) -> Value {
    json!({
        "slug": u.slug,
        "period": u.period,
        "tool_calls": u.tool_calls,
        "monthly_tool_calls": u.monthly_tool_calls,
        "exhausted": u.exhausted,
        "resets_at": time(u.resets_at.as_ref()),
    })
}

/// One day of a tenant's usage; refusals as `reason=count` joined by `;`.
pub fn usage_day(d: &pb::UsageDay) -> Value {
    let mut refusals: Vec<(&String, &u64)> = d.refusals.iter().collect();
    refusals.sort();
    let refusals: Vec<String> = refusals.iter().map(|(r, n)| format!("{r}={n}")).collect();
    json!({
        "day": d.day,
        "calls": d.calls,
        "tool_calls": d.tool_calls,
        "failed_calls": d.failed_calls,
        "upstream_seconds": d.upstream_seconds,
        "refusals": refusals.join(";"),
    })
}

pub fn worker(w: &pb::Worker) -> Value {
    let breakers: Vec<Value> = w
        .breakers
        .iter()
        .map(|b| {
            json!({
                "tenant": b.tenant,
                "connector": b.connector,
                "state": b.state,
                "retry_time": time(b.retry_time.as_ref()),
            })
        })
        .collect();
    let summary = w
        .breakers
        .iter()
        .map(|b| format!("{}/{} {}", b.tenant, b.connector, b.state))
        .collect::<Vec<_>>()
        .join(", ");
    json!({
        "id": w.id,
        "ready": w.ready,
        "started": time(w.start_time.as_ref()),
        "last_heartbeat": time(w.last_heartbeat.as_ref()),
        "tenants": w.tenants,
        "sessions": w.sessions,
        "policy_revision": w.policy_revision,
        "breakers": breakers,
        "breakers_summary": if summary.is_empty() { "-".to_owned() } else { summary },
    })
}

pub fn connector(c: &pb::Connector) -> Value {
    let (kind, url, headers) = match &c.kind {
        Some(pb::connector::Kind::Mcp(m)) => (
            "mcp",
            m.url.clone(),
            m.headers
                .iter()
                .map(|h| json!({"name": h.name, "value_set": h.value_set}))
                .collect::<Vec<_>>(),
        ),
        None => ("unknown", String::new(), Vec::new()),
    };
    let retry = c.retry.unwrap_or_default();
    let breaker = c.breaker.unwrap_or_default();
    json!({
        "tenant": c.tenant,
        "name": c.name,
        "kind": kind,
        "url": url,
        "headers": headers,
        "enabled": c.enabled,
        "prefix": c.prefix.clone().unwrap_or_else(|| c.name.clone()),
        "timeout_ms": c.timeout_ms,
        "allow_tools": c.allow_tools,
        "deny_tools": c.deny_tools,
        "retry": {
            "max_attempts": retry.max_attempts,
            "initial_backoff_ms": retry.initial_backoff_ms,
            "max_backoff_ms": retry.max_backoff_ms,
            "retry_idempotent_tools": retry.retry_idempotent_tools,
        },
        "breaker": {
            "consecutive_failures": breaker.consecutive_failures,
            "failure_rate_percent": breaker.failure_rate_percent,
            "minimum_calls": breaker.minimum_calls,
            "open_ms": breaker.open_ms,
            "half_open_probes": breaker.half_open_probes,
        },
        "auto_approve_tools": c.auto_approve_tools,
        "etag": c.etag,
        "created": time(c.create_time.as_ref()),
        "updated": time(c.update_time.as_ref()),
    })
}

fn role(role: i32) -> &'static str {
    match pb::ApiKeyRole::try_from(role) {
        Ok(pb::ApiKeyRole::Viewer) => "viewer",
        Ok(pb::ApiKeyRole::Editor) => "editor",
        Ok(pb::ApiKeyRole::Admin) => "admin",
        _ => "unknown",
    }
}

fn identity(i: &pb::IdentitySettings) -> Value {
    json!({
        "api_keys_disabled": i.api_keys_disabled,
        "provider": i.provider.as_ref().map(|p| json!({
            "issuer": p.issuer,
            "audience": p.audience,
            "role_claim": p.role_claim,
            "roles": p.roles.iter().map(|m| json!({"value": m.value, "role": role(m.role)})).collect::<Vec<_>>(),
            "client_id": p.client_id,
            "sign_in_scopes": p.sign_in_scopes,
        })),
        "access_token_seconds": i.access_token_seconds,
        "refresh_token_seconds": i.refresh_token_seconds,
    })
}

pub fn grant(g: &pb::Grant) -> Value {
    json!({
        "id": g.id,
        "tenant": g.tenant,
        "client_id": g.client_id,
        "holder": g.holder,
        "scopes": g.scopes.join(" "),
        "created": time(g.create_time.as_ref()),
        "expires": time(g.expire_time.as_ref()),
    })
}

pub fn key(k: &pb::ApiKey) -> Value {
    let role = role(k.role);
    json!({
        "id": k.id,
        "tenant": k.tenant,
        "prefix": k.prefix,
        "role": role,
        "description": k.description,
        "requests_per_second": k.requests_per_second,
        "burst": k.burst,
        "created": time(k.create_time.as_ref()),
        "expires": time(k.expire_time.as_ref()),
        "last_used": time(k.last_used_time.as_ref()),
        "revoked": time(k.revoke_time.as_ref()),
    })
}

/// Looks up a dotted path such as `quotas.burst`.
fn field<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(v, |v, p| v.get(p).unwrap_or(&Value::Null))
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| match i.get("name") {
                    Some(n) => cell(n),
                    None => cell(i),
                })
                .collect();
            if parts.is_empty() {
                "-".into()
            } else {
                parts.join(", ")
            }
        }
        other => other.to_string(),
    }
}

fn new_table() -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table
}

/// Prints a list with the given `(header, json path)` columns.
pub fn print_list(format: Format, name: &str, items: &[Value], columns: &[(&str, &str)]) {
    match format {
        Format::Json => {
            let mut obj = serde_json::Map::new();
            obj.insert(name.to_owned(), Value::Array(items.to_vec()));
            println!("{}", Value::Object(obj));
        }
        Format::Csv => {
            let header = vec![columns.iter().map(|(h, _)| (*h).to_owned()).collect()];
            let rows = items.iter().map(|item| {
                columns
                    .iter()
                    .map(|(_, path)| cell(field(item, path)))
                    .collect::<Vec<_>>()
            });
            print_csv(header.into_iter().chain(rows));
        }
        Format::Table => {
            let mut table = new_table();
            table.set_header(columns.iter().map(|(h, _)| *h));
            for item in items {
                table.add_row(columns.iter().map(|(_, path)| cell(field(item, path))));
            }
            println!("{table}");
        }
    }
}

/// Prints one object: JSON, or one row per field (nested objects flattened with dots).
pub fn print_one(format: Format, item: &Value) {
    match format {
        Format::Json => println!("{item}"),
        Format::Csv => {
            let mut rows = Vec::new();
            flatten("", item, &mut rows);
            let header = ["field".to_owned(), "value".to_owned()];
            print_csv(std::iter::once(header).chain(rows.into_iter().map(|(k, v)| [k, v])));
        }
        Format::Table => {
            let mut table = new_table();
            let mut rows = Vec::new();
            flatten("", item, &mut rows);
            for (k, v) in rows {
                table.add_row([k, v]);
            }
            println!("{table}");
        }
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_owned(), cell(other))),
    }
}
