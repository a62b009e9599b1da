use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use super::{ApiError, Request};

/// Bodies larger than this are refused before any parsing: every body this
/// service accepts is a token or two.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Reads a streaming request into memory, refusing more than
/// [`MAX_BODY_BYTES`] whatever `Content-Length` claims.
pub async fn read_limited<B>(request: http::Request<B>) -> Result<Request, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(http::Request::from_parts(parts, collected.to_bytes())),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::PayloadTooLarge)
        }
        Err(_) => Err(ApiError::BadRequest {
            code: "unreadable_body",
            message: "The request body could not be read.",
        }),
    }
}
