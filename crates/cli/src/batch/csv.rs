//! CSV records as RFC 4180 writes them (what pandas' `to_csv` writes for the I2P and ESD/UCE
//! prompt files): fields separated by `,`, a field in `"` may hold `,`, line breaks and `""` for a
//! quote; records end at `\n` or `\r\n` outside quotes.

/// One record and the 1-based line it starts on.
#[derive(Debug, PartialEq)]
pub struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// Every record of `text` (blank lines skipped). An unterminated quote is an error naming the
/// line it opened on.
pub fn records(text: &str) -> Result<Vec<Record>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = vec![];
    let mut fields = vec![];
    let mut field = String::new();
    let (mut line, mut start, mut quote_line) = (1usize, 1usize, 0usize);
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    let mut end_record = |fields: &mut Vec<String>, field: &mut String, start: usize| {
        fields.push(std::mem::take(field));
        if !(fields.len() == 1 && fields[0].trim().is_empty()) {
            out.push(Record { line: start, fields: std::mem::take(fields) });
        }
        fields.clear();
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                in_quotes = true;
                quote_line = line;
            }
            ',' => fields.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                end_record(&mut fields, &mut field, start);
                line += 1;
                start = line;
            }
            c => field.push(c),
        }
    }
    if in_quotes {
        return Err(format!("line {quote_line}: a quoted field is never closed (a `\"` is missing)"));
    }
    end_record(&mut fields, &mut field, start);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        records(text).unwrap().into_iter().map(|r| r.fields).collect()
    }

    #[test]
    fn quotes_commas_and_line_breaks() {
        assert_eq!(fields("a,b\n1,2\n"), vec![vec!["a", "b"], vec!["1", "2"]]);
        assert_eq!(fields("p\r\n\"x, \"\"y\"\"\"\r\n"), vec![vec!["p"], vec!["x, \"y\""]]);
        let r = records("id,prompt\n1,\"two\nlines\"\n\n2,z").unwrap();
        assert_eq!(r[1], Record { line: 2, fields: vec!["1".into(), "two\nlines".into()] });
        assert_eq!(r[2], Record { line: 5, fields: vec!["2".into(), "z".into()] });
        assert_eq!(fields("a,,\n"), vec![vec!["a", "", ""]]);
        assert_eq!(fields("\u{feff}prompt\nx"), vec![vec!["prompt"], vec!["x"]]);
    }

    #[test]
    fn an_open_quote_names_its_line() {
        assert_eq!(
            records("p\nok\n\"never closed\n").unwrap_err(),
            "line 3: a quoted field is never closed (a `\"` is missing)"
        );
    }
}
