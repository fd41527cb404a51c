//! `switchyard audit ...`

use super::*;
use serde_json::{Value, json};
use std::path::Path;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List a tenant's audit records, newest first.
    List {
        /// The tenant; omit for the platform's own records (operator tokens).
        #[arg(long, default_value = "")]
        tenant: String,
        /// Only records by this actor (`operator:<token id>`, `system`).
        #[arg(long, default_value = "")]
        actor: String,
        /// Only records about this object (`tenant/acme`, `connector/acme/github`).
        #[arg(long, default_value = "")]
        object: String,
        /// Only records of this API key (its id): calls, refusals, first use.
        #[arg(long, default_value = "")]
        key: String,
        /// Only records about this connector: its changes and the calls to it.
        #[arg(long, default_value = "")]
        connector: String,
        /// Only calls to, and refusals of, this tool (as clients name it).
        #[arg(long, default_value = "")]
        tool: String,
        /// Only records with this outcome (`ok`, `error`, `refused`).
        #[arg(long, default_value = "")]
        outcome: String,
        /// Only records made at or after this time (RFC 3339, or YYYY-MM-DD in UTC).
        #[arg(long)]
        from: Option<String>,
        /// Only records made before this time.
        #[arg(long)]
        to: Option<String>,
        /// At most this many records (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Records older than this page token (printed after a full page).
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Recompute a tenant's hash chain, check its signed checkpoints, and name the first
    /// record that does not match; with `--file`, check an export offline instead.
    Verify {
        /// The tenant; omit for the platform's own chain.
        #[arg(long, default_value = "", conflicts_with = "file")]
        tenant: String,
        /// A JSON export (`audit export -o json`) to check without the service.
        #[arg(long, requires = "public_key")]
        file: Option<PathBuf>,
        /// The audit signing key's public key, base64 (`audit signing-key`); repeat it for
        /// keys used before a rotation.
        #[arg(long, requires = "file")]
        public_key: Vec<String>,
    },
    /// Write a run of a tenant's records, oldest first: `-o json` (one object per line, with
    /// the signed checkpoints, for `audit verify --file`) or `-o csv` (records only).
    Export {
        /// The tenant; omit for the platform's own chain.
        #[arg(long, default_value = "")]
        tenant: String,
        /// From the first record made at or after this time (RFC 3339, or YYYY-MM-DD in UTC).
        #[arg(long)]
        from: Option<String>,
        /// To the last record made before this time.
        #[arg(long)]
        to: Option<String>,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the public key audit checkpoints are signed with.
    SigningKey,
}

const EVENT_COLUMNS: &[(&str, &str)] = &[
    ("SEQ", "seq"),
    ("TIME", "time"),
    ("ACTOR", "actor"),
    ("ACTION", "action"),
    ("OBJECT", "object"),
    ("OUTCOME", "outcome"),
    ("DETAIL", "detail"),
];

fn event(e: &pb::AuditEvent) -> Value {
    json!({
        "tenant": e.tenant,
        "seq": e.seq,
        "id": e.id,
        "time": output::time(e.time.as_ref()),
        "kind": e.kind,
        "actor": e.actor,
        "action": e.action,
        "object": e.object,
        "outcome": e.outcome,
        "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::String(e.detail.clone())),
        "trace_id": e.trace_id,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

/// `--from`/`--to`: RFC 3339, or a UTC day.
fn instant(flag: &str, text: &str) -> anyhow::Result<prost_types::Timestamp> {
    use time::format_description::well_known::Rfc3339;
    let day = time::format_description::parse_borrowed::<2>("[year]-[month]-[day]")?;
    let at = time::OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| time::Date::parse(text, &day).map(|d| d.midnight().assume_utc()))
        .map_err(|_| {
            anyhow!("--{flag} {text:?} is neither an RFC 3339 time nor a YYYY-MM-DD day")
        })?;
    Ok(prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: i32::try_from(at.nanosecond()).unwrap_or(0),
    })
}

async fn export(
    client: &mut pb::audit_service_client::AuditServiceClient<Authed>,
    format: Format,
    request: pb::ExportAuditEventsRequest,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stream = client
        .export_audit_events(request)
        .await
        .map_err(server_error)?
        .into_inner();
    let sink: Box<dyn std::io::Write> = match &out {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("--out {}: cannot create it", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let sink = std::io::BufWriter::new(sink);
    let mut writer = match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(sink);
            w.write_record(audit_file::CSV_HEADER)?;
            ExportWriter::Csv(Box::new(w))
        }
        _ => ExportWriter::Json(sink),
    };
    while let Some(item) = stream.message().await.map_err(server_error)? {
        match (&mut writer, audit_file::Line::of(item)) {
            (ExportWriter::Csv(w), Some(audit_file::Line::Event(e))) => {
                w.write_record(e.csv_row())?
            }
            (ExportWriter::Json(w), Some(line)) => audit_file::write_json(w, &line)?,
            _ => {}
        }
    }
    match writer {
        ExportWriter::Csv(mut w) => w.flush()?,
        ExportWriter::Json(mut w) => w.flush()?,
    }
    Ok(())
}

enum ExportWriter<W: std::io::Write> {
    Csv(Box<csv::Writer<W>>),
    Json(W),
}

fn verify_file(global: &GlobalArgs, file: &Path, keys: &[String]) -> anyhow::Result<()> {
    use switchyard_control_plane::audit::checkpoint::public_key_from_base64;
    let keys = keys
        .iter()
        .map(|k| public_key_from_base64(k).map_err(|e| anyhow!("--public-key {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let reader = std::fs::File::open(file)
        .with_context(|| format!("--file {}: cannot open it", file.display()))?;
    let checked = audit_file::verify(std::io::BufReader::new(reader), &keys)?;
    output::print_one(global.output, &serde_json::to_value(&checked)?);
    if !checked.intact {
        match checked.first_bad_seq {
            Some(seq) => bail!(
                "the export does not verify: record {seq}: {}",
                checked.reason
            ),
            None => bail!("the export does not verify: {}", checked.reason),
        }
    }
    if checked.signed_through < checked.last_seq {
        eprintln!(
            "note: records after {} are signed by no checkpoint in the file",
            checked.signed_through
        );
    }
    Ok(())
}

pub async fn audit(global: &GlobalArgs, cmd: AuditCommand) -> anyhow::Result<()> {
    let mut client = pb::audit_service_client::AuditServiceClient::new(global.channel().await?);
    match cmd {
        AuditCommand::List {
            tenant,
            actor,
            object,
            key,
            connector,
            tool,
            outcome,
            from,
            to,
            limit,
            page_token,
        } => {
            let page = client
                .list_audit_events(pb::ListAuditEventsRequest {
                    tenant,
                    actor,
                    object,
                    key,
                    connector,
                    tool,
                    outcome,
                    start_time: from.as_deref().map(|t| instant("from", t)).transpose()?,
                    end_time: to.as_deref().map(|t| instant("to", t)).transpose()?,
                    page_size: limit,
                    page_token,
                })
                .await
                .map_err(server_error)?
                .into_inner();
            let items: Vec<_> = page.events.iter().map(event).collect();
            output::print_list(global.output, "events", &items, EVENT_COLUMNS);
            if !page.next_page_token.is_empty() && global.output == Format::Table {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
        AuditCommand::Verify {
            file: Some(file),
            public_key,
            ..
        } => verify_file(global, &file, &public_key)?,
        AuditCommand::Export {
            tenant,
            from,
            to,
            out,
        } => {
            let request = pb::ExportAuditEventsRequest {
                tenant,
                start_time: from.as_deref().map(|t| instant("from", t)).transpose()?,
                end_time: to.as_deref().map(|t| instant("to", t)).transpose()?,
            };
            export(&mut client, global.output, request, out).await?;
        }
        AuditCommand::Verify { tenant, .. } => {
            let r = client
                .verify_audit_chain(pb::VerifyAuditChainRequest { tenant })
                .await
                .map_err(server_error)?
                .into_inner();
            let result = json!({
                "intact": r.intact,
                "records": r.records,
                "first_bad_seq": (!r.intact).then_some(r.first_bad_seq),
                "reason": r.reason,
                "checkpoints": r.checkpoints,
                "key_id": r.key_id,
            });
            output::print_one(global.output, &result);
            if !r.intact {
                bail!(
                    "the chain does not verify: record {}: {}",
                    r.first_bad_seq,
                    r.reason
                );
            }
        }
        AuditCommand::SigningKey => {
            let key = client
                .get_audit_signing_key(pb::GetAuditSigningKeyRequest {})
                .await
                .map_err(server_error)?
                .into_inner();
            let result = json!({
                "public_key": key.public_key,
                "key_id": key.key_id,
                "previous_public_keys": key.previous_public_keys,
            });
            output::print_one(global.output, &result);
        }
    }
    Ok(())
}
