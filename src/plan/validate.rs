//! Semantic checks of a decoded plan, and lowering into a [`RunSpec`] in the same pass.
//!
//! Why one pass: every rule that validation enforces is exactly what lowering relies on, so
//! the code that builds a `ScenarioSpec` is the code that reports what is wrong with it. Each
//! problem is recorded with its path (and, when known, its location) and the pass goes on, so
//! the user sees every problem at once. Validation calls this without loading CSV rows;
//! lowering calls it again, after the stack's variables are known, with the rows.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::checks::response::ResponseCheck;
use crate::checks::threshold::{self, ThresholdExpr};
use crate::engine::template::Template;
use crate::spec::{
    self, EdgeStrategy, ExecutorSpec, Feeder, HttpOptions, HttpVersion, RateStage, ReportFormat,
    RequestSpec, RunSpec, ScenarioSpec, StackBackend, StackSpec, ThresholdSpec, VuStage,
};

use super::model::{self, Executor, PlanFile, Scenario, StageTarget};
use super::problem::Issues;
use super::tree::{Node, PathSeg};

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `graceful_stop` (as k6).
pub const DEFAULT_GRACEFUL_STOP: Duration = Duration::from_secs(30);
/// Default `max_duration` of the iteration executors (as k6).
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(600);
/// Default `pre_allocated_vus` of the arrival-rate executors.
pub const DEFAULT_PRE_ALLOCATED_VUS: u32 = 10;
/// `max_vus` defaults to `max(pre_allocated_vus, DEFAULT_MAX_VUS)`.
pub const DEFAULT_MAX_VUS: u32 = 100;

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

/// Build a path from segments: `path!["scenarios", name, "rate"]`.
macro_rules! path {
    ($($seg:expr),* $(,)?) => { vec![$(PathSeg::from($seg)),*] };
}

impl From<&str> for PathSeg {
    fn from(s: &str) -> PathSeg {
        PathSeg::Key(s.to_string())
    }
}

impl From<&String> for PathSeg {
    fn from(s: &String) -> PathSeg {
        PathSeg::Key(s.clone())
    }
}

impl From<usize> for PathSeg {
    fn from(i: usize) -> PathSeg {
        PathSeg::Index(i)
    }
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
    let scale = scale_factor(plan, ctx, issues);
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
                        scenario(&sname, sc, scale, &feeders, &default_header_names, issues)
                    {
                        scenarios.push(s);
                    }
                }
            }
        }
    }

    let mut thresholds = Vec::new();
    if let Some(map) = &plan.thresholds {
        for key in tree_keys(ctx.tree, "thresholds") {
            if let Some(entries) = map.get(&key) {
                threshold(&key, entries, &scenario_names, &mut thresholds, issues);
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
        report_formats,
    }
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
    Some(StackSpec {
        backend: match r.backend.unwrap_or(model::Backend::Auto) {
            model::Backend::Auto => StackBackend::Auto,
            model::Backend::Containers => StackBackend::Containers,
            model::Backend::Process => StackBackend::Process,
            model::Backend::External => StackBackend::External,
        },
        gateways: gateways.max(1),
        edge: match r.edge.unwrap_or(model::Edge::None) {
            model::Edge::RoundRobin => Some(EdgeStrategy::RoundRobin),
            model::Edge::LeastConnections => Some(EdgeStrategy::LeastConnections),
            model::Edge::None => None,
        },
        redis_image: r.redis_image.clone(),
        postgres_image: r.postgres_image.clone(),
        gateway_env: r.env.clone().unwrap_or_default(),
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

fn template(text: &str, path: &[PathSeg], issues: &mut Issues) -> Option<Template> {
    match Template::parse(text) {
        Ok(t) => Some(t),
        Err(e) => {
            issues.at(path, format!("bad template: {e}"));
            None
        }
    }
}

fn headers(
    map: Option<&BTreeMap<String, String>>,
    base: &[PathSeg],
    issues: &mut Issues,
) -> Vec<(String, Template)> {
    let mut out = Vec::new();
    for (name, value) in map.into_iter().flatten() {
        let mut p = base.to_vec();
        p.push(PathSeg::Key(name.clone()));
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            issues.at_key(&p, format!("{name:?} is not a valid header name"));
            continue;
        }
        if let Some(t) = template(value, &p, issues) {
            out.push((name.clone(), t));
        }
    }
    out
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
                issues.at(&p, format!("cannot read {}: {e}", full.display()));
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

/// `{{feeder.column}}` references in a template text.
// TODO(lead): switch to `Template::feeders_used()` once the engine's template parser lands.
pub(crate) fn feeder_refs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let inner = after[..close].trim();
        if let Some((f, c)) = inner.split_once('.') {
            let ident = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|ch| ch.is_alphanumeric() || ch == '_' || ch == '-')
            };
            if ident(f) && ident(c) {
                out.push((f.to_string(), c.to_string()));
            }
        }
        rest = &after[close + 2..];
    }
    out
}

