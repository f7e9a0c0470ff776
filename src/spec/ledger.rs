//! A scenario's `ledger:`: its request is a write whose every acknowledgement is recorded
//! (id and digest) and read back after the load, to count lost, changed and recovered
//! writes (see `crate::checks::ledger`).

/// The lowered `ledger: { id, read_back, compare }` of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSpec {
    /// The top-level key of the written JSON body that holds the write's id (the body field
    /// whose template is the ledger's `id`).
    pub id_field: String,
    /// The read-back request's method (GET).
    pub read_method: String,
    /// The read-back path; `{{id}}` is replaced by the write's id.
    pub read_path: String,
    /// The top-level body keys compared between the write and its read-back (the plan's
    /// `compare`, by default every key of the written body).
    pub compare: Vec<String>,
    /// Lost acknowledged writes the `lost_writes` check allows.
    pub max_lost: u64,
    /// The lost writes' time span the `rpo` check allows.
    pub max_rpo: std::time::Duration,
}

impl LedgerSpec {
    /// The read-back path of the write `id`.
    pub fn path_for(&self, id: &str) -> String {
        self.read_path.replace("{{id}}", id)
    }
}
