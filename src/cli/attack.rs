//! `loadgate attack URL`: an ad-hoc single-scenario run without a plan file (wrk / oha style).
//!
//! It lowers its flags into the same [`RunSpec`] a plan produces, so it runs on the same engine
//! and reports as a plan would: `-c N` is the closed model (constant-vus at full speed), `--rate`
//! the open model (constant-arrival-rate, latency from the intended send time). The one
//! scenario is named `attack`.
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use super::signals::Interrupts;
use super::{engine_options, execute_and_report, invalid, AttackArgs};
use crate::checks::threshold::{parse_metric_key, ThresholdExpr};
use crate::engine::template::Template;
use crate::plan::units::{parse_duration, parse_rate};
use crate::spec::{
    ExecutorSpec, HttpOptions, HttpVersion, ReportFormat, RequestSpec, RunSpec, ScenarioSpec,
    ThresholdSpec,
};

/// Default connections of the closed model when neither -c nor --rate is given (as oha).
const DEFAULT_CONNECTIONS: u32 = 50;

pub(super) async fn attack(a: AttackArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    let spec = match lower(&a) {
        Ok(s) => s,
        Err(e) => return invalid(e),
    };
    let mut run_opts = match engine_options(&a.engine) {
        Ok(v) => v,
        Err(e) => return invalid(e),
    };
    run_opts.out_dir = a.out.clone();
    run_opts.progress = !a.json;
    execute_and_report(spec, run_opts, a.json, interrupts).await
}

/// Lower the attack flags into a run spec; errors name the flag and the fix.
pub(crate) fn lower(a: &AttackArgs) -> Result<RunSpec, String> {
    let url = url::Url::parse(&a.url)
        .map_err(|e| format!("URL {:?}: {e}; expected e.g. http://127.0.0.1:8080/", a.url))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "URL {:?}: only http:// and https:// are supported",
            a.url
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("URL {:?} has no host", a.url))?;
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

    let duration = parse_duration(&a.duration).map_err(|e| format!("-d/--duration: {e}"))?;
    if duration.is_zero() {
        return Err("-d/--duration must be positive, e.g. -d 10s".into());
    }
    let timeout = parse_duration(&a.timeout).map_err(|e| format!("--timeout: {e}"))?;
    if timeout.is_zero() {
        return Err("--timeout must be positive, e.g. --timeout 5s".into());
    }

    let executor = match &a.rate {
        Some(r) => {
            let rate = parse_rate(r).map_err(|e| format!("--rate: {e}"))?;
            if rate.is_nan() || rate <= 0.0 {
                return Err("--rate must be positive, e.g. --rate 1000/s".into());
            }
            // In-flight requests the open model may need: half a second of arrivals, bounded.
            let max_vus = a
                .max_vus
                .unwrap_or_else(|| ((rate * 0.5).ceil() as u32).clamp(50, 5000));
            if max_vus == 0 {
                return Err("--max-vus must be at least 1".into());
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
                return Err("-c/--connections must be at least 1".into());
            }
            ExecutorSpec::ConstantVus { vus, duration }
        }
    };

    let mut headers = Vec::new();
    for h in &a.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("-H {h:?}: expected 'Name: value'"))?;
        let value = Template::parse(value.trim()).map_err(|e| format!("-H {h:?}: {e}"))?;
        headers.push((name.trim().to_string(), value));
    }
    let body = a
        .body
        .as_deref()
        .map(Template::parse)
        .transpose()
        .map_err(|e| format!("--body: {e}"))?;
    let method = a.method.to_ascii_uppercase();

    let mut thresholds = Vec::new();
    for t in &a.thresholds {
        let (key, expr) = t
            .split_once(": ")
            .or_else(|| t.rsplit_once(':'))
            .ok_or_else(|| format!("--threshold {t:?}: expected 'METRIC: EXPR', e.g. 'http_req_duration: p(95)<250'"))?;
        let (metric, tags) =
            parse_metric_key(key.trim()).map_err(|e| format!("--threshold {t:?}: {e}"))?;
        let expr =
            ThresholdExpr::parse(expr.trim()).map_err(|e| format!("--threshold {t:?}: {e}"))?;
        thresholds.push(ThresholdSpec {
            metric,
            tags,
            key: key.trim().to_string(),
            expr,
            abort_on_fail: false,
            delay: Duration::ZERO,
        });
    }

    let request = RequestSpec {
        name: format!("{method} {path}"),
        weight: 1,
        method,
        path: Template::parse(&path).map_err(|e| format!("URL path: {e}"))?,
        headers,
        body,
        body_json: false,
        checks: Vec::new(),
    };
    Ok(RunSpec {
        name: "attack".into(),
        target,
        http: HttpOptions {
            timeout,
            headers: Vec::new(),
            version: if a.http2 {
                HttpVersion::Http2
            } else {
                HttpVersion::Auto
            },
            insecure: a.insecure,
            max_connections: None,
        },
        feeders: BTreeMap::new(),
        scenarios: vec![ScenarioSpec {
            name: "attack".into(),
            executor,
            start_after: Duration::ZERO,
            graceful_stop: timeout.min(Duration::from_secs(30)),
            requests: vec![request],
            tags: BTreeMap::new(),
        }],
        thresholds,
        report_formats: ReportFormat::ALL.to_vec(),
    })
}
