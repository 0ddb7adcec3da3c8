//! dlt's `snake_case` naming convention and dlt's identifier hashes.
//!
//! Mirrors `dlt/common/normalizers/naming/snake_case.py` and `naming.py` (dlt 1.31):
//! trim → reduce alphabet (`+-*@|` → `x_xal`) → each run outside `[A-Za-z0-9_]` (Unicode `\d` kept)
//! becomes `_` → camel-case split → lower-case → `_` before a leading digit → each trailing `_` becomes
//! `x` → runs of `_` collapse → optional shortening to a maximum length around a 6-character hash tag.
//! Source keys are *paths*: split on `__`, each part normalized, re-joined with `__`.

use std::collections::HashMap;

use base64::Engine as _;
use sha3::digest::{ExtendableOutput, Update, XofReader};

/// Separator between path fragments in table and column names.
pub const PATH_SEPARATOR: &str = "__";
/// Name given to an empty or blank source key.
pub const EMPTY_KEY: &str = "_empty";
/// Length in bytes of a `_dlt_id` before base64 (dlt's `DLT_ID_LENGTH_BYTES`).
pub const DLT_ID_LENGTH_BYTES: usize = 10;

/// A name that cannot be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    /// The identifier is empty once trimmed.
    #[error("identifier `{0}` is empty after trimming whitespace")]
    Empty(String),
}

/// Unicode category Nd ranges (Unicode 14, as Python 3.11's `\d`).
const ND_RANGES: &[(u32, u32)] = &[
    (0x30, 0x39), (0x660, 0x669), (0x6F0, 0x6F9), (0x7C0, 0x7C9), (0x966, 0x96F), (0x9E6, 0x9EF),
    (0xA66, 0xA6F), (0xAE6, 0xAEF), (0xB66, 0xB6F), (0xBE6, 0xBEF), (0xC66, 0xC6F), (0xCE6, 0xCEF),
    (0xD66, 0xD6F), (0xDE6, 0xDEF), (0xE50, 0xE59), (0xED0, 0xED9), (0xF20, 0xF29), (0x1040, 0x1049),
    (0x1090, 0x1099), (0x17E0, 0x17E9), (0x1810, 0x1819), (0x1946, 0x194F), (0x19D0, 0x19D9),
    (0x1A80, 0x1A89), (0x1A90, 0x1A99), (0x1B50, 0x1B59), (0x1BB0, 0x1BB9), (0x1C40, 0x1C49),
    (0x1C50, 0x1C59), (0xA620, 0xA629), (0xA8D0, 0xA8D9), (0xA900, 0xA909), (0xA9D0, 0xA9D9),
    (0xA9F0, 0xA9F9), (0xAA50, 0xAA59), (0xABF0, 0xABF9), (0xFF10, 0xFF19), (0x104A0, 0x104A9),
    (0x10D30, 0x10D39), (0x11066, 0x1106F), (0x110F0, 0x110F9), (0x11136, 0x1113F), (0x111D0, 0x111D9),
    (0x112F0, 0x112F9), (0x11450, 0x11459), (0x114D0, 0x114D9), (0x11650, 0x11659), (0x116C0, 0x116C9),
    (0x11730, 0x11739), (0x118E0, 0x118E9), (0x11950, 0x11959), (0x11C50, 0x11C59), (0x11D50, 0x11D59),
    (0x11DA0, 0x11DA9), (0x16A60, 0x16A69), (0x16AC0, 0x16AC9), (0x16B50, 0x16B59), (0x1D7CE, 0x1D7FF),
    (0x1E140, 0x1E149), (0x1E2F0, 0x1E2F9), (0x1E950, 0x1E959), (0x1FBF0, 0x1FBF9),
];

/// Python's `\d` (Unicode decimal digit, category Nd).
pub fn is_unicode_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    let u = c as u32;
    ND_RANGES.binary_search_by(|&(lo, hi)| {
        if hi < u {
            std::cmp::Ordering::Less
        } else if lo > u {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    }).is_ok()
}

/// Python's `str.isspace()`: Rust's White_Space plus the separators U+001C..U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// base64 (standard, `=` stripped) of shake-128 of `s` with a digest of `len` bytes (dlt's `digest128`).
pub fn digest128(s: &str, len: usize) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(shake128(s.as_bytes(), len))
}

/// [`digest128`] of raw bytes (dlt's `digest128b`).
pub fn digest128_bytes(data: &[u8], len: usize) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(shake128(data, len))
}

