//! Sharded, resumable runs (`studio batch` and `studio erasure-report` with `--shard K/N`).
//!
//! A run is a list of jobs 0..J in a fixed order (an image each). Shard K of N does the jobs
//! j with j mod N = K ([`Shard::owns`]): a deterministic split that interleaves the run, so every
//! shard gets a similar mix of variants or methods. A job's seed and noise depend only on the job,
//! never on the sharding.
//!
//! Each shard writes `OUT/shards/K-of-N.jsonl` ([`ShardLog`]): a header line
//! `{"kind", "shard": "K/N", "jobs": J, "protocol": {…}}` and one line per finished job
//! `{"job": j, …}`, appended and flushed as soon as the job is done. A rerun of the same shard
//! with the same protocol keeps the lines whose job is still verified (for a batch: its image
//! exists with the recorded SHA-256), drops a line cut off by a kill, and does only the rest.
//! `studio merge` ([`crate::merge`]) joins the N files.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `--shard K/N`: shard K (0-based, as `SLURM_ARRAY_TASK_ID` and Kubernetes'
/// `JOB_COMPLETION_INDEX` count) of N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// The whole run as one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn parse(s: &str) -> Result<Self> {
        let usage = "use --shard K/N with 0 ≤ K < N (0-based, as SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX)";
        let Some((k, n)) = s.split_once('/') else { bail!("--shard `{s}` is not K/N: {usage}") };
        let (Ok(index), Ok(count)) = (k.trim().parse::<u64>(), n.trim().parse::<u64>()) else {
            bail!("--shard `{s}`: K and N must be whole numbers: {usage}")
        };
        if count == 0 {
            bail!("--shard `{s}`: N must be at least 1: {usage}");
        }
        if index >= count {
            bail!(
                "--shard `{s}`: shard index {index} is out of range for {count} shard(s): use 0/{count} … {}/{count} \
                 (0-based, as SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX)",
                count - 1
            );
        }
        Ok(Self { index, count })
    }

    pub fn owns(self, job: u64) -> bool {
        job % self.count == self.index
    }

    /// How many of `jobs` jobs are this shard's.
    pub fn share(self, jobs: u64) -> u64 {
        jobs / self.count + u64::from(jobs % self.count > self.index)
    }

    pub fn file_name(self) -> String {
        format!("{}-of-{}.jsonl", self.index, self.count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Writes `bytes` to `path` whole under `<name>.tmp`, then renames it: a process killed midway
/// leaves no half-written file under the final name (shard files, images, merged outputs).
pub fn write_whole(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// The header line of a shard file.
pub fn header(kind: &str, shard: Shard, jobs: u64, protocol: &Value) -> Value {
    json!({ "kind": kind, "shard": shard.to_string(), "jobs": jobs, "protocol": protocol })
}

/// The top-level keys in which two protocols differ (for "different protocol" errors).
pub fn differences(a: &Value, b: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return vec!["the whole protocol".into()] };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| {
                let s = v.map(Value::to_string).unwrap_or_else(|| "absent".into());
                if s.chars().count() > 60 { format!("{}…", s.chars().take(60).collect::<String>()) } else { s }
            };
            format!("{k}: {} vs {}", show(a.get(k)), show(b.get(k)))
        })
        .collect()
}

/// A shard file being written: the jobs already done, and `append` for each new one.
pub struct ShardLog {
    path: PathBuf,
    file: std::fs::File,
    /// Finished jobs by index (the line without `job`).
    pub done: BTreeMap<u64, Value>,
}

