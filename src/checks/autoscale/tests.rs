//! The judgement on fixtures: the HPA rule, stabilization, episodes, flaps, overshoot.
use super::*;
use crate::spec::AutoscaleExpect;
use std::time::Duration;

fn spec(window_s: u64) -> AutoscaleSpec {
    AutoscaleSpec {
        name: "workers".into(),
        scrape: "gw".into(),
        metric: "queue".into(),
        target_per_replica: 5.0,
        current: "cur".into(),
        desired: Some("des".into()),
        min: 1,
        max: 8,
        tolerance: 0.1,
        stabilization: Duration::from_secs(window_s),
        expect: AutoscaleExpect {
            decision_within: Some(Duration::from_secs(3)),
            ready_within: Some(Duration::from_secs(5)),
            no_flapping: true,
            directions: vec![ScaleDirection::Out, ScaleDirection::In],
        },
    }
}

fn s(at_s: f64, metric: f64, current: u64, desired: u64) -> Sample {
    Sample {
        at_s,
        metric,
        current,
        desired: Some(desired),
    }
}

#[test]
fn hpa_rule_table() {
    // (current, metric total, target, expected): the HPA's own examples and edges.
    let table: &[(u64, f64, f64, u64)] = &[
        (1, 5.0, 5.0, 1),
        (1, 5.4, 5.0, 1),   // ratio 1.08: within tolerance
        (1, 5.6, 5.0, 2),   // ratio 1.12
        (2, 20.0, 5.0, 4),  // double
        (4, 4.0, 5.0, 1),   // ceil(0.8)
        (4, 0.0, 5.0, 0),   // empty: bounds decide
        (3, 13.8, 5.0, 3),  // ratio 0.92: within tolerance
        (3, 13.2, 5.0, 3),  // ratio 0.88: ceil(2.64)
        (10, 20.0, 5.0, 4), // ceil(4.0) exactly
        (0, 7.0, 5.0, 2),
        (3, 30.0, 10.0, 3),
    ];
    for &(cur, m, t, want) in table {
        assert_eq!(hpa_recommendation(cur, m, t, 0.1), want, "{cur} {m} {t}");
    }
}

#[test]
fn stabilization_holds_the_highest_recommendation_of_the_window() {
    let mut st = Stabilizer::new(10.0);
    assert_eq!(st.apply(0.0, 1, 8), 8);
    assert_eq!(st.apply(5.0, 8, 1), 8);
    assert_eq!(st.apply(10.0, 8, 2), 8);
    assert_eq!(st.apply(15.5, 8, 1), 2); // the 8 left the window; the 2 of 10.0 remains
    assert_eq!(st.apply(21.0, 2, 1), 1);
}

/// Scale out as the queue rises, then in after it drains and the window passes.
fn out_and_in() -> Vec<Sample> {
    let mut v = vec![s(0.0, 0.0, 1, 1), s(1.0, 3.0, 1, 1)];
    v.push(s(2.0, 18.0, 1, 1)); // trigger out: rec 4
    v.push(s(3.0, 20.0, 4, 4)); // decided and ready 1 s later
    v.push(s(4.0, 30.0, 4, 6)); // rec 6, desired first
    v.push(s(5.0, 30.0, 6, 6));
    v.push(s(6.0, 0.0, 6, 6)); // drained: stabilization holds 6
    for t in 7..=16 {
        v.push(s(t as f64, 0.0, 6, 6));
    }
    v.push(s(17.0, 0.0, 6, 1)); // window passed (6 last at 5.0 + 10 s): rec 1
    v.push(s(18.0, 0.0, 1, 1));
    v
}

#[test]
fn out_then_in_is_judged_with_latencies_and_events() {
    let mut f = Follower::new(&spec(10), 1.0);
    let mut changes = Vec::new();
    for x in out_and_in() {
        changes.extend(f.push(x));
    }
    let (checks, rep) = f.finish();
    // Two triggers out (the queue rose past the replicas twice), one in.
    assert_eq!(rep.episodes.len(), 3, "{:#?}", rep.episodes);
    let out = &rep.episodes[0];
    assert_eq!(
        (
            out.direction.as_str(),
            out.trigger_at_s,
            out.recommended,
            out.peak_recommended
        ),
        ("out", 2.0, 4, 4)
    );
    assert_eq!(out.decision_latency_s, Some(1.0));
    assert_eq!(out.ready_latency_s, Some(1.0));
    assert_eq!(out.overshoot, 0);
    let out2 = &rep.episodes[1];
    assert_eq!((out2.trigger_at_s, out2.recommended), (4.0, 6));
    assert_eq!(out2.decision_latency_s, Some(0.0)); // desired moved before the scrape
    assert_eq!(out2.ready_latency_s, Some(1.0));
    let inn = &rep.episodes[2];
    assert_eq!((inn.direction.as_str(), inn.recommended), ("in", 1));
    assert_eq!(inn.trigger_at_s, 16.0, "{inn:#?}");
    assert_eq!(inn.decision_latency_s, Some(1.0));
    assert_eq!(inn.ready_latency_s, Some(2.0));
    assert!(rep.flaps.is_empty(), "{:?}", rep.flaps);
    assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    assert_eq!(checks.len(), 4);
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::Recommended { from: 1, to: 4, .. })));
    assert!(changes.iter().any(|c| matches!(
        c,
        Change::Observed {
            replicas: "desired",
            from: 6,
            to: 1,
            ..
        }
    )));
}

