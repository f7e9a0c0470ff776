//! Semantic checks of a decoded plan, and lowering into a [`RunSpec`] in the same pass.
//!
//! Why one pass: every rule that validation enforces is exactly what lowering relies on, so
//! the code that builds a `ScenarioSpec` is the code that reports what is wrong with it. Each
//! problem is recorded with its path (and, when known, its location) and the pass goes on, so
//! the user sees every problem at once. Validation calls this without loading CSV rows;
//! lowering calls it again, after the stack's variables are known, with the rows. Scenarios
//! (executors and requests) are checked in `scenario`.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::grammar::threshold::{self, ThresholdExpr};
use crate::spec::{
    self, EdgeStrategy, Feeder, HttpOptions, HttpVersion, ReportFormat, RunSpec, StackBackend,
    StackSpec, ThresholdSpec,
};

use super::common::{headers, Names, Sources, DEFAULT_TIMEOUT};
use super::model::{self, PlanFile};
use super::problem::Issues;
use super::scenario::{scenario, Scale};
use super::tree::{Node, PathSeg};
use super::{autoscaling, canary, dependencies, faults, probes, scrapes, slos};

/// What the checks need besides the model.
pub(crate) struct Ctx<'a> {
    /// The layered, interpolated tree as written (before any erroneous entry was removed):
    /// the source of key order and of the names that exist.
    pub tree: &'a Node,
    pub base_dir: &'a Path,
    /// Name used when the plan has none (the file stem).
    pub default_name: &'a str,
    pub profile: Option<&'a str>,
    /// Load every CSV row (lowering) or only check the header (validation).
    pub load_rows: bool,
}

/// Keys of the map at `section` in the tree, in file order.
fn tree_keys(tree: &Node, section: &str) -> Vec<String> {
    tree.get(section)
        .and_then(Node::as_map)
        .map(|m| m.iter().map(|(k, _)| k.name.clone()).collect())
        .unwrap_or_default()
}

