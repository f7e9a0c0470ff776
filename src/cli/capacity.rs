//! `loadgate capacity`: search the highest arrival rate at which the thresholds hold.
//!
//! With a plan, the search flags (`--min`, `--max`, `--scenario`, ...) are `--set
//! capacity.FIELD=VALUE` layers, so they are validated (with their position) like the plan's
//! own `capacity:` section. Ad hoc (`--url` with `--slo`), the run is lowered like `attack`'s
//! (one scenario, `capacity`) and the flags build the section, checked by the same rules.
use std::process::ExitCode;
use std::sync::Arc;

use super::signals::Interrupts;
use super::{
    first_interrupt, invalid, plan_options, report_session, AttackArgs, CapacityArgs, UsageError,
};
use crate::grammar::units::{Duration, Rate};
use crate::plan::model::{self, Objective};
use crate::run::RunOptions;
use crate::session::capacity::Search;
use crate::session::{self, OutDir, SessionOptions, Source};
use crate::spec::{CapacitySpec, RunSpec};

/// The ad-hoc form's one scenario.
const ADHOC_SCENARIO: &str = "capacity";

pub(super) async fn capacity(
    a: CapacityArgs,
    interrupts: &Arc<Interrupts>,
) -> anyhow::Result<ExitCode> {
    if a.threads == Some(0) {
        return invalid("--threads must be at least 1");
    }
    let max_rate = match super::safety_options(&a.safety) {
        Ok(v) => v,
        Err(e) => return invalid(e),
    };
    let (source, search, default_out) = match (&a.plan, &a.url) {
        (Some(plan), _) => {
            let mut options = match plan_options(&a.plan_args) {
                Ok(o) => o,
                Err(e) => return invalid(e),
            };
            for (k, v) in flag_sets(&a) {
                options.sets.push((format!("capacity.{k}"), v));
            }
            let source = Source::Plan {
                path: plan.clone(),
                options,
                backend: a.stack.map(Into::into),
            };
            (source, Search::FromPlan, OutDir::Default)
        }
        (None, Some(_)) => match adhoc(&a) {
            Ok((spec, cap)) => (
                Source::Spec(spec),
                Search::Given(Box::new(cap)),
                OutDir::Nowhere,
            ),
            Err(e) => return invalid(e),
        },
        (None, None) => return invalid("give a plan file, or --url URL with --slo EXPR"),
    };
    let opts = SessionOptions {
        out: a.out.clone().map(OutDir::At).unwrap_or(default_out),
        run: RunOptions {
            threads: a.threads,
            ..RunOptions::default()
        },
        announce: true,
        allow_hosts: a.safety.allow_hosts.clone(),
        max_rate,
        ..SessionOptions::default()
    };
    let interrupt = first_interrupt(interrupts);
    let res = session::capacity::run(source, search, &opts, &interrupt).await;
    report_session(res, a.json)
}

/// The search flags that were given, as `capacity:` fields and their text.
fn flag_sets(a: &CapacityArgs) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut put = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            out.push((k, v));
        }
    };
    put("scenario", a.scenario.clone());
    put("min", a.min.clone());
    put("max", a.max.clone());
    put("expected", a.expected.clone());
    put("precision", a.precision.clone());
    put("warmup", a.warmup.clone());
    put("step", a.step.clone());
    put("cooldown", a.cooldown.clone());
    put("repeats", a.repeats.map(|n| n.to_string()));
    put("max_vus", a.max_vus.map(|n| n.to_string()));
    out
}

/// The ad-hoc run and search; errors name the flag and the fix.
fn adhoc(a: &CapacityArgs) -> Result<(RunSpec, CapacitySpec), UsageError> {
    if a.slos.is_empty() {
        return Err(
            "--slo is required with --url: what must hold at every step, e.g. --slo 'p(95)<100'"
                .into(),
        );
    }
    let thresholds = a
        .slos
        .iter()
        .map(|s| {
            let s = s.trim();
            if s.contains(": ") {
                s.to_string()
            } else if s.starts_with("rate") {
                format!("http_req_failed: {s}")
            } else {
                format!("http_req_duration: {s}")
            }
        })
        .collect();
    let attack = AttackArgs {
        url: a.url.clone().unwrap_or_default(),
        connections: None,
        rate: Some("1/s".into()),
        duration: "1s".into(),
        timeout: a.timeout.clone(),
        method: a.method.clone(),
        headers: a.headers.clone(),
        body: a.body.clone(),
        http2: false,
        h2_connections: None,
        streams: crate::spec::DEFAULT_H2_STREAMS,
        insecure: false,
        max_vus: None,
        thresholds,
        json: a.json,
        out: None,
        metrics_addr: None,
        engine: Default::default(),
        safety: Default::default(),
    };
    let mut spec =
        super::attack::lower(&attack).map_err(|e| e.to_string().replace("--threshold", "--slo"))?;
    spec.name = ADHOC_SCENARIO.into();
    for s in &mut spec.scenarios {
        s.name = ADHOC_SCENARIO.into();
    }
    let flag = |k: &str| format!("--{}", k.replace('_', "-"));
    let rate = |k: &str, v: &Option<String>| -> Result<Option<Rate>, UsageError> {
        v.as_deref()
            .map(|t| {
                t.parse::<Rate>()
                    .map_err(|e| UsageError(format!("{}: {e}", flag(k))))
            })
            .transpose()
    };
    let duration = |k: &str, v: &Option<String>| -> Result<Option<Duration>, UsageError> {
        v.as_deref()
            .map(|t| {
                t.parse::<Duration>()
                    .map_err(|e| UsageError(format!("{}: {e}", flag(k))))
            })
            .transpose()
    };
    let precision = a
        .precision
        .as_deref()
        .map(|t| {
            let t = t.trim();
            let v = match t.strip_suffix('%') {
                Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
                None => t.parse::<f64>(),
            };
            v.map(Objective::Fraction)
                .map_err(|_| format!("--precision: expected a share like 5%, got {t:?}"))
        })
        .transpose()?;
    let section = model::Capacity {
        scenario: Some(ADHOC_SCENARIO.into()),
        expected: rate("expected", &a.expected)?,
        headroom: None,
        precision,
        min: rate("min", &a.min)?,
        max: rate("max", &a.max)?,
        warmup: duration("warmup", &a.warmup)?,
        step: duration("step", &a.step)?,
        cooldown: duration("cooldown", &a.cooldown)?,
        repeats: a.repeats,
        max_steps: None,
        max_vus: a.max_vus,
        runbook: None,
    };
    let cap =
        crate::plan::lower_capacity(&section, &[ADHOC_SCENARIO.to_string()]).map_err(|errs| {
            errs.into_iter()
                .map(|(k, m)| format!("{}: {m}", flag(&k)))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
    Ok((spec, cap))
}
