//! The on-disk registry of running stacks, so a later start can reap what a killed run left.
//!
//! Layout: `<state root>/<stack id>/stack.json` plus the stack's working directory
//! `<state root>/<stack id>/work/` (data dirs, logs, address files). The state root is
//! [`StackOptions::state_dir`](super::StackOptions), else `$LOADGATE_STATE_DIR`, else
//! `<system temp>/loadgate-stacks`.
//!
//! `stack.json` records the owner (pid + start time, so a reused pid is not mistaken for the
//! owner), every child (pid + start time) and every container id; it is rewritten (write to
//! a temp file, rename) each time something is added, so a SIGKILL at any moment leaves an
//! accurate record. Containers also carry labels (`loadgate.stack`, `loadgate.pid`,
//! `loadgate.pid_start`, `loadgate.host`), so they are found even without the file.
//!
//! The stack control handle restarts components; each new process is recorded the same way
//! ([`Entry::add_respawned_child`]), replacing the records of that component's dead ones, so
//! a SIGKILL of loadgate after a restart still leaves every live child findable. The entry is
//! shared between the stack and its handles as a [`SharedEntry`].
//!
//! Reaping an entry whose owner is gone: SIGKILL every recorded child that is still the same
//! process (and its process group), remove recorded containers, delete the directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::child::{self, signal_group, signal_pid};
use super::StackError;
use nix::sys::signal::Signal;

/// File name of an entry's record.
pub const RECORD: &str = "stack.json";

/// One recorded child process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChildRecord {
    pub name: String,
    pub pid: u32,
    /// Start time from /proc/PID/stat (clock ticks since boot).
    pub start: u64,
}

/// The contents of `stack.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackRecord {
    pub id: String,
    pub owner_pid: u32,
    pub owner_start: u64,
    pub host: String,
    pub created_unix: u64,
    pub backend: String,
    #[serde(default)]
    pub children: Vec<ChildRecord>,
    #[serde(default)]
    pub containers: Vec<String>,
    /// Directories outside the entry that belong to the stack (deleted with it).
    #[serde(default)]
    pub extra_dirs: Vec<PathBuf>,
    /// TARGET_URL etc. once the stack is up (for `stack status`).
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

impl StackRecord {
    /// Whether the process that started this stack still runs.
    pub fn owner_alive(&self) -> bool {
        child::pid_alive(self.owner_pid)
            && child::proc_start(self.owner_pid) == Some(self.owner_start)
    }
}

/// The default state root: `$LOADGATE_STATE_DIR`, else `<temp>/loadgate-stacks`.
pub fn default_root() -> PathBuf {
    match std::env::var_os("LOADGATE_STATE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::env::temp_dir().join("loadgate-stacks"),
    }
}

