//! The plan format: a YAML file describing a load test, and the pipeline that turns it into a
//! [`RunSpec`].
//!
//! Pipeline (each step reports every problem it finds, with `file:line:column`):
//! 1. read the YAML into a located tree (`tree`; syntax errors carry their position);
//! 2. layer it (`layers`): the file, then the `--env NAME` profile, then `--set a.b=value`;
//! 3. interpolate `${VAR}` / `${VAR:-default}` from the environment (`interp`); the
//!    variables a `stack:` section provides (see [`STACK_VARS`]) wait for [`ValidatedPlan::lower`];
//! 4. decode the serde model ([`model`], `deny_unknown_fields`) with `de`, which keeps going
//!    after an error so every bad field is reported;
//! 5. check the semantics and build the [`RunSpec`] (`validate`).
//!
//! The format itself (every field, units, an example) follows; [`json_schema`] describes it
//! for editors. New sections (probes, canary, autoscaling, faults, slos, capacity) are new
//! optional fields of [`model::PlanFile`] plus their checks in `validate`.
//!
#![doc = include_str!("FORMAT.md")]
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[macro_use]
mod tree;
mod autoscaling;
mod canary;
mod capacity;
mod common;
mod de;
mod dependencies;
mod faults;
mod flow;
mod interp;
mod layers;
pub mod model;
mod probes;
mod problem;
mod scenario;
mod scrapes;
mod slos;
mod validate;

pub use problem::{PlanErrors, Problem};

use crate::spec::{CapacitySpec, RunSpec, StackSpec};
use interp::Lookup;
use model::PlanFile;
use problem::{Issue, Issues, Placer};
use tree::{Loc, Node, PathSeg};

/// Variables a plan's `stack:` section provides. In a plan with a stack they are resolved from
/// the running stack at [`ValidatedPlan::lower`], not from the environment at validation.
/// Beside these, `GATEWAY_N_URL` (gw-N alone, N from 1): see [`is_stack_var`].
pub const STACK_VARS: &[&str] = &[
    "TARGET_URL",
    "REDIS_URL",
    "DATABASE_URL",
    "ADMIN_KEY",
    "USER_KEY",
    "GATEWAY_URLS",
    "EDGE_URL",
    "REDIS_PROXY_URL",
    "DATABASE_PROXY_URL",
    "PRIMARY_GATEWAY_URLS",
    "SECONDARY_GATEWAY_URLS",
    "BACKEND",
    "STACK_ID",
];

/// Whether a running stack provides `name` ([`STACK_VARS`] or `GATEWAY_N_URL`).
pub fn is_stack_var(name: &str) -> bool {
    STACK_VARS.contains(&name)
        || name
            .strip_prefix("GATEWAY_")
            .and_then(|r| r.strip_suffix("_URL"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// How a plan is read: the `--env` profile, `--set` overrides, and the environment lookup
/// used for `${VAR}`.
#[derive(Clone)]
pub struct PlanOptions {
    pub env_profile: Option<String>,
    pub sets: Vec<(String, String)>,
    pub env: EnvLookup,
}

/// Looks up an environment variable (`None`: unset).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

impl PlanOptions {
    /// No profile, no overrides, the process environment.
    pub fn from_process_env() -> PlanOptions {
        PlanOptions {
            env_profile: None,
            sets: Vec::new(),
            env: Arc::new(|name| std::env::var(name).ok()),
        }
    }

    /// No profile, no overrides, no environment variables at all.
    pub fn empty_env() -> PlanOptions {
        PlanOptions {
            env_profile: None,
            sets: Vec::new(),
            env: Arc::new(|_| None),
        }
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions::from_process_env()
    }
}

impl std::fmt::Debug for PlanOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("PlanOptions")
            .field("env_profile", &self.env_profile)
            .field("sets", &self.sets)
            .finish()
    }
}

/// A parsed and validated plan. Variables provided by a `stack:` section are still unresolved;
/// [`ValidatedPlan::lower`] resolves them and builds the run.
#[derive(Clone)]
pub struct ValidatedPlan {
    file: String,
    base_dir: PathBuf,
    default_name: String,
    opts: PlanOptions,
    /// The layered tree before interpolation.
    layered: Node,
    model: PlanFile,
    stack: Option<StackSpec>,
    /// The `capacity:` section, lowered (absent when the plan has none).
    capacity: Option<CapacitySpec>,
    /// The run as validated (feeder rows not loaded; stack variables unresolved).
    spec: RunSpec,
    /// SHA-256 of the plan text, hex.
    digest: String,
}

impl std::fmt::Debug for ValidatedPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("ValidatedPlan")
            .field("file", &self.file)
            .field("name", &self.spec.name)
            .finish()
    }
}

