//! The HTTP types every route handler speaks, independent of how the request
//! arrived (Vercel's runtime, the local dev server or a test calling the
//! handler directly).
//!
//! It imports only `platform::db` (to tell an unavailable database from a
//! fault).

mod background;
mod body;
mod error;
mod response;
mod streamed;

pub use background::Background;
pub use body::{MAX_BODY_BYTES, read_limited};
pub use error::{ApiError, method_not_allowed};
pub use response::{allow_header, json};
pub use streamed::{BodySender, Gone, Reply, Streamed, Torn, channel};

/// A request whose body has already been read, within [`MAX_BODY_BYTES`].
pub type Request = http::Request<bytes::Bytes>;
pub type Response = http::Response<bytes::Bytes>;
