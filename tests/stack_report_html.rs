//! report.html of a drill in headless Chromium: a canary rollback against the reference stack
//! (shortened with `--set`), its page rendered by Debian's `chromium` (installed by
//! scripts/setup.sh): the charts are in the DOM and drawn, no console error, and screenshots
//! at desktop and phone width are not blank (pixel variety, read with the png crate). Set
//! LOADGATE_KEEP_SCREENSHOTS=DIR to keep the page and the screenshots. In the `stack` test
//! group (.config/nextest.toml): it starts the reference stack.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn loadgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("loadgate runs")
}

fn show(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Nothing in the page makes the browser fetch anything.
fn assert_self_contained(page: &str) {
    for needle in [
        "<script", "<link", "<img", "<iframe", "@import", "url(", " src=",
    ] {
        assert!(!page.contains(needle), "report.html contains {needle:?}");
    }
}

/// The chromium binary, when installed (scripts/setup.sh installs Debian's `chromium`).
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Run headless Chromium on `page` with `args`; returns its output.
fn headless(page: &Path, profile: &Path, args: &[&str]) -> Output {
    let bin = chromium().expect("chromium is installed by scripts/setup.sh");
    let url = format!("file://{}", page.display());
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    .stdin(Stdio::null());
    cmd.output().expect("chromium runs")
}

/// Distinct colours of a PNG, and the share of its pixels that are not white.
fn pixel_variety(png_path: &Path) -> (usize, f64) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let mut colors = std::collections::HashSet::new();
    let mut not_white = 0usize;
    let mut total = 0usize;
    for px in bytes.chunks(step) {
        let rgb = (px[0], px[1], px[2]);
        colors.insert(rgb);
        total += 1;
        if rgb != (255, 255, 255) {
            not_white += 1;
        }
    }
    (colors.len(), not_white as f64 / total.max(1) as f64)
}

#[test]
fn a_canary_drill_report_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rollback");
    // The rollback drill, shortened: a bad v2 is rolled back at its first step.
    let o = loadgate(&[
        "run",
        "plans/canary-rollback.yaml",
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
        "--set",
        "canary.step_duration=6s",
        "--set",
        "canary.min_samples=50",
        "--set",
        "scenarios.chat.duration=20s",
        "--set",
        "canary.runbook=docs/runbooks/canary.md - keep v1 and page the model team",
        // A threshold no run meets (p99 under 1 ms), with its runbook: exit 99.
        "--set",
        r#"thresholds.http_req_duration{scenario:chat}=[{threshold: "p(99)<1", runbook: "docs/runbooks/latency.md - check the model's latency first"}]"#,
    ]);
    assert_eq!(o.status.code(), Some(99), "{}", show(&o));
    let page_path = out.join("report.html");
    let page = std::fs::read_to_string(&page_path).unwrap();
    assert_self_contained(&page);
    assert!(page.contains("Canary gate") && page.contains("rollback"));
    assert!(
        page.contains("docs/runbooks/latency.md - check the model&#39;s latency first"),
        "the failed threshold's runbook"
    );
    assert!(
        page.contains("canary_weight") && page.contains("canary_decision"),
        "drill events"
    );
    let size = page.len();

    let profile = dir.path().join("chromium-profile");
    let dom = headless(&page_path, &profile, &["--dump-dom"]);
    assert!(dom.status.success(), "{}", show(&dom));
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    // The charts are in the DOM and drawn: SVGs with lines (paths / polylines) in them.
    let svgs = dom_text.matches("<svg").count();
    assert!(svgs >= 4, "{svgs} SVGs in the DOM");
    let lines = dom_text.matches("<polyline").count() + dom_text.matches("<path").count();
    assert!(lines >= svgs, "{lines} lines in {svgs} charts");
    let stderr = String::from_utf8_lossy(&dom.stderr);
    for bad in [":CONSOLE(", "Uncaught", "ERR_FILE_NOT_FOUND", "net::ERR"] {
        assert!(
            !stderr
                .lines()
                .any(|l| l.contains(bad) && !l.contains("dbus")),
            "console error {bad:?}:\n{stderr}"
        );
    }

    for (name, size_arg) in [("wide", "1280,2400"), ("phone", "390,2400")] {
        let shot = dir.path().join(format!("{name}.png"));
        let o = headless(
            &page_path,
            &profile,
            &[
                &format!("--screenshot={}", shot.display()),
                &format!("--window-size={size_arg}"),
                "--hide-scrollbars",
            ],
        );
        assert!(o.status.success() && shot.exists(), "{}", show(&o));
        let (colors, ink) = pixel_variety(&shot);
        eprintln!(
            "{name} screenshot: {colors} colours, {:.1}% non-white; report.html {size} bytes",
            100.0 * ink
        );
        assert!(colors > 50, "{name}: {colors} colours: blank?");
        assert!(ink > 0.05, "{name}: {ink} of the pixels drawn");
        if let Some(keep) = std::env::var_os("LOADGATE_KEEP_SCREENSHOTS") {
            let keep = PathBuf::from(keep);
            std::fs::create_dir_all(&keep).unwrap();
            std::fs::copy(&shot, keep.join(format!("{name}.png"))).unwrap();
            std::fs::copy(&page_path, keep.join("report.html")).unwrap();
        }
    }
}