impl ValidatedPlan {
    /// The plan's name (its `name:`, else the file name without extension).
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The plan file as given.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// SHA-256 of the plan's text (hex): which plan ran, in reports.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The `--env` profile and the `--set` overrides it was read with.
    pub fn options(&self) -> &PlanOptions {
        &self.opts
    }

    /// The plan's `description:`.
    pub fn description(&self) -> Option<&str> {
        self.model.description.as_deref()
    }

    /// The reference stack to start before the run, if the plan has a `stack:` section.
    pub fn stack(&self) -> Option<StackSpec> {
        self.stack.clone()
    }

    /// The plan's `capacity:` search, if it has the section (`loadgate capacity` uses the
    /// defaults of [`CapacitySpec::new`] for a one-scenario plan without it).
    pub fn capacity(&self) -> Option<&CapacitySpec> {
        self.capacity.as_ref()
    }

    /// The decoded plan file after layering and interpolation (for sections other modules read).
    pub fn model(&self) -> &PlanFile {
        &self.model
    }

    /// The run as validated: feeder rows are not loaded and stack variables are unresolved.
    /// Use [`ValidatedPlan::lower`] for the run to execute.
    pub fn preview(&self) -> &RunSpec {
        &self.spec
    }

    /// Resolve remaining `${VAR}` from `extra_env` (the running stack's TARGET_URL etc., which
    /// take precedence over the environment), load feeders, build the RunSpec.
    pub fn lower(&self, extra_env: &[(String, String)]) -> Result<RunSpec, PlanErrors> {
        let env = self.opts.env.clone();
        let lookup = move |name: &str| match extra_env.iter().find(|(k, _)| k == name) {
            Some((_, v)) => Lookup::Value(v.clone()),
            None => env(name).map(Lookup::Value).unwrap_or(Lookup::Unset),
        };
        let checked = check(
            self.layered.clone(),
            &lookup,
            &self.base_dir,
            &self.default_name,
            &self.opts,
            true,
        );
        let placer = Placer {
            file: &self.file,
            tree: &checked.tree,
            sets: &self.opts.sets,
        };
        if checked.issues.is_empty() {
            Ok(checked.spec.expect("no issues"))
        } else {
            Err(PlanErrors::sorted(
                checked.issues.iter().map(|i| placer.place(i)).collect(),
            ))
        }
    }
}

/// Lower a `capacity:` section given whole (the ad-hoc `loadgate capacity --url` form builds
/// one from its flags) for a run whose scenarios are `scenarios`: the same checks a plan's
/// section gets. Errors are `(field, message)`, the field as in the plan (`min`, `max_vus`).
pub fn lower_capacity(
    c: &model::Capacity,
    scenarios: &[String],
) -> Result<CapacitySpec, Vec<(String, String)>> {
    let mut issues = Issues::default();
    let spec = capacity::capacity(c, scenarios, &mut issues);
    match spec {
        Some(s) if issues.0.is_empty() => Ok(s),
        _ => Err(issues
            .0
            .into_iter()
            .map(|i| {
                let field = match i.path.last() {
                    Some(PathSeg::Key(k)) => k.clone(),
                    _ => String::new(),
                };
                (field, i.message)
            })
            .collect()),
    }
}

