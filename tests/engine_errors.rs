//! Failure kinds, response checks, templated bodies and feeders, and HTTP/1.1 framing
//! (chunked bodies, `Connection: close`) of the lean client.
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use common::{closed_port, request, run, scenario, spec, TestServer};
use loadgate::grammar::response::ResponseCheck;
use loadgate::grammar::template::Template;
use loadgate::metrics::ErrorKind;
use loadgate::spec::{ExecutorSpec, Feeder, FeederOrder};

fn iterations(n: u64) -> ExecutorSpec {
    ExecutorSpec::SharedIterations {
        vus: 2,
        iterations: n,
        max_duration: Duration::from_secs(10),
    }
}

fn app(bodies: Arc<Mutex<Vec<String>>>) -> Router {
    Router::new()
        .route(
            "/ok",
            get(|| async { ([("x-model-version", "v2")], r#"{"status":"done","n":3}"#) }),
        )
        .route("/boom", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/chunked",
            get(|| async {
                let chunks =
                    ["he", "llo ", "chun", "ked"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c)));
                Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route(
            "/close",
            get(|| async { ([(header::CONNECTION, "close")], "bye").into_response() }),
        )
        .route(
            "/echo",
            post(move |body: String| {
                let bodies = bodies.clone();
                async move {
                    bodies.lock().unwrap().push(body);
                    Response::new(Body::from("ok"))
                }
            }),
        )
}

fn server() -> (TestServer, Arc<Mutex<Vec<String>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    (TestServer::axum(app(bodies.clone())), bodies)
}

fn errors_of(m: &loadgate::metrics::RunMetrics, kind: ErrorKind) -> u64 {
    m.aggregate(|k| k.error == Some(kind)).requests
}

#[test]
fn connect_refused_on_a_closed_port() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let m = run(
        spec(
            &url,
            vec![scenario("s", iterations(5), request("GET", "/"))],
        ),
        1,
    );
    assert_eq!(m.total_requests(), 5);
    assert_eq!(errors_of(&m, ErrorKind::ConnectRefused), 5);
    assert_eq!(m.aggregate(|_| true).failed, 5);
    assert!(m.series.keys().all(|k| k.status == 0));
}

#[test]
fn timeout_on_a_slow_endpoint() {
    let (srv, _) = server();
    let mut s = spec(
        &srv.url(),
        vec![scenario("s", iterations(2), request("GET", "/slow"))],
    );
    s.http.timeout = Duration::from_millis(300);
    let m = run(s, 1);
    assert_eq!(errors_of(&m, ErrorKind::Timeout), 2);
    let st = m.aggregate(|_| true);
    // Service time of a timed-out request is the timeout.
    let p50 = st.service.value_at_quantile(0.5);
    assert!((290_000..1_000_000).contains(&p50), "{p50} µs");
}

#[test]
fn status_classes_are_failures() {
    let (srv, _) = server();
    let mut sc = scenario("s", iterations(30), request("GET", "/ok"));
    let mut boom = request("GET", "/boom");
    boom.name = "boom".into();
    let mut missing = request("GET", "/missing");
    missing.name = "missing".into();
    sc.requests.push(boom);
    sc.requests.push(missing);
    let m = run(spec(&srv.url(), vec![sc]), 1);
    assert_eq!(m.total_requests(), 30);
    let e5 = errors_of(&m, ErrorKind::Status5xx);
    let e4 = errors_of(&m, ErrorKind::Status4xx);
    let ok = m.aggregate(|k| k.status == 200).requests;
    assert!(
        e5 > 0 && e4 > 0 && ok > 0,
        "weighted mix: ok {ok}, 5xx {e5}, 4xx {e4}"
    );
    assert_eq!(e5 + e4 + ok, 30);
    assert_eq!(m.aggregate(|_| true).failed, e5 + e4);
    assert!(m
        .series
        .keys()
        .filter(|k| k.error == Some(ErrorKind::Status5xx))
        .all(|k| k.status == 503 && k.request == 1));
    assert_eq!(m.scenarios[0].requests, ["GET /ok", "boom", "missing"]);
}

#[test]
fn response_checks_feed_passed_and_failed() {
    let (srv, _) = server();
    let mut r = request("GET", "/ok");
    for c in [
        "status == 200",
        "header x-model-version == \"v2\"",
        "json /status == done",
        "json /n == 4",
        "body contains \"nope\"",
    ] {
        r.checks.push(ResponseCheck::parse(c).unwrap());
    }
    let m = run(spec(&srv.url(), vec![scenario("s", iterations(10), r)]), 1);
    let st = m.aggregate(|_| true);
    assert_eq!(st.requests, 10);
    assert_eq!(st.checks_passed, 30);
    assert_eq!(st.checks_failed, 20);
    assert_eq!(st.failed, 0, "a failed check is not a failed request");
}

#[test]
fn checks_fail_when_there_is_no_response() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let mut r = request("GET", "/");
    r.checks.push(ResponseCheck::parse("status < 500").unwrap());
    let m = run(spec(&url, vec![scenario("s", iterations(3), r)]), 1);
    assert_eq!(m.aggregate(|_| true).checks_failed, 3);
}

#[test]
fn chunked_bodies_and_connection_close() {
    let (srv, _) = server();
    let mut chunked = request("GET", "/chunked");
    chunked
        .checks
        .push(ResponseCheck::parse("body contains \"hello chunked\"").unwrap());
    let mut close = request("GET", "/close");
    close
        .checks
        .push(ResponseCheck::parse("body contains \"bye\"").unwrap());
    let mut sc = scenario("s", iterations(40), chunked);
    sc.requests.push(close);
    let m = run(spec(&srv.url(), vec![sc]), 1);
    let st = m.aggregate(|_| true);
    assert_eq!(st.requests, 40);
    assert_eq!(st.failed, 0, "{:?}", m.series.keys().collect::<Vec<_>>());
    assert_eq!(st.checks_passed, 40);
    // Without a body check the body is still read (and discarded) correctly.
    let m = run(
        spec(
            &srv.url(),
            vec![scenario("s", iterations(20), request("GET", "/chunked"))],
        ),
        1,
    );
    assert_eq!(m.aggregate(|k| k.status == 200).requests, 20);
}

#[test]
fn templated_bodies_use_one_feeder_row_per_iteration() {
    let (srv, bodies) = server();
    let mut s = spec(&srv.url(), vec![]);
    s.feeders.insert(
        "users".into(),
        Arc::new(Feeder {
            name: "users".into(),
            columns: vec!["id".into(), "name".into()],
            rows: (0..5)
                .map(|i| vec![format!("{i}"), format!("user{i}")])
                .collect(),
            order: FeederOrder::Random,
        }),
    );
    let mut r = request("POST", "/echo");
    r.body = Some(
        Template::parse(r#"{"id":"{{users.id}}","name":"{{users.name}}","u":"{{uuid}}","s":{{seq}},"c":"{{random(a|b)}}","k":{{randint(1,3)}}}"#)
            .unwrap(),
    );
    s.scenarios.push(scenario("s", iterations(25), r));
    let m = run(s, 1);
    assert_eq!(m.aggregate(|k| k.status == 200).requests, 25);
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 25);
    let mut uuids = std::collections::BTreeSet::new();
    for b in bodies.iter() {
        let v: serde_json::Value = serde_json::from_str(b).unwrap_or_else(|e| panic!("{b}: {e}"));
        let id = v["id"].as_str().unwrap();
        assert_eq!(
            v["name"].as_str().unwrap(),
            format!("user{id}"),
            "same row for one iteration"
        );
        assert!(["a", "b"].contains(&v["c"].as_str().unwrap()));
        assert!((1..=3).contains(&v["k"].as_i64().unwrap()));
        uuids.insert(v["u"].as_str().unwrap().to_string());
    }
    assert_eq!(uuids.len(), 25);
}

#[test]
fn json_bodies_escape_feeder_values_as_json_string_content() {
    let values = [
        r#"she said "hi""#,
        r"C:\dir\file",
        "two\nlines\r\n\tand a tab",
        "\u{0}\u{1}\u{1f} ctrl",
        "\\\"\\",
        "ünïcødé 😀",
    ];
    let (srv, bodies) = server();
    let mut s = spec(&srv.url(), vec![]);
    s.feeders.insert(
        "prompts".into(),
        Arc::new(Feeder {
            name: "prompts".into(),
            columns: vec!["text".into()],
            rows: values.iter().map(|v| vec![v.to_string()]).collect(),
            order: FeederOrder::Sequential,
        }),
    );
    let mut r = request("POST", "/echo");
    // What the plan lowers `body: { prompt: "{{prompts.text}}", ... }` to.
    let body = serde_json::json!({
        "prompt": "{{prompts.text}}",
        "n": "{{seq}}",
        "list": ["x {{prompts.text}} y", "{{random(a\"b|c\\d)}}"],
    });
    r.body = Some(Template::parse(&serde_json::to_string(&body).unwrap()).unwrap());
    r.body_json = true;
    let n = 2 * values.len() as u64;
    s.scenarios.push(scenario("s", iterations(n), r));
    let m = run(s, 1);
    assert_eq!(m.aggregate(|k| k.status == 200).requests, n);
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len() as u64, n);
    let mut seen = std::collections::BTreeSet::new();
    for b in bodies.iter() {
        let v: serde_json::Value =
            serde_json::from_str(b).unwrap_or_else(|e| panic!("not JSON: {b}: {e}"));
        let seq: usize = v["n"].as_str().unwrap().parse().unwrap();
        let want = values[seq % values.len()];
        assert_eq!(v["prompt"].as_str().unwrap(), want, "{b}");
        assert_eq!(v["list"][0].as_str().unwrap(), format!("x {want} y"), "{b}");
        let choice = v["list"][1].as_str().unwrap();
        assert!(["a\"b", "c\\d"].contains(&choice), "{b}");
        seen.insert(want);
    }
    assert_eq!(seen.len(), values.len(), "every row was sent");
}

#[test]
fn unknown_feeder_is_an_engine_error() {
    let mut r = request("GET", "/{{nofeeder.x}}");
    r.name = "x".into();
    let s = spec("http://127.0.0.1:1", vec![scenario("s", iterations(1), r)]);
    let err = loadgate::engine::start(Arc::new(s), Default::default(), Default::default())
        .err()
        .expect("error");
    assert!(err.to_string().contains("nofeeder"), "{err}");
}
