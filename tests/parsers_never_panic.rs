//! Property tests of the hand-written parsers: whatever the input, they answer (a value or an
//! error that says what was expected), never panic; and what they accept round-trips through
//! its canonical form; the lean HTTP/1.1 client reads any byte string a peer sends and ends
//! (a status or an error kind) without keeping more body than its cap. Bounded case counts
//! keep this a few seconds in the suite; raise PROPTEST_CASES locally for a longer run.
use std::path::Path;
use std::str::FromStr;

use loadgate::engine::http::h1::H1Conn;
use loadgate::engine::http::{Capture, ResponseData, Stream};
use loadgate::grammar::response::ResponseCheck;
use loadgate::grammar::template::Template;
use loadgate::grammar::threshold::{format_metric_key, parse_metric_key, ThresholdExpr};
use loadgate::grammar::units::{Duration, Rate, Size};
use loadgate::metrics::ErrorKind;
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
        Just("KiB".to_string()),
        Just("B".to_string()),
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
        if let Ok(b) = Size::from_str(&s) {
            prop_assert_eq!(Size::from_str(&b.to_string()), Ok(b));
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
    fn http1_responses_never_panic(resp in response_soup(), head in any::<bool>(), body in any::<bool>()) {
        let (status, _keep, kept) = exchange(&resp, head, body);
        prop_assert!(kept <= MAX_BODY, "kept {kept} body bytes, cap {MAX_BODY}");
        if let Ok(code) = status {
            prop_assert!((100..1000).contains(&code), "status {code}");
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

const MAX_BODY: usize = 64;

/// Byte strings shaped like HTTP/1.1 responses: status lines (interim ones too), framing
/// headers with good and bad values, chunks, stray bytes.
fn response_soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"HTTP/1.1 ".to_vec()),
        Just(b"HTTP/1.0 ".to_vec()),
        Just(b"200 OK".to_vec()),
        Just(b"100 Continue".to_vec()),
        Just(b"204".to_vec()),
        Just(b"500 x".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r\n\r\n".to_vec()),
        Just(b"content-length: ".to_vec()),
        Just(b"transfer-encoding: chunked".to_vec()),
        Just(b"connection: close".to_vec()),
        Just(b"0\r\n\r\n".to_vec()),
        Just(b"ff;ext=1\r\n".to_vec()),
        Just(b"18446744073709551616".to_vec()),
        "[0-9a-f]{1,3}".prop_map(String::into_bytes),
        "\\PC{0,4}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(token, 0..16).prop_map(|v| v.concat())
}

/// One runtime and listener for every case: the client reads `resp` (followed by the peer
/// closing) through the lean HTTP/1.1 client. Returns the status (or error kind), whether
/// the connection would be kept, and how many body bytes were kept.
fn exchange(resp: &[u8], head: bool, body: bool) -> (Result<u16, ErrorKind>, bool, usize) {
    use std::sync::OnceLock;
    use tokio::io::AsyncWriteExt;
    static RT: OnceLock<(tokio::runtime::Runtime, std::net::SocketAddr)> = OnceLock::new();
    static LISTENER: OnceLock<std::sync::Mutex<Option<tokio::net::TcpListener>>> = OnceLock::new();
    let (rt, addr) = RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let l = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = l.local_addr().unwrap();
        LISTENER.get_or_init(|| std::sync::Mutex::new(Some(l)));
        (rt, addr)
    });
    let listener = LISTENER.get().unwrap();
    rt.block_on(async {
        let l = listener.lock().unwrap().take().unwrap();
        let client = tokio::net::TcpStream::connect(addr);
        let (client, accepted) = tokio::join!(client, l.accept());
        *listener.lock().unwrap() = Some(l);
        let (mut server, _) = accepted.unwrap();
        let resp = resp.to_vec();
        let writer = tokio::spawn(async move {
            let _ = server.write_all(&resp).await;
            let _ = server.shutdown().await;
            // Drain the request so closing sends FIN, not RST.
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut server, &mut sink).await;
        });
        let mut conn = H1Conn::new(Stream::Plain(client.unwrap()));
        let mut data = ResponseData::default();
        let cap = Capture {
            headers: true,
            body,
        };
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            conn.exchange(
                b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
                head,
                cap,
                MAX_BODY,
                &mut data,
            ),
        )
        .await
        .expect("a closed connection always ends the exchange");
        drop(conn);
        let _ = writer.await;
        match r {
            Ok((status, keep)) => (Ok(status), keep, data.body.len()),
            Err(f) => (Err(f.kind), false, data.body.len()),
        }
    })
}
