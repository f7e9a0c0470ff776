//! One scraper's task: a scrape every `every` (the next waits for the previous, so at most
//! one is in flight), each bounded by `timeout`, the values appended to the scraper's log.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::parse::{parse_exposition, parse_number, ParseError};
use super::{lock, ScrapePoint, ScrapeReport, MAX_POINTS};
use crate::metrics::round3;
use crate::spec::{ScrapeSource, ScrapeSpec};

/// Why one scrape gave no values.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error(
        "no answer within the scrape's `timeout` ({0:?}); raise `timeout` or check the endpoint"
    )]
    Timeout(Duration),
    #[error("GET {url}: {source} (check the scrape `url` and that the service is up)")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url} answered {status} (the scrape `url` must serve Prometheus text)")]
    Status { url: String, status: u16 },
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("could not start `{program}`: {source} (check the scrape `command`)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` exited with {status}: {stderr}")]
    Exit {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("`{program}` printed {output:?}, not a number (the scrape `command` must print one)")]
    NotANumber { program: String, output: String },
}

/// The HTTP client scrapers share.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .user_agent(concat!("loadgate/", env!("CARGO_PKG_VERSION"), " scrape"))
        .build()
}

/// Read one scrape: `(series, value)` pairs.
pub async fn scrape_once(
    spec: &ScrapeSpec,
    client: &reqwest::Client,
) -> Result<Vec<(String, f64)>, ScrapeError> {
    match tokio::time::timeout(spec.timeout, read(spec, client)).await {
        Ok(r) => r,
        Err(_) => Err(ScrapeError::Timeout(spec.timeout)),
    }
}

async fn read(
    spec: &ScrapeSpec,
    client: &reqwest::Client,
) -> Result<Vec<(String, f64)>, ScrapeError> {
    match &spec.source {
        ScrapeSource::Url(url) => {
            let http = |source| ScrapeError::Http {
                url: url.clone(),
                source,
            };
            let resp = client.get(url).send().await.map_err(http)?;
            if !resp.status().is_success() {
                return Err(ScrapeError::Status {
                    url: url.clone(),
                    status: resp.status().as_u16(),
                });
            }
            let text = resp.text().await.map_err(http)?;
            Ok(parse_exposition(&text)?
                .into_iter()
                .filter(|s| selected(&spec.series, &s.name))
                .map(|s| (s.series(), s.value))
                .collect())
        }
        ScrapeSource::Command(argv) => {
            let program = argv[0].clone();
            let out = tokio::process::Command::new(&program)
                .args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|source| ScrapeError::Spawn {
                    program: program.clone(),
                    source,
                })?;
            if !out.status.success() {
                return Err(ScrapeError::Exit {
                    program,
                    status: out.status,
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
            let text = String::from_utf8_lossy(&out.stdout);
            match parse_number(&text) {
                Some(v) => Ok(vec![(spec.name.clone(), v)]),
                None => Err(ScrapeError::NotANumber {
                    program,
                    output: text.trim().chars().take(80).collect(),
                }),
            }
        }
    }
}

/// Whether series `name` is kept by the selection (empty: all). A histogram's or summary's
/// `_bucket`, `_sum`, `_count` series belong to its name.
pub fn selected(selection: &[String], name: &str) -> bool {
    selection.is_empty()
        || selection.iter().any(|s| {
            name == s
                || name
                    .strip_prefix(s.as_str())
                    .is_some_and(|rest| matches!(rest, "_bucket" | "_sum" | "_count"))
        })
}

/// A scraper's task.
pub(super) struct ScrapeTask {
    pub(super) spec: Arc<ScrapeSpec>,
    pub(super) log: Arc<Mutex<ScrapeReport>>,
    pub(super) client: reqwest::Client,
    pub(super) origin: Instant,
    pub(super) stop: CancellationToken,
}

impl ScrapeTask {
    pub(super) async fn run(self) {
        let mut every = tokio::time::interval(self.spec.every);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = every.tick() => {}
            }
            let at_s = round3(self.origin.elapsed().as_secs_f64());
            let result = tokio::select! {
                _ = self.stop.cancelled() => return,
                r = scrape_once(&self.spec, &self.client) => r,
            };
            let mut log = lock(&self.log);
            match result {
                Ok(values) => {
                    log.scrapes += 1;
                    for (series, value) in values {
                        if log.points.len() >= MAX_POINTS {
                            log.dropped_points += 1;
                        } else {
                            log.points.push(ScrapePoint {
                                at_s,
                                series,
                                value,
                            });
                        }
                    }
                }
                Err(e) => {
                    log.errors += 1;
                    let reason = e.to_string();
                    if log.last_error.as_deref() != Some(reason.as_str()) {
                        tracing::warn!(scraper = %self.spec.name, "scrape failed: {reason}");
                    }
                    log.last_error = Some(reason);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::selected;

    #[test]
    fn selection_keeps_histogram_parts() {
        let sel = vec!["lat".to_string()];
        assert!(selected(&sel, "lat"));
        assert!(selected(&sel, "lat_bucket"));
        assert!(selected(&sel, "lat_count"));
        assert!(!selected(&sel, "latency"));
        assert!(!selected(&sel, "lat_total"));
        assert!(selected(&[], "anything"));
    }
}
