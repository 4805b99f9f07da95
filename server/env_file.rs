//! `env_file`: a file of `KEY=VALUE` lines, as systemd's `EnvironmentFile=` and
//! docker's `--env-file` read them.
//!
//! Blank lines and lines starting with `#` or `;` are skipped; `export ` before
//! a key is allowed (so a file written for a shell's `source` works). A value
//! in double quotes may hold `\"`, `\\`, `\n` and `\t`; in single quotes it is
//! taken as written; unquoted, it is the rest of the line, trimmed. Nothing is
//! expanded: `$HOME` stays `$HOME`, as in systemd (a crate such as dotenvy
//! expands variables, which a unit file's reader would not expect).

use std::path::Path;

/// Reads `path`; the error names the file, and the line for a malformed one.
pub fn read(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|(line, reason)| format!("{} line {line}: {reason}", path.display()))
}

/// Parses the text of an env file; the error is a line number and a reason.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut vars = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err((number, format!("expected KEY=VALUE, found {line:?}")));
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err((number, format!("{key:?} is not a variable name")));
        }
        let value = unquote(value.trim()).map_err(|reason| (number, reason))?;
        if value.contains('\0') {
            return Err((number, "a value must not contain NUL".into()));
        }
        vars.push((key.to_string(), value));
    }
    Ok(vars)
}

/// The value of `raw`, quotes removed.
fn unquote(raw: &str) -> Result<String, String> {
    if let Some(rest) = raw.strip_prefix('\'') {
        return match rest.strip_suffix('\'') {
            Some(inner) => Ok(inner.to_string()),
            None => Err(format!("unterminated single quote in {raw:?}")),
        };
    }
    let Some(rest) = raw.strip_prefix('"') else {
        return Ok(raw.to_string());
    };
    let mut value = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let after = chars.as_str().trim();
                if !after.is_empty() && !after.starts_with('#') {
                    return Err(format!("text after the closing quote in {raw:?}"));
                }
                return Ok(value);
            }
            '\\' => match chars.next() {
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some(other) => value.push(other),
                None => break,
            },
            other => value.push(other),
        }
    }
    Err(format!("unterminated double quote in {raw:?}"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn lines_comments_and_quotes() {
        let text = "# a comment\n\n; another\nPLAIN = value with spaces  \nexport SHELLISH=1\n\
                    DOUBLE=\"a \\\"quoted\\\" $HOME\\n\" # trailing\nSINGLE='raw \\n $X'\nEMPTY=\n";
        let vars = parse(text).expect("parses");
        let get = |k: &str| {
            vars.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("PLAIN"), Some("value with spaces"));
        assert_eq!(get("SHELLISH"), Some("1"));
        assert_eq!(get("DOUBLE"), Some("a \"quoted\" $HOME\n"));
        assert_eq!(get("SINGLE"), Some("raw \\n $X"));
        assert_eq!(get("EMPTY"), Some(""));
    }

    #[test]
    fn malformed_lines_are_named() {
        assert_eq!(parse("A=1\nnot a pair\n").unwrap_err().0, 2);
        assert_eq!(parse("BAD KEY=1\n").unwrap_err().0, 1);
        assert_eq!(parse("A=\"open\n").unwrap_err().0, 1);
    }
}