/// Check the plan and build the run. The RunSpec is only meaningful when no issue was added.
pub(crate) fn build(plan: &PlanFile, ctx: &Ctx, issues: &mut Issues) -> RunSpec {
    let name = plan
        .name
        .clone()
        .unwrap_or_else(|| ctx.default_name.to_string());
    if name.trim().is_empty() || name.contains(['/', '\\']) {
        issues.at(path!["name"], "the plan name must be non-empty and contain no '/' or '\\' (it names the report directory)");
    }
    let scale = Scale {
        factor: scale_factor(plan, ctx, issues),
        tree: ctx.tree,
    };
    let target = check_target(plan, ctx.load_rows, issues);
    let (http, default_header_names) = http_options(plan, issues);
    let feeders = feeders(plan, ctx, issues);
    let scenario_names: BTreeSet<String> = tree_keys(ctx.tree, "scenarios").into_iter().collect();

    let mut scenarios = Vec::new();
    match &plan.scenarios {
        None => issues.at(
            path!["scenarios"],
            "a plan needs at least one scenario (add `scenarios:` with one entry)",
        ),
        Some(map) if map.is_empty() && scenario_names.is_empty() => {
            issues.at(path!["scenarios"], "a plan needs at least one scenario")
        }
        Some(map) => {
            for sname in tree_keys(ctx.tree, "scenarios") {
                if let Some(sc) = map.get(&sname) {
                    if let Some(s) =
                        scenario(&sname, sc, &scale, &feeders, &default_header_names, issues)
                    {
                        scenarios.push(s);
                    }
                }
            }
        }
    }

    let mut probe_specs = Vec::new();
    if let Some(map) = &plan.probes {
        for name in tree_keys(ctx.tree, "probes") {
            if let Some(p) = map.get(&name) {
                if let Some(spec) =
                    probes::probe(&name, p, &http, &feeders, &default_header_names, issues)
                {
                    probe_specs.push(spec);
                }
            }
        }
    }

    let probe_names: BTreeSet<String> = tree_keys(ctx.tree, "probes").into_iter().collect();
    let mut names = Names {
        scenarios: &scenario_names,
        probes: &probe_names,
        sources: None,
    };
    // Request-level tags are checked only when every scenario and probe lowered (a broken
    // one's requests are unknown, and it is reported already).
    if scenarios.len() == scenario_names.len() && probe_specs.len() == probe_names.len() {
        names.sources = Some(Sources::of(&scenarios, &probe_specs));
    }
    let mut thresholds = Vec::new();
    if let Some(map) = &plan.thresholds {
        for key in tree_keys(ctx.tree, "thresholds") {
            if let Some(entries) = map.get(&key) {
                threshold(&key, entries, &names, &mut thresholds, issues);
            }
        }
    }

    let planned = spec::planned_duration(&scenarios);
    let mut slo_specs = Vec::new();
    if let Some(map) = &plan.slos {
        for name in tree_keys(ctx.tree, "slos") {
            if let Some(slo) = map.get(&name) {
                if let Some(spec) = slos::slo(&name, slo, &names, planned, issues) {
                    slo_specs.push(spec);
                }
            }
        }
    }

    let canary_spec = plan
        .canary
        .as_ref()
        .and_then(|c| canary::canary(c, &target, &scenario_names, issues));
    let blue_green_spec = plan
        .blue_green
        .as_ref()
        .and_then(|b| canary::blue_green(b, &target, &scenario_names, issues));
    if canary_spec.is_some() && blue_green_spec.is_some() {
        issues.at(
            path!["blue_green"],
            "a run drives one rollout: use `canary:` or `blue_green:`, not both",
        );
    }

    let mut fault_specs = Vec::new();
    let has_replica = plan
        .stack
        .as_ref()
        .and_then(|s| s.reference.as_ref()?.postgres.as_ref()?.replica)
        .is_some();
    if let Some(map) = &plan.faults {
        for name in tree_keys(ctx.tree, "faults") {
            if let Some(f) = map.get(&name) {
                if let Some(spec) = faults::fault(
                    &name,
                    f,
                    plan.stack.is_some(),
                    has_replica,
                    &scenario_names,
                    &probe_names,
                    issues,
                ) {
                    fault_specs.push(spec);
                }
            }
        }
    }

    let mut scrape_specs = Vec::new();
    if let Some(map) = &plan.scrapes {
        for name in tree_keys(ctx.tree, "scrapes") {
            if let Some(s) = map.get(&name) {
                scrape_specs.extend(scrapes::scrape(&name, s, &target, issues));
            }
        }
    }
    let mut autoscale_specs = Vec::new();
    if let Some(map) = &plan.autoscaling {
        for name in tree_keys(ctx.tree, "autoscaling") {
            if let Some(r) = map.get(&name) {
                autoscale_specs.extend(autoscaling::rule(
                    &name,
                    r,
                    &target,
                    &mut scrape_specs,
                    issues,
                ));
            }
        }
    }

    let report_formats = match plan.report.as_ref().and_then(|r| r.formats.as_ref()) {
        None => ReportFormat::ALL.to_vec(),
        Some(list) => {
            let mut out: Vec<ReportFormat> = Vec::new();
            for f in list {
                let f = match f {
                    model::ReportFormat::Table => ReportFormat::Table,
                    model::ReportFormat::Json => ReportFormat::Json,
                    model::ReportFormat::Junit => ReportFormat::Junit,
                    model::ReportFormat::Csv => ReportFormat::Csv,
                    model::ReportFormat::Html => ReportFormat::Html,
                };
                if !out.contains(&f) {
                    out.push(f);
                }
            }
            out
        }
    };

    RunSpec {
        name,
        target,
        http,
        feeders: feeders.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
        scenarios,
        thresholds,
        probes: probe_specs,
        slos: slo_specs,
        canary: canary_spec.map(Box::new),
        blue_green: blue_green_spec.map(Box::new),
        report_formats,
        allow_hosts: allow_hosts(plan, issues),
        faults: fault_specs,
        scrapes: scrape_specs,
        dependencies: plan
            .dependencies
            .as_ref()
            .and_then(|d| dependencies::dependencies(d, issues)),
        autoscaling: autoscale_specs,
    }
}

fn allow_hosts(plan: &PlanFile, issues: &mut Issues) -> Vec<String> {
    let mut out = Vec::new();
    for (i, h) in plan.allow_hosts.iter().flatten().enumerate() {
        let t = h.trim().to_ascii_lowercase();
        let bare = t.strip_prefix("*.").unwrap_or(&t);
        let ip = bare.parse::<std::net::IpAddr>().is_ok();
        if bare.is_empty() || (!ip && bare.contains(['/', ':', ' ', '*'])) {
            issues.at(
                path!["allow_hosts", i],
                format!("{h:?} is not a host: write a host name, `*.domain` or an IP (no scheme, port or path)"),
            );
            continue;
        }
        out.push(t);
    }
    out
}

