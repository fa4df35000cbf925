//! A small column-ordered table that renders to CSV and to a JSON array of objects with the same
//! content and column order. Floats are written with Rust's shortest round-trip formatting (`{}`) in
//! CSV and serde_json's shortest round-trip formatting in JSON; nothing here reads a clock.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// One cell. `Null` is an empty CSV field and a JSON `null`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(u64),
    Float(f64),
    Text(String),
    /// A swept value as it appears in the job's parameters.
    Json(Value),
}

impl Cell {
    pub fn opt_float(value: Option<f64>) -> Cell {
        value.map_or(Cell::Null, Cell::Float)
    }

    /// The cell as text, as in CSV.
    pub fn text(&self) -> String {
        self.csv_text()
    }

    fn csv_text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Bool(b) => b.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => format!("{f}"),
            Cell::Text(s) => s.clone(),
            Cell::Json(Value::String(s)) => s.clone(),
            Cell::Json(Value::Null) => String::new(),
            Cell::Json(v) => v.to_string(),
        }
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Null => serializer.serialize_none(),
            Cell::Bool(b) => serializer.serialize_bool(*b),
            Cell::Int(i) => serializer.serialize_u64(*i),
            Cell::Float(f) => serializer.serialize_f64(*f),
            Cell::Text(s) => serializer.serialize_str(s),
            Cell::Json(v) => v.serialize(serializer),
        }
    }
}

/// Rows of cells under named columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

impl Table {
    pub fn new(columns: Vec<String>) -> Self {
        Self {
            columns,
            rows: Vec::new(),
        }
    }

    /// # Panics
    /// When the row's length differs from the number of columns.
    pub fn push(&mut self, row: Vec<Cell>) {
        assert_eq!(
            row.len(),
            self.columns.len(),
            "row length differs from the columns"
        );
        self.rows.push(row);
    }

    /// RFC 4180 CSV with a header line, `\n` line ends and a final newline.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| csv_field(c)).collect();
        out.push_str(&header.join(","));
        out.push('\n');
        for row in &self.rows {
            let fields: Vec<String> = row.iter().map(|c| csv_field(&c.csv_text())).collect();
            out.push_str(&fields.join(","));
            out.push('\n');
        }
        out
    }

    /// A pretty-printed JSON array of objects, keys in column order, with a final newline.
    pub fn to_json(&self) -> serde_json::Result<String> {
        let mut out = serde_json::to_string_pretty(self)?;
        out.push('\n');
        Ok(out)
    }
}

struct Row<'a> {
    columns: &'a [String],
    cells: &'a [Cell],
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.columns.len()))?;
        for (column, cell) in self.columns.iter().zip(self.cells) {
            map.serialize_entry(column, cell)?;
        }
        map.end()
    }
}

impl Serialize for Table {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.rows.len()))?;
        for cells in &self.rows {
            seq.serialize_element(&Row {
                columns: &self.columns,
                cells,
            })?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_carry_the_same_cells() {
        let mut t = Table::new(vec!["a".into(), "b,c".into(), "d".into(), "e".into()]);
        t.push(vec![
            Cell::Float(0.1 + 0.2),
            Cell::Text("x\"y".into()),
            Cell::Null,
            Cell::Json(serde_json::json!("s")),
        ]);
        t.push(vec![
            Cell::Int(3),
            Cell::Bool(true),
            Cell::Float(1e-7),
            Cell::Json(serde_json::json!(0.5)),
        ]);
        assert_eq!(
            t.to_csv(),
            "a,\"b,c\",d,e\n0.30000000000000004,\"x\"\"y\",,s\n3,true,0.0000001,0.5\n"
        );
        let json: Value = serde_json::from_str(&t.to_json().unwrap()).unwrap();
        assert_eq!(json[0]["a"], serde_json::json!(0.30000000000000004));
        assert_eq!(json[0]["d"], Value::Null);
        assert_eq!(json[1]["d"], serde_json::json!(1e-7));
        assert!(
            t.to_json().unwrap().find("\"a\"").unwrap()
                < t.to_json().unwrap().find("\"b,c\"").unwrap()
        );
    }
}
