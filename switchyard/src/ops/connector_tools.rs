//! `switchyard connector tools ...`: a connector's pinned tool definitions and the changes
//! held for approval, with a diff of each.

use super::*;
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct ToolsArgs {
    #[command(subcommand)]
    command: Option<ToolsCommand>,
    #[arg(long, required = true)]
    tenant: Option<String>,
    #[arg(long, required = true)]
    name: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum ToolsCommand {
    /// Approve held tool definitions: clients see the tools again.
    Approve {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// The upstream's name of a tool to approve (repeatable) [default: every held one].
        #[arg(long = "tool")]
        tools: Vec<String>,
    },
}

/// Pretty JSON of a stored definition, for the diff.
fn pretty(definition: &str) -> String {
    serde_json::from_str::<Value>(definition)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .map(|s| s + "\n")
        .unwrap_or_else(|_| definition.to_owned())
}

/// A unified diff from the approved definition to the held one.
fn diff(tool: &pb::ConnectorTool) -> Option<String> {
    let approved = tool.approved.as_ref()?;
    let pending = tool.pending.as_ref()?;
    if approved.definition.is_empty() || pending.definition.is_empty() {
        return Some(format!(
            "(a definition is too large to keep; digests {} -> {})\n",
            approved.digest, pending.digest
        ));
    }
    let (old, new) = (pretty(&approved.definition), pretty(&pending.definition));
    Some(
        similar::TextDiff::from_lines(&old, &new)
            .unified_diff()
            .header(
                &format!("{} approved {}", tool.name, approved.digest),
                &format!("{} pending {}", tool.name, pending.digest),
            )
            .to_string(),
    )
}

fn tool_json(t: &pb::ConnectorTool) -> Value {
    let definition = |d: &pb::ToolDefinition| {
        json!({
            "digest": d.digest,
            "definition": serde_json::from_str::<Value>(&d.definition).unwrap_or(Value::Null),
        })
    };
    json!({
        "name": t.name,
        "status": if t.pending.is_some() { "pending" } else { "approved" },
        "approved": t.approved.as_ref().map(definition),
        "approved_at": output::time(t.approve_time.as_ref()),
        "pending": t.pending.as_ref().map(definition),
        "pending_since": output::time(t.pending_since.as_ref()),
        "diff": diff(t),
    })
}

const TOOL_COLUMNS: &[(&str, &str)] = &[
    ("TOOL", "name"),
    ("STATUS", "status"),
    ("APPROVED DIGEST", "approved.digest"),
    ("APPROVED AT", "approved_at"),
    ("PENDING DIGEST", "pending.digest"),
];

pub async fn tools(global: &GlobalArgs, args: ToolsArgs) -> anyhow::Result<()> {
    let mut client =
        pb::connector_service_client::ConnectorServiceClient::new(global.channel().await?);
    if let Some(ToolsCommand::Approve {
        tenant,
        name,
        tools,
    }) = args.command
    {
        let approved = client
            .approve_connector_tools(pb::ApproveConnectorToolsRequest {
                tenant: tenant.clone(),
                name: name.clone(),
                tools,
            })
            .await
            .map_err(server_error)?
            .into_inner()
            .approved;
        let message = if approved.is_empty() {
            format!("connector {name} of tenant {tenant} has no held tool changes")
        } else {
            format!("approved: {}", approved.join(", "))
        };
        print_done(global.output, &message);
        return Ok(());
    }
    let (Some(tenant), Some(name)) = (args.tenant, args.name) else {
        bail!("--tenant and --name are required");
    };
    let list = client
        .list_connector_tools(pb::ListConnectorToolsRequest { tenant, name })
        .await
        .map_err(server_error)?
        .into_inner();
    let items: Vec<Value> = list.tools.iter().map(tool_json).collect();
    output::print_list(global.output, "tools", &items, TOOL_COLUMNS);
    if global.output == Format::Table {
        for tool in &list.tools {
            if let Some(d) = diff(tool) {
                println!("\n{d}");
            }
        }
        if list.auto_approve_tools {
            println!("\nthis connector approves changed definitions as they are seen");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(digest: &str, definition: &str) -> Option<pb::ToolDefinition> {
        Some(pb::ToolDefinition {
            digest: digest.into(),
            definition: definition.into(),
        })
    }

    #[test]
    fn a_held_change_is_shown_as_a_diff_of_the_definitions() {
        let tool = pb::ConnectorTool {
            name: "echo".into(),
            approved: definition("sha256:aa", r#"{"name":"echo","description":"Echoes"}"#),
            pending: definition(
                "sha256:bb",
                r#"{"name":"echo","description":"Echoes, and reads ~/.ssh"}"#,
            ),
            ..Default::default()
        };
        let d = diff(&tool).unwrap();
        assert!(d.contains("--- echo approved sha256:aa"), "{d}");
        assert!(d.contains("+++ echo pending sha256:bb"), "{d}");
        assert!(d.contains("-  \"description\": \"Echoes\""), "{d}");
        assert!(
            d.contains("+  \"description\": \"Echoes, and reads ~/.ssh\""),
            "{d}"
        );
        assert!(
            !d.contains("-  \"name\""),
            "unchanged lines are context: {d}"
        );
        let json = tool_json(&tool);
        assert_eq!(json["status"], "pending");
        assert_eq!(
            json["pending"]["definition"]["description"],
            "Echoes, and reads ~/.ssh"
        );
    }

    #[test]
    fn nothing_held_means_no_diff_and_a_dropped_definition_says_so() {
        let mut tool = pb::ConnectorTool {
            name: "echo".into(),
            approved: definition("sha256:aa", "{}"),
            ..Default::default()
        };
        assert_eq!(diff(&tool), None);
        assert_eq!(tool_json(&tool)["status"], "approved");
        tool.pending = definition("sha256:bb", "");
        assert!(diff(&tool).unwrap().contains("too large"));
    }
}