fn shake128(data: &[u8], len: usize) -> Vec<u8> {
    let mut h = sha3::Shake128::default();
    h.update(data);
    let mut out = vec![0u8; len];
    h.finalize_xof().read(&mut out);
    out
}

/// A random root-row `_dlt_id`: 10 random bytes, standard base64 without padding (14 characters).
pub fn random_dlt_id() -> String {
    DltIdBuf::default().random().to_string()
}

/// Room on the stack for a random `_dlt_id` (base64 of [`DLT_ID_LENGTH_BYTES`] bytes, no padding), so a
/// row's id costs no allocation.
#[derive(Default)]
pub struct DltIdBuf([u8; 16]);

impl DltIdBuf {
    /// A new random `_dlt_id` (as [`random_dlt_id`]), held in this buffer.
    pub fn random(&mut self) -> &str {
        let bytes: [u8; DLT_ID_LENGTH_BYTES] = rand::random();
        let n = base64::engine::general_purpose::STANDARD_NO_PAD.encode_slice(bytes, &mut self.0).unwrap_or(0);
        // Base64 is ASCII.
        std::str::from_utf8(&self.0[..n]).unwrap_or_default()
    }
}

/// The deterministic `_dlt_id` of a child row: `digest128("<parent_id>_<table>_<idx>", 10)`.
pub fn nested_row_id(parent_row_id: &str, table: &str, list_idx: usize) -> String {
    digest128(&format!("{parent_row_id}_{table}_{list_idx}"), DLT_ID_LENGTH_BYTES)
}

