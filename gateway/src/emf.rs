//! CloudWatch embedded metric format (EMF) lines on stdout, when `--cloudwatch-emf` is on.
//!
//! Every interval, [`run`] reads the gateway's own Prometheus metrics (the text
//! exposition, exactly what `/metrics` serves), subtracts the previous reading, and
//! prints one EMF JSON line for the service as a whole (dimension set `[Service]`) and
//! one per route that served requests in the interval (`[Service, Route]`), in namespace
//! `Protea`. Latency, flush latency and batch size are distributions
//! (`{"Values": [...], "Counts": [...]}`, one value per histogram bucket with
//! observations, the bucket's upper bound; at most [`EMF_VALUES_MAX`] values), so
//! CloudWatch computes p50/p99/p99.9 from them.
//!
//! The request path pays nothing for EMF: the numbers come from histograms it already
//! keeps. Lines carry only route templates and counts: never an id, a tenant's data or
//! personal information. Nothing here runs when the flag is off.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::app::App;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Protea";
/// Most values in one EMF distribution (the EMF specification's limit).
pub const EMF_VALUES_MAX: usize = 100;
/// Most metrics in one EMF directive (the EMF specification's limit).
pub const EMF_METRICS_MAX: usize = 100;
/// Most dimensions in one dimension set (the EMF specification's limit).
pub const EMF_DIMENSIONS_MAX: usize = 30;

/// Prints EMF lines for `app` every `interval`, forever (the task ends with the process).
pub async fn run(app: Arc<App>, interval: Duration, service: String) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut previous = Snapshot::default();
    loop {
        ticker.tick().await;
        app.observe();
        let current = Snapshot::parse(&app.metrics.encode());
        let lines = documents(&previous, &current, &service, unix_ms());
        previous = current;
        let mut stdout = std::io::stdout().lock();
        for line in lines {
            if writeln!(stdout, "{line}").is_err() {
                return; // stdout is gone: nothing left to print to.
            }
        }
    }
}

fn unix_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// One sample of the text exposition: metric name, labels, value.
#[derive(Clone, Debug, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Every `protea_` sample of one reading.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    samples: Vec<Sample>,
}

impl Snapshot {
    /// Parses the Prometheus/OpenMetrics text exposition (lines it cannot read are skipped).
    pub fn parse(text: &str) -> Self {
        let samples =
            text.lines().filter(|l| l.starts_with("protea_")).filter_map(sample).collect();
        Self { samples }
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        keep: impl Fn(&Sample) -> bool + 'a,
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name && keep(s))
    }

    fn sum(&self, name: &str, keep: impl Fn(&Sample) -> bool) -> f64 {
        self.matching(name, keep).map(|s| s.value).sum()
    }

    fn max(&self, name: &str) -> Option<f64> {
        self.matching(name, |_| true).map(|s| s.value).reduce(f64::max)
    }

    /// Cumulative bucket counts by upper bound, summed over the series `keep` selects.
    fn buckets(&self, histogram: &str, keep: impl Fn(&Sample) -> bool) -> BTreeMap<Bound, f64> {
        let mut buckets = BTreeMap::new();
        for sample in self.matching(&format!("{histogram}_bucket"), keep) {
            let Some(le) = sample.labels.get("le").and_then(|le| parse_float(le)) else { continue };
            *buckets.entry(Bound(le)).or_insert(0.0) += sample.value;
        }
        buckets
    }
}

fn sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = parse_float(value)?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, labels(rest.strip_suffix('}')?)?),
        None => (series, BTreeMap::new()),
    };
    Some(Sample { name: name.to_owned(), labels, value })
}

/// `a="x",b="y"` (label values here never contain quotes or commas: they come from
/// fixed sets of route templates, codes and numbers).
fn labels(text: &str) -> Option<BTreeMap<String, String>> {
    text.split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.to_owned(), value.trim_matches('"').to_owned()))
        })
        .collect()
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        _ => text.parse().ok(),
    }
}

