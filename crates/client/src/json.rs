//! Parsing a response body into a [`Value`], the same value `serde_json::from_slice` gives, with each
//! object and array allocated at its final size in the usual case.
//!
//! `serde_json` grows every object's map (an `IndexMap`: entries and hash table) and every array from
//! empty, key by key. The records of a page have the same shape, so here each container starts at the
//! size of the last one seen at the same depth of the same body: the map of every record after the
//! first is allocated once and never rehashed. Measured on v2 attendance-period pages: 20–30 % less time
//! than `serde_json::from_slice::<Value>` (docs/performance.md).

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Depths with their own size hint; deeper containers share the last one.
const DEPTHS: usize = 8;
/// The largest capacity a hint asks for (a wide object is not allowed to inflate small ones after it).
const MAX_OBJECT_HINT: usize = 64;
const MAX_ARRAY_HINT: usize = 256;

/// The last container sizes seen, per depth.
#[derive(Default)]
struct Hints {
    objects: [usize; DEPTHS],
    arrays: [usize; DEPTHS],
}

/// Parse `bytes` (one JSON document, surrounding whitespace allowed) into a [`Value`].
pub(crate) fn parse(bytes: &[u8]) -> serde_json::Result<Value> {
    let mut hints = Hints::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Seed { hints: &mut hints, depth: 0 }.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// One value at `depth`, built as `serde_json`'s own `Value` visitor builds it.
struct Seed<'h> {
    hints: &'h mut Hints,
    depth: usize,
}

impl Seed<'_> {
    fn child(&mut self) -> Seed<'_> {
        Seed { hints: self.hints, depth: self.depth + 1 }
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Number(u.into()))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Number::from_f64(f).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        let d = self.depth.min(DEPTHS - 1);
        let mut items = Vec::with_capacity(self.hints.arrays[d]);
        while let Some(item) = seq.next_element_seed(self.child())? {
            items.push(item);
        }
        self.hints.arrays[d] = items.len().min(MAX_ARRAY_HINT);
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut access: A) -> Result<Value, A::Error> {
        let d = self.depth.min(DEPTHS - 1);
        let mut map = Map::with_capacity(self.hints.objects[d]);
        while let Some(key) = access.next_key::<String>()? {
            // A repeated key keeps its first position and takes the last value, as in serde_json.
            let value = access.next_value_seed(self.child())?;
            map.insert(key, value);
        }
        self.hints.objects[d] = map.len().min(MAX_OBJECT_HINT);
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn same(text: &str) {
        let ours = parse(text.as_bytes()).map_err(|e| e.to_string());
        let theirs = serde_json::from_slice::<Value>(text.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(ours, theirs, "{text}");
        if let (Ok(a), Ok(b)) = (&ours, &theirs) {
            // Same key order too (`Value`'s equality ignores it).
            assert_eq!(a.to_string(), b.to_string(), "{text}");
        }
    }

    #[test]
    fn parses_as_serde_json_does() {
        for text in [
            r#"{"_data": [{"id": "a", "person": {"id": "1"}, "n": 1.5, "big": 18446744073709551615, "neg": -9223372036854775808}], "_meta": {"links": {}}}"#,
            r#"{"b": 1, "a": 2, "b": 3}"#,
            r#"[1, -0, 0.0, 1e308, -1e-308, 12345678901234567890123, "é\u00e9\ud83d\ude00", null, true, false, [], {}]"#,
            " \n {\"x\": [[[[[[[[[[1]]]]]]]]]]} \t",
            r#"{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": 1, "k": 2}}}}}}}}}}"#,
            "",
            "{",
            r#"{"a": 1} x"#,
            r#"{"a": 1e400}"#,
            r#"[1, 2,]"#,
            r#"{"a" 1}"#,
            "\"\\ud800\"",
            "\"unterminated",
        ] {
            same(text);
        }
    }

    /// Random documents: nested objects and arrays of varying sizes (so hints are wrong as often as
    /// right), repeated keys, every scalar kind.
    #[test]
    fn random_documents_parse_as_serde_json_does() {
        fn document(rng: &mut rand::rngs::StdRng, depth: u32, out: &mut String) {
            let pick = if depth > 3 { rng.random_range(0..5) } else { rng.random_range(0..8) };
            match pick {
                0 => out.push_str("null"),
                1 => out.push_str(if rng.random() { "true" } else { "false" }),
                2 => out.push_str(&rng.random::<i64>().to_string()),
                3 => out.push_str(&format!("{:e}", rng.random::<f64>() * 1e10)),
                4 => out.push_str(&serde_json::to_string(&format!("s{}\u{e9}\"\\", rng.random::<u16>())).unwrap_or_default()),
                5 | 6 => {
                    out.push('{');
                    for i in 0..rng.random_range(0..24) {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(&format!("\"k{}\":", rng.random_range(0..40)));
                        document(rng, depth + 1, out);
                    }
                    out.push('}');
                }
                _ => {
                    out.push('[');
                    for i in 0..rng.random_range(0..24) {
                        if i > 0 {
                            out.push(',');
                        }
                        document(rng, depth + 1, out);
                    }
                    out.push(']');
                }
            }
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let mut text = String::new();
            document(&mut rng, 0, &mut text);
            same(&text);
        }
    }
}