/// The stack section, lowered.
pub(crate) fn stack_spec(plan: &PlanFile, issues: &mut Issues) -> Option<StackSpec> {
    let stack = plan.stack.as_ref()?;
    let Some(r) = &stack.reference else {
        issues.at(path!["stack", "reference"], "required: add `reference: {}` (the reference stack is the one stack loadgate can start)");
        return None;
    };
    let gateways = r.gateways.unwrap_or(1);
    if gateways == 0 {
        issues.at(
            path!["stack", "reference", "gateways"],
            "must be at least 1",
        );
    }
    let regions = r.regions.unwrap_or(1);
    if !(1..=2).contains(&regions) {
        issues.at(
            path!["stack", "reference", "regions"],
            format!("must be 1 or 2 (a primary and a secondary region), got {regions}"),
        );
    }
    if regions > 1 && r.edge == Some(model::Edge::None) {
        issues.at(
            path!["stack", "reference", "edge"],
            "`regions: 2` routes through the edge (it prefers the primary region): use `edge: round-robin` or `least-connections`, or leave `edge` out",
        );
    }
    // A region fault needs the regions.
    for (name, f) in plan.faults.iter().flatten() {
        let (field, names_region) = match (&f.region, f.component.as_deref()) {
            (Some(_), _) => ("region", true),
            (None, c) => ("component", c.is_some_and(|c| c.starts_with("region["))),
        };
        if regions < 2 && names_region {
            issues.at(
                path!["faults", name, field],
                "acts on a region, and this stack runs one: add `regions: 2` to `stack.reference`",
            );
        }
    }
    Some(StackSpec {
        backend: match r.backend.unwrap_or(model::Backend::Auto) {
            model::Backend::Auto => StackBackend::Auto,
            model::Backend::Containers => StackBackend::Containers,
            model::Backend::Process => StackBackend::Process,
            model::Backend::External => StackBackend::External,
        },
        gateways: gateways.max(1),
        // Two regions need the edge to route between them: round-robin unless given.
        edge: match r.edge.unwrap_or(if regions > 1 {
            model::Edge::RoundRobin
        } else {
            model::Edge::None
        }) {
            model::Edge::RoundRobin => Some(EdgeStrategy::RoundRobin),
            model::Edge::LeastConnections => Some(EdgeStrategy::LeastConnections),
            model::Edge::None => None,
        },
        redis_image: r.redis_image.clone(),
        postgres_image: r.postgres_image.clone(),
        gateway_env: r.env.clone().unwrap_or_default(),
        // Toxics need the proxy, and so does a failover (it repoints the gateways by
        // switching the proxy's upstream); without one the stack runs as before.
        fault_proxy: r.fault_proxy.unwrap_or_else(|| {
            plan.faults.iter().flatten().any(|(_, f)| {
                matches!(
                    f.action,
                    Some(model::FaultActionDef::Toxic | model::FaultActionDef::Failover)
                )
            })
        }),
        regions: regions.clamp(1, 2),
        postgres_replica: r
            .postgres
            .as_ref()
            .and_then(|p| p.replica)
            .map(|m| match m {
                model::ReplicaDef::Async => crate::spec::Replication::Async,
                model::ReplicaDef::Sync => crate::spec::Replication::Sync,
            }),
    })
}

fn scale_factor(plan: &PlanFile, ctx: &Ctx, issues: &mut Issues) -> f64 {
    if let Some(envs) = &plan.environments {
        for (name, env) in envs {
            if let Some(s) = env.scale {
                if !(s.is_finite() && s > 0.0) {
                    issues.at(
                        path!["environments", name, "scale"],
                        format!("must be a positive number, got {s}"),
                    );
                }
            }
        }
    }
    ctx.profile
        .and_then(|p| plan.environments.as_ref()?.get(p)?.scale)
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0)
}