/// The registry entry of the running stack; removes its directory on drop.
#[derive(Debug)]
pub struct Entry {
    pub dir: PathBuf,
    pub record: StackRecord,
    removed: bool,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StackError {
    StackError::Io {
        what: format!("{what} {}", path.display()),
        source: e,
    }
}

/// This machine's host name (for container labels).
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

impl Entry {
    /// Creates `<root>/<id>/` (and `work/` inside) and writes the first record.
    pub fn create(root: &Path, id: &str, backend: &str) -> Result<Entry, StackError> {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(root).map_err(|e| io_err("create state dir", root, e))?;
        let dir = root.join(id);
        if let Err(e) = fs::create_dir(&dir) {
            // A concurrent reap may remove an empty root between the two calls: retry once.
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(io_err("create stack dir", &dir, e));
            }
            fs::create_dir_all(root).map_err(|e| io_err("create state dir", root, e))?;
            fs::create_dir(&dir).map_err(|e| io_err("create stack dir", &dir, e))?;
        }
        // Traversable by the postgres user when loadgate runs as root; not listable.
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o711));
        let work = dir.join("work");
        fs::create_dir(&work).map_err(|e| io_err("create work dir", &work, e))?;
        let _ = fs::set_permissions(&work, fs::Permissions::from_mode(0o711));
        let owner_pid = std::process::id();
        let record = StackRecord {
            id: id.to_string(),
            owner_pid,
            owner_start: child::proc_start(owner_pid).unwrap_or(0),
            host: hostname(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            backend: backend.to_string(),
            children: Vec::new(),
            containers: Vec::new(),
            extra_dirs: Vec::new(),
            env: Vec::new(),
        };
        let entry = Entry {
            dir,
            record,
            removed: false,
        };
        entry.save()?;
        Ok(entry)
    }

    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Atomically rewrites `stack.json` (mode 0600: it holds the generated keys).
    pub fn save(&self) -> Result<(), StackError> {
        use std::os::unix::fs::OpenOptionsExt;
        if self.removed {
            return Err(StackError::Io {
                what: format!("recording in {}", self.dir.join(RECORD).display()),
                source: std::io::Error::other("the stack was already shut down"),
            });
        }
        let tmp = self.dir.join(".stack.json.tmp");
        let path = self.dir.join(RECORD);
        let text = serde_json::to_vec_pretty(&self.record).expect("record serializes");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_err("write", &tmp, e))?;
        f.write_all(&text).map_err(|e| io_err("write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io_err("rename to", &path, e))
    }

    pub fn add_child(&mut self, name: &str, pid: u32) -> Result<(), StackError> {
        let start = child::proc_start(pid).unwrap_or(0);
        self.record.children.push(ChildRecord {
            name: name.to_string(),
            pid,
            start,
        });
        self.save()
    }

    /// Records a restarted component's new process. Records of that component whose process
    /// is gone are dropped (they would only make `stack status` count dead processes); a
    /// record whose process still runs is kept, so reaping can never miss it.
    pub fn add_respawned_child(&mut self, name: &str, pid: u32) -> Result<(), StackError> {
        self.record.children.retain(|c| {
            c.name != name || (child::pid_alive(c.pid) && child::proc_start(c.pid) == Some(c.start))
        });
        self.add_child(name, pid)
    }

    pub fn add_container(&mut self, id: &str) -> Result<(), StackError> {
        self.record.containers.push(id.to_string());
        self.save()
    }

    /// Records a directory outside the entry (deleted with the stack).
    pub fn add_dir(&mut self, dir: &Path) -> Result<(), StackError> {
        self.record.extra_dirs.push(dir.to_path_buf());
        self.save()
    }

    pub fn set_env(&mut self, env: &[(String, String)]) -> Result<(), StackError> {
        self.record.env = env.to_vec();
        self.save()
    }

    /// Whether [`Entry::remove`] ran.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// Deletes the entry's directory (work dir included). Idempotent.
    pub fn remove(&mut self) {
        if !self.removed {
            self.removed = true;
            for d in &self.record.extra_dirs {
                let _ = fs::remove_dir_all(d);
            }
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The entry of a running stack, shared between [`RunningStack`](super::RunningStack) and its
/// control handles (which record respawned children through it). The lock is only held for
/// a record update, never across an `.await`.
#[derive(Debug, Clone)]
pub struct SharedEntry(Arc<Mutex<Entry>>);

impl SharedEntry {
    pub fn new(entry: Entry) -> SharedEntry {
        SharedEntry(Arc::new(Mutex::new(entry)))
    }

    fn lock(&self) -> MutexGuard<'_, Entry> {
        // A panic while holding the lock leaves the record as consistent as the last save:
        // keep using it (cleanup must still work after a panic).
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the entry under the lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut Entry) -> R) -> R {
        f(&mut self.lock())
    }

    pub fn id(&self) -> String {
        self.lock().record.id.clone()
    }

    pub fn dir(&self) -> PathBuf {
        self.lock().dir.clone()
    }

    pub fn work_dir(&self) -> PathBuf {
        self.lock().work_dir()
    }

    pub fn add_child(&self, name: &str, pid: u32) -> Result<(), StackError> {
        self.lock().add_child(name, pid)
    }

    pub fn add_respawned_child(&self, name: &str, pid: u32) -> Result<(), StackError> {
        self.lock().add_respawned_child(name, pid)
    }

    pub fn add_container(&self, id: &str) -> Result<(), StackError> {
        self.lock().add_container(id)
    }

    pub fn add_dir(&self, dir: &Path) -> Result<(), StackError> {
        self.lock().add_dir(dir)
    }

    pub fn set_env(&self, env: &[(String, String)]) -> Result<(), StackError> {
        self.lock().set_env(env)
    }

    pub fn is_removed(&self) -> bool {
        self.lock().is_removed()
    }

    /// Deletes the entry's directory. Idempotent.
    pub fn remove(&self) {
        self.lock().remove()
    }
}

/// Every readable record under `root` with its directory.
pub fn list(root: &Path) -> Vec<(PathBuf, StackRecord)> {
    let Ok(dir) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let path = e.path();
        if !path.is_dir() {
            continue;
        }
        if let Ok(text) = fs::read(path.join(RECORD)) {
            if let Ok(record) = serde_json::from_slice::<StackRecord>(&text) {
                out.push((path, record));
            }
        }
    }
    out.sort_by_key(|e| e.1.created_unix);
    out
}

/// Kills a recorded child if it is still the same process, with its process group.
/// Returns whether something was killed.
pub fn kill_recorded(c: &ChildRecord) -> bool {
    let mut killed = false;
    if c.start == 0 {
        // The child was already gone when it was recorded: nothing of ours to find.
        return false;
    }
    if child::proc_start(c.pid) == Some(c.start) && child::pid_alive(c.pid) {
        signal_group(c.pid as i32, Signal::SIGKILL);
        signal_pid(c.pid as i32, Signal::SIGKILL);
        killed = true;
    }
    // Members of its group that outlived the leader (postgres backends), started after it.
    for pid in child::all_pids() {
        if let Some(stat) = child::proc_stat(pid) {
            if stat.pgrp == c.pid && stat.start >= c.start && pid != std::process::id() {
                signal_pid(pid as i32, Signal::SIGKILL);
                killed = true;
            }
        }
    }
    killed
}

/// Reaps every entry under `root` whose owner is dead: kills its recorded children and
/// deletes its directory. Returns (entries reaped, container ids to remove).
pub fn reap_dead(root: &Path) -> (usize, Vec<String>) {
    let mut reaped = 0;
    let mut containers = Vec::new();
    for (dir, record) in list(root) {
        if record.owner_alive() {
            continue;
        }
        for c in &record.children {
            kill_recorded(c);
        }
        containers.extend(record.containers.iter().cloned());
        // Give the kernel a moment to release files before deleting the directory.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while record
            .children
            .iter()
            .any(|c| child::pid_alive(c.pid) && child::proc_start(c.pid) == Some(c.start))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        for d in &record.extra_dirs {
            let _ = fs::remove_dir_all(d);
        }
        let _ = fs::remove_dir_all(&dir);
        reaped += 1;
    }
    (reaped, containers)
}
