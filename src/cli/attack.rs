//! `loadgate attack URL`: an ad-hoc single-scenario run without a plan file (wrk / oha style).
//!
//! It lowers its flags into the same [`RunSpec`] a plan produces, so it runs on the same engine
//! and reports as a plan would: `-c N` is the closed model (constant-vus at full speed), `--rate`
//! the open model (constant-arrival-rate, latency from the intended send time). The one
//! scenario is named `attack`.
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::signals::Interrupts;
use super::{engine_options, finish, invalid, AttackArgs, UsageError};
use crate::grammar::template::Template;
use crate::grammar::threshold::{metric_key, ThresholdExpr};
use crate::grammar::units::{parse_duration, parse_rate};
use crate::session::{OutDir, SessionOptions, Source};
use crate::spec::{
    ExecutorSpec, HttpOptions, HttpVersion, RequestSpec, RunSpec, ScenarioSpec, ThresholdSpec,
};

/// Default connections of the closed model when neither -c nor --rate is given (as oha).
const DEFAULT_CONNECTIONS: u32 = 50;
/// Upper bound of the open model's default in-flight budget (`--max-vus` overrides it): 20,000
/// connections at ~16 KiB of buffers each is ~320 MiB in the worst case, and the engine raises
/// the open-files limit to fit (see `engine::raise_fd_limit`).
const MAX_DEFAULT_VUS: u32 = 20_000;

pub(super) async fn attack(
    a: AttackArgs,
    interrupts: &Arc<Interrupts>,
) -> anyhow::Result<ExitCode> {
    let spec = match lower(&a) {
        Ok(s) => s,
        Err(e) => return invalid(e),
    };
    let mut run = match engine_options(&a.engine) {
        Ok(v) => v,
        Err(e) => return invalid(e),
    };
    run.progress = !a.json;
    let max_rate = match super::safety_options(&a.safety) {
        Ok(v) => v,
        Err(e) => return invalid(e),
    };
    let start_at = match super::start_at_option(&a.engine) {
        Ok(v) => v,
        Err(e) => return invalid(e),
    };
    let opts = SessionOptions {
        out: a.out.clone().map(OutDir::At).unwrap_or(OutDir::Nowhere),
        run,
        start_at,
        allow_hosts: a.safety.allow_hosts.clone(),
        max_rate,
        metrics_addr: a.metrics_addr,
        ..SessionOptions::default()
    };
    finish(Source::Spec(spec), &opts, a.json, interrupts).await
}