fn check_target(plan: &PlanFile, lowering: bool, issues: &mut Issues) -> String {
    let target = match (&plan.target, &plan.stack) {
        (Some(t), _) => t.clone(),
        (None, Some(_)) => "${TARGET_URL}".to_string(),
        (None, None) => {
            issues.at(path!["target"], "required: the base URL to test, e.g. `target: ${TARGET_URL}` (or add a `stack:` section)");
            return String::new();
        }
    };
    if target.contains("${") && !lowering {
        // A stack variable, resolved when the plan is lowered against the running stack.
        return target;
    }
    match url::Url::parse(target.trim()) {
        Ok(u)
            if (u.scheme() == "http" || u.scheme() == "https")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            target.trim().trim_end_matches('/').to_string()
        }
        Ok(u) => {
            issues.at(
                path!["target"],
                format!(
                    "expected an http:// or https:// URL, got {target:?} (scheme {:?})",
                    u.scheme()
                ),
            );
            target
        }
        Err(e) => {
            issues.at(
                path!["target"],
                format!("expected an http:// or https:// URL, got {target:?} ({e})"),
            );
            target
        }
    }
}

fn http_options(plan: &PlanFile, issues: &mut Issues) -> (HttpOptions, Vec<String>) {
    let d = plan.defaults.clone().unwrap_or_default();
    let timeout = d.timeout.map(|t| t.0).unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        issues.at(path!["defaults", "timeout"], "must be positive, e.g. 5s");
    }
    if d.max_connections == Some(0) {
        issues.at(
            path!["defaults", "max_connections"],
            "must be at least 1 (omit it for one connection per VU)",
        );
    }
    let h2 = d.http2.unwrap_or_default();
    if h2.connections == Some(0) {
        issues.at(
            path!["defaults", "http2", "connections"],
            "must be at least 1 (omit it for as many connections as the VUs need)",
        );
    }
    if h2.streams == Some(0) {
        issues.at(
            path!["defaults", "http2", "streams"],
            "must be at least 1 (concurrent streams per connection, e.g. 8)",
        );
    }
    let headers = headers(
        d.headers.as_ref(),
        &[PathSeg::from("defaults"), PathSeg::from("headers")],
        issues,
    );
    let names = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    let http = HttpOptions {
        timeout,
        headers,
        version: match d.http.unwrap_or(model::HttpVersion::Auto) {
            model::HttpVersion::Auto => HttpVersion::Auto,
            model::HttpVersion::Http1 => HttpVersion::Http1,
            model::HttpVersion::Http2 => HttpVersion::Http2,
        },
        insecure: d.insecure.unwrap_or(false),
        max_connections: d.max_connections.filter(|n| *n > 0),
        max_body: d
            .max_body
            .map(|s| usize::try_from(s.0).unwrap_or(usize::MAX))
            .unwrap_or(crate::spec::DEFAULT_MAX_BODY),
        h2: crate::spec::H2Options {
            connections: h2.connections.filter(|n| *n > 0),
            streams: h2
                .streams
                .filter(|n| *n > 0)
                .unwrap_or(crate::spec::DEFAULT_H2_STREAMS),
        },
    };
    (http, names)
}

fn feeders(plan: &PlanFile, ctx: &Ctx, issues: &mut Issues) -> BTreeMap<String, Feeder> {
    let mut out = BTreeMap::new();
    for (name, f) in plan.feeders.iter().flatten() {
        let Some(csv_path) = &f.csv else {
            issues.at(
                path!["feeders", name, "csv"],
                "required: the CSV file's path, relative to the plan file",
            );
            continue;
        };
        let p = path!["feeders", name, "csv"];
        // Relative to the plan file; a path that only exists relative to the current
        // directory (e.g. `plans/data/x.csv` run from the repository root) is accepted too.
        let rel = Path::new(csv_path);
        let beside = ctx.base_dir.join(rel);
        let full = if beside.exists() || !rel.exists() {
            beside
        } else {
            rel.to_path_buf()
        };
        // A feeder that fails to load still exists (with unknown columns), so templates that
        // use it are not reported a second time.
        out.insert(
            name.clone(),
            Feeder {
                name: name.clone(),
                columns: Vec::new(),
                rows: Vec::new(),
                order: spec::FeederOrder::Sequential,
            },
        );
        let mut reader = match csv::ReaderBuilder::new().has_headers(true).from_path(&full) {
            Ok(r) => r,
            Err(e) => {
                issues.at(
                    &p,
                    format!(
                        "cannot read {}: {e} (a feeder's path is relative to the plan file)",
                        full.display()
                    ),
                );
                continue;
            }
        };
        let columns: Vec<String> = match reader.headers() {
            Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
            Err(e) => {
                issues.at(&p, format!("{}: bad CSV header row: {e}", full.display()));
                continue;
            }
        };
        if columns.iter().all(String::is_empty) {
            issues.at(
                &p,
                format!("{}: the first row must name the columns", full.display()),
            );
            continue;
        }
        let mut rows = Vec::new();
        for record in reader.records() {
            match record {
                Ok(r) => rows.push(r.iter().map(str::to_string).collect::<Vec<_>>()),
                Err(e) => {
                    issues.at(&p, format!("{}: {e}", full.display()));
                    break;
                }
            }
            if !ctx.load_rows {
                break; // validation: one row proves there is data
            }
        }
        if rows.is_empty() {
            issues.at(
                &p,
                format!("{}: no data rows after the header", full.display()),
            );
        }
        if !ctx.load_rows {
            rows.clear();
        }
        let order = match f.order.unwrap_or(model::FeederOrder::Sequential) {
            model::FeederOrder::Sequential => spec::FeederOrder::Sequential,
            model::FeederOrder::Random => spec::FeederOrder::Random,
        };
        out.insert(
            name.clone(),
            Feeder {
                name: name.clone(),
                columns,
                rows,
                order,
            },
        );
    }
    out
}