fn check_feeder_refs(
    text: &str,
    path: &[PathSeg],
    feeders: &BTreeMap<String, Feeder>,
    issues: &mut Issues,
) {
    for (f, c) in feeder_refs(text) {
        match feeders.get(&f) {
            None => {
                let known: Vec<&str> = feeders.keys().map(String::as_str).collect();
                let hint = if known.is_empty() {
                    "the plan defines no feeders".to_string()
                } else {
                    format!("feeders: {}", known.join(", "))
                };
                issues.at(
                    path,
                    format!("{{{{{f}.{c}}}}} names an unknown feeder {f:?} ({hint})"),
                );
            }
            Some(feeder) if feeder.columns.is_empty() => {} // failed to load: reported there
            Some(feeder) if !feeder.columns.iter().any(|col| col == &c) => issues.at(
                path,
                format!(
                    "{{{{{f}.{c}}}}}: feeder {f:?} has no column {c:?} (columns: {})",
                    feeder.columns.join(", ")
                ),
            ),
            Some(_) => {}
        }
    }
}

fn scaled_vus(v: u32, scale: f64) -> u32 {
    if scale == 1.0 || v == 0 {
        v
    } else {
        ((v as f64 * scale).ceil() as u32).max(1)
    }
}

/// Which parameters each executor takes (besides the common ones).
fn params_of(e: Executor) -> &'static [&'static str] {
    match e {
        Executor::ConstantArrivalRate => &["rate", "duration", "pre_allocated_vus", "max_vus"],
        Executor::RampingArrivalRate => &["start_rate", "stages", "pre_allocated_vus", "max_vus"],
        Executor::ConstantVus => &["vus", "duration"],
        Executor::RampingVus => &["start_vus", "stages"],
        Executor::PerVuIterations | Executor::SharedIterations => {
            &["vus", "iterations", "max_duration"]
        }
    }
}

fn present_params(s: &Scenario) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut add = |present: bool, name: &'static str| {
        if present {
            out.push(name)
        }
    };
    add(s.rate.is_some(), "rate");
    add(s.duration.is_some(), "duration");
    add(s.start_rate.is_some(), "start_rate");
    add(s.start_vus.is_some(), "start_vus");
    add(s.stages.is_some(), "stages");
    add(s.pre_allocated_vus.is_some(), "pre_allocated_vus");
    add(s.max_vus.is_some(), "max_vus");
    add(s.vus.is_some(), "vus");
    add(s.iterations.is_some(), "iterations");
    add(s.max_duration.is_some(), "max_duration");
    out
}

fn positive_duration(
    d: Option<super::units::Duration>,
    p: Vec<PathSeg>,
    issues: &mut Issues,
) -> Duration {
    match d {
        Some(d) if d.0.is_zero() => {
            issues.at(&p, "must be longer than 0s");
            d.0
        }
        Some(d) => d.0,
        None => Duration::ZERO,
    }
}

