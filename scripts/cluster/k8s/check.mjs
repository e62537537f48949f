// Static check of the Kubernetes manifests (no cluster, no npm packages):
//   node check.mjs batch-job.yaml merge-job.yaml [pvc.yaml]
// Parses the YAML subset they use (block maps and sequences, plain/quoted scalars, `|` blocks;
// anything else is an error, not a guess) and asserts what a typo would silently break: an Indexed
// Job whose completions equal the N of `--shard "$JOB_COMPLETION_INDEX/N"`, per-index retries with
// restartPolicy Never, and a merge of the same folder on the same ReadWriteMany PersistentVolumeClaim.
import { readFileSync } from "node:fs";

function parseYaml(text) {
  const lines = text.split("\n").map((raw) => ({ raw, indent: raw.search(/\S/), text: raw.trim() }));
  let i = 0;
  const skip = () => {
    while (i < lines.length && (lines[i].indent < 0 || lines[i].text.startsWith("#"))) i++;
  };
  const scalar = (s) => {
    if (/^["']/.test(s)) {
      const m = s.match(/^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*')\s*(#.*)?$/);
      if (!m) throw new Error(`unterminated quote: ${s}`);
      return m[1][0] === '"' ? JSON.parse(m[1]) : m[1].slice(1, -1).replace(/''/g, "'");
    }
    s = s.replace(/\s+#.*$/, "");
    if (/^[[{&*!]/.test(s)) throw new Error(`unsupported YAML (flow, anchor or tag): ${s}`);
    if (/^-?\d+$/.test(s)) return Number(s);
    return { true: true, false: false, null: null, "~": null }[s] ?? s;
  };
  const block = (indent) => {
    // A `|` literal: the lines indented deeper than its key, less the first one's indentation.
    const body = [];
    while (i < lines.length && (lines[i].indent < 0 || lines[i].indent > indent)) body.push(lines[i++].raw);
    while (body.length && !body.at(-1).trim()) body.pop();
    const cut = Math.min(...body.filter((l) => l.trim()).map((l) => l.search(/\S/)));
    return body.map((l) => l.slice(cut)).join("\n") + "\n";
  };
  const value = (rest, indent) => {
    if (rest === "|") return block(indent);
    if (rest !== "") return scalar(rest);
    skip();
    if (i < lines.length && lines[i].indent > indent) return node(lines[i].indent);
    // A sequence may sit at its key's own indentation.
    if (i < lines.length && lines[i].indent === indent && /^-( |$)/.test(lines[i].text)) return node(indent);
    return null;
  };
  const node = (indent) => {
    skip();
    const isSeq = /^-( |$)/.test(lines[i].text);
    const out = isSeq ? [] : {};
    for (skip(); i < lines.length && lines[i].indent === indent; skip()) {
      const line = lines[i];
      if (isSeq) {
        if (!/^-( |$)/.test(line.text)) break;
        const rest = line.text.slice(1).trim();
        if (/^[^"'\s][^:]*:( |$)/.test(rest)) {
          // "- key: v": a map whose first key sits two columns in; reread the line as that.
          const col = line.raw.indexOf(rest);
          lines[i] = { raw: line.raw, indent: col, text: rest };
          out.push(node(col));
        } else {
          i++;
          out.push(value(rest, indent));
        }
      } else {
        const m = line.text.match(/^([^"'\s][^:]*):(?: +(.*))?$/);
        if (!m) throw new Error(`line ${i + 1}: expected "key: value", got: ${line.text}`);
        if (m[1] in out) throw new Error(`line ${i + 1}: duplicate key ${m[1]}`);
        i++;
        out[m[1]] = value((m[2] ?? "").trim(), indent);
      }
    }
    if (i < lines.length && lines[i].indent > indent) throw new Error(`line ${i + 1}: unexpected indentation`);
    return out;
  };
  skip();
  const doc = node(lines[i].indent);
  skip();
  if (i < lines.length) throw new Error(`line ${i + 1}: not parsed: ${lines[i].text}`);
  return doc;
}

const errors = [];
const expect = (file, ok, what) => ok || errors.push(`${file}: ${what}`);
const [batchFile, mergeFile, pvcFile] = process.argv.slice(2);
if (!batchFile || !mergeFile) {
  console.error("usage: node check.mjs batch-job.yaml merge-job.yaml [pvc.yaml]");
  process.exit(2);
}
const load = (f) => {
  try {
    return parseYaml(readFileSync(f, "utf8"));
  } catch (e) {
    console.error(`${f}: ${e.message}`);
    process.exit(1);
  }
};
const pod = (job) => job?.spec?.template?.spec ?? {};
const shell = (c) => [...(c?.command ?? []), ...(c?.args ?? [])].join(" ");
const claim = (job) => pod(job).volumes?.find((v) => v.persistentVolumeClaim)?.persistentVolumeClaim.claimName;
const mounted = (job) => {
  const vol = pod(job).volumes?.find((v) => v.persistentVolumeClaim)?.name;
  return (pod(job).containers ?? []).every((c) => c.volumeMounts?.some((m) => m.name === vol));
};

const batch = load(batchFile);
const spec = batch.spec ?? {};
expect(batchFile, batch.apiVersion === "batch/v1" && batch.kind === "Job", "not a batch/v1 Job");
expect(batchFile, spec.completionMode === "Indexed", "completionMode is not Indexed");
expect(batchFile, Number.isInteger(spec.completions) && spec.completions >= 1, "completions is not a whole number ≥ 1");
expect(batchFile, Number.isInteger(spec.parallelism) && spec.parallelism >= 1 && spec.parallelism <= spec.completions,
  "parallelism is not between 1 and completions");
expect(batchFile, Number.isInteger(spec.backoffLimitPerIndex), "no backoffLimitPerIndex (retries per shard)");
expect(batchFile, pod(batch).restartPolicy === "Never", "restartPolicy must be Never (backoffLimitPerIndex needs it)");
const run = shell(pod(batch).containers?.[0]);
const shard = run.match(/--shard[ =]"?\$\{?JOB_COMPLETION_INDEX\}?\/(\d+)"?/);
expect(batchFile, shard, 'the command has no --shard "$JOB_COMPLETION_INDEX/N"');
expect(batchFile, !shard || Number(shard[1]) === spec.completions,
  `--shard .../${shard?.[1]} but completions is ${spec.completions}: they must be the same N`);
const sub = run.match(/studio (batch|erasure-report) .*--(?:out|work)[ =](\S+)/s);
expect(batchFile, sub, "the command is not `studio batch ... --out DIR` or `studio erasure-report ... --work DIR`");
expect(batchFile, claim(batch) && mounted(batch), "no PersistentVolumeClaim volume mounted in the container");

const merge = load(mergeFile);
expect(mergeFile, merge.apiVersion === "batch/v1" && merge.kind === "Job", "not a batch/v1 Job");
expect(mergeFile, (merge.spec?.completions ?? 1) === 1 && merge.spec?.completionMode !== "Indexed", "the merge must be one pod");
const mergeRun = shell(pod(merge).containers?.[0]).match(/studio merge (\S+)/);
expect(mergeFile, mergeRun, "the command is not `studio merge OUT`");
expect(mergeFile, !mergeRun || !sub || mergeRun[1] === sub[2], `merges ${mergeRun?.[1]}, but the shards go to ${sub?.[2]}`);
expect(mergeFile, claim(merge) === claim(batch) && mounted(merge), `not the shards' PersistentVolumeClaim (${claim(batch)})`);
if (pvcFile) {
  const pvc = load(pvcFile);
  expect(pvcFile, pvc.kind === "PersistentVolumeClaim" && pvc.metadata?.name === claim(batch), `not the claim ${claim(batch)}`);
  expect(pvcFile, pvc.spec?.accessModes?.includes("ReadWriteMany"), "not ReadWriteMany (shards on several nodes write to it)");
}

if (errors.length) {
  for (const e of errors) console.error(`FAIL ${e}`);
  process.exit(1);
}
console.log(`k8s manifests OK: ${spec.completions} indexed shards of studio ${sub[1]} into ${sub[2]}, merged by ${mergeFile}`);
