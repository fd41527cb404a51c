//! Tool pins of a connector: listing them and approving held changes.

use super::*;
use crate::compile::timestamp;
use crate::store::{MAX_TOOL_PINS, ToolPin};

/// Tools one approval may name.
const MAX_APPROVE: usize = MAX_TOOL_PINS;
/// The longest tool name accepted; upstream names are bounded by the listing they came in.
const MAX_TOOL_NAME: usize = 512;

fn definition_pb(digest: String, definition: Option<String>) -> pb::ToolDefinition {
    pb::ToolDefinition {
        digest,
        definition: definition.unwrap_or_default(),
    }
}

fn tool_pb(p: ToolPin) -> pb::ConnectorTool {
    let (pending, pending_since) = match p.pending {
        Some(p) => (
            Some(definition_pb(p.digest, p.definition)),
            Some(timestamp(p.since)),
        ),
        None => (None, None),
    };
    pb::ConnectorTool {
        name: p.tool,
        approved: Some(definition_pb(p.digest, p.definition)),
        approve_time: Some(timestamp(p.approved_at)),
        pending,
        pending_since,
    }
}

/// The tool names of an approval, each a name an upstream could list.
fn tool_names(field: &str, tools: &[String]) -> Result<Vec<String>> {
    if tools.len() > MAX_APPROVE {
        return Err(Error::invalid(
            field,
            format!("names {} tools; at most {MAX_APPROVE} at once", tools.len()),
        ));
    }
    for (i, t) in tools.iter().enumerate() {
        if t.is_empty() || t.len() > MAX_TOOL_NAME || t.chars().any(char::is_control) {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                format!("must be 1-{MAX_TOOL_NAME} bytes without control characters"),
            ));
        }
    }
    Ok(tools.to_vec())
}

impl Admin {
    pub(super) async fn list_tools(
        &self,
        r: pb::ListConnectorToolsRequest,
    ) -> Result<pb::ListConnectorToolsResponse> {
        let tenant = slug("tenant", &r.tenant)?;
        let name = connector_name("name", &r.name)?;
        let connector = self.store.get_connector(&tenant, &name).await?;
        let pins = self.store.tool_pins(&tenant, &name).await?;
        Ok(pb::ListConnectorToolsResponse {
            tools: pins.into_iter().map(tool_pb).collect(),
            auto_approve_tools: connector.settings.auto_approve_tools,
            max_pins: MAX_TOOL_PINS as u32,
        })
    }

    pub(super) async fn approve_tools(
        &self,
        r: pb::ApproveConnectorToolsRequest,
    ) -> Result<pb::ApproveConnectorToolsResponse> {
        let tenant = slug("tenant", &r.tenant)?;
        let name = connector_name("name", &r.name)?;
        let tools = tool_names("tools", &r.tools)?;
        let approved = self.store.approve_tools(&tenant, &name, &tools).await?;
        tracing::info!(tenant = %tenant, connector = %name, approved = approved.len(), "tool definitions approved");
        Ok(pb::ApproveConnectorToolsResponse { approved })
    }
}