/// Read and validate a plan file. An unreadable file is one problem at 0:0.
pub fn load(path: &Path, opts: &PlanOptions) -> Result<ValidatedPlan, PlanErrors> {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| {
        PlanErrors(vec![Problem {
            file: file.clone(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the plan: {e}"),
        }])
    })?;
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parse(&source, &file, &base_dir, opts)
}

/// Validate plan text. `file_name` is used in problems (and its stem as the default plan
/// name); feeder paths are relative to `base_dir`.
pub fn parse(
    source: &str,
    file_name: &str,
    base_dir: &Path,
    opts: &PlanOptions,
) -> Result<ValidatedPlan, PlanErrors> {
    let mut tree =
        Node::parse(source).map_err(|e| PlanErrors(vec![syntax_problem(&e, file_name)]))?;
    let mut issues = Vec::new();

    // Layers: --set, then the profile, then --set again so it wins over the profile while a
    // --set may still edit the profile itself.
    for (i, (k, v)) in opts.sets.iter().enumerate() {
        if let Err(issue) = layers::apply_set(&mut tree, i, k, v) {
            issues.push(issue);
        }
    }
    if let Some(profile) = &opts.env_profile {
        if let Err(issue) = layers::apply_profile(&mut tree, profile) {
            issues.push(issue);
        }
        for (i, (k, v)) in opts.sets.iter().enumerate() {
            let _ = layers::apply_set(&mut tree, i, k, v);
        }
    }

    let has_stack = has_stack(&tree);
    if has_stack && tree.get("target").is_none() {
        // The stack's own URL is the default target.
        let node = Node::new(tree::Kind::Str("${TARGET_URL}".into()), Loc::Unknown);
        tree.insert(
            tree::Key {
                name: "target".into(),
                loc: Loc::Unknown,
            },
            node,
        );
    }
    let env = opts.env.clone();
    let lookup = move |name: &str| {
        if has_stack && is_stack_var(name) {
            Lookup::Defer
        } else {
            env(name).map(Lookup::Value).unwrap_or(Lookup::Unset)
        }
    };
    let default_name = Path::new(file_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plan".into());
    let checked = check(tree.clone(), &lookup, base_dir, &default_name, opts, false);
    issues.extend(checked.issues);
    let placer = Placer {
        file: file_name,
        tree: &checked.tree,
        sets: &opts.sets,
    };
    if !issues.is_empty() {
        return Err(PlanErrors::sorted(
            issues.iter().map(|i| placer.place(i)).collect(),
        ));
    }
    Ok(ValidatedPlan {
        file: file_name.to_string(),
        base_dir: base_dir.to_path_buf(),
        default_name,
        opts: opts.clone(),
        layered: tree,
        model: checked.model.unwrap_or_default(),
        stack: checked.stack,
        capacity: checked.capacity,
        spec: checked.spec.expect("no issues"),
        digest: {
            use sha2::Digest;
            sha2::Sha256::digest(source.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        },
    })
}

/// The JSON Schema (draft 2020-12) of the plan format.
/// Optional fields are simply optional (not nullable), which is what editors should suggest.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(PlanFile);
    let mut value = serde_json::to_value(&schema).unwrap_or(serde_json::Value::Null);
    drop_null(&mut value);
    allow_interpolation(&mut value);
    if let Some(root) = value.as_object_mut() {
        // `target` may be left out when `stack` provides it; at least one scenario.
        root.insert(
            "anyOf".into(),
            serde_json::json!([{ "required": ["target"] }, { "required": ["stack"] }]),
        );
        root.insert("patternProperties".into(), serde_json::json!({ "^x-": {} }));
        // Threshold expressions are strings to serde; to editors they have a grammar.
        let pattern = serde_json::json!(crate::grammar::threshold::THRESHOLD_PATTERN);
        let defs = root.get_mut("$defs").and_then(|d| d.as_object_mut());
        if let Some(defs) = defs {
            if let Some(first) = defs
                .get_mut("ThresholdEntry")
                .and_then(|t| t.get_mut("anyOf"))
                .and_then(|a| a.get_mut(0))
                .and_then(|f| f.as_object_mut())
            {
                first.insert("pattern".into(), pattern.clone());
            }
            if let Some(t) = defs
                .get_mut("ThresholdFull")
                .and_then(|t| t.get_mut("properties"))
                .and_then(|p| p.get_mut("threshold"))
                .and_then(|t| t.as_object_mut())
            {
                t.insert("pattern".into(), pattern);
            }
        }
        if let Some(s) = root
            .get_mut("properties")
            .and_then(|p| p.get_mut("scenarios"))
            .and_then(|s| s.as_object_mut())
        {
            s.insert("minProperties".into(), 1.into());
        }
    }
    value
}

/// Every scalar of a plan may be written `${VAR}` / `${VAR:-default}` (interpolated before the
/// plan is typed, see [`interp`]), and YAML writes some enum values as numbers (`http: 2`):
/// so each scalar schema also accepts a string holding `${`, and an enum whose values read as
/// numbers also accepts those numbers. Without this, editors using the schema flag plans
/// that `validate` accepts.
fn allow_interpolation(v: &mut serde_json::Value) {
    use serde_json::{json, Value};
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                allow_interpolation(child);
            }
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                let numeric: Vec<Value> = values
                    .iter()
                    .filter_map(|e| e.as_str()?.parse::<f64>().ok())
                    .filter_map(|n| {
                        if n.fract() == 0.0 {
                            Some(json!(n as i64))
                        } else {
                            serde_json::Number::from_f64(n).map(Value::Number)
                        }
                    })
                    .collect();
                if !numeric.is_empty() {
                    values.extend(numeric);
                    map.remove("type");
                }
            }
            let scalar = matches!(
                map.get("type").and_then(Value::as_str),
                Some("integer" | "number" | "boolean")
            ) || (map.get("type").and_then(Value::as_str) == Some("string")
                && (map.contains_key("pattern") || map.contains_key("enum")))
                || (map.contains_key("enum") && !map.contains_key("type"));
            if scalar {
                let mut typed = serde_json::Map::new();
                for key in [
                    "type", "pattern", "enum", "format", "minimum", "maximum", "const",
                ] {
                    if let Some(x) = map.remove(key) {
                        typed.insert(key.into(), x);
                    }
                }
                map.insert(
                    "anyOf".into(),
                    json!([Value::Object(typed), { "type": "string", "pattern": "\\$\\{" }]),
                );
            }
        }
        Value::Array(items) => items.iter_mut().for_each(allow_interpolation),
        _ => {}
    }
}

