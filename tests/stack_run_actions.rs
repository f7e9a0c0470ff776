//! Controllers act on the reference stack through the run clock: a scripted controller
//! pauses and resumes the gateway and kills and restarts Redis while load runs; each action's
//! outcome is a `stack_action` event on the run's timeline, and an action on a component the
//! stack does not have is reported as failed, not lost.
mod stack_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use loadgate::control::{self, Action, Conclusion, Controller, End, Tick};
use loadgate::metrics::EventKind;
use loadgate::plan::{self, PlanOptions};
use loadgate::run::{self, RunOptions};
use loadgate::spec::{Component, StackBackend, StackOp, StackSpec};
use loadgate::stack::{self, StackOptions};

/// Sends each action at its run-clock time.
struct Script(Vec<(Duration, Action)>);

impl Controller for Script {
    fn name(&self) -> &'static str {
        "script"
    }
    fn on_tick(&mut self, tick: &Tick<'_>) -> Vec<Action> {
        let due: Vec<Action> = self
            .0
            .iter()
            .filter(|(at, _)| *at <= tick.at)
            .map(|(_, a)| a.clone())
            .collect();
        self.0.retain(|(at, _)| *at > tick.at);
        due
    }
    fn finish(&mut self, _end: &End<'_>) -> Conclusion {
        Conclusion::default()
    }
}

#[test]
fn stack_actions_from_a_controller_land_on_the_timeline() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let spec = StackSpec {
            backend: StackBackend::Process,
            gateways: 1,
            ..StackSpec::default()
        };
        let running = stack::start(&spec, &StackOptions::default())
            .await
            .expect("the process backend starts");
        let env = running.env();
        let text = "target: ${TARGET_URL}\ndefaults: { headers: { authorization: \"Bearer ${USER_KEY}\" }, timeout: 2s }\nscenarios:\n  me: { executor: constant-arrival-rate, rate: 20/s, duration: 8s, request: { path: /auth/me } }\n";
        let mut opts = PlanOptions::empty_env();
        opts.env = Arc::new(move |k: &str| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        });
        let run_spec = plan::parse(text, "actions.yaml", Path::new("."), &opts)
            .expect("valid")
            .lower(&[])
            .expect("lowers");
        let run_spec = Arc::new(run_spec);
        let mut controllers = control::standard(&run_spec);
        controllers.push(Box::new(Script(vec![
            (
                Duration::from_secs(2),
                Action::Stack {
                    component: Component::Gateway(1),
                    op: StackOp::Pause,
                },
            ),
            (
                Duration::from_secs(3),
                Action::Stack {
                    component: Component::Gateway(1),
                    op: StackOp::Resume,
                },
            ),
            (
                Duration::from_secs(4),
                Action::Stack {
                    component: Component::Redis,
                    op: StackOp::Restart,
                },
            ),
            (
                Duration::from_secs(4),
                Action::Stack {
                    component: Component::Edge,
                    op: StackOp::Kill,
                },
            ),
        ])));
        let out = run::execute(
            run_spec,
            controllers,
            Some(running.handle()),
            &RunOptions {
                threads: Some(1),
                ..Default::default()
            },
            std::future::pending(),
        )
        .await
        .expect("runs");
        running.shutdown().await.expect("stack stops");

        let actions: Vec<(String, String, bool, String)> = out
            .metrics
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StackAction {
                    component,
                    op,
                    ok,
                    detail,
                    ..
                } => Some((component.clone(), op.clone(), *ok, detail.clone())),
                _ => None,
            })
            .collect();
        let find = |c: &str, op: &str| {
            actions
                .iter()
                .find(|a| a.0 == c && a.1 == op)
                .unwrap_or_else(|| panic!("no {op} {c} in {actions:?}"))
        };
        assert!(find("gateway[1]", "pause").2, "{actions:?}");
        assert!(find("gateway[1]", "resume").2, "{actions:?}");
        assert!(find("redis", "restart").2, "{actions:?}");
        let edge = find("edge", "kill");
        assert!(!edge.2, "the stack has no edge: {actions:?}");
        // The pause showed on the load: requests waited through it (about a second).
        let max = out
            .metrics
            .scenario_totals()
            .duration
            .max() as f64
            / 1000.0;
        assert!(max >= 500.0, "max latency {max} ms: the pause did not show");
    });
}