fn threshold(
    key: &str,
    entries: &[model::ThresholdEntry],
    names: &Names<'_>,
    out: &mut Vec<ThresholdSpec>,
    issues: &mut Issues,
) {
    let base = path!["thresholds", key];
    let (metric, tags) = match threshold::parse_metric_key(key) {
        Ok(v) => v,
        Err(e) => {
            issues.at_key(&base, e.to_string());
            return;
        }
    };
    if !threshold::known_metric(&metric) {
        let known: Vec<&str> = threshold::KNOWN_METRICS.iter().map(|(n, _)| *n).collect();
        let near = known
            .iter()
            .map(|k| (strsim::levenshtein(&metric, k), *k))
            .filter(|(d, _)| *d <= 3)
            .min();
        let hint = match near {
            Some((_, k)) => format!(" (did you mean `{k}`?)"),
            None => String::new(),
        };
        issues.at_key(
            &base,
            format!(
                "unknown metric {metric:?}{hint}; known: {}",
                known.join(", ")
            ),
        );
        return;
    }
    names.check_tags(&tags, &base, issues);
    if entries.is_empty() {
        issues.at(&base, "needs at least one expression, e.g. [\"p(95)<250\"]");
    }
    for (i, entry) in entries.iter().enumerate() {
        let p = path!["thresholds", key, i];
        let (abort_on_fail, delay, min_samples, runbook) = match entry {
            model::ThresholdEntry::Expr(_) => (false, Duration::ZERO, 1, None),
            model::ThresholdEntry::Full(f) => (
                f.abort_on_fail.unwrap_or(false),
                f.delay.map(|d| d.0).unwrap_or_default(),
                f.min_samples.unwrap_or(1),
                super::common::runbook(
                    f.runbook.as_ref(),
                    path!["thresholds", key, i, "runbook"],
                    issues,
                ),
            ),
        };
        if min_samples == 0 {
            issues.at(
                path!["thresholds", key, i, "min_samples"],
                "must be at least 1 (no data is never a pass)",
            );
        }
        let Some(text) = entry.expr() else {
            issues.at(
                path!["thresholds", key, i, "threshold"],
                "required: the expression, e.g. {threshold: \"rate<0.01\", abort_on_fail: true}",
            );
            continue;
        };
        let expr_path = match entry {
            model::ThresholdEntry::Expr(_) => p.clone(),
            model::ThresholdEntry::Full(_) => path!["thresholds", key, i, "threshold"],
        };
        let parsed = ThresholdExpr::parse(text)
            .and_then(|e| threshold::validate_for_metric(&metric, &e).map(|()| e));
        let whole_run_only = metric == "iteration_duration"
            || (metric == "checks" && tags.iter().any(|(t, _)| t == "check"));
        match parsed {
            Ok(expr) if expr.window.is_some() && whole_run_only => issues.at(
                &expr_path,
                format!("{key} is judged over the whole run: drop `over ...` (windows apply to the http_req_* metrics and to checks without a `check:` tag)"),
            ),
            Ok(expr) => out.push(ThresholdSpec {
                metric: metric.clone(),
                tags: tags.clone(),
                key: key.to_string(),
                expr,
                abort_on_fail,
                delay,
                min_samples: min_samples.max(1),
                runbook: runbook.clone(),
            }),
            Err(e) => issues.at(&expr_path, format!("bad threshold: {e}")),
        }
    }
}
