//! A tenant's aggregated catalog: what every connector lists, exposed under the connector's
//! prefix (names kept within what model APIs accept, collisions hidden on both sides),
//! filtered by each connector's allow and deny patterns, with resources routed by the
//! connector that listed them. `Catalog::build` is a pure function of the listings; the
//! gateway lists all connectors concurrently (each within its timeout; a failing one only
//! loses its own entries), one listing at a time per tenant, and reuses the result.

use super::Gateway;
use super::listing::list_one;
use crate::names::{NameMap, Target};
use crate::policy::{Connector, Tenant};
use crate::sync::lock;
use futures::future::join_all;
use rmcp::model::{Prompt, Resource, ResourceTemplate, Tool, ToolAnnotations};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a tenant's aggregated listing is reused for routing calls.
pub(super) const CATALOG_TTL: Duration = Duration::from_secs(30);
/// How old a catalog may be before a name it does not know makes the worker list afresh.
const RELIST_AFTER: Duration = Duration::from_secs(1);
/// How old a catalog a client's listing may be answered from: listings are not limited
/// like real work, so many of them must not each ask every upstream.
pub(super) const LIST_FRESH: Duration = Duration::from_secs(1);
/// How long a request waits for the tenant's listing in progress before it makes do with
/// the last catalog.
const LISTING_WAIT: Duration = Duration::from_secs(5);

/// What one connector listed.
#[derive(Debug, Default, Clone)]
pub struct Listing {
    pub tools: Vec<Tool>,
    pub prompts: Vec<Prompt>,
    pub resources: Vec<Resource>,
    pub templates: Vec<ResourceTemplate>,
}

/// What one listing of all a tenant's connectors found.
#[derive(Debug, Default)]
pub struct Catalog {
    revision: u64,
    at: Option<Instant>,
    pub tool_names: NameMap,
    pub tools: Vec<Tool>,
    /// Each exposed tool's annotations, for the checks every call makes.
    pub annotations: HashMap<String, ToolAnnotations>,
    /// The arguments of exposed tools that go in headers too (see `call_headers`).
    pub params: HashMap<String, Arc<crate::call_headers::ParamHeaders>>,
    pub prompt_names: NameMap,
    pub prompts: Vec<Prompt>,
    pub resources: Vec<Resource>,
    pub templates: Vec<ResourceTemplate>,
    /// Which connector listed each resource URI (empty: listed by two, hidden).
    resource_owner: HashMap<String, String>,
    /// Literal prefixes of URI templates and the connector that listed each.
    template_owner: Vec<(String, String)>,
    /// Which connector listed each URI template, by the template itself.
    template_by_uri: HashMap<String, String>,
    /// Connectors whose listing failed: name, prefix and what went wrong.
    unavailable: Vec<(String, String, String)>,
    /// Exposed names of tools whose changed definition waits for approval.
    held: HashSet<String>,
    /// Tools listed with a definition their connector does not pin, to report; taken
    /// before the catalog is kept.
    pub sightings: Vec<Seen>,
}

/// A tool listed with a definition its connector's policy does not pin.
#[derive(Debug)]
pub struct Seen {
    pub connector: String,
    /// The upstream's own name for it.
    pub tool: String,
    pub definition: serde_json::Value,
    pub digest: switchyard_common::pins::ToolDigest,
}

