//! Help texts say only what is true: every example under "Examples:" in `loadgate --help`,
//! `loadgate run --help`, `loadgate attack --help` and `loadgate capacity --help` is run. `attack` examples run for real
//! against a local server standing in for `http://127.0.0.1:8080` (exit 0); `run` examples
//! (which need the reference stack) are checked with `validate` on the same plan and `--set`
//! overrides (exit 0), and their other flags are checked to exist in `run --help`; so are
//! `capacity` examples with a plan (an ad-hoc search takes minutes: its flags must exist).
mod common;

use std::process::{Command, Stdio};

fn loadgate(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("loadgate runs")
}

/// Split a command line as a POSIX shell would for the forms the examples use: words,
/// 'single quotes', and backslash escapes outside quotes.
fn shell_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    cur.push(q);
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

fn examples(help_args: &[&str]) -> (String, Vec<Vec<String>>) {
    let args: Vec<String> = help_args.iter().map(|s| s.to_string()).collect();
    let o = loadgate(&args);
    assert!(o.status.success(), "{help_args:?}");
    let text = String::from_utf8(o.stdout).unwrap();
    let list = text
        .split_once("Examples:")
        .unwrap_or_else(|| panic!("no Examples: in {help_args:?}:\n{text}"))
        .1
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("loadgate "))
        .map(shell_words)
        .collect::<Vec<_>>();
    assert!(!list.is_empty(), "{help_args:?}");
    (text, list)
}

#[test]
fn every_help_example_runs_or_validates() {
    let server = common::TestServer::axum(axum::Router::new().fallback(|| async { "ok" }));
    let (run_help, _) = examples(&["run", "--help"]);
    let (capacity_help, _) = examples(&["capacity", "--help"]);
    let mut all = Vec::new();
    for help in [
        &["--help"][..],
        &["run", "--help"],
        &["attack", "--help"],
        &["capacity", "--help"],
    ] {
        all.extend(examples(help).1);
    }
    let mut ran = 0;
    for words in all {
        let shown = words.join(" ");
        let args: Vec<String> = words[1..]
            .iter()
            .map(|w| w.replace("http://127.0.0.1:8080", &server.url()))
            .collect();
        match args[0].as_str() {
            "attack" | "validate" => {
                let o = loadgate(&args);
                assert_eq!(
                    o.status.code(),
                    Some(0),
                    "{shown}\n{}\n{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                if args.iter().any(|a| a == "--json") {
                    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
                        .unwrap_or_else(|e| panic!("{shown}: --json prints JSON: {e}"));
                    assert_eq!(v["verdict"], "pass", "{shown}");
                }
            }
            "capacity" if args[1] == "--url" => {
                // A search takes minutes: its flags must exist.
                for flag in args.iter().filter(|a| a.starts_with("--")) {
                    assert!(
                        capacity_help.contains(flag.as_str()),
                        "{shown}: {flag} is not a capacity flag"
                    );
                }
            }
            "run" | "capacity" => {
                // The plan and its --set overrides must validate; the other flags must exist.
                let help = if args[0] == "run" {
                    &run_help
                } else {
                    &capacity_help
                };
                let mut validate = vec!["validate".to_string(), args[1].clone()];
                let mut i = 2;
                while i < args.len() {
                    let flag = &args[i];
                    assert!(
                        help.contains(flag.as_str()),
                        "{shown}: {flag} is not a {} flag",
                        args[0]
                    );
                    match flag.as_str() {
                        "--set" => {
                            validate.push("--set".into());
                            validate.push(args[i + 1].clone());
                            i += 2;
                        }
                        "--out" => i += 2,
                        _ => i += 1,
                    }
                }
                let o = loadgate(&validate);
                assert_eq!(
                    o.status.code(),
                    Some(0),
                    "{shown}\n{}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            other => panic!("{shown}: unexpected command {other}"),
        }
        ran += 1;
    }
    assert!(ran >= 9, "{ran}");
}

#[test]
fn shell_words_split_like_a_shell() {
    assert_eq!(
        shell_words(r#"loadgate attack -H 'a: b' -b '{\"x\":1}' --rate 5/s"#),
        [
            "loadgate",
            "attack",
            "-H",
            "a: b",
            "-b",
            r#"{\"x\":1}"#,
            "--rate",
            "5/s"
        ]
    );
}
