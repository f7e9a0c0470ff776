//! Property tests of the hand-written parsers: whatever the input, they answer (a value or an
//! error that says what was expected), never panic; and what they accept round-trips through
//! its canonical form. Bounded case counts keep this a few seconds in the suite; raise
//! PROPTEST_CASES locally for a longer run.
use std::path::Path;
use std::str::FromStr;

use loadgate::grammar::response::ResponseCheck;
use loadgate::grammar::template::Template;
use loadgate::grammar::threshold::{format_metric_key, parse_metric_key, ThresholdExpr};
use loadgate::grammar::units::{Duration, Rate};
use loadgate::plan::{self, PlanOptions};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(500),
        ..ProptestConfig::default()
    }
}

/// Strings built from the tokens these grammars use, so the parsers get past their first
/// character often (plain random text mostly tests the first error path).
fn grammar_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("p(".to_string()),
        Just(")".to_string()),
        Just("avg".to_string()),
        Just("rate".to_string()),
        Just("count".to_string()),
        Just("<".to_string()),
        Just("<=".to_string()),
        Just("==".to_string()),
        Just("!=".to_string()),
        Just(" over ".to_string()),
        Just("ms".to_string()),
        Just("s".to_string()),
        Just("%".to_string()),
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("uuid".to_string()),
        Just("random(a|b)".to_string()),
        Just("randint(1,".to_string()),
        Just("/".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(":".to_string()),
        Just(",".to_string()),
        Just("status".to_string()),
        Just("json".to_string()),
        Just("header".to_string()),
        Just("\"".to_string()),
        Just(".".to_string()),
        Just("-".to_string()),
        "[0-9]{1,4}",
        "[a-z_]{1,6}",
        "\\PC{0,3}",
        Just(" ".to_string()),
    ];
    prop::collection::vec(token, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn thresholds_never_panic_and_round_trip(s in grammar_soup()) {
        if let Ok(e) = ThresholdExpr::parse(&s) {
            let again = ThresholdExpr::parse(&e.to_string())
                .unwrap_or_else(|err| panic!("{s:?} -> {e} does not parse again: {err}"));
            prop_assert_eq!(again.aggregation, e.aggregation);
            prop_assert_eq!(again.op, e.op);
            prop_assert_eq!(again.window, e.window);
            prop_assert!((again.value - e.value).abs() <= 1e-9 * e.value.abs().max(1.0));
        }
    }

    #[test]
    fn metric_keys_never_panic_and_round_trip(s in grammar_soup()) {
        if let Ok((metric, tags)) = parse_metric_key(&s) {
            let text = format_metric_key(&metric, &tags);
            // Tag values that hold `,` or `}` need quotes the canonical form does not add.
            if tags.iter().all(|(_, v)| !v.contains([',', '}', '{', '"', '\''])) {
                prop_assert_eq!(parse_metric_key(&text).ok(), Some((metric, tags)));
            }
        }
    }

    #[test]
    fn units_never_panic_and_round_trip(s in grammar_soup()) {
        if let Ok(d) = Duration::from_str(&s) {
            prop_assert_eq!(Duration::from_str(&d.to_string()), Ok(d));
        }
        if let Ok(r) = Rate::from_str(&s) {
            let again = Rate::from_str(&r.to_string()).unwrap();
            prop_assert!((again.per_second - r.per_second).abs() <= 1e-9 * r.per_second.max(1.0));
        }
    }

    #[test]
    fn templates_never_panic(s in grammar_soup(), vars in any::<bool>()) {
        match Template::parse_every(&s, vars) {
            Ok(t) => {
                prop_assert_eq!(&t.source, &s);
                let _ = t.render_string(Default::default());
            }
            Err(errors) => prop_assert!(!errors.is_empty()),
        }
    }

    #[test]
    fn response_checks_never_panic(s in grammar_soup(), status in 0u16..700, body in "\\PC{0,40}") {
        if let Ok(c) = ResponseCheck::parse(&s) {
            let _ = c.evaluate(status, &http::HeaderMap::new(), body.as_bytes());
        }
    }

    #[test]
    fn plans_never_panic(doc in plan_soup()) {
        let _ = plan::parse(&doc, "fuzz.yaml", Path::new("."), &PlanOptions::empty_env());
    }
}

/// YAML documents shaped like plans, with parts replaced by soup: the decoder, the layers and
/// validation all get exercised.
fn plan_soup() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        grammar_soup(),
        Just("10/s".to_string()),
        Just("5s".to_string()),
        Just("[1, 2]".to_string()),
        Just("{ a: b }".to_string()),
        Just("null".to_string()),
        Just("- x".to_string()),
        Just("\"${X:-1}\"".to_string()),
        Just("*anchor".to_string()),
    ];
    let field = prop_oneof![
        Just("executor"),
        Just("rate"),
        Just("duration"),
        Just("stages"),
        Just("vus"),
        Just("request"),
        Just("path"),
        Just("checks"),
        Just("body"),
        Just("every"),
        Just("slo"),
    ];
    (prop::collection::vec((field, value), 0..6), grammar_soup()).prop_map(|(fields, key)| {
        let mut doc = String::from("target: http://127.0.0.1:1\nscenarios:\n  s:\n");
        for (f, v) in fields {
            doc.push_str(&format!("    {f}: {v}\n"));
        }
        doc.push_str(&format!("thresholds:\n  \"{}\": [\"{}\"]\n", key.replace('"', ""), key.replace('"', "")));
        doc.push_str("probes:\n  p: { request: GET /, every: 1s }\nslos:\n  a: { objective: 99%, metric: http_req_failed }\n");
        doc
    })
}
