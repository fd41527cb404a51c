// Validates custom resources (a JSON array on stdin) against the schemas of their CRDs, as
// published in the pinned @kubernetes-models packages (scripts/node/package-lock.json):
// types, enums, patterns and required fields. Exits 1 on any error or unknown kind.
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const models = {
  "gateway.networking.k8s.io/v1/HTTPRoute": HTTPRoute,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};
let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = 0;
for (const doc of JSON.parse(input)) {
  const name = `${doc.kind}/${doc.metadata?.name}`;
  const Model = models[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) {
    console.log(`${name}: no schema for ${doc.apiVersion}`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`${name}: valid`);
  } catch (e) {
    console.log(`${name}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
