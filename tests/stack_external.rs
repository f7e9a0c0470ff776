//! External backend: URLs come from the environment; nothing is started.

use loadgate::stack::external::from_lookup;

fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

/// (environment, Ok(exported env) | Err(message fragment))
type Case = (
    &'static [(&'static str, &'static str)],
    Result<&'static str, &'static str>,
);

#[test]
fn external_env_table() {
    let cases: &[Case] = &[
        (&[("TARGET_URL", "http://127.0.0.1:8080/")], Ok("TARGET_URL=http://127.0.0.1:8080 GATEWAY_URLS=http://127.0.0.1:8080")),
        (
            &[("TARGET_URL", "https://staging.example"), ("USER_KEY", "u"), ("REDIS_URL", "redis://r")],
            Ok("TARGET_URL=https://staging.example GATEWAY_URLS=https://staging.example REDIS_URL=redis://r USER_KEY=u"),
        ),
        (&[], Err("TARGET_URL is not set")),
        (&[("TARGET_URL", "  ")], Err("TARGET_URL is not set")),
        (&[("TARGET_URL", "ftp://x")], Err("must be http:// or https://")),
        (&[("TARGET_URL", "not a url")], Err("is not a URL")),
    ];
    for (vars, want) in cases {
        let vars: &'static [(&'static str, &'static str)] =
            Box::leak(vars.to_vec().into_boxed_slice());
        let got = from_lookup(lookup(vars));
        match (got, want) {
            (Ok(ext), Ok(line)) => {
                let text: Vec<String> = ext.env().iter().map(|(k, v)| format!("{k}={v}")).collect();
                assert_eq!(text.join(" "), *line, "{vars:?}");
            }
            (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{vars:?}: {e}"),
            (got, want) => panic!("{vars:?}: got {got:?}, want {want:?}"),
        }
    }
}
