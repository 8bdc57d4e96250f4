//! Checks of guest SQL *text* for what the authorizer cannot see.
//!
//! The authorizer (guard.rs) sees what a statement does, but two things reach
//! no authorizer callback: the conflict resolution `ROLLBACK` (`INSERT OR
//! ROLLBACK`, `ON CONFLICT ROLLBACK`, `RAISE(ROLLBACK, …)` in a trigger), which
//! ends the host's transaction — the whole batch of events, not just the
//! guest's — and the new name of `ALTER TABLE … RENAME TO`. A small SQLite
//! tokenizer (strings, quoted identifiers, comments) finds both; it never
//! rewrites anything.

use super::guard::HOST_TABLE_PREFIX;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An unquoted word: keyword or identifier (compared case-insensitively).
    Word(String),
    /// A quoted identifier or string literal, dequoted.
    Quoted(String),
    /// `;`
    End,
    /// Any other character.
    Other,
}

/// Reads a quoted run starting at `bytes[start]` (the opening quote) whose
/// closing quote is `close`, doubled to escape it. Returns (content, next index).
fn quoted(sql: &str, start: usize, close: u8) -> (String, usize) {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == close {
            if close != b']' && bytes.get(i + 1) == Some(&close) {
                out.push(close);
                i += 2;
                continue;
            }
            return (String::from_utf8_lossy(&out).into_owned(), i + 1);
        }
        out.push(bytes[i]);
        i += 1;
    }
    (String::from_utf8_lossy(&out).into_owned(), i)
}

fn tokens(sql: &str) -> Vec<Token> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'\'' | b'"' | b'`' | b'[' => {
                let close = if c == b'[' { b']' } else { c };
                let (text, next) = quoted(sql, i, close);
                out.push(Token::Quoted(text));
                i = next;
            }
            b';' => {
                out.push(Token::End);
                i += 1;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'_'
                        || bytes[i] == b'$'
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                out.push(Token::Word(sql[start..i].to_string()));
            }
            _ => {
                out.push(Token::Other);
                i += 1;
            }
        }
    }
    out
}

fn is_word(t: &Token, word: &str) -> bool {
    matches!(t, Token::Word(w) if w.eq_ignore_ascii_case(word))
}

/// Refuses guest SQL that would end the host's transaction or rename a table
/// into the host's namespace. Statements that the authorizer refuses anyway
/// (a leading `ROLLBACK`) are left to it, for its clearer message.
pub fn check(sql: &str) -> Result<(), String> {
    // Both checks need one of the two keywords in the text; most statements
    // have neither, and then need no tokens (this runs on every `exec`).
    if !contains_word_ignore_case(sql, b"rollback") && !contains_word_ignore_case(sql, b"rename") {
        return Ok(());
    }
    let tokens = tokens(sql);
    let mut statement_start = true;
    for (i, t) in tokens.iter().enumerate() {
        if is_word(t, "ROLLBACK") && !statement_start {
            return Err(
                "ROLLBACK is not allowed inside a statement: OR ROLLBACK, ON CONFLICT ROLLBACK and \
                 RAISE(ROLLBACK, …) would end the host's transaction; use ABORT or FAIL instead \
                 (an event that fails is rolled back as a whole). Quote it (\"rollback\") if it \
                 is a name."
                    .into(),
            );
        }
        if is_word(t, "RENAME") && tokens.get(i + 1).is_some_and(|t| is_word(t, "TO")) {
            let name = match tokens.get(i + 2) {
                Some(Token::Word(w) | Token::Quoted(w)) => w.as_str(),
                _ => "",
            };
            if name.len() >= HOST_TABLE_PREFIX.len()
                && name[..HOST_TABLE_PREFIX.len()].eq_ignore_ascii_case(HOST_TABLE_PREFIX)
            {
                return Err(format!(
                    "renaming a table to {name} is not allowed: tables named {HOST_TABLE_PREFIX}* \
                     belong to the host"
                ));
            }
        }
        statement_start = *t == Token::End;
    }
    Ok(())
}

/// True if `needle` (lowercase ASCII) occurs in `haystack`, ignoring ASCII case.
fn contains_word_ignore_case(haystack: &str, needle: &[u8]) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_rollback_is_refused_in_every_spelling() {
        for sql in [
            "INSERT OR ROLLBACK INTO t VALUES (1)",
            "insert or rollback into t values (1)",
            "UPDATE OR ROLLBACK t SET v = 1",
            "CREATE TABLE t (v UNIQUE ON CONFLICT ROLLBACK)",
            "CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT RAISE(ROLLBACK, 'no'); END",
            "SELECT 1; INSERT OR /* c */ ROLLBACK INTO t VALUES (2)",
        ] {
            let err = check(sql).unwrap_err();
            assert!(
                err.contains("would end the host's transaction"),
                "{sql}: {err}"
            );
        }
    }

    #[test]
    fn rollback_in_strings_comments_and_quoted_names_is_fine() {
        for sql in [
            "SELECT 'or rollback'",
            "SELECT \"rollback\" FROM t",
            "SELECT [rollback], `rollback` FROM t",
            "SELECT 1 -- or rollback\n",
            "SELECT /* ROLLBACK */ 1",
            "INSERT OR ABORT INTO t VALUES ('it''s or rollback')",
            "ROLLBACK", // refused by the authorizer, with its own message
            "SELECT 1; ROLLBACK TO x",
        ] {
            assert_eq!(check(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn renaming_into_the_host_namespace_is_refused() {
        for sql in [
            "ALTER TABLE t RENAME TO _dohost_x",
            "alter table t rename to \"_DOHOST_kv\"",
            "ALTER TABLE t RENAME TO '_dohost_meta'",
            "ALTER TABLE t RENAME TO [_dohost_y]",
        ] {
            let err = check(sql).unwrap_err();
            assert!(err.contains("belong to the host"), "{sql}: {err}");
        }
        assert_eq!(check("ALTER TABLE t RENAME TO t2"), Ok(()));
        assert_eq!(check("ALTER TABLE t RENAME COLUMN a TO _dohost_b"), Ok(()));
    }
}