impl Catalog {
    /// The catalog of `listings` (each connector's listing, or what made it fail) for
    /// policy revision `revision`.
    pub fn build(
        tenant: &str,
        revision: u64,
        listings: &[(Arc<Connector>, Result<Listing, String>)],
    ) -> Catalog {
        let mut catalog = Catalog {
            revision,
            at: Some(Instant::now()),
            ..Catalog::default()
        };
        let mut tool_defs = HashMap::new();
        let mut prompt_defs = HashMap::new();
        let mut tool_entries = Vec::new();
        let mut held = HashSet::new();
        let mut prompt_entries = Vec::new();
        let empty = Listing::default();
        for (c, listing) in listings {
            let l = match listing {
                Ok(l) => l,
                Err(failure) => {
                    catalog
                        .unavailable
                        .push((c.name.clone(), c.prefix.clone(), failure.clone()));
                    &empty
                }
            };
            let mut names = Vec::new();
            for t in l.tools.iter().filter(|t| c.exposes(&t.name)) {
                let (definition, digest) = crate::pins::definition_of(t);
                let verdict = c.pins.check(&t.name, &digest);
                if !verdict.shown {
                    held.insert((c.name.clone(), t.name.to_string()));
                }
                if verdict.report {
                    catalog.sightings.push(Seen {
                        connector: c.name.clone(),
                        tool: t.name.to_string(),
                        definition,
                        digest,
                    });
                }
                names.push(t.name.to_string());
                tool_defs.insert((c.name.clone(), t.name.to_string()), t.clone());
            }
            tool_entries.push((c.name.as_str(), c.prefix.as_str(), names));
            let mut pnames = Vec::new();
            for p in &l.prompts {
                pnames.push(p.name.clone());
                prompt_defs.insert((c.name.clone(), p.name.clone()), p.clone());
            }
            prompt_entries.push((c.name.as_str(), c.prefix.as_str(), pnames));
            catalog.add_resources(tenant, &c.name, l);
        }
        catalog.resources.retain(|r| {
            catalog
                .resource_owner
                .get(&r.uri)
                .is_some_and(|o| !o.is_empty())
        });
        let (tool_names, tool_order) = NameMap::build(tool_entries);
        let (prompt_names, prompt_order) = NameMap::build(prompt_entries);
        for name in tool_names.collisions() {
            tracing::warn!(tenant, tool = %name, "tool name exposed by more than one connector; hidden");
        }
        for name in prompt_names.collisions() {
            tracing::warn!(tenant, prompt = %name, "prompt name exposed by more than one connector; hidden");
        }
        catalog.expose_tools(tool_order, &tool_defs, &held);
        for (exposed, target) in prompt_order {
            if let Some(def) = prompt_defs.get(&(target.connector, target.upstream)) {
                let mut p = def.clone();
                p.name = exposed;
                catalog.prompts.push(p);
            }
        }
        catalog.tool_names = tool_names;
        catalog.prompt_names = prompt_names;
        catalog
    }

    fn add_resources(&mut self, tenant: &str, connector: &str, l: &Listing) {
        for r in &l.resources {
            if self
                .resource_owner
                .insert(r.uri.clone(), connector.to_owned())
                .is_some()
            {
                tracing::warn!(tenant, uri = %r.uri, "resource listed by two connectors; hidden");
                self.resource_owner.insert(r.uri.clone(), String::new());
            } else {
                self.resources.push(r.clone());
            }
        }
        for t in &l.templates {
            let prefix = t
                .uri_template
                .split('{')
                .next()
                .unwrap_or_default()
                .to_owned();
            self.template_owner.push((prefix, connector.to_owned()));
            self.template_by_uri
                .insert(t.uri_template.clone(), connector.to_owned());
            self.templates.push(t.clone());
        }
    }

    fn expose_tools(
        &mut self,
        order: Vec<(String, Target)>,
        defs: &HashMap<(String, String), Tool>,
        held: &HashSet<(String, String)>,
    ) {
        for (exposed, target) in order {
            if held.contains(&(target.connector.clone(), target.upstream.clone())) {
                self.held.insert(exposed);
                continue;
            }
            if let Some(def) = defs.get(&(target.connector, target.upstream)) {
                let mut t = def.clone();
                if let Some(a) = &t.annotations {
                    self.annotations.insert(exposed.clone(), a.clone());
                }
                if let Some(p) = crate::call_headers::ParamHeaders::of(&t.input_schema) {
                    self.params.insert(exposed.clone(), p);
                }
                t.name = exposed.into();
                self.tools.push(t);
            }
        }
    }

    /// The connector a resource URI belongs to: the one that listed it, else the one whose
    /// template has the longest matching literal prefix.
    pub fn owner_of(&self, uri: &str) -> Option<String> {
        self.resource_owner
            .get(uri)
            .filter(|o| !o.is_empty())
            .cloned()
            .or_else(|| {
                self.template_owner
                    .iter()
                    .filter(|(prefix, _)| !prefix.is_empty() && uri.starts_with(prefix.as_str()))
                    .max_by_key(|(prefix, _)| prefix.len())
                    .map(|(_, owner)| owner.clone())
            })
    }