/// A histogram bucket's upper bound, ordered (never NaN: parsed from the exposition).
#[derive(Clone, Copy, Debug)]
struct Bound(f64);

impl PartialEq for Bound {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Bound {}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A distribution over one interval: per-bucket counts (not cumulative), by upper bound.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Distribution {
    values: Vec<f64>,
    counts: Vec<f64>,
}

impl Distribution {
    /// The interval's observations from two cumulative readings, each value scaled by
    /// `scale` (e.g. 1000 for seconds to milliseconds). The overflow bucket's value is
    /// twice the largest finite bound.
    fn between(before: &BTreeMap<Bound, f64>, after: &BTreeMap<Bound, f64>, scale: f64) -> Self {
        let largest_finite =
            after.keys().map(|b| b.0).filter(|b| b.is_finite()).fold(0.0, f64::max);
        let mut distribution = Self::default();
        let mut below_before = 0.0;
        let mut below_after = 0.0;
        for (bound, cumulative_after) in after {
            let cumulative_before = before.get(bound).copied().unwrap_or(0.0);
            let count = (cumulative_after - below_after) - (cumulative_before - below_before);
            (below_after, below_before) = (*cumulative_after, cumulative_before);
            if count > 0.0 {
                let upper = if bound.0.is_finite() { bound.0 } else { largest_finite * 2.0 };
                distribution.values.push(upper * scale);
                distribution.counts.push(count);
            }
        }
        distribution.cap(EMF_VALUES_MAX);
        distribution
    }

    /// Merges the highest buckets so at most `values_max` values remain.
    fn cap(&mut self, values_max: usize) {
        if self.values.len() <= values_max {
            return;
        }
        let overflow: f64 = self.counts.drain(values_max - 1..).sum();
        let top = self.values.drain(values_max - 1..).fold(0.0, f64::max);
        self.values.push(top);
        self.counts.push(overflow);
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn to_json(&self) -> Value {
        json!({ "Values": self.values, "Counts": self.counts })
    }
}

/// One EMF document being built: the directive's metric list and the values.
struct Document {
    body: Map<String, Value>,
    metrics: Vec<Value>,
}

impl Document {
    fn new(dimensions: &[(&str, &str)]) -> Self {
        let mut body = Map::new();
        for (name, value) in dimensions {
            body.insert((*name).to_owned(), Value::from(*value));
        }
        Self { body, metrics: Vec::new() }
    }

    fn put(&mut self, name: &str, unit: &str, value: Value) {
        self.metrics.push(json!({ "Name": name, "Unit": unit }));
        self.body.insert(name.to_owned(), value);
    }

    fn put_distribution(&mut self, name: &str, unit: &str, distribution: &Distribution) {
        if !distribution.is_empty() {
            self.put(name, unit, distribution.to_json());
        }
    }

