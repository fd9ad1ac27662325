//! Opaque inbox page tokens: where the previous page ended, `create_time:id`, base64url.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::store::InboxCursor;

/// The token for the page after the message `(create_time, id)`.
pub fn encode(cursor: &InboxCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", cursor.0, cursor.1))
}

/// The cursor in `token`; None when the token was not made by [`encode`].
pub fn decode(token: &str) -> Option<InboxCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (time, id) = text.split_once(':')?;
    if id.is_empty() {
        return None;
    }
    Some((time.parse().ok()?, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let cursor = (1_763_000_000_123, "msg_0193a1b2c3d4".to_owned());
        let token = encode(&cursor);
        assert!(!token.contains(':'), "the token is opaque: {token}");
        assert_eq!(decode(&token), Some(cursor));
        // Ids are opaque too; a colon in one survives.
        let odd = (-5, "a:b".to_owned());
        assert_eq!(decode(&encode(&odd)), Some(odd));
    }

    #[test]
    fn rejects_tokens_it_did_not_make() {
        for token in [
            "",
            "not base64!",
            &URL_SAFE_NO_PAD.encode("12"),
            &URL_SAFE_NO_PAD.encode("x:id"),
            &URL_SAFE_NO_PAD.encode("12:"),
        ] {
            assert_eq!(decode(token), None, "{token:?}");
        }
    }
}