#[test]
fn a_system_that_never_scales_misses_the_decision() {
    let mut f = Follower::new(&spec(10), 1.0);
    for t in 0..20 {
        f.push(s(t as f64, if t > 2 { 40.0 } else { 0.0 }, 1, 1));
    }
    let (checks, rep) = f.finish();
    assert_eq!(rep.episodes.len(), 1);
    assert_eq!(rep.episodes[0].decision, Reach::Missed);
    let dec = checks
        .iter()
        .find(|c| c.name.ends_with("decision_within"))
        .unwrap();
    assert!(!dec.passed);
    assert!(dec.observed.contains("never reached 8"), "{}", dec.observed);
    assert!(
        !checks
            .iter()
            .find(|c| c.name.ends_with("directions"))
            .unwrap()
            .passed
    );
}

#[test]
fn late_decisions_fail_and_unfinished_ones_stay_pending() {
    let mut f = Follower::new(&spec(10), 1.0);
    f.push(s(0.0, 0.0, 1, 1));
    f.push(s(1.0, 20.0, 1, 1)); // trigger: rec 4
    f.push(s(6.0, 20.0, 4, 4)); // 5 s later: decision late (3 s), ready on time (5 s)
    let (checks, _) = f.finish();
    let dec = checks
        .iter()
        .find(|c| c.name.ends_with("decision_within"))
        .unwrap();
    assert!(!dec.passed && dec.observed.contains("worst 5s"), "{dec:?}");
    assert!(
        checks
            .iter()
            .find(|c| c.name.ends_with("ready_within"))
            .unwrap()
            .passed
    );

    let mut f = Follower::new(&spec(10), 1.0);
    f.push(s(0.0, 0.0, 1, 1));
    f.push(s(1.0, 20.0, 1, 1)); // the run ends 1 s after the trigger
    f.push(s(2.0, 20.0, 1, 1));
    let (checks, rep) = f.finish();
    assert_eq!(rep.episodes[0].decision, Reach::Pending);
    let dec = checks
        .iter()
        .find(|c| c.name.ends_with("decision_within"))
        .unwrap();
    assert!(
        !dec.passed && dec.observed.starts_with("no data"),
        "{dec:?}"
    );
}

#[test]
fn reversals_inside_the_window_are_flaps() {
    // A short system window against a periodic load: up, down, up within 10 s.
    let mut f = Follower::new(&spec(10), 1.0);
    let pattern = [(0.0, 1), (1.0, 4), (3.0, 1), (5.0, 4), (7.0, 1), (20.0, 4)];
    for (at, r) in pattern {
        f.push(s(at, r as f64 * 5.0, r, r));
    }
    let (checks, rep) = f.finish();
    assert_eq!(rep.flaps.len(), 3, "{:?}", rep.flaps);
    assert_eq!((rep.flaps[0].at_s, rep.flaps[0].previous_at_s), (3.0, 1.0));
    let c = checks
        .iter()
        .find(|c| c.name.ends_with("no_flapping"))
        .unwrap();
    assert!(!c.passed && c.observed.starts_with("3 flap(s)"), "{c:?}");
}

#[test]
fn overshoot_counts_replicas_past_the_recommendation() {
    let mut f = Follower::new(&spec(10), 1.0);
    f.push(s(0.0, 0.0, 1, 1));
    f.push(s(1.0, 10.0, 1, 1)); // rec 2
    f.push(s(2.0, 10.0, 1, 5)); // the system wants 5
    f.push(s(3.0, 10.0, 5, 5));
    let (_, rep) = f.finish();
    assert_eq!(rep.episodes[0].overshoot, 3, "{:#?}", rep.episodes);
}

#[test]
fn without_a_desired_series_only_ready_is_judged() {
    let mut sp = spec(10);
    sp.desired = None;
    let mut f = Follower::new(&sp, 1.0);
    for x in out_and_in() {
        f.push(Sample { desired: None, ..x });
    }
    let (checks, rep) = f.finish();
    assert!(checks.iter().all(|c| !c.name.ends_with("decision_within")));
    assert_eq!(rep.episodes[0].decision_latency_s, None);
    assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
}
#[test]
fn a_change_followed_within_one_scrape_is_an_episode_with_latency_0() {
    let mut f = Follower::new(&spec(0), 1.0);
    f.push(s(0.0, 20.0, 4, 4));
    f.push(s(1.0, 0.0, 1, 1)); // recommendation 4 -> 1 and the pool already at 1
    let (_, rep) = f.finish();
    assert_eq!(rep.episodes.len(), 1, "{:#?}", rep.episodes);
    let e = &rep.episodes[0];
    assert_eq!((e.direction.as_str(), e.from, e.recommended), ("in", 4, 1));
    assert_eq!(
        (e.decision_latency_s, e.ready_latency_s),
        (Some(0.0), Some(0.0))
    );
    assert_eq!(e.passed, Some(true));
}
#[test]
fn every_further_trigger_is_judged_on_its_own() {
    // The queue rises step by step; the system follows the first step only.
    let mut f = Follower::new(&spec(10), 1.0);
    f.push(s(0.0, 0.0, 1, 1));
    f.push(s(1.0, 10.0, 1, 1)); // 2
    f.push(s(2.0, 15.0, 2, 2)); // 3: a further trigger; the first reached
    f.push(s(3.0, 20.0, 2, 2)); // 4
    for t in 4..12 {
        f.push(s(t as f64, 20.0, 2, 2));
    }
    let (checks, rep) = f.finish();
    let got: Vec<(u64, Reach)> = rep
        .episodes
        .iter()
        .map(|e| (e.recommended, e.decision))
        .collect();
    assert_eq!(
        got,
        [(2, Reach::Reached), (3, Reach::Missed), (4, Reach::Missed)],
        "{:#?}",
        rep.episodes
    );
    let dec = checks
        .iter()
        .find(|c| c.name.ends_with("decision_within"))
        .unwrap();
    assert!(
        !dec.passed && dec.observed.contains("2 of 3 episodes missed"),
        "{dec:?}"
    );
}
