//! A small `--key value` command-line parser with typed getters; unknown options are errors.

use std::collections::BTreeMap;
use std::str::FromStr;

pub struct Args {
    values: BTreeMap<String, String>,
    flags: Vec<String>,
    /// Everything after a lone `--`.
    pub rest: Vec<String>,
}

impl Args {
    pub fn parse(raw: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut values = BTreeMap::new();
        let mut flags = Vec::new();
        let mut rest = Vec::new();
        let mut it = raw.into_iter().peekable();
        while let Some(a) = it.next() {
            if a == "--" {
                rest.extend(it.by_ref());
                break;
            }
            let Some(key) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}"));
            };
            if let Some((k, v)) = key.split_once('=') {
                values.insert(k.to_string(), v.to_string());
            } else if it.peek().is_some_and(|n| !n.starts_with("--")) {
                values.insert(key.to_string(), it.next().unwrap_or_default());
            } else {
                flags.push(key.to_string());
            }
        }
        Ok(Args { values, flags, rest })
    }

    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.flags.len();
        self.flags.retain(|f| f != name);
        before != self.flags.len()
    }

    pub fn opt<T: FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        match self.values.remove(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| format!("--{name}: cannot use {v:?}")),
        }
    }

    pub fn get<T: FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        Ok(self.opt(name)?.unwrap_or(default))
    }

    /// Fails on any option no getter asked for.
    pub fn finish(self) -> Result<(), String> {
        let unknown: Vec<String> = self.values.keys().chain(self.flags.iter()).map(|k| format!("--{k}")).collect();
        if unknown.is_empty() { Ok(()) } else { Err(format!("unknown option(s): {}", unknown.join(", "))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_flags_and_rest() {
        let raw = ["--rooms", "4", "--json", "--rate=50", "--", "--listen", "x"];
        let mut a = Args::parse(raw.iter().map(|s| s.to_string())).unwrap();
        assert_eq!(a.get("rooms", 1usize).unwrap(), 4);
        assert_eq!(a.get("rate", 1.0f64).unwrap(), 50.0);
        assert_eq!(a.get("senders", 7usize).unwrap(), 7);
        assert!(a.flag("json"));
        assert_eq!(a.rest, vec!["--listen", "x"]);
        a.finish().unwrap();
        let mut b = Args::parse(["--bogus".to_string()]).unwrap();
        assert!(!b.flag("json"));
        assert!(b.finish().is_err());
    }
}
