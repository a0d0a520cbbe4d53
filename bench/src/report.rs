//! Results as a human-readable summary and as one JSON line.

pub enum Value {
    Num(f64),
    Int(u64),
    Text(String),
    Missing,
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        if v.is_finite() { Value::Num(v) } else { Value::Missing }
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(v as u64)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Missing, Into::into)
    }
}

/// Named results in insertion order; `line` adds a line of the human summary.
pub struct Report {
    fields: Vec<(String, Value)>,
    lines: Vec<String>,
}

impl Report {
    pub fn new(scenario: &str) -> Report {
        Report { fields: vec![("scenario".into(), scenario.into())], lines: Vec::new() }
    }

    pub fn set(&mut self, key: &str, v: impl Into<Value>) {
        self.fields.push((key.to_string(), v.into()));
    }

    pub fn line(&mut self, text: String) {
        self.lines.push(text);
    }

    pub fn print(&self, json: bool) {
        for l in &self.lines {
            println!("{l}");
        }
        if json {
            println!("{}", self.json());
        }
    }

    pub fn json(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&quote(k));
            s.push(':');
            match v {
                Value::Num(n) => {
                    let r = (n * 1000.0).round() / 1000.0;
                    s.push_str(&format!("{r}"));
                }
                Value::Int(n) => s.push_str(&n.to_string()),
                Value::Text(t) => s.push_str(&quote(t)),
                Value::Missing => s.push_str("null"),
            }
        }
        s.push('}');
        s
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Human formatting of a count: 1234567 -> "1.23M".
pub fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line() {
        let mut r = Report::new("x");
        r.set("a", 1.5f64);
        r.set("b", 3u64);
        r.set("c", None::<u64>);
        r.set("d", "q\"");
        r.set("e", f64::NAN);
        assert_eq!(r.json(), r#"{"scenario":"x","a":1.5,"b":3,"c":null,"d":"q\"","e":null}"#);
        assert_eq!(si(1_234_567.0), "1.23M");
    }
}
