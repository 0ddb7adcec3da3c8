//! Data files: the package's Arrow batches conformed to a table's columns and encoded as Parquet (zstd)
//! or dlt's gzipped JSONL, and Parquet files read back (merge survivors, row counts).
//!
//! Everything here is the workspace's own `arrow`/`parquet` (60): no batch ever crosses into delta-rs.

use std::io::Write as _;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType as A, Field, Schema as ArrowSchema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use pipeline_engine::schema::DataType;
use serde_json::{Map, Value};

/// Why a file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Arrow cast or batch error.
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet encoding or decoding error.
    #[error("{0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A batch has a column the table does not.
    #[error("column `{0}` is not in the table's schema")]
    UnknownColumn(String),
    /// I/O on an in-memory buffer (gzip).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Data file formats (dlt's `loader_file_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Parquet, zstd-compressed (the default).
    Parquet,
    /// Newline-delimited JSON, gzipped (`.jsonl.gz`, as dlt writes it).
    Jsonl,
}

impl FileFormat {
    /// File name extension.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Jsonl => "jsonl.gz",
        }
    }

    /// dlt's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Jsonl => "jsonl",
        }
    }
}

/// The Arrow type of a column in this destination's files: the engine's type, except `time`, which is
/// text (`HH:MM:SS[.ffffff]`) in Delta tables, Delta having no time type.
pub fn file_type(dt: DataType, delta: bool) -> A {
    match dt {
        DataType::Time if delta => A::Utf8,
        other => pipeline_engine::normalize::arrow_type(other),
    }
}

/// An Arrow schema of `(name, type)` columns, all nullable (files of one table agree on it even where
/// the engine marks a column NOT NULL, so readers never see a nullability conflict between files).
pub fn arrow_schema(columns: &[(String, A)]) -> SchemaRef {
    Arc::new(ArrowSchema::new(columns.iter().map(|(n, t)| Field::new(n, t.clone(), true)).collect::<Vec<_>>()))
}

/// A batch with exactly `target`'s columns in its order: missing columns NULL, others cast to the
/// target's type. A column the target does not have is an error (it would be lost).
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, FileError> {
    let rows = batch.num_rows();
    for f in batch.schema().fields() {
        if target.field_with_name(f.name()).is_err() {
            return Err(FileError::UnknownColumn(f.name().clone()));
        }
    }
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for f in target.fields() {
        cols.push(match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => c.clone(),
            Some(c) => arrow::compute::cast(c, f.data_type())?,
            None => new_null_array(f.data_type(), rows),
        });
    }
    Ok(RecordBatch::try_new_with_options(target.clone(), cols, &RecordBatchOptions::new().with_row_count(Some(rows)))?)
}

/// One Parquet file being written in memory.
pub struct ParquetBuilder {
    writer: ArrowWriter<Vec<u8>>,
    rows: u64,
}

impl ParquetBuilder {
    /// Start a file with this schema: zstd (level 3), statistics per page.
    pub fn new(schema: &SchemaRef) -> Result<Self, FileError> {
        let level = ZstdLevel::try_new(3)?;
        let props = WriterProperties::builder().set_compression(Compression::ZSTD(level)).build();
        Ok(ParquetBuilder { writer: ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))?, rows: 0 })
    }

    /// Add a batch (already conformed to the schema).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), FileError> {
        self.rows += batch.num_rows() as u64;
        Ok(self.writer.write(batch)?)
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// About how many bytes the file has so far (encoded plus buffered).
    pub fn size(&self) -> usize {
        self.writer.inner().len() + self.writer.in_progress_size()
    }

    /// The finished file.
    pub fn finish(self) -> Result<Bytes, FileError> {
        Ok(Bytes::from(self.writer.into_inner()?))
    }
}

/// Read a Parquet file; `columns`: only these (ones the file lacks are left out).
pub fn read_parquet(bytes: Bytes, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>, FileError> {
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?.with_batch_size(64 * 1024);
    if let Some(cols) = columns {
        let mask = ProjectionMask::columns(builder.parquet_schema(), cols.iter().copied());
        builder = builder.with_projection(mask);
    }
    let reader = builder.build()?;
    let mut out = Vec::new();
    for batch in reader {
        out.push(batch?);
    }
    Ok(out)
}

/// The row count in a Parquet footer, given the file's tail (`Err(needed)`: read this many bytes from
/// the end and call again).
pub fn parquet_rows_from_tail(tail: &Bytes, file_size: u64) -> Result<Result<u64, usize>, FileError> {
    let mut reader = parquet::file::metadata::ParquetMetaDataReader::new();
    match reader.try_parse_sized(tail, file_size) {
        Ok(()) => Ok(Ok(reader.finish()?.file_metadata().num_rows().max(0) as u64)),
        Err(parquet::errors::ParquetError::NeedMoreData(n)) => Ok(Err(n)),
        Err(e) => Err(e.into()),
    }
}

/// Rows of a gzipped JSONL file (its lines).
pub fn jsonl_rows(bytes: &[u8]) -> Result<u64, FileError> {
    use std::io::Read as _;
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut text)?;
    Ok(text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count() as u64)
}