/// The 6-character tag dlt puts into shortened identifiers (shake-128, 4 bytes, base64, `/+`→`ab`, lower).
pub fn shorten_tag(identifier: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(shake128(identifier.as_bytes(), 4));
    b64.chars()
        .map(|c| match c {
            '/' => 'a',
            '+' => 'b',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Shorten `normalized` to `max_len` characters if longer: its head, the tag of `original`, its tail
/// (dlt's `shorten_identifier` / `_trim_and_tag`). A `max_len` below the tag length is raised to it.
pub fn shorten_identifier(normalized: &str, original: &str, max_len: Option<usize>) -> String {
    let Some(max_len) = max_len.filter(|&m| m > 0) else { return normalized.to_string() };
    let n_chars = normalized.chars().count();
    if n_chars <= max_len {
        return normalized.to_string();
    }
    let tag = shorten_tag(original);
    let max_len = max_len.max(tag.len());
    let remaining = max_len - tag.len();
    let head = remaining / 2 + remaining % 2;
    let tail = remaining / 2;
    let mut out: String = normalized.chars().take(head).collect();
    out.push_str(&tag);
    out.extend(normalized.chars().skip(n_chars - tail));
    out
}

/// Join already normalized fragments with `__` (blank ones skipped) and shorten the result, the tag being
/// computed over the joined path itself (dlt's `shorten_fragments`).
pub fn shorten_fragments(fragments: &[&str], max_len: Option<usize>) -> String {
    let path = make_path(fragments);
    shorten_identifier(&path, &path, max_len)
}

fn make_path(fragments: &[&str]) -> String {
    let mut path = String::new();
    for f in fragments.iter().filter(|f| !py_strip(f).is_empty()) {
        if !path.is_empty() {
            path.push_str(PATH_SEPARATOR);
        }
        path.push_str(f);
    }
    path
}

/// Normalize one identifier (no path splitting), as dlt's `snake_case.normalize_identifier`.
pub fn normalize_identifier(identifier: &str, max_len: Option<usize>) -> Result<String, NamingError> {
    let stripped = py_strip(identifier);
    if stripped.is_empty() {
        return Err(NamingError::Empty(identifier.to_string()));
    }
    // Reduce the alphabet, then replace each run of non [A-Za-z\d_] characters by one `_`.
    let mut chars: Vec<char> = Vec::with_capacity(stripped.len());
    let mut in_run = false;
    for c in stripped.chars() {
        let c = match c {
            '+' | '*' => 'x',
            '-' => '_',
            '@' => 'a',
            '|' => 'l',
            c => c,
        };
        if c.is_ascii_alphabetic() || c == '_' || is_unicode_digit(c) {
            chars.push(c);
            in_run = false;
        } else if !in_run {
            chars.push('_');
            in_run = true;
        }
    }
    // Camel case, pass 1: `([^_])([A-Z][a-z]+)` → `\1_\2`.
    let mut pass1: Vec<char> = Vec::with_capacity(chars.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '_'
            && i + 2 < chars.len()
            && chars[i + 1].is_ascii_uppercase()
            && chars[i + 2].is_ascii_lowercase()
        {
            pass1.push(c);
            pass1.push('_');
            pass1.push(chars[i + 1]);
            let mut j = i + 2;
            while j < chars.len() && chars[j].is_ascii_lowercase() {
                pass1.push(chars[j]);
                j += 1;
            }
            i = j;
        } else {
            pass1.push(c);
            i += 1;
        }
    }
    // Camel case, pass 2: `([a-z0-9])([A-Z])` → `\1_\2`; then lower-case.
    let mut pass2 = String::with_capacity(pass1.len() + 8);
    if pass1.first().is_some_and(|&c| is_unicode_digit(c)) {
        pass2.push('_');
    }
    let mut i = 0;
    while i < pass1.len() {
        let c = pass1[i];
        if (c.is_ascii_lowercase() || c.is_ascii_digit()) && i + 1 < pass1.len() && pass1[i + 1].is_ascii_uppercase() {
            pass2.push(c);
            pass2.push('_');
            pass2.push(pass1[i + 1].to_ascii_lowercase());
            i += 2;
        } else {
            pass2.push(c.to_ascii_lowercase());
            i += 1;
        }
    }
    // Trailing `_` → `x`, one for one; then collapse runs of `_`.
    let body = pass2.trim_end_matches('_');
    let trailing = pass2.len() - body.len();
    let mut out = String::with_capacity(pass2.len());
    let mut prev_us = false;
    for c in body.chars() {
        if c == '_' {
            if !prev_us {
                out.push('_');
            }
            prev_us = true;
        } else {
            out.push(c);
            prev_us = false;
        }
    }
    out.extend(std::iter::repeat_n('x', trailing));
    Ok(shorten_identifier(&out, stripped, max_len))
}

/// Normalize a path: split on `__` (blank parts dropped), normalize each part, re-join and shorten
/// (dlt's `normalize_path`). A path without any non-blank part is an error.
pub fn normalize_path(path: &str, max_len: Option<usize>) -> Result<String, NamingError> {
    let mut parts: Vec<String> = Vec::new();
    for part in path.split(PATH_SEPARATOR) {
        if !py_strip(part).is_empty() {
            parts.push(normalize_identifier(part, max_len)?);
        }
    }
    if parts.is_empty() {
        return Err(NamingError::Empty(path.to_string()));
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(shorten_identifier(&make_path(&refs), path, max_len))
}

/// Normalize a source key (a path): blank keys, and keys made only of separators, become `_empty`.
pub fn normalize_key(key: &str, max_len: Option<usize>) -> String {
    normalize_path(key, max_len).unwrap_or_else(|_| EMPTY_KEY.to_string())
}

/// The naming convention with a cache of normalized keys (the same keys repeat millions of times).
#[derive(Debug, Clone, Default)]
pub struct Naming {
    max_len: Option<usize>,
    cache: HashMap<String, String>,
}

impl Naming {
    /// A convention shortening names longer than `max_len` (`None`: never shorten).
    pub fn new(max_len: Option<usize>) -> Self {
        Naming { max_len, cache: HashMap::new() }
    }

    /// The maximum identifier length, if any.
    pub fn max_len(&self) -> Option<usize> {
        self.max_len
    }

    /// Normalize a source key (see [`normalize_key`]), cached.
    pub fn key(&mut self, key: &str) -> &str {
        if !self.cache.contains_key(key) {
            let v = normalize_key(key, self.max_len);
            self.cache.insert(key.to_string(), v);
        }
        self.cache.get(key).map(String::as_str).unwrap_or(EMPTY_KEY)
    }

    /// Normalize a table name (a path), uncached.
    pub fn table(&self, name: &str) -> Result<String, NamingError> {
        normalize_path(name, self.max_len)
    }

    /// Join normalized fragments and shorten (see [`shorten_fragments`]).
    pub fn fragments(&self, fragments: &[&str]) -> String {
        shorten_fragments(fragments, self.max_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(s: &str) -> String {
        normalize_key(s, None)
    }

    #[test]
    fn random_ids_are_dlts_shape_and_differ() {
        use base64::Engine as _;
        let mut buf = DltIdBuf::default();
        let a = buf.random().to_string();
        let b = random_dlt_id();
        for id in [&a, &b] {
            assert_eq!(id.len(), 14, "{id}");
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(id).expect("base64");
            assert_eq!(bytes.len(), DLT_ID_LENGTH_BYTES);
        }
        assert_ne!(a, b);
        assert_ne!(a, buf.random());
    }

    #[test]
    fn spec_examples() {
        assert_eq!(n("Emergency contact – relationship to the employee"), "emergency_contact_relationship_to_the_employee");
        assert_eq!(n("e-mail_(privat)"), "e_mail_privatx");
        assert_eq!(n("E-Mail (privat)"), "e_mail_privatx");
        // after §3.1 (spaces → `_`): two trailing underscores
        assert_eq!(n("cost_center_%"), "cost_centerxx");
        assert_eq!(n("Cost Center %"), "cost_centerx");
        assert_eq!(n("Größe"), "gr_e");
        assert_eq!(n("1. Hilfe"), "_1_hilfe");
        assert_eq!(n("T-Shirt size"), "t_shirt_size");
        assert_eq!(n("absence_123:periods"), "absence_123_periods");
    }

    #[test]
    fn camel_case_and_specials() {
        assert_eq!(n("HTTPStatus"), "http_status");
        assert_eq!(n("firstName"), "first_name");
        assert_eq!(n("aBcDe"), "a_bc_de");
        assert_eq!(n("ABC"), "abc");
        assert_eq!(n("a+b*c@d|e"), "axbxcadle");
        assert_eq!(n("_dlt_id"), "_dlt_id");
        assert_eq!(n("  spaced  "), "spaced");
        assert_eq!(n("_"), "x");
        assert_eq!(n("a_"), "ax");
        assert_eq!(n("٣abc"), "_٣abc");
        assert_eq!(n("x٣"), "x٣");
    }

    #[test]
    fn paths_and_empty_keys() {
        assert_eq!(n("a__B"), "a__b");
        assert_eq!(n("A__"), "a");
        assert_eq!(n("___"), "x");
        assert_eq!(n(""), "_empty");
        assert_eq!(n("   "), "_empty");
        assert_eq!(n("__"), "_empty");
        assert!(normalize_identifier(" ", None).is_err());
    }

    #[test]
    fn hashes_match_dlt() {
        // Values computed with dlt 1.31 (`digest128`, `NamingConvention._compute_tag`).
        assert_eq!(digest128("abc", 10), "WIEJLdgYv1z4ow");
        assert_eq!(nested_row_id("rootid", "employees__cost_centers", 0), "WSyW2aCo8c22Yg");
        assert_eq!(random_dlt_id().len(), 14);
        assert_eq!(shorten_tag("abc"), "wiejlq");
    }

    #[test]
    fn shortening() {
        let long = "a".repeat(40);
        let s = normalize_key(&long, Some(20));
        assert_eq!(s.chars().count(), 20);
        assert!(s.starts_with("aaaaaaa") && s.ends_with("aaaaaaa"));
        assert_eq!(&s[7..13], shorten_tag(&long));
        // dlt 1.31, max_length=20
        assert_eq!(s, "aaaaaaamrdoxwaaaaaaa");
        assert_eq!(normalize_key("HelloWorldThisIsAVeryLongIdentifierName", Some(20)), "hello_wrl9tbaer_name");
        assert_eq!(normalize_key(&format!("a__{}", "b".repeat(30)), Some(20)), "a__bbbbphyz7abbbbbbb");
        assert_eq!(normalize_key(&format!("{}__{}", "x".repeat(19), "y".repeat(19)), Some(20)), "xxxxxxxds2aogyyyyyyy");
    }

    #[test]
    fn matches_dlt_outputs() {
        // Expected values printed by dlt 1.31's snake_case `normalize_path`.
        for (input, want) in [
            ("XMLHttpRequest2Go", "xml_http_request2_go"), ("aB_C", "a_b_c"), ("Ünïcödé Kéy", "_n_c_d_k_y"),
            ("a\u{1c}b", "a_b"), ("getHTTPResponseCode", "get_http_response_code"), ("ab1C", "ab1_c"),
            ("1A", "_1_a"), ("__init__", "init"), ("_a_", "_ax"), ("ABcd", "a_bcd"),
        ] {
            assert_eq!(n(input), want, "{input:?}");
        }
    }

    proptest! {
        #[test]
        fn properties(s in "\\PC{0,30}", max in proptest::option::of(8usize..40)) {
            let out = normalize_key(&s, max);
            prop_assert!(!out.is_empty());
            let first = out.chars().next().unwrap();
            prop_assert!(first == '_' || first.is_ascii_lowercase(), "{out}");
            prop_assert!(out.chars().all(|c| c == '_' || c.is_ascii_lowercase() || is_unicode_digit(c)), "{out}");
            if let Some(m) = max { prop_assert!(out.chars().count() <= m); }
            prop_assert_eq!(normalize_key(&out, max), out.clone());
        }
    }
}