fn executor(
    name: &str,
    e: Executor,
    s: &Scenario,
    scale: f64,
    issues: &mut Issues,
) -> Option<ExecutorSpec> {
    let base = path!["scenarios", name];
    let at = |field: &str| {
        let mut p = base.clone();
        p.push(PathSeg::Key(field.to_string()));
        p
    };
    let allowed = params_of(e);
    for param in present_params(s) {
        if !allowed.contains(&param) {
            issues.at_key(
                at(param),
                format!(
                    "`{param}` is not a parameter of {} (it takes: {})",
                    e.name(),
                    allowed.join(", ")
                ),
            );
        }
    }
    let before = issues.0.len();
    let mut require = |present: bool, field: &str, example: &str| {
        if !present {
            issues.at(
                at(field),
                format!(
                    "{} requires `{field}` (e.g. `{field}: {example}`)",
                    e.name()
                ),
            );
        }
    };
    match e {
        Executor::ConstantArrivalRate => {
            require(s.rate.is_some(), "rate", "100/s");
            require(s.duration.is_some(), "duration", "1m");
        }
        Executor::RampingArrivalRate | Executor::RampingVus => {
            require(s.stages.is_some(), "stages", "[{to: 10, over: 30s}]");
        }
        Executor::ConstantVus => require(s.duration.is_some(), "duration", "1m"),
        _ => {}
    }
    let pools = |issues: &mut Issues| {
        let pre = s.pre_allocated_vus.unwrap_or(DEFAULT_PRE_ALLOCATED_VUS);
        if pre == 0 {
            issues.at(at("pre_allocated_vus"), "must be at least 1");
        }
        let max = s.max_vus.unwrap_or(pre.max(DEFAULT_MAX_VUS));
        if max < pre {
            issues.at(
                at("max_vus"),
                format!("max_vus ({max}) must be >= pre_allocated_vus ({pre})"),
            );
        }
        (scaled_vus(pre, scale), scaled_vus(max, scale))
    };
    let rate_stages = |issues: &mut Issues| -> Vec<RateStage> {
        let mut out = Vec::new();
        for (i, st) in s.stages.iter().flatten().enumerate() {
            let p = path!["scenarios", name, "stages", i];
            let duration = st.over.map(|d| d.0);
            if st.over.is_none() {
                issues.at(
                    [p.clone(), path!["over"]].concat(),
                    "a stage needs `over:` (e.g. `over: 30s`)",
                );
            }
            let target = match st.to {
                Some(StageTarget::Rate(r)) => Some(r.per_second),
                Some(StageTarget::Vus(n)) => {
                    issues.at(
                        path!["scenarios", name, "stages", i, "to"],
                        format!("expected a rate like {n}/s for {}, got {n}", e.name()),
                    );
                    None
                }
                None => {
                    issues.at(
                        [p.clone(), path!["to"]].concat(),
                        "a stage needs `to:` (e.g. `to: 100/s`)",
                    );
                    None
                }
            };
            if let (Some(t), Some(d)) = (target, duration) {
                out.push(RateStage {
                    target: t * scale,
                    duration: d,
                });
            }
        }
        out
    };
    let vu_stages = |issues: &mut Issues| -> Vec<VuStage> {
        let mut out = Vec::new();
        for (i, st) in s.stages.iter().flatten().enumerate() {
            let p = path!["scenarios", name, "stages", i];
            if st.over.is_none() {
                issues.at(
                    [p.clone(), path!["over"]].concat(),
                    "a stage needs `over:` (e.g. `over: 30s`)",
                );
            }
            let target = match st.to {
                Some(StageTarget::Vus(n)) => Some(n),
                Some(StageTarget::Rate(r)) => {
                    issues.at(
                        path!["scenarios", name, "stages", i, "to"],
                        format!("expected a VU count for ramping-vus, got the rate {r}"),
                    );
                    None
                }
                None => {
                    issues.at(
                        [p.clone(), path!["to"]].concat(),
                        "a stage needs `to:` (e.g. `to: 10`)",
                    );
                    None
                }
            };
            if let (Some(t), Some(d)) = (target, st.over) {
                out.push(VuStage {
                    target: scaled_vus(t, scale),
                    duration: d.0,
                });
            }
        }
        out
    };
    let check_stages_total = |total: Duration, issues: &mut Issues| {
        if s.stages.as_ref().is_some_and(|v| v.is_empty()) {
            issues.at(at("stages"), "needs at least one stage");
        } else if s.stages.is_some() && total.is_zero() {
            issues.at(at("stages"), "the stages must last longer than 0s in total");
        }
    };
    let spec = match e {
        Executor::ConstantArrivalRate => {
            let rate = s.rate.map(|r| r.per_second).unwrap_or(0.0);
            if s.rate.is_some() && rate <= 0.0 {
                issues.at(at("rate"), "must be positive, e.g. 100/s");
            }
            let duration = positive_duration(s.duration, at("duration"), issues);
            let (pre_allocated_vus, max_vus) = pools(issues);
            ExecutorSpec::ConstantArrivalRate {
                rate: rate * scale,
                duration,
                pre_allocated_vus,
                max_vus,
            }
        }
        Executor::RampingArrivalRate => {
            let start_rate = s.start_rate.map(|r| r.per_second).unwrap_or(0.0);
            let stages = rate_stages(issues);
            check_stages_total(stages.iter().map(|s| s.duration).sum(), issues);
            let (pre_allocated_vus, max_vus) = pools(issues);
            ExecutorSpec::RampingArrivalRate {
                start_rate: start_rate * scale,
                stages,
                pre_allocated_vus,
                max_vus,
            }
        }
        Executor::ConstantVus => {
            let vus = s.vus.unwrap_or(1);
            if vus == 0 {
                issues.at(at("vus"), "must be at least 1");
            }
            let duration = positive_duration(s.duration, at("duration"), issues);
            ExecutorSpec::ConstantVus {
                vus: scaled_vus(vus, scale),
                duration,
            }
        }
        Executor::RampingVus => {
            let stages = vu_stages(issues);
            check_stages_total(stages.iter().map(|s| s.duration).sum(), issues);
            ExecutorSpec::RampingVus {
                start_vus: scaled_vus(s.start_vus.unwrap_or(1), scale),
                stages,
            }
        }
        Executor::PerVuIterations | Executor::SharedIterations => {
            let vus = s.vus.unwrap_or(1);
            if vus == 0 {
                issues.at(at("vus"), "must be at least 1");
            }
            let iterations = s.iterations.unwrap_or(1);
            if iterations == 0 {
                issues.at(at("iterations"), "must be at least 1");
            }
            let max_duration = match s.max_duration {
                None => DEFAULT_MAX_DURATION,
                d => positive_duration(d, at("max_duration"), issues),
            };
            let vus = scaled_vus(vus, scale);
            if e == Executor::SharedIterations {
                if iterations < vus as u64 && s.iterations.is_some() {
                    issues.at(
                        at("iterations"),
                        format!("shared-iterations needs iterations ({iterations}) >= vus ({vus})"),
                    );
                }
                ExecutorSpec::SharedIterations {
                    vus,
                    iterations,
                    max_duration,
                }
            } else {
                ExecutorSpec::PerVuIterations {
                    vus,
                    iterations,
                    max_duration,
                }
            }
        }
    };
    (issues.0.len() == before).then_some(spec)
}

