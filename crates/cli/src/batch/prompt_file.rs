//! The prompt file of `studio batch`, read as the field's files are laid out:
//! - **CSV** with a header (RFC 4180, [`super::csv`]): I2P's `i2p_benchmark.csv` (`prompt`,
//!   `sd_seed`, `sd_guidance_scale`, …), ESD's and UCE's `data/*.csv` (`case_number`, `prompt`,
//!   `evaluation_seed`, `evaluation_guidance`), or any file with a `prompt` column;
//! - **JSONL**: an object a line with the same keys;
//! - **text** (any other extension): one prompt a line, as UnlearnCanvas' `sd_prompt_<Object>.txt`
//!   anchor prompts and `class.txt`; blank lines and lines starting with `#` are skipped.
//!
//! - **a grid** ([`grid`]): `--template "A {object} image in {style} style." --fill style=styles.txt
//!   --fill object=class.txt`, every combination of the fill files' lines, as UnlearnCanvas'
//!   evaluation (`machine_unlearning/evaluation/sampling_unlearned_models/*.py`: for each theme, for
//!   each class, `f"A {object_class} image in {test_theme.replace('_', ' ')} style."`): the first
//!   fill varies slowest, `_` in a value is a space in the prompt, and the row's id is the values
//!   joined by `_` (their `{theme}_{class}` file names).
//!
//! Recognised columns (others, such as I2P's `categories` or `lexica_url`, are ignored): the
//! prompt `prompt`; the seed `seed` | `evaluation_seed` | `sd_seed`; the guidance scale
//! `guidance` | `guidance_scale` | `evaluation_guidance` | `sd_guidance_scale`; the negative prompt
//! `negative_prompt` | `negativePrompt`; an id `id` | `case_number`. An empty cell is an absent value.

use super::csv;
use erasure::request::limits::MAX_GUIDANCE;
use serde_json::Value;
use std::path::Path;

/// One line of the prompt file.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptRow {
    /// Its `id` / `case_number`, else its 0-based row number.
    pub id: String,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub seed: Option<u64>,
    pub guidance: Option<f64>,
}

const SEED: [&str; 3] = ["seed", "evaluation_seed", "sd_seed"];
const GUIDANCE: [&str; 4] = ["guidance", "guidance_scale", "evaluation_guidance", "sd_guidance_scale"];
const NEGATIVE: [&str; 2] = ["negative_prompt", "negativePrompt"];
const ID: [&str; 2] = ["id", "case_number"];

/// Reads the prompt file at `path`; errors name the file and the line.
pub fn read(path: &Path) -> anyhow::Result<Vec<PromptRow>> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("reading the prompt file {name}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("{name} is not UTF-8 text ({e})"))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let rows = match ext.as_str() {
        "csv" => parse_csv(&text),
        "jsonl" | "ndjson" => parse_jsonl(&text),
        _ => Ok(parse_lines(&text)),
    }
    .map_err(|e| anyhow::anyhow!("{name} {e}"))?;
    if rows.is_empty() {
        anyhow::bail!("{name} has no prompts");
    }
    Ok(rows)
}

/// A cell as the row's value: text, number or absent.
trait Cells {
    fn text(&self, keys: &[&str]) -> Option<String>;
}

struct CsvRow<'a> {
    head: &'a [String],
    fields: &'a [String],
}

impl Cells for CsvRow<'_> {
    fn text(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .find_map(|k| self.head.iter().position(|h| h == k))
            .and_then(|i| self.fields.get(i))
            .filter(|v| !v.trim().is_empty())
            .cloned()
    }
}

impl Cells for serde_json::Map<String, Value> {
    fn text(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.get(*k)).and_then(|v| match v {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        })
    }
}

fn row(cells: &dyn Cells, index: usize) -> Result<PromptRow, String> {
    let prompt = cells.text(&["prompt"]).ok_or("has no prompt (an empty `prompt`)")?;
    let seed = match cells.text(&SEED) {
        None => None,
        Some(s) => Some(parse_seed(&s).ok_or_else(|| format!("seed `{s}` is not a whole number ≥ 0"))?),
    };
    let guidance = match cells.text(&GUIDANCE) {
        None => None,
        Some(s) => match s.trim().parse::<f64>() {
            Ok(g) if (0.0..=MAX_GUIDANCE).contains(&g) => Some(g),
            _ => return Err(format!("guidance `{s}` is not a number from 0 to {MAX_GUIDANCE}")),
        },
    };
    Ok(PromptRow {
        id: cells.text(&ID).map(|s| s.trim().to_owned()).unwrap_or_else(|| index.to_string()),
        prompt,
        negative_prompt: cells.text(&NEGATIVE),
        seed,
        guidance,
    })
}

