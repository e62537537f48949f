//! `studio merge OUT [IN…]`: joins the shard files (`shards/K-of-N.jsonl`, [`crate::shard`]) of
//! OUT and of each IN into what the unsharded run writes, byte for byte:
//! - shards of `studio batch`: `OUT/manifest.jsonl` (every image in job order) and
//!   `OUT/summary.json` (the protocol and the image counts); images found only under an IN are
//!   copied into OUT;
//! - shards of `studio erasure-report`: `OUT/report.json` and `OUT/report.md`.
//!
//! It refuses a missing or incomplete shard (naming the `--shard` to rerun), a shard given twice,
//! shards of different runs (naming what differs in their protocols) and a mix of shard counts.

use crate::shard::{Shard, differences, with_job, write_whole};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The output folder (its own shards/ are merged too).
    pub out: PathBuf,
    /// More folders whose shards/ to merge (shards written to separate volumes).
    pub inputs: Vec<PathBuf>,
}

pub fn run(a: MergeArgs) -> Result<()> {
    merge(&a.out, &a.inputs)
}

struct ShardFile {
    path: PathBuf,
    dir: PathBuf,
    shard: Shard,
    header: Value,
    entries: BTreeMap<u64, Value>,
}

fn read_shard(dir: &Path, path: PathBuf) -> Result<ShardFile> {
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Value = lines
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("{} has no header line: it is not a shard file", path.display()))?;
    let shard = header["shard"]
        .as_str()
        .map(Shard::parse)
        .transpose()?
        .with_context(|| format!("{}: the header names no shard", path.display()))?;
    let mut entries = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        let v: Value = serde_json::from_str(line).with_context(|| {
            format!(
                "{} line {}: cut off or not JSON (a killed shard?): rerun `--shard {shard}`, which resumes",
                path.display(),
                i + 2
            )
        })?;
        let job = v["job"].as_u64().with_context(|| format!("{} line {}: no job number", path.display(), i + 2))?;
        let mut entry = v;
        if let Some(o) = entry.as_object_mut() {
            o.remove("job");
        }
        if entries.insert(job, entry).is_some() {
            bail!("{} records job {job} twice", path.display());
        }
    }
    Ok(ShardFile { path, dir: dir.to_path_buf(), shard, header, entries })
}

fn shard_files(dirs: &[PathBuf]) -> Result<Vec<ShardFile>> {
    let mut out = vec![];
    for dir in dirs {
        let sd = dir.join("shards");
        let Ok(list) = std::fs::read_dir(&sd) else { continue };
        let mut paths: Vec<PathBuf> = list
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        paths.sort();
        for p in paths {
            out.push(read_shard(dir, p)?);
        }
    }
    Ok(out)
}

