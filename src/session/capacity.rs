//! A capacity session (`loadgate capacity`): the same life as a run (plan, stack up, lowered
//! spec, reports, stack down), with the capacity search ([`crate::drills::capacity`]) in
//! place of the single run. The stack stays up across every step of the search.
//!
//! The reports are the usual ones: summary.json with the `capacity` section and the search's
//! checks (the plan's thresholds judge each step, inside the section, not the verdict), the
//! whole search's traffic as the scenario row, the steps as events on the search's clock.
use tokio_util::sync::CancellationToken;

use super::{
    open, write_all, write_fallback, Finished, Opened, SessionError, SessionOptions, Source,
};
use crate::control::Stopped;
use crate::drills::capacity::{runner, step, CapacityError};
use crate::report::results::Judgement;
use crate::report::{RunReport, Summary};
use crate::spec::CapacitySpec;

/// Which search to run: the plan's `capacity:` section (or its defaults for a one-scenario
/// plan), or one given whole (the ad-hoc form).
pub enum Search {
    FromPlan,
    Given(Box<CapacitySpec>),
}

/// The search to run: given whole, the plan's section, or the defaults for a one-scenario
/// plan.
fn choose(
    search: &Search,
    section: Option<&CapacitySpec>,
    spec: &crate::spec::RunSpec,
) -> Result<CapacitySpec, SessionError> {
    match (search, section) {
        (Search::Given(c), _) => Ok((**c).clone()),
        (Search::FromPlan, Some(c)) => Ok(c.clone()),
        (Search::FromPlan, None) => match spec.scenarios.as_slice() {
            [only] => Ok(CapacitySpec::new(&only.name)),
            all => Err(SessionError::Capacity(CapacityError::WhichScenario {
                known: all.iter().map(|s| s.name.clone()).collect(),
            })),
        },
    }
}

/// Run a capacity search session to its judged end.
pub async fn run(
    source: Source,
    search: Search,
    opts: &SessionOptions,
    interrupt: &CancellationToken,
) -> Result<Finished, SessionError> {
    // Which search, and whether its steps can be judged, before any stack starts.
    if let (Source::Plan { path, options, .. }, Search::FromPlan) = (&source, &search) {
        let validated = crate::plan::load(path, options).map_err(SessionError::Invalid)?;
        let cap = choose(&search, validated.capacity(), validated.preview())?;
        step::step_spec(validated.preview(), &cap, cap.min)?;
    }
    let opened = open(source, opts, interrupt).await?;
    let cap = choose(&search, opened.capacity.as_ref(), &opened.spec);
    let result = match cap {
        Ok(cap) => judge(&opened, &cap, opts, interrupt).await,
        Err(e) => Err(e),
    };
    opened.close().await;
    result
}

async fn judge(
    opened: &Opened,
    cap: &CapacitySpec,
    opts: &SessionOptions,
    interrupt: &CancellationToken,
) -> Result<Finished, SessionError> {
    let spec = &opened.spec;
    if let Some(m) = opts.max_rate.filter(|m| cap.max > *m) {
        return Err(SessionError::Refused(format!(
            "the capacity search may go up to max {}/s, above --max-rate {}/s: lower `capacity.max` (--max)",
            crate::metrics::format_number(cap.max),
            crate::metrics::format_number(m)
        )));
    }
    if opts.announce {
        eprintln!(
            "loadgate: capacity search of scenario {}: from {}/s, {} s warm-up + {} s per step, precision {}%",
            cap.scenario,
            crate::metrics::format_number(cap.min),
            crate::metrics::format_number(cap.warmup.as_secs_f64()),
            crate::metrics::format_number(cap.step.as_secs_f64()),
            crate::metrics::format_number(cap.precision * 100.0),
        );
    }
    let found = runner::search(
        spec,
        cap,
        opened.handle(),
        &opts.run,
        interrupt,
        opts.announce,
    )
    .await
    .map_err(SessionError::Capacity)?;
    let stopped = found.interrupted.then_some(Stopped::Interrupted);
    let checks = found.report.checks(cap);
    let mut summary = Summary::build(
        &spec.name,
        &found.metrics,
        checks,
        Vec::new(),
        found.started_wall,
        stopped.as_ref(),
    );
    summary.set_capacity(found.report);
    summary.run = Some(opened.info.clone());
    let latency = found.metrics.scenario_latency();
    let run_report = RunReport {
        summary: &summary,
        timeline: &found.metrics.timeline,
        latency: &latency,
        baseline: None,
    };
    let judgement = Judgement::of(
        &summary,
        found.started_wall,
        stopped.as_ref(),
        &spec.report_formats,
    );
    let results = (&found.metrics, &judgement);
    let (written, dir, report_error) = match &opened.dir {
        None => (Vec::new(), None, None),
        Some(d) => match write_all(d, &run_report, results, &spec.report_formats) {
            Ok(w) => (w, Some(d.clone()), None),
            Err(e) => {
                tracing::error!(error = %e, "writing the reports");
                let (w, fallback) = write_fallback(&run_report, results, &spec.report_formats);
                (w, fallback, Some(e))
            }
        },
    };
    Ok(Finished {
        summary,
        written,
        dir,
        report_error,
    })
}
