//! `stack.reference.regions` and the `region[...]` component, and the `backup` / `restore`
//! fault actions in plans: the lowering, and every problem at its line:column.
use std::path::Path;
use std::sync::Arc;

use loadgate::plan::{self, PlanOptions};
use loadgate::spec::fault::FaultAction;
use loadgate::spec::{Component, EdgeStrategy, Region, StackOp};

fn opts() -> PlanOptions {
    PlanOptions {
        env_profile: None,
        sets: vec![],
        env: Arc::new(|_| None),
    }
}

fn load(text: &str) -> Result<plan::ValidatedPlan, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, text).unwrap();
    plan::load(&path, &opts()).map_err(|e| {
        e.0.iter()
            .map(|p| {
                let s = p.to_string();
                s[s.find("plan.yaml").unwrap() + "plan.yaml".len()..].to_string()
            })
            .collect()
    })
}

const SCENARIO: &str = "scenarios:
  a: { executor: constant-arrival-rate, rate: 10/s, duration: 30s, request: { path: / } }
";

#[test]
fn regions_and_data_faults_lower_into_the_spec() {
    let p = load(&format!(
        "stack:
  reference: {{ backend: process, regions: 2, gateways: 2 }}
{SCENARIO}faults:
  r: {{ at: 5s, action: kill, component: \"region[primary]\", restart_after: 3s }}
  b: {{ at: 2s, action: backup, component: postgres }}
  x: {{ at: 9s, action: restore, component: postgres }}
  s: {{ at: 20s, action: pause, region: secondary, resume_after: 3s }}
"
    ))
    .unwrap();
    let stack = p.stack().expect("a stack");
    assert_eq!((stack.regions, stack.gateways), (2, 2));
    // Two regions route through the edge: round-robin unless given.
    assert_eq!(stack.edge, Some(EdgeStrategy::RoundRobin));
    let f = &p.preview().faults;
    assert_eq!(
        f[0].action,
        FaultAction::Stack {
            component: Component::Region(Region::Primary),
            op: StackOp::Kill
        }
    );
    assert_eq!(
        f[1].action,
        FaultAction::Backup {
            component: Component::Postgres
        }
    );
    assert_eq!(
        f[3].action,
        FaultAction::Stack {
            component: Component::Region(Region::Secondary),
            op: StackOp::Pause
        }
    );
    assert_eq!(f[2].action.name(), "restore");
    assert_eq!(f[2].hold, None);
    assert_eq!(
        f[0].action.component().map(|c| c.to_string()).as_deref(),
        Some("region[primary]")
    );
}

#[test]
fn region_and_data_fault_problems_are_reported_at_their_fields() {
    let problems = load(&format!(
        "stack:
  reference: {{ backend: process, regions: 3, edge: none }}
{SCENARIO}faults:
  r:
    at: 1s
    action: kill
    component: region[primary]
  b:
    at: 2s
    action: backup
    component: redis
    restart_after: 2s
  x:
    at: 3s
    action: restore
  y:
    at: 4s
    action: kill
    component: region[tertiary]
  z:
    at: 5s
    action: kill
    region: primary
    component: redis
"
    ))
    .unwrap_err();
    let want = [
        ":2:43: stack.reference.regions: must be 1 or 2",
        ":2:52: stack.reference.edge: `regions: 2` routes through the edge",
        ":13:16: faults.b.component: `action: backup` backs up / restores a database: `postgres`, not redis",
        ":14:20: faults.b.restart_after: not used with `action: backup`",
        ":15:3: faults.x.component: required with `action: restore`",
        ":21:16: faults.y.component: unknown component `region[tertiary]`",
        ":25:13: faults.z.region: give `region:` or `component:`, not both",
    ];
    for w in want {
        assert!(
            problems.iter().any(|p| p.starts_with(w)),
            "missing {w:?} in\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn a_region_fault_needs_two_regions() {
    let problems = load(&format!(
        "stack:
  reference: {{ backend: process, gateways: 2, edge: round-robin }}
{SCENARIO}faults:
  r:
    at: 1s
    action: kill
    component: region[secondary]
  s: {{ at: 2s, action: kill, region: primary }}
"
    ))
    .unwrap_err();
    for w in [
        ":9:16: faults.r.component: acts on a region, and this stack runs one: add `regions: 2`",
        ":10:38: faults.s.region: acts on a region, and this stack runs one",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(w)),
            "missing {w:?} in {problems:?}"
        );
    }
}

#[test]
fn data_faults_need_a_stack() {
    let problems = load(&format!(
        "target: http://127.0.0.1:1
{SCENARIO}faults:
  b: {{ at: 1s, action: backup, component: postgres }}
"
    ))
    .unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("faults.b.action: `action: backup` acts on the reference stack")),
        "{problems:?}"
    );
}

#[test]
fn the_example_plans_parse() {
    for f in ["plans/failover-region.yaml", "plans/restore-drill.yaml"] {
        let p = plan::load(Path::new(f), &opts()).unwrap_or_else(|e| panic!("{f}: {e:?}"));
        assert!(!p.preview().faults.is_empty(), "{f}");
    }
}