    fn finish(mut self, dimensions: &[&str], timestamp_ms: u64) -> Value {
        let directive = json!({
            "Namespace": NAMESPACE,
            "Dimensions": [dimensions],
            "Metrics": self.metrics,
        });
        let aws = json!({ "Timestamp": timestamp_ms, "CloudWatchMetrics": [directive] });
        self.body.insert("_aws".to_owned(), aws);
        Value::Object(self.body)
    }
}

const REQUESTS: &str = "protea_http_request_duration_seconds";
const FLUSH: &str = "protea_flush_duration_seconds";
const BATCH_EVENTS: &str = "protea_batch_events";
const MS_PER_S: f64 = 1000.0;

/// The interval's request counts, for one route or for all (`route` = `None`).
fn put_requests(document: &mut Document, before: &Snapshot, after: &Snapshot, route: Option<&str>) {
    let on_route =
        |s: &Sample| route.is_none_or(|r| s.labels.get("route").map(String::as_str) == Some(r));
    let status =
        |s: &Sample| s.labels.get("status").and_then(|v| v.parse::<u16>().ok()).unwrap_or(0);
    let count = |keep: &dyn Fn(&Sample) -> bool| {
        let name = format!("{REQUESTS}_count");
        let delta = after.sum(&name, |s| on_route(s) && keep(s))
            - before.sum(&name, |s| on_route(s) && keep(s));
        Value::from(delta.max(0.0))
    };
    document.put("Requests", "Count", count(&|_| true));
    document.put("Errors5xx", "Count", count(&|s| status(s) >= 500));
    document.put("Errors4xx", "Count", count(&|s| (400..500).contains(&status(s))));
    document.put("RateLimited", "Count", count(&|s| status(s) == 429));
    let latency = Distribution::between(
        &before.buckets(REQUESTS, on_route),
        &after.buckets(REQUESTS, on_route),
        MS_PER_S,
    );
    document.put_distribution("RequestLatency", "Milliseconds", &latency);
}

/// The EMF documents of one interval: the service's, then one per route with requests.
pub fn documents(
    before: &Snapshot,
    after: &Snapshot,
    service: &str,
    timestamp_ms: u64,
) -> Vec<Value> {
    let mut lines = vec![service_document(before, after, service, timestamp_ms)];
    for route in active_routes(before, after) {
        let mut document = Document::new(&[("Service", service), ("Route", &route)]);
        put_requests(&mut document, before, after, Some(&route));
        lines.push(document.finish(&["Service", "Route"], timestamp_ms));
    }
    lines
}

fn service_document(
    before: &Snapshot,
    after: &Snapshot,
    service: &str,
    timestamp_ms: u64,
) -> Value {
    let mut document = Document::new(&[("Service", service)]);
    put_requests(&mut document, before, after, None);
    let all = |_: &Sample| true;
    let flush =
        Distribution::between(&before.buckets(FLUSH, all), &after.buckets(FLUSH, all), MS_PER_S);
    document.put_distribution("FlushLatency", "Milliseconds", &flush);
    let batch = Distribution::between(
        &before.buckets(BATCH_EVENTS, all),
        &after.buckets(BATCH_EVENTS, all),
        1.0,
    );
    document.put_distribution("BatchSize", "Count", &batch);
    document.put(
        "QueueDepth",
        "Count",
        Value::from(after.max("protea_queue_depth").unwrap_or(0.0)),
    );
    let audit_depth = after.max("protea_audit_queue_depth").unwrap_or(0.0);
    document.put("AuditQueueDepth", "Count", Value::from(audit_depth));
    // Present once the audit chain's background verification exports its gauge.
    if let Some(chain_ok) = after.max("protea_audit_chain_ok") {
        document.put("AuditChainBroken", "Count", Value::from(u8::from(chain_ok < 1.0)));
    }
    document.finish(&["Service"], timestamp_ms)
}

/// Routes whose request count moved in the interval, in order.
fn active_routes(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let name = format!("{REQUESTS}_count");
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    for sample in after.matching(&name, |_| true) {
        let Some(route) = sample.labels.get("route") else { continue };
        *totals.entry(route).or_insert(0.0) += sample.value;
    }
    for sample in before.matching(&name, |_| true) {
        let Some(route) = sample.labels.get("route") else { continue };
        *totals.entry(route).or_insert(0.0) -= sample.value;
    }
    totals
        .into_iter()
        .filter(|(_, delta)| *delta > 0.0)
        .map(|(route, _)| route.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# HELP protea_http_request_duration_seconds HTTP request latency.
# TYPE protea_http_request_duration_seconds histogram
protea_http_request_duration_seconds_sum{route="/v1/transfers",method="POST",status="200"} 0.01
protea_http_request_duration_seconds_count{route="/v1/transfers",method="POST",status="200"} 2
protea_http_request_duration_seconds_bucket{le="0.001",route="/v1/transfers",method="POST",status="200"} 1
protea_http_request_duration_seconds_bucket{le="0.002",route="/v1/transfers",method="POST",status="200"} 2
protea_http_request_duration_seconds_bucket{le="+Inf",route="/v1/transfers",method="POST",status="200"} 2
protea_queue_depth{core="0"} 0
# EOF
"#;

    const AFTER: &str = r#"protea_http_request_duration_seconds_count{route="/v1/transfers",method="POST",status="200"} 7
protea_http_request_duration_seconds_bucket{le="0.001",route="/v1/transfers",method="POST",status="200"} 2
protea_http_request_duration_seconds_bucket{le="0.002",route="/v1/transfers",method="POST",status="200"} 6
protea_http_request_duration_seconds_bucket{le="+Inf",route="/v1/transfers",method="POST",status="200"} 7
protea_http_request_duration_seconds_count{route="/v1/transfers",method="POST",status="429"} 3
protea_http_request_duration_seconds_bucket{le="0.001",route="/v1/transfers",method="POST",status="429"} 3
protea_http_request_duration_seconds_bucket{le="0.002",route="/v1/transfers",method="POST",status="429"} 3
protea_http_request_duration_seconds_bucket{le="+Inf",route="/v1/transfers",method="POST",status="429"} 3
protea_http_request_duration_seconds_count{route="/livez",method="GET",status="503"} 1
protea_http_request_duration_seconds_bucket{le="0.001",route="/livez",method="GET",status="503"} 1
protea_http_request_duration_seconds_bucket{le="0.002",route="/livez",method="GET",status="503"} 1
protea_http_request_duration_seconds_bucket{le="+Inf",route="/livez",method="GET",status="503"} 1
protea_flush_duration_seconds_bucket{le="0.001",core="0"} 4
protea_flush_duration_seconds_bucket{le="+Inf",core="0"} 4
protea_flush_duration_seconds_bucket{le="0.001",core="1"} 1
protea_flush_duration_seconds_bucket{le="+Inf",core="1"} 2
protea_batch_events_bucket{le="1.0",core="0"} 3
protea_batch_events_bucket{le="2.0",core="0"} 6
protea_batch_events_bucket{le="+Inf",core="0"} 6
protea_queue_depth{core="0"} 3
protea_queue_depth{core="1"} 5
protea_audit_queue_depth 2
"#;

    fn documents_of(before: &str, after: &str) -> Vec<Value> {
        documents(&Snapshot::parse(before), &Snapshot::parse(after), "protea", 1_700_000_000_000)
    }

    /// Checks one document against the EMF specification's structure and limits.
    fn assert_valid_emf(document: &Value) {
        let aws = &document["_aws"];
        assert!(aws["Timestamp"].as_u64().is_some(), "Timestamp is a number: {document}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics array");
        assert_eq!(directives.len(), 1);
        for directive in directives {
            assert_eq!(directive["Namespace"], NAMESPACE);
            let sets = directive["Dimensions"].as_array().expect("Dimensions array");
            for set in sets {
                let set = set.as_array().expect("a dimension set is an array");
                assert!(!set.is_empty() && set.len() <= EMF_DIMENSIONS_MAX);
                for dimension in set {
                    let name = dimension.as_str().expect("dimension names are strings");
                    assert!(document[name].is_string(), "dimension {name} has a string value");
                }
            }
            let metrics = directive["Metrics"].as_array().expect("Metrics array");
            assert!(!metrics.is_empty() && metrics.len() <= EMF_METRICS_MAX);
            for metric in metrics {
                let name = metric["Name"].as_str().expect("Name");
                assert!(metric["Unit"].is_string());
                let value = &document[name];
                match value {
                    Value::Number(_) => {}
                    Value::Object(distribution) => {
                        let values = distribution["Values"].as_array().expect("Values");
                        let counts = distribution["Counts"].as_array().expect("Counts");
                        assert_eq!(values.len(), counts.len());
                        assert!(!values.is_empty() && values.len() <= EMF_VALUES_MAX);
                    }
                    other => panic!("metric {name} has no number or distribution: {other}"),
                }
            }
        }
    }

    fn names(document: &Value) -> Vec<(String, String)> {
        let metrics = document["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap();
        metrics
            .iter()
            .map(|m| {
                (m["Name"].as_str().unwrap().to_owned(), m["Unit"].as_str().unwrap().to_owned())
            })
            .collect()
    }

    #[test]
    fn the_service_and_each_active_route_get_a_valid_document() {
        let lines = documents_of(BEFORE, AFTER);
        assert_eq!(lines.len(), 3, "service, /livez, /v1/transfers: {lines:?}");
        lines.iter().for_each(assert_valid_emf);
        let service = &lines[0];
        assert_eq!(service["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Service"]]));
        assert_eq!(service["Service"], "protea");
        assert_eq!(service["Requests"], 9.0);
        assert_eq!(service["Errors5xx"], 1.0);
        assert_eq!(service["Errors4xx"], 3.0);
        assert_eq!(service["RateLimited"], 3.0);
        assert_eq!(service["QueueDepth"], 5.0);
        assert_eq!(service["AuditQueueDepth"], 2.0);
        assert_eq!(service["FlushLatency"], json!({"Values": [1.0, 2.0], "Counts": [5.0, 1.0]}));
        assert_eq!(service["BatchSize"], json!({"Values": [1.0, 2.0], "Counts": [3.0, 3.0]}));
        let transfers = &lines[2];
        assert_eq!(transfers["Route"], "/v1/transfers");
        assert_eq!(
            transfers["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service", "Route"]])
        );
        assert_eq!(transfers["Requests"], 8.0);
        assert_eq!(
            transfers["RequestLatency"],
            json!({"Values": [1.0, 2.0, 4.0], "Counts": [4.0, 3.0, 1.0]})
        );
        assert_eq!(lines[1]["Route"], "/livez");
        assert_eq!(lines[1]["Errors5xx"], 1.0);
    }

