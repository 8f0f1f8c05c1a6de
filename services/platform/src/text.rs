//! Text output for operators' tools: aligned tables for people (numbers right-aligned, so
//! amounts line up on the decimal point), and CSV fields safe to open in a spreadsheet.

use std::io::Write;

fn numeric(cell: &str) -> bool {
    let t = cell.trim_start_matches(['-', '+']);
    !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
        && t.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// Writes `rows` under `head` as a plain aligned table, two spaces between columns.
pub fn table(out: &mut impl Write, head: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(w.len()) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    // A column of numbers has its heading over the numbers' right edge.
    let numbers: Vec<bool> = (0..w.len())
        .map(|i| {
            let mut cells = rows
                .iter()
                .filter_map(|r| r.get(i))
                .filter(|c| !c.is_empty());
            let first = cells.next();
            first.is_some_and(|c| numeric(c)) && cells.all(|c| numeric(c))
        })
        .collect();
    let line = |cells: &[String], head: bool| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let width = w.get(i).copied().unwrap_or(0);
                let right = if head {
                    numbers.get(i).copied().unwrap_or(false)
                } else {
                    numeric(c)
                };
                if right {
                    format!("{c:>width$}")
                } else {
                    format!("{c:<width$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let head: Vec<String> = head.iter().map(|h| (*h).to_owned()).collect();
    writeln!(out, "{}", line(&head, true))?;
    for r in rows {
        writeln!(out, "{}", line(r, false))?;
    }
    Ok(())
}

/// One CSV field: quoted when it must be, and a leading `=`, `+`, `-` or `@` of text made
/// inert (a spreadsheet would run it as a formula). Numbers stay numbers.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) && !numeric(s) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One CSV record.
pub fn csv_record(fields: &[String]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_align_right_and_text_left() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["NZD".to_owned(), "1,234.50".to_owned()],
            vec!["AUD".to_owned(), "-0.01".to_owned()],
        ];
        table(&mut out, &["CUR", "AMOUNT"], &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CUR    AMOUNT\nNZD  1,234.50\nAUD     -0.01\n"
        );
    }

    #[test]
    fn csv_quotes_and_defuses_formulas_but_keeps_negative_numbers() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("-0.01"), "-0.01");
        assert_eq!(csv_field("-x"), "'-x");
    }
}