fn scenario(
    name: &str,
    s: &Scenario,
    scale: f64,
    feeders: &BTreeMap<String, Feeder>,
    default_headers: &[String],
    issues: &mut Issues,
) -> Option<ScenarioSpec> {
    let exec = match s.executor {
        Some(e) => executor(name, e, s, scale, issues),
        None => {
            issues.at(path!["scenarios", name, "executor"], "required: the executor, one of constant-arrival-rate, ramping-arrival-rate, constant-vus, ramping-vus, per-vu-iterations, shared-iterations");
            None
        }
    };
    let requests: Vec<(Vec<PathSeg>, &model::Request)> = match (&s.request, &s.requests) {
        (Some(r), None) => vec![(path!["scenarios", name, "request"], r)],
        (None, Some(list)) => {
            if list.is_empty() {
                issues.at(
                    path!["scenarios", name, "requests"],
                    "needs at least one request",
                );
            }
            list.iter()
                .enumerate()
                .map(|(i, r)| (path!["scenarios", name, "requests", i], r))
                .collect()
        }
        (Some(_), Some(_)) => {
            issues.at_key(
                path!["scenarios", name, "requests"],
                "give either `request` or `requests`, not both",
            );
            Vec::new()
        }
        (None, None) => {
            issues.at(
                path!["scenarios", name, "request"],
                "required: `request:` (one request) or `requests:` (a weighted list)",
            );
            Vec::new()
        }
    };
    let built: Vec<RequestSpec> = requests
        .into_iter()
        .filter_map(|(p, r)| request(&p, r, feeders, default_headers, issues))
        .collect();
    let graceful_stop = s
        .graceful_stop
        .map(|d| d.0)
        .unwrap_or(DEFAULT_GRACEFUL_STOP);
    let start_after = s.start_after.map(|d| d.0).unwrap_or_default();
    let tags = s.tags.clone().unwrap_or_default();
    if tags.contains_key("scenario") {
        issues.at_key(
            path!["scenarios", name, "tags", "scenario"],
            "the `scenario` tag is set by loadgate (it is the scenario's name)",
        );
    }
    Some(ScenarioSpec {
        name: name.to_string(),
        executor: exec?,
        start_after,
        graceful_stop,
        requests: built,
        tags,
    })
}

