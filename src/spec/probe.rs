//! The lowered `probes:` section: synthetic requests on a fixed cadence, each judged against
//! its own SLO, with traffic kept apart from the scenarios' (its samples carry the tag
//! `probe:NAME` and no `scenario` tag).
use std::time::Duration;

use crate::grammar::response::ResponseCheck;
use crate::grammar::template::Template;
use crate::grammar::threshold::ThresholdExpr;

/// One probe.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub name: String,
    pub kind: ProbeKind,
    /// A new sample (request, or chain) starts this often.
    pub every: Duration,
    /// The probe runs from this run-clock time ...
    pub from: Duration,
    /// ... until this one (None: until the load ends).
    pub until: Option<Duration>,
    /// Every expression must hold: trend aggregations (`p(95)<250`, `avg<100`) judge the
    /// probe's latency in ms, `rate` its failure rate, `count` its sample count. A windowed
    /// expression (`over 30s`) is not allowed here. Lowering adds `rate==0` unless a `rate`
    /// expression is given, so a failing probe never passes on its latency alone.
    pub slo: Vec<ThresholdExpr>,
    /// Fewer samples than this fails the probe with "too few samples". At least 1.
    pub min_samples: u64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// What to do when this check fails (`runbook:` in the plan): text or a link, shown
    /// beside a failed check in the terminal, junit.xml and report.html.
    pub runbook: Option<String>,
}

/// What one sample of a probe does.
#[derive(Debug, Clone)]
pub enum ProbeKind {
    /// One request; a sample fails on a transport error, a status >= 400 or a failed check.
    /// Its latency is the request's (send to last byte).
    Request(ProbeRequest),
    /// Submit, then poll until a condition holds (an async job done), within a deadline. Its
    /// latency runs from the submit to the poll that saw the condition.
    Chain(Box<ChainSpec>),
}

/// A templated request of a probe. Besides the scenario placeholders, `{{NAME}}` reads a value
/// captured earlier in a chain.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    pub method: String,
    pub path: Template,
    pub headers: Vec<(String, Template)>,
    pub body: Option<Template>,
    /// See `RequestSpec::body_json`.
    pub body_json: bool,
    /// All must pass for the request to count as a success.
    pub checks: Vec<ResponseCheck>,
}

impl ProbeRequest {
    /// `METHOD path-template`, e.g. `GET /auth/me`.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A submit-then-poll chain.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    pub submit: ProbeRequest,
    /// Values taken from the submit's response for the poll's templates (the same
    /// extractions a flow step takes). Empty: every top-level scalar field of the JSON
    /// response, by its name (`{{id}}`).
    pub capture: Vec<super::flow::Extraction>,
    pub poll: ProbeRequest,
    /// The poll response that ends the chain successfully (judged on every response,
    /// whatever its status).
    pub until: ResponseCheck,
    /// A poll response that ends the chain as failed at once (a job that failed for good).
    pub fail_if: Option<ResponseCheck>,
    pub poll_every: Duration,
    /// From the submit; a chain not done by then is a failed sample (error `deadline`).
    pub deadline: Duration,
}
