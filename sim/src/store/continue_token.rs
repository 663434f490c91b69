//! The `continue` token of a paginated list, byte-compatible with apiserver's
//! `storage.EncodeContinue`: base64url (no padding) of
//! `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>\u0000"}`, where key is relative to the
//! list's prefix (`name` inside one namespace, `namespace/name` across namespaces).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::Status;

const VERSION: &str = "meta.k8s.io/v1";

/// A decoded token: the list's resourceVersion and the last key returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContinueToken {
    /// -1 in the inconsistent token a 410 answer offers.
    pub rv: i64,
    /// Key of the last item returned (without the trailing NUL).
    pub last_key: String,
}

#[derive(Deserialize)]
struct Wire {
    v: String,
    rv: i64,
    start: String,
}

impl ContinueToken {
    pub fn encode(&self) -> String {
        let start =
            serde_json::to_string(&format!("{}\u{0}", self.last_key)).expect("strings serialize");
        let json = format!(
            "{{\"v\":\"{VERSION}\",\"rv\":{},\"start\":{start}}}",
            self.rv
        );
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a token; errors are the real 400 answers.
    pub fn decode(raw: &str) -> Result<ContinueToken, Status> {
        let invalid = |why: String| Status::bad_request(format!("invalid continue token: {why}"));
        let bytes = URL_SAFE_NO_PAD
            .decode(raw.trim_end_matches('='))
            .map_err(|e| invalid(format!("illegal base64 data: {e}")))?;
        let wire: Wire = serde_json::from_slice(&bytes).map_err(|e| {
            invalid(format!(
                "continue key is not valid: {}",
                go_json_error(&bytes, &e)
            ))
        })?;
        if wire.v != VERSION {
            return Err(invalid(format!(
                "continue key is not valid: server does not recognize this encoded key version {}",
                wire.v
            )));
        }
        let Some(last_key) = wire
            .start
            .strip_suffix('\u{0}')
            .map(str::to_string)
            .or(Some(wire.start))
            .filter(|k| !k.is_empty())
        else {
            return Err(invalid(
                "continue key is not valid: encoded start key empty".into(),
            ));
        };
        if wire.rv == 0 || wire.rv < -1 {
            return Err(invalid(format!(
                "continue key is not valid: incorrect encoded start resourceVersion (version {VERSION})"
            )));
        }
        Ok(ContinueToken {
            rv: wire.rv,
            last_key,
        })
    }
}

/// Go's encoding/json wording for the common case of a bare word (`nope`), which is what
/// clients that mangle tokens usually send; other errors keep serde's wording.
fn go_json_error(bytes: &[u8], error: &serde_json::Error) -> String {
    let text = String::from_utf8_lossy(bytes);
    for literal in ["null", "true", "false"] {
        let first = literal.as_bytes()[0];
        if bytes.first() == Some(&first) {
            for (i, (&got, &want)) in bytes.iter().zip(literal.as_bytes()).enumerate().skip(1) {
                if got != want {
                    return format!(
                        "invalid character '{}' in literal {literal} (expecting '{}')",
                        got as char, want as char
                    );
                }
                if i == literal.len() - 1 {
                    break;
                }
            }
        }
    }
    if let Some(c) = text
        .chars()
        .next()
        .filter(|c| !matches!(c, '{' | '[' | '"' | '-' | '0'..='9' | ' '))
    {
        return format!("invalid character '{c}' looking for beginning of value");
    }
    error.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_byte_identical_to_the_real_servers() {
        let token = ContinueToken {
            rv: 1232,
            last_key: "cm-10".into(),
        };
        assert_eq!(
            token.encode(),
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzMiwic3RhcnQiOiJjbS0xMFx1MDAwMCJ9"
        );
        assert_eq!(ContinueToken::decode(&token.encode()).unwrap(), token);
        let expired = ContinueToken {
            rv: -1,
            last_key: "cm-10".into(),
        };
        assert_eq!(
            expired.encode(),
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6LTEsInN0YXJ0IjoiY20tMTBcdTAwMDAifQ"
        );
    }

    #[test]
    fn an_undecodable_token_is_400_with_the_real_wording() {
        let status = ContinueToken::decode("bm9wZQ").unwrap_err();
        assert_eq!(status.code, 400);
        assert_eq!(
            status.message,
            "invalid continue token: continue key is not valid: invalid character 'o' in literal null (expecting 'u')"
        );
        assert_eq!(ContinueToken::decode("!!!").unwrap_err().code, 400);
    }
}