/// Batches as dlt's JSONL (one object per row, NULLs left out, timestamps ISO 8601 with offset, JSON
/// columns embedded as JSON), gzipped.
pub fn encode_jsonl(batches: &[RecordBatch], json_columns: &[String]) -> Result<Bytes, FileError> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for batch in batches {
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut obj = Map::new();
            for (i, field) in schema.fields().iter().enumerate() {
                let col = batch.column(i);
                if col.is_null(row) {
                    continue;
                }
                let v = json_value(col.as_ref(), row, json_columns.contains(field.name()))?;
                obj.insert(field.name().clone(), v);
            }
            serde_json::to_writer(&mut gz, &Value::Object(obj)).map_err(std::io::Error::other)?;
            gz.write_all(b"\n")?;
        }
    }
    Ok(Bytes::from(gz.finish()?))
}

fn json_value(col: &dyn Array, row: usize, embedded_json: bool) -> Result<Value, FileError> {
    use arrow::array::AsArray as _;
    use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
    Ok(match col.data_type() {
        A::Utf8 => {
            let s = col.as_string::<i32>().value(row);
            if embedded_json {
                serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
            } else {
                Value::String(s.to_string())
            }
        }
        A::Int64 => Value::from(col.as_primitive::<Int64Type>().value(row)),
        A::Float64 => serde_json::Number::from_f64(col.as_primitive::<Float64Type>().value(row)).map(Value::Number).unwrap_or(Value::Null),
        A::Boolean => Value::Bool(col.as_boolean().value(row)),
        A::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) => {
            let micros = col.as_primitive::<TimestampMicrosecondType>().value(row);
            match chrono::DateTime::from_timestamp_micros(micros) {
                Some(t) => Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)),
                None => Value::Null,
            }
        }
        _ => Value::String(arrow::util::display::array_value_to_string(col, row)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray};

    fn batch() -> RecordBatch {
        let schema = Arc::new(ArrowSchema::new(vec![
            Field::new("id", A::Int64, false),
            Field::new("at", A::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("t", A::Time64(arrow::datatypes::TimeUnit::Microsecond), true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), None]).with_timezone("UTC")),
                Arc::new(Time64MicrosecondArray::from(vec![Some(34_200_000_000), None])),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn conform_adds_nulls_casts_and_refuses_unknown_columns() {
        let target = arrow_schema(&[
            ("id".into(), A::Int64),
            ("at".into(), file_type(DataType::Timestamp, true)),
            ("t".into(), file_type(DataType::Time, true)),
            ("note".into(), A::Utf8),
        ]);
        let b = conform(&batch(), &target).expect("conform");
        assert_eq!(b.num_columns(), 4);
        assert_eq!(b.column(2).as_any().downcast_ref::<StringArray>().expect("text").value(0), "09:30:00");
        assert_eq!(b.column(3).null_count(), 2);
        let narrow = arrow_schema(&[("id".into(), A::Int64)]);
        assert!(matches!(conform(&batch(), &narrow), Err(FileError::UnknownColumn(c)) if c == "at"));
    }

    #[test]
    fn parquet_round_trip_projection_and_footer_rows() {
        let target = arrow_schema(&[("id".into(), A::Int64), ("at".into(), file_type(DataType::Timestamp, false)), ("t".into(), file_type(DataType::Time, false))]);
        let mut w = ParquetBuilder::new(&target).expect("writer");
        w.write(&conform(&batch(), &target).expect("conform")).expect("write");
        assert_eq!(w.rows(), 2);
        let bytes = w.finish().expect("finish");
        let back = read_parquet(bytes.clone(), Some(&["id", "missing"])).expect("read");
        assert_eq!(back[0].num_columns(), 1);
        assert_eq!(back[0].num_rows(), 2);
        let all = read_parquet(bytes.clone(), None).expect("read");
        assert_eq!(all[0].schema(), target);
        let size = bytes.len() as u64;
        let tail = bytes.slice(bytes.len() - 8..);
        let need = parquet_rows_from_tail(&tail, size).expect("parse").expect_err("needs more than 8 bytes");
        let tail = bytes.slice(bytes.len() - need..);
        assert_eq!(parquet_rows_from_tail(&tail, size).expect("parse"), Ok(2));
    }

    #[test]
    fn jsonl_is_dlts_shape() {
        let gz = encode_jsonl(&[batch()], &[]).expect("jsonl");
        assert_eq!(jsonl_rows(&gz).expect("rows"), 2);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).expect("gunzip");
        let first: Value = serde_json::from_str(text.lines().next().expect("line")).expect("json");
        assert_eq!(first["id"], 1);
        assert_eq!(first["at"], "2023-11-14T22:13:20+00:00");
        assert_eq!(first["t"], "09:30:00");
        let second: Value = serde_json::from_str(text.lines().nth(1).expect("line")).expect("json");
        assert!(second.get("at").is_none(), "NULLs are left out");
    }
}
