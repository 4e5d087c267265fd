//! Printing JSON rows for people (aligned columns) or programs (one JSON object per line).

use std::io::Write;

use serde_json::Value;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// A cell: strings bare, numbers shortened to 6 significant digits, missing values as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let s = format!("{f:.6}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            s.to_string()
        }
        other => other.to_string(),
    }
}

pub fn print(format: OutputFormat, columns: &[&str], rows: &[Value]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => {
            for row in rows {
                writeln!(out, "{row}")?;
            }
        }
        OutputFormat::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| columns.iter().map(|c| cell(&r[*c])).collect())
                .collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    cells
                        .iter()
                        .map(|r| r[i].len())
                        .max()
                        .unwrap_or(0)
                        .max(c.len())
                })
                .collect();
            let line = |values: Vec<&str>| -> String {
                values
                    .iter()
                    .zip(&widths)
                    .map(|(v, w)| format!("{v:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            writeln!(out, "{}", line(columns.to_vec()))?;
            for row in &cells {
                writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
            }
            if rows.is_empty() {
                writeln!(out, "(no rows)")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_are_short_and_readable() {
        assert_eq!(cell(&json!(873.6889230769231)), "873.688923");
        assert_eq!(cell(&json!(2.5)), "2.5");
        assert_eq!(cell(&json!(12)), "12");
        assert_eq!(cell(&json!("cpu")), "cpu");
        assert_eq!(cell(&Value::Null), "-");
    }
}