    #[test]
    fn metric_names_and_units_are_the_contract() {
        let lines = documents_of(BEFORE, AFTER);
        let unit = |n: &str, u: &str| (n.to_owned(), u.to_owned());
        assert_eq!(
            names(&lines[0]),
            vec![
                unit("Requests", "Count"),
                unit("Errors5xx", "Count"),
                unit("Errors4xx", "Count"),
                unit("RateLimited", "Count"),
                unit("RequestLatency", "Milliseconds"),
                unit("FlushLatency", "Milliseconds"),
                unit("BatchSize", "Count"),
                unit("QueueDepth", "Count"),
                unit("AuditQueueDepth", "Count"),
            ]
        );
        let chain = format!("{AFTER}protea_audit_chain_ok 0\n");
        let broken = &documents_of(BEFORE, &chain)[0];
        assert_eq!(broken["AuditChainBroken"], 1);
        assert!(names(broken).contains(&unit("AuditChainBroken", "Count")));
    }

    #[test]
    fn a_quiet_interval_has_only_the_service_line_with_zero_counts() {
        let lines = documents_of(AFTER, AFTER);
        assert_eq!(lines.len(), 1);
        assert_valid_emf(&lines[0]);
        assert_eq!(lines[0]["Requests"], 0.0);
        assert!(lines[0].get("RequestLatency").is_none(), "no observations, no distribution");
    }

    #[test]
    fn distributions_never_exceed_the_values_limit() {
        let mut distribution =
            Distribution { values: (1..=150).map(f64::from).collect(), counts: vec![1.0; 150] };
        distribution.cap(EMF_VALUES_MAX);
        assert_eq!(distribution.values.len(), EMF_VALUES_MAX);
        assert_eq!(distribution.counts.iter().sum::<f64>(), 150.0);
        assert_eq!(distribution.values.last(), Some(&150.0));
    }
}
