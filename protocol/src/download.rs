//! Download links for finished recordings: the edge hands a browser a link to the recorder node
//! that holds the file, and the node checks it without asking the edge. A link's token is
//! `<job_id>.<expires_at>.<signature>`, the signature the hex HMAC-SHA256 under the node's
//! secret of `edgemeet-download\n<job_id>\n<expires_at>` (Unix seconds). It names one job's
//! recording and nothing else, and stops working at `expires_at`; it carries no secret.

use crate::signing::{sign, verify_signature};

/// How far the checking node's clock may run ahead of the minting edge's: a link is taken
/// until this long after its `expires_at`.
pub const CLOCK_LEEWAY_SECS: u64 = 60;

/// What the signature covers: a purpose, so a download signature cannot be a body signature.
fn signed_text(job_id: &str, expires_at: u64) -> String {
    format!("edgemeet-download\n{job_id}\n{expires_at}")
}

/// A token for `job_id`'s recording, good until `expires_at` (Unix seconds).
pub fn mint(secret: &[u8], job_id: &str, expires_at: u64) -> String {
    let signature = sign(secret, signed_text(job_id, expires_at).as_bytes());
    format!("{job_id}.{expires_at}.{signature}")
}

/// Why a download token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DownloadTokenError {
    /// Not a token of this shape.
    #[error("malformed download token")]
    Malformed,
    /// Its signature is not the node's.
    #[error("invalid download token")]
    Invalid,
    /// Past its `expires_at`.
    #[error("expired download token")]
    Expired,
}

/// The job whose recording `token` grants, if it is well formed, signed under `secret` and not
/// expired at `now` (Unix seconds; [`CLOCK_LEEWAY_SECS`] after `expires_at` are allowed for the
/// clocks' difference). The signature is compared in constant time.
pub fn verify(secret: &[u8], token: &str, now: u64) -> Result<String, DownloadTokenError> {
    let mut parts = token.splitn(3, '.');
    let (Some(job_id), Some(expires_at), Some(signature)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(DownloadTokenError::Malformed);
    };
    let valid_id = !job_id.is_empty()
        && job_id.len() <= 64
        && job_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let expires_at: u64 = expires_at
        .parse()
        .map_err(|_| DownloadTokenError::Malformed)?;
    if !valid_id || signature.len() != 64 {
        return Err(DownloadTokenError::Malformed);
    }
    if !verify_signature(
        secret,
        signed_text(job_id, expires_at).as_bytes(),
        signature,
    ) {
        return Err(DownloadTokenError::Invalid);
    }
    if now >= expires_at.saturating_add(CLOCK_LEEWAY_SECS) {
        return Err(DownloadTokenError::Expired);
    }
    Ok(job_id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"recorder-secret-0123456789";

    #[test]
    fn a_token_grants_its_job_until_it_expires() {
        let token = mint(SECRET, "sid-recording-1", 1_000);
        assert_eq!(verify(SECRET, &token, 999), Ok("sid-recording-1".into()));
        // The checking clock may run a minute ahead of the minting one.
        assert_eq!(verify(SECRET, &token, 1_059), Ok("sid-recording-1".into()));
        assert_eq!(
            verify(SECRET, &token, 1_060),
            Err(DownloadTokenError::Expired)
        );
        assert_eq!(
            verify(b"another-secret-0123456789", &token, 10),
            Err(DownloadTokenError::Invalid)
        );
    }

    #[test]
    fn a_changed_token_is_refused() {
        let token = mint(SECRET, "job-1", 1_000);
        let other_job = token.replacen("job-1", "job-2", 1);
        assert_eq!(
            verify(SECRET, &other_job, 10),
            Err(DownloadTokenError::Invalid)
        );
        let later = token.replacen(".1000.", ".9999.", 1);
        assert_eq!(verify(SECRET, &later, 10), Err(DownloadTokenError::Invalid));
        for bad in [
            "",
            "job-1",
            "job-1.10",
            "../x.10.00",
            "job-1.x.00",
            "a b.10.00",
        ] {
            assert_eq!(
                verify(SECRET, bad, 1),
                Err(DownloadTokenError::Malformed),
                "{bad}"
            );
        }
    }
}
