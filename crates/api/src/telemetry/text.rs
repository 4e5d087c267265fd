//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` once per family,
//! then its samples. Label values are escaped (`\\`, `"`, newline); counters are written as
//! integers so that large totals keep every digit.

use std::fmt::Write;

use streampulse_engine::telemetry::HistogramSnapshot;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

pub type Labels<'a> = &'a [(&'a str, &'a str)];

#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
}

impl Encoder {
    pub fn finish(self) -> String {
        self.out
    }

    /// Starts a family. Every family is declared, even one without samples yet, so that the
    /// exposition always lists every metric the binary exports.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
    }

    fn name_and_labels(&mut self, name: &str, labels: Labels<'_>, extra: Option<(&str, &str)>) {
        self.out.push_str(name);
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(extra) {
            self.out.push(if first { '{' } else { ',' });
            first = false;
            self.out.push_str(k);
            self.out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        if !first {
            self.out.push('}');
        }
    }

    pub fn int(&mut self, name: &str, labels: Labels<'_>, value: u64) {
        self.name_and_labels(name, labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    pub fn float(&mut self, name: &str, labels: Labels<'_>, value: f64) {
        self.name_and_labels(name, labels, None);
        self.out.push(' ');
        push_float(&mut self.out, value);
        self.out.push('\n');
    }

    /// `<name>_bucket{…,le}` for every bound and `+Inf`, then `<name>_sum` and `<name>_count`.
    pub fn histogram(&mut self, name: &str, labels: Labels<'_>, h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        let mut le = String::new();
        for &(bound, count) in &h.buckets {
            le.clear();
            push_float(&mut le, bound);
            self.name_and_labels(&bucket, labels, Some(("le", &le)));
            let _ = writeln!(self.out, " {count}");
        }
        self.name_and_labels(&bucket, labels, Some(("le", "+Inf")));
        let _ = writeln!(self.out, " {}", h.count);
        self.float(&format!("{name}_sum"), labels, h.sum_seconds);
        self.int(&format!("{name}_count"), labels, h.count);
    }
}

fn push_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_histograms() {
        let mut e = Encoder::default();
        e.family("x_total", Kind::Counter, "Things.\nMore");
        e.int("x_total", &[("a", "q\"\\\n")], 3);
        e.float("y", &[], f64::NAN);
        e.histogram(
            "d_seconds",
            &[("w", "t")],
            &HistogramSnapshot {
                buckets: vec![(0.5, 1), (2.0, 2)],
                count: 3,
                sum_seconds: 4.25,
            },
        );
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\\nMore\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"\\\\\\n\"} 3\ny NaN\n\
             d_seconds_bucket{w=\"t\",le=\"0.5\"} 1\nd_seconds_bucket{w=\"t\",le=\"2\"} 2\n\
             d_seconds_bucket{w=\"t\",le=\"+Inf\"} 3\nd_seconds_sum{w=\"t\"} 4.25\n\
             d_seconds_count{w=\"t\"} 3\n"
        );
    }
}