impl ShardLog {
    /// Opens `out/shards/<K-of-N>.jsonl` for `header`, keeping the recorded jobs that `verify`
    /// accepts. A file of another protocol is refused (the message names what differs).
    pub fn open(out: &Path, shard: Shard, header: &Value, verify: impl Fn(u64, &Value) -> bool) -> Result<Self> {
        let dir = out.join("shards");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(shard.file_name());
        let mut done = BTreeMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut lines = text.lines();
                let old: Value = lines.next().and_then(|l| serde_json::from_str(l).ok()).with_context(|| {
                    format!("{} has no header line: delete it to start this shard over", path.display())
                })?;
                if &old != header {
                    let diff = differences(&old["protocol"], &header["protocol"]);
                    let what = if diff.is_empty() { "its kind or job count".to_owned() } else { diff.join("; ") };
                    bail!(
                        "{} was written by another run ({what}): use another output folder, or delete the folder to start over",
                        path.display()
                    );
                }
                let (mut dropped, mut cut) = (0, 0);
                for line in lines {
                    // A kill can cut the last line short: it is dropped and its job done again.
                    let Ok(mut entry) = serde_json::from_str::<Value>(line) else {
                        cut += 1;
                        continue;
                    };
                    let Some(job) = entry.get("job").and_then(Value::as_u64) else {
                        cut += 1;
                        continue;
                    };
                    if let Some(o) = entry.as_object_mut() {
                        o.remove("job");
                    }
                    if shard.owns(job) && verify(job, &entry) {
                        done.insert(job, entry);
                    } else {
                        dropped += 1;
                    }
                }
                if cut + dropped > 0 {
                    eprintln!(
                        "shard {shard}: resuming; {cut} unreadable line(s) and {dropped} unverified job(s) will be redone"
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        // Rewrite what is kept (drops a cut-off line), then append from there.
        let mut text = header.to_string() + "\n";
        for (job, entry) in &done {
            text.push_str(&with_job(*job, entry).to_string());
            text.push('\n');
        }
        write_whole(&path, text)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { path, file, done })
    }

    /// Records a finished job (one write of the whole line, flushed).
    pub fn append(&mut self, job: u64, entry: Value) -> Result<()> {
        let line = with_job(job, &entry).to_string() + "\n";
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.done.insert(job, entry);
        Ok(())
    }
}

/// `{"job": j, …entry}`.
pub fn with_job(job: u64, entry: &Value) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("job".into(), job.into());
    if let Some(e) = entry.as_object() {
        o.extend(e.clone());
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_every_job_once() {
        for n in 1..6u64 {
            let shards: Vec<Shard> = (0..n).map(|k| Shard::parse(&format!("{k}/{n}")).unwrap()).collect();
            for jobs in 0..20u64 {
                for j in 0..jobs {
                    assert_eq!(shards.iter().filter(|s| s.owns(j)).count(), 1);
                }
                let total: u64 = shards.iter().map(|s| s.share(jobs)).sum();
                assert_eq!(total, jobs);
                for s in &shards {
                    assert_eq!(s.share(jobs), (0..jobs).filter(|j| s.owns(*j)).count() as u64);
                }
            }
        }
    }

    #[test]
    fn bad_shards_are_refused_with_the_range() {
        let e = |s: &str| Shard::parse(s).unwrap_err().to_string();
        assert!(e("3/3").contains("shard index 3 is out of range for 3 shard(s): use 0/3 … 2/3"), "{}", e("3/3"));
        assert!(e("1/0").contains("N must be at least 1"));
        assert!(e("2").contains("is not K/N"));
        assert!(e("a/3").contains("whole numbers"));
        assert!(e("-1/3").contains("whole numbers"));
        assert_eq!(Shard::parse(" 2 / 4").unwrap(), Shard { index: 2, count: 4 });
    }

    #[test]
    fn a_log_resumes_and_drops_a_cut_line() {
        let out = std::env::temp_dir().join(format!("studio-shard-log-{}", std::process::id()));
        std::fs::remove_dir_all(&out).ok();
        let shard = Shard::parse("1/2").unwrap();
        let h = header("batch", shard, 6, &json!({"steps": 4}));
        let mut log = ShardLog::open(&out, shard, &h, |_, _| true).unwrap();
        assert!(log.done.is_empty());
        log.append(1, json!({"image": "a"})).unwrap();
        log.append(3, json!({"image": "b"})).unwrap();
        drop(log);
        // A kill in the middle of a line.
        let path = out.join("shards/1-of-2.jsonl");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"job\":5,\"ima");
        std::fs::write(&path, text).unwrap();
        // Job 3's image is "gone": not verified.
        let log = ShardLog::open(&out, shard, &h, |j, _| j != 3).unwrap();
        assert_eq!(log.done.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(log.done[&1], json!({"image": "a"}));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        // Another protocol is refused, naming what differs.
        let other = header("batch", shard, 6, &json!({"steps": 25}));
        let e = ShardLog::open(&out, shard, &other, |_, _| true).err().unwrap().to_string();
        assert!(e.contains("was written by another run (steps: 4 vs 25)"), "{e}");
        std::fs::remove_dir_all(&out).ok();
    }
}