/// Reads, checks and joins the shards; writes the merged files into `out`.
pub fn merge(out: &Path, inputs: &[PathBuf]) -> Result<()> {
    let mut dirs = vec![out.to_path_buf()];
    for i in inputs {
        if !dirs.iter().any(|d| same(d, i)) {
            dirs.push(i.clone());
        }
    }
    let files = shard_files(&dirs)?;
    let Some(first) = files.first() else {
        bail!(
            "no shard files in {}: run `studio batch` or `studio erasure-report` with --shard K/N into it first",
            dirs.iter().map(|d| d.join("shards").display().to_string()).collect::<Vec<_>>().join(", ")
        )
    };
    let (kind, jobs, count) =
        (first.header["kind"].clone(), first.header["jobs"].as_u64().unwrap_or(0), first.shard.count);
    let mut by_index: BTreeMap<u64, &ShardFile> = BTreeMap::new();
    for f in &files {
        if f.header["kind"] != kind {
            bail!(
                "{} is a shard of `{}` but {} of `{}`: merge them apart",
                f.path.display(),
                f.header["kind"].as_str().unwrap_or("?"),
                first.path.display(),
                kind.as_str().unwrap_or("?")
            );
        }
        if f.shard.count != count {
            bail!(
                "{} is shard {} but {} is shard {}: shards of one run share their N",
                f.path.display(),
                f.shard,
                first.path.display(),
                first.shard
            );
        }
        if f.header["protocol"] != first.header["protocol"] || f.header["jobs"] != first.header["jobs"] {
            let diff = differences(&first.header["protocol"], &f.header["protocol"]);
            let what = if diff.is_empty() { "their job counts".to_owned() } else { diff.join("; ") };
            bail!(
                "{} and {} are shards of different runs ({what}): merge shards of one protocol only",
                first.path.display(),
                f.path.display()
            );
        }
        if let Some(other) = by_index.insert(f.shard.index, f) {
            bail!("shard {} is given twice: {} and {}", f.shard, other.path.display(), f.path.display());
        }
    }
    for k in 0..count {
        let shard = Shard { index: k, count };
        let Some(f) = by_index.get(&k) else {
            bail!(
                "shard {shard} is missing (no shards/{}): run it (`--shard {shard}`) and merge again",
                shard.file_name()
            )
        };
        let want = shard.share(jobs);
        let have = f.entries.keys().filter(|j| shard.owns(**j) && **j < jobs).count() as u64;
        if have != want || f.entries.len() as u64 != want {
            bail!(
                "{} has {have} of its {want} jobs done: rerun `--shard {shard}` (it resumes) and merge again",
                f.path.display()
            );
        }
    }
    let mut entries: Vec<(u64, &Value, &ShardFile)> =
        by_index.values().flat_map(|f| f.entries.iter().map(move |(j, e)| (*j, e, *f))).collect();
    entries.sort_by_key(|e| e.0);
    let protocol = &first.header["protocol"];
    match kind.as_str() {
        Some("batch") => merge_batch(out, protocol, &entries),
        Some("erasure-report") => {
            let list: Vec<(u64, Value)> = entries.iter().map(|(j, e, _)| (*j, (*e).clone())).collect();
            crate::erasure_report::write_merged(out, protocol, &list)
        }
        _ => bail!("{}: unknown shard kind {kind}", first.path.display()),
    }
}

fn same(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn merge_batch(out: &Path, protocol: &Value, entries: &[(u64, &Value, &ShardFile)]) -> Result<()> {
    let mut manifest = String::new();
    let mut per_variant: BTreeMap<String, u64> = BTreeMap::new();
    for (j, e, f) in entries {
        let rel = e["image"].as_str().with_context(|| format!("{}: job {j} names no image", f.path.display()))?;
        if !same(&f.dir, out) {
            let (from, to) = (f.dir.join(rel), out.join(rel));
            if let Some(d) = to.parent() {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            }
            std::fs::copy(&from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
        manifest.push_str(&with_job(*j, e).to_string());
        manifest.push('\n');
        *per_variant.entry(e["variant"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    let variants: Vec<Value> = protocol["variants"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .map(|v| {
                    let name = v["identity"]["name"].as_str().unwrap_or_default();
                    json!({ "name": name, "sha256": v["sha256"], "images": per_variant.get(name).copied().unwrap_or(0) })
                })
                .collect()
        })
        .unwrap_or_default();
    let summary = json!({
        "kind": "studio batch",
        "images": entries.len(),
        "manifest": "manifest.jsonl",
        "manifest_sha256": crate::sha256_hex(manifest.as_bytes()),
        "variants": variants,
        "protocol": protocol,
    });
    write_whole(&out.join("manifest.jsonl"), &manifest)?;
    write_whole(&out.join("summary.json"), serde_json::to_string_pretty(&summary)? + "\n")?;
    eprintln!(
        "merged {} image(s) into {} and {}",
        entries.len(),
        out.join("manifest.jsonl").display(),
        out.join("summary.json").display()
    );
    Ok(())
}