    /// The connector whose tools `name` would be, if it could not be listed.
    pub fn unavailable_for(&self, name: &str) -> Option<(&str, &str)> {
        self.unavailable
            .iter()
            .find(|(_, prefix, _)| {
                !prefix.is_empty()
                    && name
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with("__"))
            })
            .map(|(connector, _, failure)| (connector.as_str(), failure.as_str()))
    }

    /// Whether the tool clients call `name` is held for approval of its changed definition.
    pub fn is_held(&self, name: &str) -> bool {
        self.held.contains(name)
    }

    /// The connector that lists tool `name`.
    pub fn tool_connector(&self, name: &str) -> Option<&str> {
        self.tool_names.get(name).map(|t| t.connector.as_str())
    }

    /// The connector that lists prompt `name`.
    pub fn prompt_connector(&self, name: &str) -> Option<&str> {
        self.prompt_names.get(name).map(|t| t.connector.as_str())
    }

    /// The connector that listed the URI template `template`.
    pub fn template_of(&self, template: &str) -> Option<String> {
        self.template_by_uri.get(template).cloned()
    }
}

impl Gateway {
    /// The tenant's catalog, listed afresh when older than `max_age` or made for an older
    /// policy revision.
    pub(super) async fn catalog(&self, tenant: &Tenant, max_age: Duration) -> Arc<Catalog> {
        let fresh = || {
            lock(&self.core.catalogs)
                .get(tenant.slug.as_str())
                .cloned()
                .filter(|c| {
                    c.revision == tenant.revision && c.at.is_some_and(|at| at.elapsed() < max_age)
                })
        };
        if let Some(c) = fresh() {
            return c;
        }
        // One listing at a time per tenant: the others wait for it and use its result.
        let turn = lock(&self.core.listing)
            .entry(tenant.slug.to_string())
            .or_default()
            .clone();
        // Bounded: a listing stuck on slow upstreams must not hold every other request
        // of the tenant; those waiting too long get the last catalog (or none).
        let Ok(_turn) = tokio::time::timeout(LISTING_WAIT, turn.lock()).await else {
            return self.last_catalog(tenant);
        };
        if let Some(c) = fresh() {
            return c;
        }
        let listings = join_all(tenant.connectors.iter().map(|c| async move {
            let result = list_one(self, tenant, c).await.map_err(|e| {
                tracing::warn!(tenant = %tenant.slug, connector = %c.name, error = %e, "listing an upstream failed");
                e.public()
            });
            (c.clone(), result)
        }))
        .await;
        let mut catalog = Catalog::build(tenant.slug.as_str(), tenant.revision, &listings);
        self.report_sightings(tenant, std::mem::take(&mut catalog.sightings));
        let catalog = Arc::new(catalog);
        lock(&self.core.catalogs).insert(tenant.slug.to_string(), catalog.clone());
        catalog
    }

    /// Tells the control plane of definitions the tenant's policy does not pin (each at
    /// most once a while from this worker).
    fn report_sightings(&self, tenant: &Tenant, seen: Vec<Seen>) {
        let reports = &self.core.reports;
        for s in seen {
            let sighting = crate::pins::sighting(
                tenant.slug.as_str(),
                &s.connector,
                &s.tool,
                &s.definition,
                &s.digest,
                &reports.worker,
            );
            if self.core.reported.due(&sighting.id) {
                reports.tools.record(sighting);
            }
        }
    }

    /// The last catalog listed for `tenant`, however old; without one, a catalog whose
    /// connectors are all still being listed.
    fn last_catalog(&self, tenant: &Tenant) -> Arc<Catalog> {
        if let Some(c) = lock(&self.core.catalogs).get(tenant.slug.as_str()) {
            return c.clone();
        }
        let pending: Vec<_> = tenant
            .connectors
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    Err("it is still being listed; retry shortly".to_owned()),
                )
            })
            .collect();
        Arc::new(Catalog::build(tenant.slug.as_str(), 0, &pending))
    }

    /// Looks a name up, listing afresh once if the cached catalog does not know it.
    pub(super) async fn resolve<T>(
        &self,
        tenant: &Tenant,
        find: impl Fn(&Catalog) -> Option<T>,
    ) -> (Arc<Catalog>, Option<T>) {
        let catalog = self.catalog(tenant, CATALOG_TTL).await;
        if let Some(found) = find(&catalog) {
            return (catalog, Some(found));
        }
        // At most one fresh listing a second per tenant, so unknown names cannot make the
        // worker list every upstream on every request.
        let fresh = self.catalog(tenant, RELIST_AFTER).await;
        let found = find(&fresh);
        (fresh, found)
    }
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
