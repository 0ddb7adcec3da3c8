//! SQL text helpers shared by SQL destinations.

use pipeline_engine::schema::{Column, DataType};

/// Quote an identifier with double quotes (doubling embedded quotes).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}

/// A column definition (`"name" TYPE [NOT NULL]`) using a type-mapping function.
pub fn column_def(column: &Column, type_name: impl Fn(DataType) -> &'static str) -> String {
    let nn = if column.nullable { "" } else { " NOT NULL" };
    format!("{} {}{}", ident(&column.name), type_name(column.data_type), nn)
}

/// A string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(qualified("s", "t"), "\"s\".\"t\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