/// Remove the `null` alternatives schemars adds for `Option` fields.
fn drop_null(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(alts)) = map.get_mut("anyOf") {
                alts.retain(|a| a.get("type").and_then(Value::as_str) != Some("null"));
                if alts.len() == 1 {
                    let only = alts.remove(0);
                    map.remove("anyOf");
                    if let Value::Object(inner) = only {
                        for (k, val) in inner {
                            map.entry(k).or_insert(val);
                        }
                    }
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

fn has_stack(tree: &Node) -> bool {
    tree.get("stack")
        .is_some_and(|s| !matches!(s.kind, tree::Kind::Null))
}

struct Checked {
    /// The interpolated tree (positions for problems).
    tree: Node,
    model: Option<PlanFile>,
    stack: Option<StackSpec>,
    capacity: Option<CapacitySpec>,
    spec: Option<RunSpec>,
    issues: Vec<Issue>,
}

/// Steps 3 to 5 of the pipeline on a layered tree.
fn check(
    mut tree: Node,
    lookup: &dyn Fn(&str) -> Lookup,
    base_dir: &Path,
    default_name: &str,
    opts: &PlanOptions,
    load_rows: bool,
) -> Checked {
    if !matches!(tree.kind, tree::Kind::Map(_)) {
        let issue = Issue::new(
            Vec::new(),
            "a plan is a YAML map (name, target, scenarios, ...)",
        );
        return Checked {
            tree,
            model: None,
            stack: None,
            capacity: None,
            spec: None,
            issues: vec![issue],
        };
    }
    let mut issues = layers::interpolate_tree(&mut tree, lookup);
    // Top-level `x-...` keys are extension fields (a place for YAML anchors), as in Compose files.
    let mut typed = tree.clone();
    if let Some(map) = typed.as_map_mut() {
        map.retain(|(k, _)| !k.name.starts_with("x-"));
    }
    let (model, errors) = de::decode_all::<PlanFile>(&typed, 200);
    let mut removed: Vec<Vec<PathSeg>> = Vec::new();
    for e in errors {
        let path = e.path.clone().unwrap_or_default();
        issues.push(Issue {
            path: path.clone(),
            loc: Some(e.loc).filter(|l| *l != Loc::Unknown),
            at_key: false,
            message: friendlier(e.message),
        });
        removed.push(path);
    }
    let Some(model) = model else {
        return Checked {
            tree,
            model: None,
            stack: None,
            capacity: None,
            spec: None,
            issues,
        };
    };
    let mut semantic = Issues::default();
    let ctx = validate::Ctx {
        tree: &tree,
        base_dir,
        default_name,
        profile: opts.env_profile.as_deref(),
        load_rows,
    };
    let stack = validate::stack_spec(&model, &mut semantic);
    let spec = validate::build(&model, &ctx, &mut semantic);
    let scenario_names: Vec<String> = model
        .scenarios
        .iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect();
    let capacity = model
        .capacity
        .as_ref()
        .and_then(|c| capacity::capacity(c, &scenario_names, &mut semantic));
    // A field that failed to decode was removed; do not also report it as missing or wrong.
    issues.extend(semantic.0.into_iter().filter(|i| {
        !removed
            .iter()
            .any(|r| !r.is_empty() && i.path.starts_with(r))
    }));
    let spec = issues.is_empty().then_some(spec);
    Checked {
        tree,
        model: Some(model),
        stack,
        capacity,
        spec,
        issues,
    }
}

/// serde's wording, in the plan's terms, with a "did you mean" for misspelt names.
fn friendlier(message: String) -> String {
    if let Some(i) = message.find("expected struct ") {
        let name = &message[i + "expected struct ".len()..];
        return format!("{}expected a map ({name})", &message[..i]);
    }
    // "unknown field `rte`, expected one of `rate`, ..." / "unknown variant `x`, expected `a` or `b`"
    if message.starts_with("unknown field `") || message.starts_with("unknown variant `") {
        let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
        if let Some((given, candidates)) = quoted.split_first() {
            let best = candidates
                .iter()
                .map(|c| (strsim::levenshtein(given, c), *c))
                .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
                .min();
            if let Some((_, c)) = best {
                return format!("{message} (did you mean `{c}`?)");
            }
        }
    }
    message
}

/// A YAML syntax (or structure) error from serde-saphyr, as a problem with its position.
fn syntax_problem(e: &serde_saphyr::Error, file: &str) -> Problem {
    let (line, column) = e
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .unwrap_or((0, 0));
    let mut message = e
        .to_string()
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    // serde-saphyr appends " at line N, column M"; the position is already in front.
    if let Some(i) = message.rfind(" at line ") {
        if message[i + 9..].starts_with(|c: char| c.is_ascii_digit()) {
            message.truncate(i);
        }
    }
    Problem {
        file: file.to_string(),
        line,
        column,
        path: String::new(),
        message: format!("invalid YAML: {message}"),
    }
}