/// Lower the attack flags into a run spec; errors name the flag and the fix. Thresholds are
/// checked exactly as a plan's are (the metric exists, the aggregation applies to it), so a
/// bad one exits 2 before anything is sent.
pub(crate) fn lower(a: &AttackArgs) -> Result<RunSpec, UsageError> {
    let e = |m: String| UsageError(m);
    let url = url::Url::parse(&a.url).map_err(|err| {
        e(format!(
            "URL {:?}: {err}; expected e.g. http://127.0.0.1:8080/",
            a.url
        ))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(e(format!(
            "URL {:?}: only http:// and https:// are supported",
            a.url
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| e(format!("URL {:?} has no host", a.url)))?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let target = match url.port() {
        Some(p) => format!("{}://{}:{}", url.scheme(), host, p),
        None => format!("{}://{}", url.scheme(), host),
    };
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }

    let duration = parse_duration(&a.duration).map_err(|err| e(format!("-d/--duration: {err}")))?;
    if duration.is_zero() {
        return Err(e("-d/--duration must be positive, e.g. -d 10s".into()));
    }
    let timeout = parse_duration(&a.timeout).map_err(|err| e(format!("--timeout: {err}")))?;
    if timeout.is_zero() {
        return Err(e("--timeout must be positive, e.g. --timeout 5s".into()));
    }

    let executor = match &a.rate {
        Some(r) => {
            let rate = parse_rate(r).map_err(|err| e(format!("--rate: {err}")))?;
            if rate.is_nan() || rate <= 0.0 {
                return Err(e("--rate must be positive, e.g. --rate 1000/s".into()));
            }
            // In-flight requests the open model may need: a whole request timeout of arrivals,
            // so a server stall as long as the timeout is waited through (and measured), not
            // dropped. VUs are started only when needed (each is a connection and a few KiB of
            // buffers), and the budget is bounded by MAX_DEFAULT_VUS.
            let max_vus = a.max_vus.unwrap_or_else(|| {
                ((rate * timeout.as_secs_f64()).ceil() as u32).clamp(50, MAX_DEFAULT_VUS)
            });
            if max_vus == 0 {
                return Err(e("--max-vus must be at least 1".into()));
            }
            let pre = ((rate / 50.0).ceil() as u32).clamp(10, 1000).min(max_vus);
            ExecutorSpec::ConstantArrivalRate {
                rate,
                duration,
                pre_allocated_vus: pre,
                max_vus,
            }
        }
        None => {
            let vus = a.connections.unwrap_or(DEFAULT_CONNECTIONS);
            if vus == 0 {
                return Err(e("-c/--connections must be at least 1".into()));
            }
            ExecutorSpec::ConstantVus { vus, duration }
        }
    };

    let mut headers = Vec::new();
    for h in &a.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| e(format!("-H {h:?}: expected 'Name: value'")))?;
        let value = Template::parse(value.trim()).map_err(|err| e(format!("-H {h:?}: {err}")))?;
        headers.push((name.trim().to_string(), value));
    }
    let body = a
        .body
        .as_deref()
        .map(Template::parse)
        .transpose()
        .map_err(|err| e(format!("--body: {err}")))?;
    let method = a.method.to_ascii_uppercase();

    let mut thresholds = Vec::new();
    for t in &a.thresholds {
        let (key, expr) = t
            .split_once(": ")
            .or_else(|| t.rsplit_once(':'))
            .ok_or_else(|| e(format!("--threshold {t:?}: expected 'METRIC: EXPR', e.g. 'http_req_duration: p(95)<250'")))?;
        let bad =
            |err: crate::grammar::threshold::ThresholdError| e(format!("--threshold {t:?}: {err}"));
        let (metric, tags) = metric_key(key.trim()).map_err(bad)?;
        for (tag, value) in &tags {
            if (tag == "scenario" && value != "attack") || tag == "probe" {
                return Err(e(format!(
                    "--threshold {t:?}: {tag}:{value} names nothing in this run (its one scenario is `attack`)"
                )));
            }
        }
        let expr = ThresholdExpr::parse(expr.trim()).map_err(bad)?;
        crate::grammar::threshold::validate_for_metric(&metric, &expr).map_err(bad)?;
        thresholds.push(ThresholdSpec {
            metric,
            tags,
            key: key.trim().to_string(),
            expr,
            abort_on_fail: false,
            delay: Duration::ZERO,
            min_samples: 1,
            runbook: None,
        });
    }

    let request = RequestSpec {
        name: format!("{method} {path}"),
        weight: 1,
        method,
        path: Template::parse(&path).map_err(|err| e(format!("URL path: {err}")))?,
        headers,
        body,
        body_json: false,
        checks: Vec::new(),
    };
    let mut spec = RunSpec::new(
        "attack",
        &target,
        HttpOptions {
            timeout,
            headers: Vec::new(),
            version: if a.http2 {
                HttpVersion::Http2
            } else {
                HttpVersion::Auto
            },
            insecure: a.insecure,
            max_connections: None,
            // attack has no response checks: no body is ever kept.
            max_body: crate::spec::DEFAULT_MAX_BODY,
            h2: crate::spec::H2Options {
                connections: a.h2_connections,
                streams: a.streams,
            },
        },
        vec![ScenarioSpec {
            name: "attack".into(),
            executor,
            start_after: Duration::ZERO,
            graceful_stop: timeout.min(Duration::from_secs(30)),
            requests: vec![request],
            tags: Default::default(),
            ledger: None,
            flow: None,
        }],
    );
    spec.thresholds = thresholds;
    Ok(spec)
}
