//! The common shape of an event read without serde: one flat object of the format's fields
//! (strings without escapes, numbers, `true`/`false`/`null`, and the tags as a flat object),
//! scanned in one pass. Reading an event was a third of what a Kafka worker does per event, and
//! with this scan it takes about two thirds of the time serde's generic machinery took
//! (BENCHMARKS (l), change 10).
//!
//! It must never read a text differently from the general reader ([`super::decode`]): anything
//! outside the shape (an escape, a control character, a nested value, a name given twice, more
//! than [`MAX_OTHER_FIELDS`] other fields, a number whose value it could not produce exactly as
//! serde_json does) makes it give up, and the general reader reads the text from the start,
//! with its errors. A differential property test and the `event_line` fuzz target hold the two
//! to the same fields.

use std::borrow::Cow;

use smallvec::SmallVec;

use super::decode::{finish_members, Fields, Members, Raw};
use super::EventFormat;

/// Fields other than the format's four that the scan skips (each must be a scalar); an event
/// with more is left to the general reader.
const MAX_OTHER_FIELDS: usize = 4;

/// Powers of ten that are exact in an `f64` (10^22 is the last).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Reads `text` into `fields` (which starts empty) when it has the common shape; `None` when
/// it does not, with `fields` then holding whatever was read before giving up.
pub(super) fn read<'a>(text: &'a str, format: &EventFormat, fields: &mut Fields<'a>) -> Option<()> {
    let mut c = Cursor { text, pos: 0 };
    let mut others: SmallVec<[&'a str; MAX_OTHER_FIELDS]> = SmallVec::new();
    c.whitespace();
    c.object(|c, key| {
        let slot = if key == format.metric_id_field {
            &mut fields.metric_id
        } else if key == format.timestamp_field {
            &mut fields.ts
        } else if key == format.value_field {
            &mut fields.value
        } else if key == format.tags_field {
            if fields.tags.is_some() {
                return None;
            }
            fields.tags = Some(if c.peek() == Some(b'{') {
                c.members(&mut fields.tag_members)?;
                Raw::Object
            } else {
                c.scalar()?
            });
            return Some(());
        } else {
            if others.len() == MAX_OTHER_FIELDS || others.contains(&key) {
                return None;
            }
            others.push(key);
            return c.scalar().map(drop);
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(c.scalar()?);
        Some(())
    })?;
    c.whitespace();
    (c.pos == text.len()).then_some(())
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.pos += 1)
    }

    /// JSON's whitespace: what serde_json skips between tokens.
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// A string without escapes or control characters, borrowed from the text.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
        // Both ends are ASCII quotes, so both are character boundaries.
        let s = self.text.get(start..self.pos)?;
        self.pos += 1;
        Some(s)
    }

    fn word(&mut self, word: &str, raw: Raw<'a>) -> Option<Raw<'a>> {
        let rest = self.text.get(self.pos..)?;
        rest.starts_with(word).then(|| {
            self.pos += word.len();
            raw
        })
    }

    fn scalar(&mut self) -> Option<Raw<'a>> {
        match self.peek()? {
            b'"' => self.string().map(|s| Raw::Str(Cow::Borrowed(s))),
            b't' => self.word("true", Raw::Bool(true)),
            b'f' => self.word("false", Raw::Bool(false)),
            b'n' => self.word("null", Raw::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A number as serde_json reads it: an integer as `UInt` (`Int` when negative), anything
    /// with a fraction or an exponent as `Float`. Only where the value is exact by construction:
    /// at most 18 digits, and for a float a significand up to 2^53 and a power of ten up to 22,
    /// so that one multiplication or division of two exact values gives the correctly rounded
    /// result, which is also what serde_json computes there. "-0" is serde_json's float -0.0:
    /// left to it.
    fn number(&mut self) -> Option<Raw<'a>> {
        const MAX_DIGITS: u32 = 18;
        let negative = self.eat(b'-').is_some();
        let (mut significand, mut digits, mut exponent) = (0u64, 0u32, 0i32);
        let mut digit = |c: &mut Self, significand: &mut u64| -> Option<bool> {
            match c.peek() {
                Some(d @ b'0'..=b'9') => {
                    digits += 1;
                    if digits > MAX_DIGITS {
                        return None;
                    }
                    *significand = *significand * 10 + u64::from(d - b'0');
                    c.pos += 1;
                    Some(true)
                }
                _ => Some(false),
            }
        };
        match self.peek()? {
            b'0' => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return None;
                }
            }
            b'1'..=b'9' => while digit(self, &mut significand)? {},
            _ => return None,
        }
        let mut float = false;
        if self.eat(b'.').is_some() {
            float = true;
            let mut fraction = 0;
            while digit(self, &mut significand)? {
                fraction += 1;
            }
            if fraction == 0 {
                return None;
            }
            exponent -= fraction;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            float = true;
            let sign = match self.peek() {
                Some(b'-') => -1,
                Some(b'+') => 1,
                _ => 0,
            };
            if sign != 0 {
                self.pos += 1;
            }
            let (mut e, mut n) = (0i32, 0);
            while let Some(d @ b'0'..=b'9') = self.peek() {
                n += 1;
                if n > 3 {
                    return None;
                }
                e = e * 10 + i32::from(d - b'0');
                self.pos += 1;
            }
            if n == 0 {
                return None;
            }
            exponent += if sign < 0 { -e } else { e };
        }
        if !float {
            return match (negative, significand) {
                (false, s) => Some(Raw::UInt(s)),
                (true, 0) => None,
                (true, s) => Some(Raw::Int(-i64::try_from(s).ok()?)),
            };
        }
        if significand > 1 << 53 {
            return None;
        }
        let pow = *POW10.get(exponent.unsigned_abs() as usize)?;
        let f = if exponent >= 0 {
            significand as f64 * pow
        } else {
            significand as f64 / pow
        };
        Some(Raw::Float(if negative { -f } else { f }))
    }

    /// A flat object's members (scalars only), sorted and with later duplicates winning, as
    /// the general reader keeps them.
    fn members(&mut self, members: &mut Members<'a>) -> Option<()> {
        self.object(|c, key| {
            let value = c.scalar()?;
            members.push((Cow::Borrowed(key), value));
            Some(())
        })?;
        finish_members(members);
        Some(())
    }

    /// An object, each member's value read by `member` after its name and colon.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.whitespace();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.whitespace();
            self.eat(b':')?;
            self.whitespace();
            member(self, key)?;
            self.whitespace();
            if self.eat(b'}').is_some() {
                return Some(());
            }
            self.eat(b',')?;
            self.whitespace();
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::decode::{read_generic, Read};

    /// The scan's fields for `text`, if it reads it, beside the general reader's.
    fn both(text: &str) -> Option<(String, String)> {
        let format = EventFormat::default();
        let mut scanned = Fields::default();
        read(text, &format, &mut scanned)?;
        let mut general = Fields::default();
        let read = read_generic(text, &format, &mut general);
        assert!(matches!(read, Ok(Read::Object)), "{text:?}: {read:?}");
        Some((format!("{scanned:?}"), format!("{general:?}")))
    }

    fn same(text: &str) -> bool {
        match both(text) {
            Some((scanned, general)) => {
                assert_eq!(scanned, general, "{text:?}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn the_common_shape_is_scanned_as_the_general_reader_reads_it() {
        for text in [
            r#"{"metric_id": "metric_00041", "ts": 1699999998921, "value": 846.96, "tags": {"host": "host-042"}}"#,
            r#"{"metric_id":"a","ts":"2023-11-14T22:13:20Z","value":-3,"tags":null}"#,
            " {\"value\":1e3,\r\n\t\"metric_id\":\"é\u{7f}\",\"ts\":0} ",
            r#"{"metric_id":"a","ts":1,"value":0.000001,"tags":{"b":"2","a":1,"b":true,"c":null}}"#,
            r#"{"metric_id":"a","ts":1,"value":123456789012345678,"unit":"ms","n":2.5E-3}"#,
            r#"{"metric_id":"a","ts":-12,"value":9007199254740992e22}"#,
            r#"{"metric_id":"a","ts":1,"value":4.35,"tags":{}}"#,
            r#"{}"#,
            r#"{"value":true}"#,
        ] {
            assert!(same(text), "not scanned: {text}");
        }
    }

    #[test]
    fn what_the_scan_cannot_read_exactly_is_left_to_the_general_reader() {
        for text in [
            r#"{"metric_id":"a\"b","ts":1,"value":1}"#, // an escape
            "{\"metric_id\":\"a\u{1}\",\"ts\":1,\"value\":1}", // a control character
            r#"{"metric_id":"a","metric_id":"b"}"#,     // a field twice
            r#"{"x":1,"x":2}"#,                         // another field twice
            r#"{"a":1,"b":2,"c":3,"d":4,"e":5}"#,       // more other fields than kept
            r#"{"x":[1]}"#,                             // a nested value
            r#"{"tags":{"a":{"b":1}}}"#,                // a nested tag
            r#"{"value":-0}"#,                          // serde_json's float -0.0
            r#"{"value":1234567890123456789}"#,         // 19 digits
            r#"{"value":9007199254740993.0}"#,          // over 2^53
            r#"{"value":1e23}"#,                        // over 10^22
            r#"{"value":01}"#,
            r#"{"value":1.}"#,
            r#"{"value":.5}"#,
            r#"{"value":1e}"#,
            r#"{"value":+1}"#,
            r#"{"value":tru}"#,
            r#"{"value":1} x"#,
            r#"{"value":1,}"#,
            r#"["value"]"#,
            r#""x""#,
            "",
        ] {
            assert!(!same(text), "scanned: {text}");
        }
    }

    /// A JSON-like text from the pieces the scan decides on, well formed or not.
    fn texts() -> impl Strategy<Value = String> {
        let number = (
            prop::option::of(Just("-")),
            prop_oneof![
                1 => Just("0".to_string()),
                6 => "[1-9][0-9]{0,8}",
                2 => "[1-9][0-9]{9,20}",
                1 => "0[0-9]",
            ],
            prop::option::of("\\.[0-9]{0,20}"),
            prop::option::of("[eE][+-]?[0-9]{0,4}"),
        )
            .prop_map(|(sign, int, frac, exp)| {
                format!(
                    "{}{int}{}{}",
                    sign.unwrap_or(""),
                    frac.unwrap_or_default(),
                    exp.unwrap_or_default()
                )
            });
        let string = prop_oneof![
            5 => "\"[a-z_é ]{0,6}\"",
            1 => "\"([a-z_é ]|\\\\n|\\\\\"|\\\\u00e9|\u{1}){0,6}\"",
        ];
        let scalar = prop_oneof![
            4 => number,
            3 => string,
            1 => prop::sample::select(vec!["true", "false", "null", "nul", "[]", "[1]", "{}"])
                .prop_map(String::from),
        ];
        let key = prop_oneof![
            4 => prop::sample::select(vec!["metric_id", "ts", "value", "tags"]),
            1 => prop::sample::select(vec!["a", "b", "c", "d", "e", "metric\\u005fid"]),
        ];
        let space = prop::sample::select(vec!["", "", " ", "\n\t", "\r"]);
        let member = (key.clone(), space.clone(), scalar.clone())
            .prop_map(|(k, s, v)| format!("\"{k}\"{s}:{s}{v}"));
        let tags = prop::collection::vec((key, scalar), 0..4).prop_map(|ms| {
            let ms: Vec<String> = ms.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("\"tags\":{{{}}}", ms.join(","))
        });
        let any_member = prop_oneof![4 => member, 1 => tags];
        (
            prop::collection::vec(any_member, 0..6),
            space,
            prop::sample::select(vec!["", "", "", " ", ",", " x", "}"]),
        )
            .prop_map(|(ms, s, tail)| format!("{s}{{{s}{}}}{tail}", ms.join(",")))
    }

    #[test]
    fn scan_and_general_reader_agree() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let format = EventFormat::default();
        let (mut scanned, cases) = (0, 20_000);
        for _ in 0..cases {
            let text = texts().new_tree(&mut runner).unwrap().current();
            scanned += usize::from(same(&text));
            assert_eq!(
                format!("{:?}", format.parse_ref(&text)),
                format!("{:?}", format.parse_ref_generic(&text)),
                "{text:?}"
            );
        }
        // The pieces are drawn so that a good share of texts has the common shape.
        assert!(scanned > cases / 10, "only {scanned} of {cases} scanned");
    }

    proptest! {
        #[test]
        fn numbers_are_read_to_the_same_bits(
            digits in "[1-9][0-9]{0,19}",
            point in 0usize..21,
            exp in -30i32..30,
            negative: bool,
        ) {
            let point = point.min(digits.len());
            let (int, frac) = digits.split_at(point);
            let int = if int.is_empty() { "0" } else { int };
            let sign = if negative { "-" } else { "" };
            let exact = digits.len() < 15 && frac.len() < 22;
            for (value, scannable) in [
                (format!("{sign}{int}.{frac}0"), exact),
                (format!("{sign}{int}.{frac}0e{exp}"), false),
                (format!("{sign}{digits}"), digits.len() <= 18),
            ] {
                let scanned = same(&format!("{{\"value\":{value}}}"));
                prop_assert!(scanned || !scannable, "{} not scanned", value);
            }
        }
    }
}