fn request(
    base: &[PathSeg],
    r: &model::Request,
    feeders: &BTreeMap<String, Feeder>,
    default_headers: &[String],
    issues: &mut Issues,
) -> Option<RequestSpec> {
    let at = |field: &str| {
        let mut p = base.to_vec();
        p.push(PathSeg::Key(field.to_string()));
        p
    };
    let before = issues.0.len();
    let method = r
        .method
        .clone()
        .unwrap_or_else(|| {
            if r.body.is_some() {
                "POST".into()
            } else {
                "GET".into()
            }
        })
        .to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        issues.at(
            at("method"),
            format!("{method:?} is not an HTTP method (GET, POST, PUT, ...)"),
        );
    }
    let weight = r.weight.unwrap_or(1);
    if weight == 0 {
        issues.at(at("weight"), "must be at least 1");
    }
    let path = match &r.path {
        None => {
            issues.at(
                at("path"),
                "required: the request path, e.g. `path: /v1/chat`",
            );
            None
        }
        Some(p) if !p.starts_with('/') && !p.starts_with("{{") => {
            issues.at(at("path"), format!("must start with '/', got {p:?}"));
            None
        }
        Some(p) => {
            check_feeder_refs(p, &at("path"), feeders, issues);
            template(p, &at("path"), issues)
        }
    };
    let mut hdrs = headers(r.headers.as_ref(), &at("headers"), issues);
    for (name, value) in r.headers.iter().flatten() {
        let mut p = at("headers");
        p.push(PathSeg::Key(name.clone()));
        check_feeder_refs(value, &p, feeders, issues);
    }
    let body = match &r.body {
        None => None,
        Some(serde_json::Value::String(s)) => {
            check_feeder_refs(s, &at("body"), feeders, issues);
            template(s, &at("body"), issues)
        }
        Some(v) => {
            let json = serde_json::to_string(v).unwrap_or_default();
            check_feeder_refs(&json, &at("body"), feeders, issues);
            let has_ct = |n: &str| n.eq_ignore_ascii_case("content-type");
            if !hdrs.iter().any(|(n, _)| has_ct(n)) && !default_headers.iter().any(|n| has_ct(n)) {
                if let Ok(t) = Template::parse("application/json") {
                    hdrs.push(("content-type".to_string(), t));
                }
            }
            template(&json, &at("body"), issues)
        }
    };
    let mut checks = Vec::new();
    for (i, c) in r.checks.iter().flatten().enumerate() {
        match ResponseCheck::parse(c) {
            Ok(check) => checks.push(check),
            Err(e) => issues.at(
                [at("checks"), vec![PathSeg::Index(i)]].concat(),
                format!("bad check: {e}"),
            ),
        }
    }
    let path = path?;
    if issues.0.len() != before {
        return None;
    }
    let name = r
        .name
        .clone()
        .unwrap_or_else(|| format!("{method} {}", r.path.as_deref().unwrap_or_default()));
    Some(RequestSpec {
        name,
        weight,
        method,
        path,
        headers: hdrs,
        body,
        checks,
    })
}

fn threshold(
    key: &str,
    entries: &[model::ThresholdEntry],
    scenarios: &BTreeSet<String>,
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
        issues.at_key(
            &base,
            format!("unknown metric {metric:?} (known: {})", known.join(", ")),
        );
        return;
    }
    for (k, v) in &tags {
        if k == "scenario" && !scenarios.contains(v) {
            let known: Vec<&str> = scenarios.iter().map(String::as_str).collect();
            issues.at_key(
                &base,
                format!(
                    "scenario:{v} names no scenario (scenarios: {})",
                    known.join(", ")
                ),
            );
        }
    }
    if entries.is_empty() {
        issues.at(&base, "needs at least one expression, e.g. [\"p(95)<250\"]");
    }
    for (i, entry) in entries.iter().enumerate() {
        let p = path!["thresholds", key, i];
        let (abort_on_fail, delay) = match entry {
            model::ThresholdEntry::Expr(_) => (false, Duration::ZERO),
            model::ThresholdEntry::Full(f) => (
                f.abort_on_fail.unwrap_or(false),
                f.delay.map(|d| d.0).unwrap_or_default(),
            ),
        };
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
        match parsed {
            Ok(expr) => out.push(ThresholdSpec {
                metric: metric.clone(),
                tags: tags.clone(),
                key: key.to_string(),
                expr,
                abort_on_fail,
                delay,
            }),
            Err(e) => issues.at(&expr_path, format!("bad threshold: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeder_ref_scan() {
        assert_eq!(
            feeder_refs("{{prompts.text}} and {{ users.id }} {{uuid}} {{seq}}"),
            vec![
                ("prompts".into(), "text".into()),
                ("users".into(), "id".into())
            ]
        );
    }
}
