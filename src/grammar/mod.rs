//! The small languages of a plan, parsed once at lowering: units (`5s`, `100/s`), k6's
//! threshold expressions and metric keys (`http_req_duration{scenario:chat}: p(95)<250`),
//! request templates (`/v1/notes/{{uuid}}`), response checks (`status == 200`) and checks over
//! scraped series (`increase(gateway_cost_usd_total) per 1k requests < 0.05`).
//!
//! Why a module of its own: the lowered [`crate::spec`] holds these parsed forms, and the
//! engine, the checks and the plan all read them; keeping the grammars here (importing nothing
//! else of the crate) lets `spec` be a leaf and keeps `plan`, `engine` and `checks` from
//! importing each other. Evaluation against measurements lives in [`crate::checks`];
//! rendering on the hot path in [`crate::engine::request`].
pub mod body;
pub mod extract;
pub mod metric_key;
pub mod response;
pub mod scrape_expr;
pub mod template;
pub mod threshold;
pub mod units;