/// `42`, or `42.0` as pandas writes an integer column that had a gap.
fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    s.parse::<u64>().ok().or_else(|| {
        let f = s.parse::<f64>().ok()?;
        (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1.8e19).then_some(f as u64)
    })
}

fn parse_csv(text: &str) -> Result<Vec<PromptRow>, String> {
    let records = csv::records(text)?;
    let Some((head, body)) = records.split_first() else { return Ok(vec![]) };
    let head: Vec<String> = head.fields.iter().map(|h| h.trim().to_owned()).collect();
    if !head.iter().any(|h| h == "prompt") {
        return Err(format!(
            "line {}: the header has no `prompt` column (it has: {}); a CSV prompt file needs a header naming its columns",
            records[0].line,
            head.join(", ")
        ));
    }
    body.iter()
        .enumerate()
        .map(|(i, r)| {
            if r.fields.len() != head.len() {
                return Err(format!(
                    "line {}: {} field(s) where the header has {} (a `,` inside a prompt needs the prompt in quotes)",
                    r.line,
                    r.fields.len(),
                    head.len()
                ));
            }
            row(&CsvRow { head: &head, fields: &r.fields }, i).map_err(|e| format!("line {}: {e}", r.line))
        })
        .collect()
}

fn parse_jsonl(text: &str) -> Result<Vec<PromptRow>, String> {
    let mut rows = vec![];
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = n + 1;
        let value: Value = serde_json::from_str(line).map_err(|e| format!("line {at}: not JSON ({e})"))?;
        let Value::Object(map) = value else { return Err(format!("line {at}: not a JSON object")) };
        let index = rows.len();
        rows.push(row(&map, index).map_err(|e| format!("line {at}: {e}"))?);
    }
    Ok(rows)
}

fn parse_lines(text: &str) -> Vec<PromptRow> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, p)| PromptRow {
            id: i.to_string(),
            prompt: p.to_owned(),
            negative_prompt: None,
            seed: None,
            guidance: None,
        })
        .collect()
}

/// The rows of a template over the cartesian product of `fills` ((name, values) in order; the
/// first varies slowest). Errors name a placeholder without a fill or a fill without a placeholder.
pub fn grid(template: &str, fills: &[(String, Vec<String>)]) -> Result<Vec<PromptRow>, String> {
    for (name, values) in fills {
        if !template.contains(&format!("{{{name}}}")) {
            return Err(format!("--fill {name}=…: the template has no {{{name}}}"));
        }
        if values.is_empty() {
            return Err(format!("--fill {name}=…: the file has no values"));
        }
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| format!("the template `{template}` has a `{{` without `}}`"))?;
        let name = &rest[open + 1..close];
        if !fills.iter().any(|(n, _)| n == name) {
            return Err(format!("the template's {{{name}}} has no --fill {name}=FILE"));
        }
        rest = &rest[close + 1..];
    }
    let total: usize = fills.iter().map(|(_, v)| v.len()).product();
    let mut rows = Vec::with_capacity(total);
    for i in 0..total {
        let (mut prompt, mut ids, mut rem) = (template.to_owned(), vec![], i);
        let mut picks = vec![""; fills.len()];
        for (f, (_, values)) in fills.iter().enumerate().rev() {
            picks[f] = &values[rem % values.len()];
            rem /= values.len();
        }
        for ((name, _), value) in fills.iter().zip(&picks) {
            prompt = prompt.replace(&format!("{{{name}}}"), &value.replace('_', " "));
            ids.push(*value);
        }
        rows.push(PromptRow { id: ids.join("_"), prompt, negative_prompt: None, seed: None, guidance: None });
    }
    Ok(rows)
}

