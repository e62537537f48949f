//! `studio batch`, `--shard K/N` and `studio merge` end to end on the bundled classroom model
//! (CPU, a few DDIM steps): N shards merged give the same manifest, summary and PNG bytes as one
//! process (shards in one folder or in separate ones); a killed shard resumes without redoing its
//! finished images; `erasure-report` shards merge into the single run's report, byte for byte;
//! bad inputs give clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model() -> String {
    root().join("models/classroom").display().to_string()
}

fn studio(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_studio")).args(args).output().expect("run studio");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout))
}

fn ok(args: &[&str]) -> String {
    let (ok, log) = studio(args);
    assert!(ok, "studio {}: {log}", args.join(" "));
    log
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("studio-batch-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A prompt file (a prompt with a comma, a row without a seed) and a UCE edit of "skull".
fn inputs(dir: &Path) -> (String, String) {
    let prompts = dir.join("prompts.csv");
    std::fs::write(
        &prompts,
        "prompt,evaluation_seed\n\"a red skull, on a striped background\",3\na blue triangle,\na green circle,7\n",
    )
    .unwrap();
    let edit = dir.join("uce.safetensors");
    ok(&["erase", "--model", &model(), "--method", "uce", "--concepts", "skull", "--out", edit.to_str().unwrap()]);
    (prompts.display().to_string(), format!("uce={}", edit.display()))
}

fn batch_args(prompts: &str, variant: &str, out: &str) -> Vec<String> {
    [
        "batch",
        "--model",
        &model(),
        "--prompts",
        prompts,
        "--out",
        out,
        "--variant",
        "original",
        "--variant",
        variant,
        "--steps",
        "3",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn ok_owned(args: &[String]) -> String {
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The manifest, the summary and every image of `a` equal those of `b`, byte for byte.
fn same_outputs(a: &Path, b: &Path) {
    assert_eq!(read(&a.join("manifest.jsonl")), read(&b.join("manifest.jsonl")), "manifests differ");
    assert_eq!(read(&a.join("summary.json")), read(&b.join("summary.json")), "summaries differ");
    let text = String::from_utf8(read(&a.join("manifest.jsonl"))).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let image = v["image"].as_str().unwrap();
        assert_eq!(read(&a.join(image)), read(&b.join(image)), "{image} differs");
        n += 1;
    }
    assert_eq!(n, 6);
}

#[test]
fn shards_merge_into_the_single_run() {
    let dir = temp("merge");
    let (prompts, variant) = inputs(&dir);
    let single = dir.join("single");
    let s = single.to_str().unwrap();
    let log = ok_owned(&batch_args(&prompts, &variant, s));
    assert!(log.contains("3 prompt(s) × 2 variant(s) × 1 seed(s) = 6 image(s)"), "{log}");
    // The manifest records every image with its parameters and hashes.
    let text = std::fs::read_to_string(single.join("manifest.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["prompt"], "a red skull, on a striped background");
    assert_eq!((&lines[0]["seed"], &lines[1]["seed"], &lines[2]["seed"]), (&3.into(), &0.into(), &7.into()));
    assert_eq!((&lines[0]["variant"], &lines[3]["variant"]), (&"original".into(), &"uce".into()));
    assert_eq!((&lines[0]["steps"], &lines[0]["guidance"]), (&3.into(), &3.0.into()), "studio.json's guidance");
    assert_ne!(lines[0]["variant_sha256"], lines[3]["variant_sha256"]);
    assert_eq!(lines[0]["model_sha256"].as_str().map(str::len), Some(64));
    // The UCE edit changes the skull image, not only its name.
    assert_ne!(
        read(&single.join(lines[0]["image"].as_str().unwrap())),
        read(&single.join(lines[3]["image"].as_str().unwrap()))
    );

    // Three shards into one folder, merged.
    let sharded = dir.join("sharded");
    let sh = sharded.to_str().unwrap();
    for k in 0..3 {
        let shard = format!("{k}/3");
        let mut args = batch_args(&prompts, &variant, sh);
        args.extend(["--shard".into(), shard]);
        let log = ok_owned(&args);
        assert!(log.contains(&format!("shard {k}/3: 2 image(s) made")), "{log}");
    }
    assert!(!sharded.join("manifest.jsonl").exists(), "shards do not merge themselves");
    ok(&["merge", sh]);
    same_outputs(&single, &sharded);

    // Two shards in separate folders (separate volumes), merged into a third.
    let (p0, p1, joined) = (dir.join("part0"), dir.join("part1"), dir.join("joined"));
    for (k, p) in [(0, &p0), (1, &p1)] {
        let shard = format!("{k}/2");
        let out = p.display().to_string();
        let mut args = batch_args(&prompts, &variant, &out);
        args.extend(["--shard".into(), shard]);
        ok_owned(&args);
    }
    std::fs::create_dir_all(&joined).unwrap();
    ok(&["merge", joined.to_str().unwrap(), p0.to_str().unwrap(), p1.to_str().unwrap()]);
    same_outputs(&single, &joined);

    // Shards of different protocols are not merged: part1 again with other steps.
    let other = dir.join("other");
    let o = other.display().to_string();
    let mut args = batch_args(&prompts, &variant, &o);
    *args.last_mut().unwrap() = "4".into();
    args.extend(["--shard".into(), "1/2".into()]);
    ok_owned(&args);
    let (fine, log) = studio(&["merge", joined.to_str().unwrap(), p0.to_str().unwrap(), o.as_str()]);
    assert!(!fine && log.contains("are shards of different runs (steps: 3 vs 4)"), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_killed_shard_resumes_without_redoing_finished_images() {
    let dir = temp("resume");
    let (prompts, variant) = inputs(&dir);
    let out = dir.join("out");
    let o = out.display().to_string();
    let log_file = out.join("shards/0-of-1.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_studio"))
        .args(batch_args(&prompts, &variant, &o))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once two images are recorded (header + 2 lines).
    let start = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&log_file).map(|t| t.lines().count()).unwrap_or(0);
        if lines >= 3 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "no images recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.join("manifest.jsonl").exists(), "killed before the end");
    let recorded = std::fs::read_to_string(&log_file).unwrap().lines().count() - 1;
    assert!((2..6).contains(&recorded), "{recorded} recorded");
    // The rerun keeps what is done and verified, and makes only the rest.
    let log = ok_owned(&batch_args(&prompts, &variant, &o));
    assert!(
        log.contains(&format!("{} image(s) made", 6 - recorded)) && log.contains(&format!("{recorded} resumed")),
        "{log}"
    );
    // A changed image is not verified: it is made again (one image), and comes out the same.
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(manifest.lines().next().unwrap()).unwrap();
    let image = out.join(first["image"].as_str().unwrap());
    let bytes = read(&image);
    std::fs::write(&image, b"not a png").unwrap();
    let log = ok_owned(&batch_args(&prompts, &variant, &o));
    assert!(
        log.contains("1 unverified job(s) will be redone")
            && log.contains("1 image(s) made in")
            && log.contains("5 resumed"),
        "{log}"
    );
    assert_eq!(read(&image), bytes);
    assert_eq!(std::fs::read_to_string(out.join("manifest.jsonl")).unwrap(), manifest);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn erasure_report_shards_merge_into_the_single_report() {
    let dir = temp("report");
    let common = [
        "erasure-report",
        "--model",
        &model(),
        "--concepts",
        "skull",
        "--methods",
        "original,uce",
        "--seeds",
        "1",
        "--per-group",
        "1",
        "--steps",
        "3",
    ]
    .map(str::to_owned);
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = common.iter().map(String::as_str).collect();
        args.extend(extra);
        ok(&args)
    };
    let (json, md) = (dir.join("single.json"), dir.join("single.md"));
    run(&["--json", json.to_str().unwrap(), "--out", md.to_str().unwrap()]);
    let work = dir.join("work");
    let w = work.to_str().unwrap();
    for k in ["0/2", "1/2"] {
        let log = run(&["--shard", k, "--work", w]);
        assert!(log.contains(&format!("shard {k}: 5 image(s)")), "{log}");
    }
    ok(&["merge", w]);
    assert_eq!(read(&work.join("report.json")), read(&json));
    assert_eq!(read(&work.join("report.md")), read(&md));
    // Rerunning a finished shard makes nothing.
    let log = run(&["--shard", "1/2", "--work", w]);
    assert!(log.contains("shard 1/2: 0 to make, 5 done"), "{log}");
    let (fine, log) = studio(&common.iter().map(String::as_str).chain(["--shard", "0/2"]).collect::<Vec<_>>());
    assert!(!fine && log.contains("--shard needs --work DIR"), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = temp("bad");
    let m = model();
    let prompts = dir.join("p.csv");
    std::fs::write(&prompts, "prompt,seed\nok,1\n\"a, b\",x\n").unwrap();
    let p = prompts.to_str().unwrap();
    let o = dir.join("out").display().to_string();
    let (fine, log) = studio(&["batch", "--model", &m, "--prompts", p, "--out", &o]);
    assert!(!fine && log.contains("p.csv line 3: seed `x` is not a whole number ≥ 0"), "{log}");
    std::fs::write(&prompts, "prompt\nok\n").unwrap();
    for (shard, want) in [
        ("3/3", "shard index 3 is out of range for 3 shard(s): use 0/3 … 2/3"),
        ("1/0", "N must be at least 1"),
        ("one/3", "K and N must be whole numbers"),
    ] {
        let (fine, log) = studio(&["batch", "--model", &m, "--prompts", p, "--out", &o, "--shard", shard]);
        assert!(!fine && log.contains(want), "{shard}: {log}");
    }
    let (fine, log) =
        studio(&["batch", "--model", &m, "--prompts", p, "--out", &o, "--variant", "a=missing.safetensors"]);
    assert!(!fine && log.contains("variant `a`: reading its edit missing.safetensors"), "{log}");
    let (fine, log) = studio(&["batch", "--model", &m, "--prompts", p, "--out", &o, "--width", "61"]);
    assert!(!fine && log.contains("--width 61: give a multiple of"), "{log}");
    let (fine, log) = studio(&["merge", &o]);
    assert!(!fine && log.contains("no shard files in"), "{log}");
    // An incomplete shard is named with the command that completes it.
    let (fine, log) = studio(&["batch", "--model", &m, "--prompts", p, "--out", &o, "--steps", "1", "--shard", "0/2"]);
    assert!(fine, "{log}");
    let (fine, log) = studio(&["merge", &o]);
    assert!(!fine && log.contains("shard 1/2 is missing (no shards/1-of-2.jsonl): run it (`--shard 1/2`)"), "{log}");
    let (fine, log) = studio(&["batch", "--model", &m, "--prompts", p, "--out", &o, "--steps", "1", "--shard", "1/2"]);
    assert!(fine && log.contains("shard 1/2: 0 image(s) made"), "{log}");
    // Shard 0 killed before its image was recorded.
    let log_file = dir.join("out/shards/0-of-2.jsonl");
    let text = std::fs::read_to_string(&log_file).unwrap();
    std::fs::write(&log_file, text.lines().next().unwrap().to_owned() + "\n").unwrap();
    let (fine, log) = studio(&["merge", &o]);
    assert!(!fine && log.contains("0-of-2.jsonl has 0 of its 1 jobs done: rerun `--shard 0/2` (it resumes)"), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A `--variants` file with steering and a negative prompt makes the images `studio generate`
/// makes with the same flags (same pixels).
#[test]
fn variants_file_images_equal_generate() {
    let dir = temp("variants");
    let prompts = dir.join("p.jsonl");
    std::fs::write(&prompts, "{\"prompt\": \"a red skull\", \"seed\": 5}\n").unwrap();
    let variants = dir.join("variants.json");
    std::fs::write(
        &variants,
        r#"[{"name": "safree", "steering": {"safree": "skull"}}, {"name": "neg", "negativePrompt": "skull"}]"#,
    )
    .unwrap();
    let out = dir.join("out");
    let m = model();
    ok(&[
        "batch",
        "--model",
        &m,
        "--prompts",
        prompts.to_str().unwrap(),
        "--variants",
        variants.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "3",
    ]);
    let pixels = |p: &Path| image::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).to_rgb8().into_raw();
    for (variant, flags) in [("safree", ["--safree", "skull"]), ("neg", ["--negative-prompt", "skull"])] {
        let png = dir.join(format!("{variant}.png"));
        let mut args = vec!["generate", "--model", &m, "--prompt", "a red skull", "--seed", "5", "--steps", "3"];
        args.extend(flags);
        args.extend(["--out", png.to_str().unwrap()]);
        ok(&args);
        assert_eq!(pixels(&out.join(format!("images/{variant}/00000_5.png"))), pixels(&png), "{variant}");
    }
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    assert!(manifest.lines().nth(1).unwrap().contains("\"negative_prompt\":\"skull\""), "{manifest}");
    std::fs::remove_dir_all(&dir).ok();
}

/// UnlearnCanvas' evaluation grid: `--template` over `--fill` files, the first fill slowest.
#[test]
fn a_template_grid_names_rows_as_unlearncanvas() {
    let dir = temp("grid");
    std::fs::write(dir.join("styles.txt"), "Crayon\nStriped_Pattern\n").unwrap();
    std::fs::write(dir.join("class.txt"), "skull\n").unwrap();
    let out = dir.join("out");
    let style = format!("style={}", dir.join("styles.txt").display());
    let object = format!("object={}", dir.join("class.txt").display());
    let m = model();
    let t = "A {object} image in {style} style.";
    let args = [
        "batch",
        "--model",
        &m,
        "--template",
        t,
        "--fill",
        &style,
        "--fill",
        &object,
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "1",
    ];
    ok(&args);
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = manifest.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (&rows[1]["id"], &rows[1]["prompt"]),
        (&"Striped_Pattern_skull".into(), &"A skull image in Striped Pattern style.".into())
    );
    let (fine, log) =
        studio(&["batch", "--model", &m, "--template", "A {thing}", "--fill", &style, "--out", out.to_str().unwrap()]);
    assert!(!fine && log.contains("--fill style=…: the template has no {style}"), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}