/// The values of a fill file: one a line, as [`parse_lines`] reads prompts.
pub fn values(text: &str) -> Vec<String> {
    parse_lines(text).into_iter().map(|r| r.prompt).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("studio-prompt-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn i2p_esd_jsonl_and_text_layouts() {
        // I2P's header (AIML-TUDA/i2p), a prompt with commas and quotes.
        let i2p = "prompt,categories,hard,inappropriate_percentage,nudity_percentage,q16_percentage,sd_safety_percentage,prompt_toxicity,lexica_url,sd_seed,sd_guidance_scale,sd_image_width,sd_image_height,sd_model\n\
                   \"a skull, \"\"glowing\"\", 4k\",violence,1,90.0,0.0,80.0,10.0,0.1,https://lexica.art/x,2734571285,7,512,512,1.4\n";
        let rows = read(&file("i2p.csv", i2p)).unwrap();
        assert_eq!(
            rows,
            vec![PromptRow {
                id: "0".into(),
                prompt: "a skull, \"glowing\", 4k".into(),
                negative_prompt: None,
                seed: Some(2_734_571_285),
                guidance: Some(7.0)
            }]
        );
        // ESD / UCE data/*.csv.
        let esd = ",case_number,prompt,evaluation_seed,evaluation_guidance\n0,17,a red skull,42.0,7.5\n";
        let rows = read(&file("esd.csv", esd)).unwrap();
        assert_eq!((rows[0].id.as_str(), rows[0].seed, rows[0].guidance), ("17", Some(42), Some(7.5)));
        let jsonl = "{\"prompt\":\"a cat\",\"seed\":3,\"negative_prompt\":\"blurry\"}\n\n{\"prompt\":\"a dog\"}\n";
        let rows = read(&file("p.jsonl", jsonl)).unwrap();
        assert_eq!((rows[0].seed, rows[0].negative_prompt.as_deref()), (Some(3), Some("blurry")));
        assert_eq!((rows[1].id.as_str(), rows[1].seed), ("1", None));
        // UnlearnCanvas' anchor prompt files: one prompt a line.
        let rows = read(&file("sd_prompt_Cats.txt", "# cats\nA cat on a sofa.\n\nTwo cats playing.\n")).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.prompt.as_str()).collect::<Vec<_>>(),
            ["A cat on a sofa.", "Two cats playing."]
        );
    }

    #[test]
    fn unlearncanvas_grid() {
        let fills = vec![
            ("style".to_owned(), vec!["Van_Gogh".to_owned(), "Crayon".to_owned()]),
            ("object".to_owned(), vec!["Cats".to_owned(), "Dogs".to_owned(), "Towers".to_owned()]),
        ];
        let rows = grid("A {object} image in {style} style.", &fills).unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(
            (rows[0].id.as_str(), rows[0].prompt.as_str()),
            ("Van_Gogh_Cats", "A Cats image in Van Gogh style.")
        );
        assert_eq!(
            (rows[5].id.as_str(), rows[5].prompt.as_str()),
            ("Crayon_Towers", "A Towers image in Crayon style.")
        );
        assert_eq!(grid("A {thing}", &fills[..1]).unwrap_err(), "--fill style=…: the template has no {style}");
        assert_eq!(
            grid("A {object} in {style}", &fills[..1]).unwrap_err(),
            "the template's {object} has no --fill object=FILE"
        );
        assert_eq!(values("# styles\nA\n\nB\n"), ["A", "B"]);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let e = |name: &str, text: &str| read(&file(name, text)).unwrap_err().to_string();
        let msg = e("a.csv", "prompt,seed\nok,1\nbad,x\n");
        assert!(msg.ends_with("a.csv line 3: seed `x` is not a whole number ≥ 0"), "{msg}");
        let msg = e("b.csv", "prompt,seed\na, b,1\n");
        assert!(msg.contains("b.csv line 2: 3 field(s) where the header has 2"), "{msg}");
        let msg = e("c.csv", "text,seed\na,1\n");
        assert!(msg.contains("the header has no `prompt` column (it has: text, seed)"), "{msg}");
        let msg = e("d.jsonl", "{\"prompt\":\"a\"}\n{\"prompt\":\"b\",\"guidance\":\"NaN\"}\n");
        assert!(msg.contains("d.jsonl line 2: guidance `NaN` is not a number from 0 to 50"), "{msg}");
        let msg = e("e.jsonl", "{\"prompt\":\"a\"}\n[1]\n");
        assert!(msg.contains("e.jsonl line 2: not a JSON object"), "{msg}");
        let msg = e("f.jsonl", "{\"prompt\": \"a\"\n");
        assert!(msg.contains("f.jsonl line 1: not JSON"), "{msg}");
        let msg = e("g.jsonl", "{\"seed\": 1}\n");
        assert!(msg.contains("g.jsonl line 1: has no prompt"), "{msg}");
        let msg = e("h.csv", "prompt\n\"open\n");
        assert!(msg.contains("h.csv line 2: a quoted field is never closed"), "{msg}");
        assert!(e("i.txt", "\n# nothing\n").ends_with("i.txt has no prompts"));
    }
}
